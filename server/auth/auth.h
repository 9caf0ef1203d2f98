// Bearer-token and certificate authentication, and the role permission matrix.
//
// A tokens file has one credential per line, `<credential> <principal> <role>`,
// where role is admin, contributor or viewer and the credential is one of
//   <token>                 the token itself (at least 32 characters);
//   sha256:<64 hex digits>  the SHA-256 of the token, so that the file alone
//                           grants nothing (`exportctl token hash` prints it);
//   cert:subject=<subject>  a client certificate's subject, RFC 2253;
//   cert:san=<name>         a client certificate's DNS, URI or email SAN.
// A principal may have several credentials (token rotation), all with one
// role. A `#` at the start of a line or after whitespace starts a comment. The
// file must be private to its owner (mode 0600). Without a tokens file the
// server creates `<data-dir>/admin.token` (mode 0600) on first start and
// accepts that token as principal "admin".
//
//   EXPORTD_ASSIGN_OR_RETURN(auto auth, Authenticator::FromTokensFile(path));
//   EXPORTD_ASSIGN_OR_RETURN(Principal who, auth->Authenticate("Bearer abc...", ctx.peer()));
//   EXPORTD_RETURN_IF_ERROR(Authorize(who, Action::kManageConnections));
#ifndef EXPORTD_SERVER_AUTH_AUTH_H_
#define EXPORTD_SERVER_AUTH_AUTH_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "exportd/v1/common.pb.h"
#include "exportd/v1/connection.pb.h"
#include "server/auth/credentials.h"
#include "server/auth/failure_log.h"

namespace exportd::auth {

struct Principal {
  std::string name;
  v1::Role role = v1::ROLE_UNSPECIFIED;
};

// What a caller wants to do. The matrix lives in Authorize().
enum class Action {
  kRead,               // exports, segments, runs, destinations: every role
  kManageConnections,  // create, see in full, change, delete, test: admin
  kUseConnection,      // attach exports to a shared connection: admin, contributor
  kManageExports,      // create, change, delete, duplicate, detach: admin, contributor
  kManageSegments,     // create, upload, delete: admin, contributor
  kRunExports,         // run, run all, cancel: admin, contributor
  kReadAudit,          // admin
};

absl::string_view RoleName(v1::Role role);
absl::StatusOr<v1::Role> ParseRole(absl::string_view text);

// OK, or PERMISSION_DENIED naming the principal, role and what was refused.
absl::Status Authorize(const Principal& who, Action action);

// The resource-level rule, on top of Authorize(): what a principal may do
// with what hangs off a connection (its exports, and their runs). Admins may
// do anything; contributors may use, change and run what is on a connection
// shared with contributors; viewers change and run nothing. `connection` is
// null for an export without one (detached): only the role matters then.
// The API checks it for every export and run RPC, and the engine again when
// a run starts, so this is the one place the rule lives.
bool MayUseConnection(const Principal& who, const v1::Connection* connection);
// Whether `who` may see that the connection exists (its id and name):
// admins always, everyone else only for connections shared with contributors.
bool MaySeeConnection(const Principal& who, const v1::Connection& connection);

class Authenticator {
 public:
  // Parses a tokens file. FAILED_PRECONDITION when group or others may read
  // it (the message gives the chmod to run), NOT_FOUND when it is missing;
  // INVALID_ARGUMENT naming the file and line on a malformed line, an unknown
  // role, a token shorter than kMinTokenLength, a malformed sha256: or cert:
  // credential, a credential listed twice, a principal given two roles, or a
  // principal name with control or invisible characters.
  static absl::StatusOr<std::unique_ptr<Authenticator>> FromTokensFile(const std::string& path);
  // Reads `<data_dir>/admin.token`, creating it (mode 0600) when missing.
  // FAILED_PRECONDITION when an existing one is open to group or others.
  static absl::StatusOr<std::unique_ptr<Authenticator>> FromAdminTokenFile(
      const std::string& path);
  // For tests: plain tokens.
  static std::unique_ptr<Authenticator> FromMap(absl::flat_hash_map<std::string, Principal> tokens);

  // `authorization` is the metadata value, "Bearer <token>"; `peer` the
  // caller's address for the log (gRPC's ServerContext::peer()). UNAUTHENTICATED
  // when missing, malformed or unknown; each failure is counted and logged
  // to stderr (rate limited, see FailureLog), never with the token.
  absl::StatusOr<Principal> Authenticate(absl::string_view authorization,
                                         absl::string_view peer = "") const;

  // `identities` are those of the verified peer certificate, in the form of
  // CertificateIdentities() ("subject=...", "san=..."). The principal of the
  // `cert:` line one of them matches; UNAUTHENTICATED when none matches, or
  // when they match different principals. Failures are not recorded here, so
  // that a caller may fall back to the bearer token (which records its own).
  absl::StatusOr<Principal> AuthenticateCertificate(
      const std::vector<std::string>& identities) const;

  // The role of a principal that holds a credential (a token or a
  // certificate line) in this authenticator; nullopt when none. A
  // connection's export users are checked against it when their runs start.
  std::optional<v1::Role> RoleOf(absl::string_view principal) const;

  // Failed Authenticate() calls since start-up.
  std::uint64_t failed_authentications() const { return failures_.count(); }

 private:
  // Compares digests in constant time: a lookup never tells a caller how much
  // of a digest it got right.
  struct DigestEq {
    bool operator()(const TokenDigest& a, const TokenDigest& b) const;
  };
  using TokenMap = absl::flat_hash_map<TokenDigest, Principal, absl::Hash<TokenDigest>, DigestEq>;
  using CertificateMap = absl::flat_hash_map<std::string, Principal>;

  Authenticator(TokenMap tokens, CertificateMap certificates)
      : tokens_(std::move(tokens)), certificates_(std::move(certificates)) {}

  // Keyed by the SHA-256 of the token, whether the file held the token or its
  // digest: a presented token is hashed once and looked up.
  const TokenMap tokens_;
  // Keyed by identity ("subject=...", "san=...").
  const CertificateMap certificates_;
  mutable FailureLog failures_;
};

}  // namespace exportd::auth

#endif  // EXPORTD_SERVER_AUTH_AUTH_H_
