// Turns a stored connection into the settings its destination plugin gets:
// the stored settings plus the decrypted secrets, checked against the
// destination's manifest, defaults filled in. Used by the engine (to run) and
// the API (to check and to save secrets).
#ifndef EXPORTD_SERVER_DESTINATIONS_CONNECTION_RESOLVER_H_
#define EXPORTD_SERVER_DESTINATIONS_CONNECTION_RESOLVER_H_

#include <string>

#include "absl/status/statusor.h"
#include "exportd/sdk/destination.h"
#include "server/crypto/secret_box.h"
#include "server/crypto/secret_map.h"
#include "server/destinations/registry.h"
#include "server/store/store.h"

namespace exportd::destinations {

struct ResolvedConnection {
  sdk::Destination* destination = nullptr;
  sdk::Settings settings;
};

// Opens the secrets sealed for `stored` (bound to its connection id).
// DATA_LOSS naming the connection when they do not open: another master key,
// or a value copied from another connection's row.
absl::StatusOr<crypto::SecretMap> OpenSecrets(const store::StoredConnection& stored,
                                              const crypto::SecretBox& box);
// Seals `secrets` for `connection` (whose id must be set).
absl::StatusOr<std::string> SealSecrets(const v1::Connection& connection,
                                        const crypto::SecretMap& secrets,
                                        const crypto::SecretBox& box);

absl::StatusOr<ResolvedConnection> ResolveConnection(const store::StoredConnection& stored,
                                                     const crypto::SecretBox& box,
                                                     const DestinationRegistry& registry);

// Connects with the resolved settings and makes the destination's real, cheap
// check call (sdk::Connection::Check). The one way the API tests a
// connection, stored (TestConnection) or about to be (CreateConnection's
// test_before_save). The destination's status as it is: UNAUTHENTICATED for
// rejected credentials, UNAVAILABLE for an unreachable destination, ...
absl::Status CheckConnection(const ResolvedConnection& resolved, sdk::RunContext& ctx);

}  // namespace exportd::destinations

#endif  // EXPORTD_SERVER_DESTINATIONS_CONNECTION_RESOLVER_H_
