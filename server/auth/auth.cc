#include "server/auth/auth.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace exportd::auth {
namespace {

constexpr size_t kMinTokenLength = 16;

absl::string_view ActionName(Action action) {
  switch (action) {
    case Action::kRead: return "read resources";
    case Action::kManageConnections: return "manage connections";
    case Action::kUseConnection: return "use connections";
    case Action::kManageExports: return "manage exports";
    case Action::kManageSegments: return "manage segments";
    case Action::kRunExports: return "run exports";
    case Action::kReadAudit: return "read the audit log";
  }
  return "do this";
}

}  // namespace

absl::string_view RoleName(v1::Role role) {
  switch (role) {
    case v1::ROLE_ADMIN: return "admin";
    case v1::ROLE_CONTRIBUTOR: return "contributor";
    case v1::ROLE_VIEWER: return "viewer";
    default: return "none";
  }
}

absl::StatusOr<v1::Role> ParseRole(absl::string_view text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "admin") return v1::ROLE_ADMIN;
  if (lower == "contributor") return v1::ROLE_CONTRIBUTOR;
  if (lower == "viewer") return v1::ROLE_VIEWER;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", text, "'; use admin, contributor or viewer"));
}

absl::Status Authorize(const Principal& who, Action action) {
  bool allowed = false;
  switch (who.role) {
    case v1::ROLE_ADMIN:
      allowed = true;
      break;
    case v1::ROLE_CONTRIBUTOR:
      allowed = action != Action::kManageConnections && action != Action::kReadAudit;
      break;
    case v1::ROLE_VIEWER:
      allowed = action == Action::kRead;
      break;
    default:
      break;
  }
  if (allowed) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("principal '", who.name, "' (role ",
                                                  RoleName(who.role), ") may not ",
                                                  ActionName(action)));
}

bool MayUseConnection(const Principal& who, const v1::Connection* connection) {
  switch (who.role) {
    case v1::ROLE_ADMIN:
      return true;
    case v1::ROLE_CONTRIBUTOR:
      return connection == nullptr || connection->shared_with_contributors();
    default:
      return false;
  }
}

bool MaySeeConnection(const Principal& who, const v1::Connection& connection) {
  return who.role == v1::ROLE_ADMIN || connection.shared_with_contributors();
}

std::unique_ptr<Authenticator> Authenticator::FromMap(
    absl::flat_hash_map<std::string, Principal> tokens) {
  return std::unique_ptr<Authenticator>(new Authenticator(std::move(tokens)));
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::FromTokensFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("--tokens-file '", path,
                                                   "' cannot be read: ", std::strerror(errno)));
  }
  absl::flat_hash_map<std::string, Principal> tokens;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    absl::string_view content = line;
    if (size_t hash = content.find('#'); hash != absl::string_view::npos) {
      content = content.substr(0, hash);
    }
    content = absl::StripAsciiWhitespace(content);
    if (content.empty()) continue;
    std::vector<absl::string_view> parts =
        absl::StrSplit(content, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto where = absl::StrCat("tokens file '", path, "' line ", line_no, ": ");
    if (parts.size() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "expected '<token> <principal> <role>', found ", parts.size(), " fields"));
    }
    if (parts[0].size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "token is shorter than ", kMinTokenLength, " characters; use a long random one"));
    }
    auto role = ParseRole(parts[2]);
    if (!role.ok()) return absl::InvalidArgumentError(absl::StrCat(where, role.status().message()));
    auto [it, inserted] =
        tokens.emplace(std::string(parts[0]), Principal{std::string(parts[1]), *role});
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "the token of '", parts[1], "' is already given to '",
                       it->second.name, "'; every principal needs its own token"));
    }
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens file '", path, "' defines no token; add '<token> <principal> <role>'"));
  }
  return FromMap(std::move(tokens));
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::FromAdminTokenFile(
    const std::string& path) {
  std::string token;
  if (std::ifstream in(path); in) {
    std::stringstream text;
    text << in.rdbuf();
    token = std::string(absl::StripAsciiWhitespace(text.str()));
    if (token.size() < kMinTokenLength) {
      return absl::FailedPreconditionError(absl::StrCat(
          "admin token file '", path, "' is damaged; delete it to have a new token created"));
    }
  } else {
    unsigned char raw[24];
    if (RAND_bytes(raw, sizeof raw) != 1) return absl::InternalError("RAND_bytes failed");
    token = absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(raw), sizeof raw));
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create admin token file '", path, "': ", std::strerror(errno)));
    }
    std::string content = token + "\n";
    bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    ::close(fd);
    if (!ok) return absl::InternalError(absl::StrCat("cannot write '", path, "'"));
  }
  absl::flat_hash_map<std::string, Principal> tokens;
  tokens.emplace(token, Principal{"admin", v1::ROLE_ADMIN});
  return FromMap(std::move(tokens));
}

absl::StatusOr<Principal> Authenticator::Authenticate(absl::string_view authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing 'authorization: Bearer <token>' metadata; pass a token (exportctl --token)");
  }
  absl::string_view token = authorization;
  if (!absl::ConsumePrefix(&token, "Bearer ") && !absl::ConsumePrefix(&token, "bearer ")) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be 'Bearer <token>'");
  }
  token = absl::StripAsciiWhitespace(token);
  auto it = tokens_.find(token);
  if (it == tokens_.end()) {
    return absl::UnauthenticatedError("unknown token; check the token or the server's tokens file");
  }
  return it->second;
}

}  // namespace exportd::auth
