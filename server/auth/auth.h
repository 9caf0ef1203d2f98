// Bearer-token authentication and the role permission matrix.
//
// A tokens file has one token per line: `<token> <principal> <role>`, where
// role is admin, contributor or viewer; `#` starts a comment. Without a tokens
// file the server creates `<data-dir>/admin.token` (mode 0600) on first start
// and accepts that token as principal "admin".
//
//   EXPORTD_ASSIGN_OR_RETURN(auto auth, Authenticator::FromTokensFile(path));
//   EXPORTD_ASSIGN_OR_RETURN(Principal who, auth->Authenticate("Bearer abc..."));
//   EXPORTD_RETURN_IF_ERROR(Authorize(who, Action::kManageConnections));
#ifndef EXPORTD_SERVER_AUTH_AUTH_H_
#define EXPORTD_SERVER_AUTH_AUTH_H_

#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "exportd/v1/common.pb.h"
#include "exportd/v1/connection.pb.h"

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
  // Parses a tokens file. INVALID_ARGUMENT naming the file and line on any
  // malformed line, an unknown role, a short token or a duplicate token.
  static absl::StatusOr<std::unique_ptr<Authenticator>> FromTokensFile(const std::string& path);
  // Reads `<data_dir>/admin.token`, creating it (mode 0600) when missing.
  static absl::StatusOr<std::unique_ptr<Authenticator>> FromAdminTokenFile(
      const std::string& path);
  // For tests.
  static std::unique_ptr<Authenticator> FromMap(absl::flat_hash_map<std::string, Principal> tokens);

  // `authorization` is the metadata value, "Bearer <token>". UNAUTHENTICATED
  // when missing, malformed or unknown.
  absl::StatusOr<Principal> Authenticate(absl::string_view authorization) const;

 private:
  explicit Authenticator(absl::flat_hash_map<std::string, Principal> tokens)
      : tokens_(std::move(tokens)) {}
  absl::flat_hash_map<std::string, Principal> tokens_;
};

}  // namespace exportd::auth

#endif  // EXPORTD_SERVER_AUTH_AUTH_H_
