// What a caller may see of, and do with, connections and the exports and
// runs on them: the resource-level half of the permission rules (the role
// matrix is auth::Authorize, the rule itself auth::MayUseConnection). Every
// connection, export and run RPC goes through these, so a contributor acts
// only on exports whose connection is shared with contributors, and asking
// for a connection it may not see answers exactly as for one that does not
// exist.
//
//   EXPORTD_ASSIGN_OR_RETURN(v1::Export e,
//                            ExportFor(deps_, who, req->export_(), auth::Action::kRunExports));
//   ...
//   HideConnections(deps_, who, exports);  // before returning exports to a caller
#ifndef EXPORTD_SERVER_API_ACCESS_H_
#define EXPORTD_SERVER_API_ACCESS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "exportd/v1/connection.pb.h"
#include "exportd/v1/export.pb.h"
#include "server/api/rpc_support.h"
#include "server/auth/auth.h"
#include "server/store/store.h"

namespace exportd::api {

// The connection `ref` (id or name) as `who` may see it: in full for admins,
// name and type only for others. NOT_FOUND, worded as for a connection that
// does not exist, when `who` may not see it.
absl::StatusOr<store::StoredConnection> ConnectionFor(const ServiceDeps& deps,
                                                      const auth::Principal& who,
                                                      absl::string_view ref);

// The connection as `who` may see it (see ConnectionFor), from a stored one;
// `ref` is what the caller named it by, for the NOT_FOUND.
absl::StatusOr<v1::Connection> VisibleConnection(const auth::Principal& who,
                                                 const v1::Connection& c, absl::string_view ref);

// The export `ref` (id or name) for `who` to act on with `action`
// (kManageExports, kRunExports): NOT_FOUND when it does not exist,
// PERMISSION_DENIED when its connection is not one `who` may use.
absl::StatusOr<v1::Export> ExportFor(const ServiceDeps& deps, const auth::Principal& who,
                                     absl::string_view ref, auth::Action action);

// Whether `who` may use the connection of `e` (true for an export without one).
absl::StatusOr<bool> MayUseExportConnection(const ServiceDeps& deps, const auth::Principal& who,
                                            const v1::Export& e);

// Clears the connection of every export whose connection `who` may not see,
// and marks it connection_hidden.
absl::Status HideConnections(const ServiceDeps& deps, const auth::Principal& who,
                             std::vector<v1::Export>& exports);

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_ACCESS_H_
