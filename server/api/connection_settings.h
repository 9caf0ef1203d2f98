// Turns a stored connection into the settings its destination plugin gets:
// the stored settings plus the decrypted secrets, checked against the
// destination's manifest, defaults filled in.
#ifndef EXPORTD_SERVER_API_CONNECTION_SETTINGS_H_
#define EXPORTD_SERVER_API_CONNECTION_SETTINGS_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "exportd/sdk/destination.h"
#include "server/crypto/secret_box.h"
#include "server/crypto/secret_map.h"
#include "server/plugin_host/registry.h"
#include "server/store/store.h"

namespace exportd::api {

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
                                                     const plugin_host::DestinationRegistry& registry);

// A RunContext for work done inside one RPC: cancelled when the call is.
class CallRunContext final : public sdk::RunContext {
 public:
  explicit CallRunContext(const grpc::ServerContextBase* ctx) : ctx_(ctx) {}
  bool cancelled() const override;
  bool SleepFor(absl::Duration d) override;
  absl::Time Now() const override { return absl::Now(); }
  void Log(sdk::LogLevel level, std::string_view message) override;

 private:
  const grpc::ServerContextBase* ctx_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_CONNECTION_SETTINGS_H_
