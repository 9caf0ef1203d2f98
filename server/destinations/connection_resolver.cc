#include "server/destinations/connection_resolver.h"

#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/destinations/validation.h"

namespace exportd::destinations {

absl::StatusOr<crypto::SecretMap> OpenSecrets(const store::StoredConnection& stored,
                                              const crypto::SecretBox& box) {
  const v1::Connection& c = stored.connection;
  auto secrets = crypto::OpenMap(box, c.id(), stored.sealed_secrets);
  if (!secrets.ok()) {
    return absl::DataLossError(absl::StrCat(
        "connection '", c.display_name(), "': ", secrets.status().message(),
        "; start exportd with the master key it was created with, or create the connection "
        "again with its secrets"));
  }
  return secrets;
}

absl::StatusOr<std::string> SealSecrets(const v1::Connection& connection,
                                        const crypto::SecretMap& secrets,
                                        const crypto::SecretBox& box) {
  if (connection.id().empty()) {
    return absl::InternalError("secrets are sealed for a connection id; this one has none");
  }
  return crypto::SealMap(box, connection.id(), secrets);
}

absl::StatusOr<ResolvedConnection> ResolveConnection(
    const store::StoredConnection& stored, const crypto::SecretBox& box,
    const DestinationRegistry& registry) {
  const v1::Connection& c = stored.connection;
  auto destination = registry.Get(c.destination_type());
  if (!destination.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("connection '", c.display_name(), "' uses destination type '",
                     c.destination_type(), "', which is not loaded: ",
                     destination.status().message()));
  }
  EXPORTD_ASSIGN_OR_RETURN(crypto::SecretMap secrets, OpenSecrets(stored, box));
  std::map<std::string, std::string> settings(c.settings().begin(), c.settings().end());
  auto resolved = ResolveSettings((*destination)->manifest(), settings, secrets);
  if (!resolved.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "connection '", c.display_name(), "' no longer fits its destination: ",
        resolved.status().message(), "; update the connection"));
  }
  return ResolvedConnection{*destination, std::move(*resolved)};
}

absl::Status CheckConnection(const ResolvedConnection& resolved, sdk::RunContext& ctx) {
  EXPORTD_ASSIGN_OR_RETURN(std::unique_ptr<sdk::Connection> connection,
                           resolved.destination->Connect(resolved.settings));
  return connection->Check(ctx);
}

}  // namespace exportd::destinations
