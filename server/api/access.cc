#include "server/api/access.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace exportd::api {

absl::StatusOr<v1::Connection> VisibleConnection(const auth::Principal& who,
                                                 const v1::Connection& c, absl::string_view ref) {
  if (who.role == v1::ROLE_ADMIN) return c;
  if (!auth::MaySeeConnection(who, c) || who.role != v1::ROLE_CONTRIBUTOR) {
    return store::NotFoundError("connection", ref);
  }
  v1::Connection limited;
  limited.set_id(c.id());
  limited.set_display_name(c.display_name());
  limited.set_destination_type(c.destination_type());
  limited.set_shared_with_contributors(true);
  return limited;
}

absl::StatusOr<store::StoredConnection> ConnectionFor(const ServiceDeps& deps,
                                                      const auth::Principal& who,
                                                      absl::string_view ref) {
  EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection stored, deps.store->GetConnection(ref));
  EXPORTD_ASSIGN_OR_RETURN(v1::Connection visible, VisibleConnection(who, stored.connection, ref));
  if (who.role != v1::ROLE_ADMIN) {
    stored.connection = std::move(visible);
    stored.sealed_secrets.clear();
  }
  return stored;
}

absl::StatusOr<bool> MayUseExportConnection(const ServiceDeps& deps, const auth::Principal& who,
                                            const v1::Export& e) {
  if (e.connection_id().empty()) return auth::MayUseConnection(who, nullptr);
  auto stored = deps.store->GetConnection(e.connection_id());
  if (absl::IsNotFound(stored.status())) return auth::MayUseConnection(who, nullptr);
  if (!stored.ok()) return stored.status();
  return auth::MayUseConnection(who, &stored->connection);
}

absl::StatusOr<v1::Export> ExportFor(const ServiceDeps& deps, const auth::Principal& who,
                                     absl::string_view ref, auth::Action action) {
  EXPORTD_RETURN_IF_ERROR(auth::Authorize(who, action));
  EXPORTD_ASSIGN_OR_RETURN(v1::Export e, deps.store->GetExport(ref));
  EXPORTD_ASSIGN_OR_RETURN(bool may_use, MayUseExportConnection(deps, who, e));
  if (!may_use) {
    return absl::PermissionDeniedError(absl::StrCat(
        "export '", e.name(), "' sends to a connection that is not shared with contributors, so ",
        auth::RoleName(who.role), " '", who.name,
        "' may not change or run it; ask an admin, or export through a shared connection"));
  }
  return e;
}

absl::Status HideConnections(const ServiceDeps& deps, const auth::Principal& who,
                             std::vector<v1::Export>& exports) {
  if (who.role == v1::ROLE_ADMIN) return absl::OkStatus();
  EXPORTD_ASSIGN_OR_RETURN(std::vector<store::StoredConnection> connections,
                           deps.store->ListConnections());
  absl::flat_hash_map<std::string, bool> visible;
  for (const auto& stored : connections) {
    visible[stored.connection.id()] = auth::MaySeeConnection(who, stored.connection);
  }
  for (v1::Export& e : exports) {
    if (e.connection_id().empty()) continue;
    auto it = visible.find(e.connection_id());
    if (it != visible.end() && it->second) continue;
    e.clear_connection_id();
    e.clear_connection_name();
    e.set_connection_hidden(true);
  }
  return absl::OkStatus();
}

}  // namespace exportd::api
