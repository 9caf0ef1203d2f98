// A destination connection that counts its calls in the metrics: one plugin
// call (call name, canonical status, latency) per EnsureAudience, Upsert and
// Remove; every HTTP request the plugin reports through its context
// (RunContext::RequestDone: endpoint, HTTP status, latency), retries
// included; the throttle reports (HTTP 429); and the connection's rate budget
// after each call.
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
