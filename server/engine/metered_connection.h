// A destination connection that counts its calls in the metrics: one
// request (endpoint, canonical status, latency) per EnsureAudience, Upsert
// and Remove, the throttle reports (HTTP 429) the plugin makes through its
// context, and the connection's rate budget after each call.
//
// The SDK has no per-HTTP-request hook: a plugin may make several HTTP
// requests (or retries) inside one call, so these count plugin calls (one
// per batch), and `status` is the call's canonical code, not an HTTP status.
//
//   std::unique_ptr<sdk::Connection> c = MeterConnection(std::move(inner), metrics, ...);
#ifndef EXPORTD_SERVER_ENGINE_METERED_CONNECTION_H_
#define EXPORTD_SERVER_ENGINE_METERED_CONNECTION_H_

#include <memory>
#include <string>

#include "exportd/sdk/destination.h"
#include "server/destinations/rate_budget.h"
#include "server/observability/metrics.h"

namespace exportd::engine {

// `inner` itself when `metrics` is null. `budget` may be null (dry runs, tests).
// `destination` is the destination type and `connection` the connection's
// name: the bounded labels.
std::unique_ptr<sdk::Connection> MeterConnection(std::unique_ptr<sdk::Connection> inner,
                                                 observability::Metrics* metrics,
                                                 std::string destination, std::string connection,
                                                 std::shared_ptr<destinations::RateBudget> budget);

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_METERED_CONNECTION_H_
