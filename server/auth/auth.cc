#include "server/auth/auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
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
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/auth/certificate.h"
#include "server/common/private_file.h"
#include "server/common/status_macros.h"

namespace exportd::auth {
namespace {

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

// One line of a tokens file, checked on its own.
struct TokensLine {
  bool certificate = false;
  TokenDigest digest{};  // when !certificate
  std::string identity;  // when certificate
  std::string principal;
  v1::Role role = v1::ROLE_UNSPECIFIED;
};

// The line without its comment: a '#' at the start or after whitespace (so a
// '#' inside a certificate subject is kept).
absl::string_view StripComment(absl::string_view line) {
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return line.substr(0, i);
    }
  }
  return line;
}

absl::StatusOr<TokenDigest> ParseSha256(absl::string_view hex) {
  const auto refuse = [](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("sha256: takes the 64 hex digits of the token's SHA-256 (", what,
                     "); 'exportctl token hash' prints the whole line"));
  };
  if (hex.size() != 64) return refuse(absl::StrCat("found ", hex.size(), " characters"));
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return refuse("found a character that is not a hex digit");
    }
  }
  std::string bytes = absl::HexStringToBytes(hex);
  TokenDigest digest;
  std::memcpy(digest.data(), bytes.data(), digest.size());
  return digest;
}

absl::Status ValidateIdentity(absl::string_view identity) {
  absl::string_view value = identity;
  if ((!absl::ConsumePrefix(&value, kSubjectIdentityPrefix) &&
       !absl::ConsumePrefix(&value, kSanIdentityPrefix)) ||
      value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cert:", absl::CHexEscape(identity),
        " is no certificate identity; write cert:subject=<subject as 'openssl x509 -noout "
        "-subject -nameopt RFC2253' prints it> or cert:san=<DNS name, URI or email>"));
  }
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cert:", absl::CHexEscape(identity),
          " holds a character that is not printable ASCII; RFC 2253 subjects escape them "
          "(\\C3\\BC), as 'openssl x509 -noout -subject -nameopt RFC2253' prints"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TokensLine> ParseTokensLine(absl::string_view content) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(content, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  TokensLine line;
  line.certificate = absl::StartsWith(content, kCertPrefix);
  // A certificate subject may hold spaces (O=My Team): it is everything before
  // the last two fields.
  if (fields.size() < 3 || (!line.certificate && fields.size() != 3)) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected '<token> <principal> <role>' (the token may be sha256:<hex> or "
                     "cert:<identity>), found ",
                     fields.size(), " fields"));
  }
  const absl::string_view principal = fields[fields.size() - 2];
  EXPORTD_RETURN_IF_ERROR(ValidatePrincipalName(principal));
  line.principal = std::string(principal);
  EXPORTD_ASSIGN_OR_RETURN(line.role, ParseRole(fields.back()));
  absl::string_view credential = fields[0];
  if (line.certificate) {
    absl::string_view identity = absl::StripTrailingAsciiWhitespace(
        content.substr(kCertPrefix.size(), principal.data() - content.data() - kCertPrefix.size()));
    EXPORTD_RETURN_IF_ERROR(ValidateIdentity(identity));
    line.identity = std::string(identity);
  } else if (absl::ConsumePrefix(&credential, kSha256Prefix)) {
    EXPORTD_ASSIGN_OR_RETURN(line.digest, ParseSha256(credential));
  } else {
    EXPORTD_RETURN_IF_ERROR(ValidateToken(credential));
    line.digest = TokenSha256(credential);
  }
  return line;
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
  return absl::InvalidArgumentError(absl::StrCat("unknown role '", absl::CHexEscape(text),
                                                 "'; use admin, contributor or viewer"));
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

