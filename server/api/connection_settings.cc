#include "server/api/connection_settings.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/status_macros.h"
#include "server/crypto/secret_map.h"
#include "server/plugin_host/validation.h"

namespace exportd::api {

absl::StatusOr<ResolvedConnection> ResolveConnection(
    const store::StoredConnection& stored, const crypto::SecretBox& box,
    const plugin_host::DestinationRegistry& registry) {
  const v1::Connection& c = stored.connection;
  auto destination = registry.Get(c.destination_type());
  if (!destination.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("connection '", c.display_name(), "' uses destination type '",
                     c.destination_type(), "', which is not loaded: ",
                     destination.status().message()));
  }
  EXPORTD_ASSIGN_OR_RETURN(crypto::SecretMap secrets, crypto::OpenMap(box, stored.sealed_secrets));
  std::map<std::string, std::string> settings(c.settings().begin(), c.settings().end());
  auto resolved = plugin_host::ResolveSettings((*destination)->manifest(), settings, secrets);
  if (!resolved.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "connection '", c.display_name(), "' no longer fits its destination: ",
        resolved.status().message(), "; update the connection"));
  }
  return ResolvedConnection{*destination, std::move(*resolved)};
}

bool CallRunContext::cancelled() const { return ctx_ != nullptr && ctx_->IsCancelled(); }

bool CallRunContext::SleepFor(absl::Duration d) {
  absl::Time end = absl::Now() + d;
  while (absl::Now() < end) {
    if (cancelled()) return false;
    absl::SleepFor(std::min(absl::Milliseconds(50), end - absl::Now()));
  }
  return !cancelled();
}

void CallRunContext::Log(sdk::LogLevel level, std::string_view message) {
  (void)level;
  std::cerr << "exportd: " << message << "\n";
}

}  // namespace exportd::api
