// exportd's Prometheus metrics: one registry and every metric family, owned
// here and passed (as a pointer that may be null) to the layers that count.
// Names are `exportd_` snake case with their unit; labels are bounded: export,
// connection and destination names, outcomes and states, never profile ids,
// identifiers or secrets. docs/metrics.md lists them.
//
//   Metrics metrics("0.4.0", sdk::kAbiVersion);
//   EXPORTD_ASSIGN_OR_RETURN(int port, metrics.Serve("127.0.0.1:0"));
//   metrics.RunStarted("vip");
//   metrics.Records("vip", "iterable", RecordOutcome::kDelivered, 1000);
#ifndef EXPORTD_SERVER_OBSERVABILITY_METRICS_H_
#define EXPORTD_SERVER_OBSERVABILITY_METRICS_H_

#include <cstdint>
#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace prometheus {
class Exposer;
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace exportd::observability {

// What became of a record sent to a destination.
enum class RecordOutcome { kDelivered, kRejected, kRetryable, kRemoved };

class Metrics {
 public:
  // `version` and `abi` go into exportd_build_info.
  Metrics(absl::string_view version, int abi);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Serves GET /metrics on `listen` (HOST:PORT; port 0 picks one) until the
  // Metrics is destroyed. Returns the bound port. UNAVAILABLE when the
  // address cannot be bound, FAILED_PRECONDITION when already serving.
  absl::StatusOr<int> Serve(const std::string& listen);
  // The exposition, in the Prometheus text format (what /metrics answers).
  std::string Text() const;
  // Whether Serve succeeded: gauges that cost a store read to set (the queue)
  // are only measured then.
  bool serving() const { return serving_.load(std::memory_order_acquire); }

  // Runs: an attempt started; a run reached a final state (RunState name
  // without its RUN_STATE_ prefix, lower case) after `duration` since it started.
  void RunStarted(absl::string_view export_name);
  void RunFinished(absl::string_view export_name, absl::string_view state,
                   absl::Duration duration);
  // Records committed for an export to a destination (its type, e.g. "iterable").
  void Records(absl::string_view export_name, absl::string_view destination,
               RecordOutcome outcome, std::int64_t count);
  // One call to a destination plugin (call: upsert, remove, ensure_audience)
  // and how it ended (the canonical status code name, e.g. OK, RESOURCE_EXHAUSTED).
  void PluginCall(absl::string_view destination, absl::string_view call,
                  absl::string_view status, absl::Duration latency);
  // One HTTP request a plugin made to its destination (RunContext::RequestDone):
  // `endpoint` as the plugin names it (e.g. /api/lists/subscribe), the HTTP
  // status (0: no answer), and how long it took.
  void DestinationRequest(absl::string_view destination, absl::string_view endpoint,
                          int http_status, absl::Duration latency);
  // The destination throttled a request (HTTP 429, reported through ReportThrottle).
  void Throttled(absl::string_view destination);
  // A connection's rate budget now allows this many requests per second (0: no limit).
  void LimiterRate(absl::string_view connection, double requests_per_second);
  // Runs waiting in the queue, and how long the oldest has waited.
  void Queue(std::int64_t queued, absl::Duration oldest_age);
  // One segment upload committed.
  void Upload(std::int64_t rows, std::int64_t bytes);
  // One store operation (the Store method's name, e.g. "CommitBatch") took
  // `latency` (store::TimeStore measures them).
  void StoreOperation(absl::string_view operation, absl::Duration latency);
  // Destination plugins registered and refused at start-up.
  void Plugins(std::int64_t loaded, std::int64_t refused);
  // One delivery attempt of a webhook notification of the export and how it
  // ended: delivered, retried (another attempt follows) or gave_up.
  void Notification(absl::string_view export_name, absl::string_view outcome);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::atomic<bool> serving_{false};
  prometheus::Family<prometheus::Counter>* runs_started_;
  prometheus::Family<prometheus::Counter>* runs_finished_;
  prometheus::Family<prometheus::Histogram>* run_duration_;
  prometheus::Family<prometheus::Counter>* records_;
  prometheus::Family<prometheus::Counter>* calls_;
  prometheus::Family<prometheus::Histogram>* call_latency_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_latency_;
  prometheus::Family<prometheus::Counter>* throttled_;
  prometheus::Family<prometheus::Gauge>* limiter_rate_;
  prometheus::Gauge* queued_runs_;
  prometheus::Gauge* oldest_queued_;
  prometheus::Counter* upload_rows_;
  prometheus::Counter* upload_bytes_;
  prometheus::Family<prometheus::Histogram>* store_latency_;
  prometheus::Gauge* plugins_loaded_;
  prometheus::Gauge* plugins_refused_;
  prometheus::Family<prometheus::Counter>* notifications_;
};

// The name of an outcome as it appears in the `outcome` label.
absl::string_view OutcomeName(RecordOutcome outcome);

}  // namespace exportd::observability

#endif  // EXPORTD_SERVER_OBSERVABILITY_METRICS_H_