bool Authenticator::DigestEq::operator()(const TokenDigest& a, const TokenDigest& b) const {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::unique_ptr<Authenticator> Authenticator::FromMap(
    absl::flat_hash_map<std::string, Principal> tokens) {
  TokenMap digests;
  for (auto& [token, principal] : tokens) digests.emplace(TokenSha256(token), std::move(principal));
  return std::unique_ptr<Authenticator>(new Authenticator(std::move(digests), {}));
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::FromTokensFile(
    const std::string& path) {
  EXPORTD_RETURN_IF_ERROR(CheckPrivateFile(path, "--tokens-file"));
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("--tokens-file '", path,
                                                   "' cannot be read: ", std::strerror(errno)));
  }
  struct Listed {
    int line_no;
    std::string principal;
  };
  TokenMap tokens;
  CertificateMap certificates;
  absl::flat_hash_map<TokenDigest, Listed> token_lines;
  absl::flat_hash_map<std::string, Listed> identity_lines;
  struct RoleLine {
    v1::Role role;
    int line_no;
  };
  absl::flat_hash_map<std::string, RoleLine> roles;
  std::string text;
  for (int line_no = 1; std::getline(in, text); ++line_no) {
    absl::string_view content = absl::StripAsciiWhitespace(StripComment(text));
    if (content.empty()) continue;
    auto where = absl::StrCat("tokens file '", path, "' line ", line_no, ": ");
    absl::StatusOr<TokensLine> line = ParseTokensLine(content);
    if (!line.ok()) return absl::InvalidArgumentError(absl::StrCat(where, line.status().message()));
    auto [role, first] = roles.emplace(line->principal, RoleLine{line->role, line_no});
    if (!first && role->second.role != line->role) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "principal '", line->principal, "' has role ", RoleName(line->role),
                       " here but ", RoleName(role->second.role), " on line ", role->second.line_no,
                       "; a principal has one role: give the other role its own principal name"));
    }
    Principal principal{line->principal, line->role};
    if (line->certificate) {
      auto [listed, inserted] =
          identity_lines.emplace(line->identity, Listed{line_no, line->principal});
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "certificate identity '", line->identity,
                         "' is already listed on line ", listed->second.line_no, " (principal '",
                         listed->second.principal, "'); list each identity once"));
      }
      certificates.emplace(line->identity, std::move(principal));
    } else {
      auto [listed, inserted] = token_lines.emplace(line->digest, Listed{line_no, line->principal});
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "this token is already listed on line ", listed->second.line_no, " (principal '",
            listed->second.principal,
            "'); every line needs its own token (make one with 'exportctl token hash --new')"));
      }
      tokens.emplace(line->digest, std::move(principal));
    }
  }
  if (tokens.empty() && certificates.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokens file '", path, "' defines no token; add '<token> <principal> <role>' lines"));
  }
  return std::unique_ptr<Authenticator>(
      new Authenticator(std::move(tokens), std::move(certificates)));
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::FromAdminTokenFile(
    const std::string& path) {
  std::string token;
  absl::Status private_file = CheckPrivateFile(path, "admin token file");
  if (private_file.ok()) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    token = std::string(absl::StripAsciiWhitespace(text.str()));
    if (absl::Status valid = ValidateToken(token); !valid.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("admin token file '", path, "' holds no valid token (", valid.message(),
                       "); delete it to have a new token created"));
    }
  } else if (absl::IsNotFound(private_file)) {
    EXPORTD_ASSIGN_OR_RETURN(token, NewToken());
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create admin token file '", path, "': ", std::strerror(errno)));
    }
    std::string content = token + "\n";
    bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    ::close(fd);
    if (!ok) return absl::InternalError(absl::StrCat("cannot write '", path, "'"));
  } else {
    return private_file;
  }
  TokenMap tokens;
  tokens.emplace(TokenSha256(token), Principal{"admin", v1::ROLE_ADMIN});
  return std::unique_ptr<Authenticator>(new Authenticator(std::move(tokens), {}));
}

absl::StatusOr<Principal> Authenticator::Authenticate(absl::string_view authorization,
                                                      absl::string_view peer) const {
  if (authorization.empty()) {
    failures_.Record("no token", peer);
    return absl::UnauthenticatedError(
        "missing 'authorization: Bearer <token>' metadata; pass a token (exportctl --token)");
  }
  absl::string_view token = authorization;
  if (!absl::ConsumePrefix(&token, "Bearer ") && !absl::ConsumePrefix(&token, "bearer ")) {
    failures_.Record("malformed authorization metadata", peer);
    return absl::UnauthenticatedError("the authorization metadata must be 'Bearer <token>'");
  }
  token = absl::StripAsciiWhitespace(token);
  // No token this short is ever accepted, whatever a sha256: line holds.
  if (token.size() >= kMinTokenLength) {
    auto it = tokens_.find(TokenSha256(token));
    if (it != tokens_.end()) return it->second;
  }
  failures_.Record("unknown token", peer);
  return absl::UnauthenticatedError("unknown token; check the token or the server's tokens file");
}

std::optional<v1::Role> Authenticator::RoleOf(absl::string_view principal) const {
  // A principal has one role (the tokens file refuses two), so the first
  // credential found answers. The maps hold a line per credential: small.
  for (const auto& [digest, who] : tokens_) {
    if (who.name == principal) return who.role;
  }
  for (const auto& [identity, who] : certificates_) {
    if (who.name == principal) return who.role;
  }
  return std::nullopt;
}

absl::StatusOr<Principal> Authenticator::AuthenticateCertificate(
    const std::vector<std::string>& identities) const {
  const Principal* found = nullptr;
  for (const std::string& identity : identities) {
    auto it = certificates_.find(identity);
    if (it == certificates_.end()) continue;
    if (found != nullptr && found->name != it->second.name) {
      return absl::UnauthenticatedError(
          absl::StrCat("the client certificate matches principals '", found->name, "' and '",
                       it->second.name, "'; map only one of its identities in the tokens file"));
    }
    found = &it->second;
  }
  if (found != nullptr) return *found;
  if (identities.empty()) {
    return absl::UnauthenticatedError("no client certificate identity to authenticate");
  }
  // The caller's own certificate: showing its identities tells it nothing new.
  constexpr size_t kShown = 3;
  std::vector<std::string> shown;
  for (size_t i = 0; i < identities.size() && i < kShown; ++i) {
    shown.push_back(absl::CHexEscape(identities[i]));
  }
  return absl::UnauthenticatedError(absl::StrCat(
      "the client certificate (", absl::StrJoin(shown, ", "),
      identities.size() > kShown ? ", ..." : "",
      ") maps to no principal; add 'cert:<identity> <principal> <role>' to the tokens file"));
}

}  // namespace exportd::auth
