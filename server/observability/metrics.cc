#include "server/observability/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"

namespace exportd::observability {
namespace {

std::string S(absl::string_view s) { return std::string(s); }

// Seconds, from 5 ms to about 20 minutes.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1200};
}

// Seconds, from a second to a day.
prometheus::Histogram::BucketBoundaries RunBuckets() {
  return {1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400};
}

}  // namespace

absl::string_view OutcomeName(RecordOutcome outcome) {
  switch (outcome) {
    case RecordOutcome::kDelivered: return "delivered";
    case RecordOutcome::kRejected: return "rejected";
    case RecordOutcome::kRetryable: return "retryable";
    case RecordOutcome::kRemoved: return "removed";
  }
  return "unknown";
}

Metrics::Metrics(absl::string_view version, int abi)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  prometheus::Registry& r = *registry_;
  BuildGauge()
      .Name("exportd_build_info")
      .Help("Always 1; the labels tell exportd's version and its plugin ABI version")
      .Register(r)
      .Add({{"version", S(version)}, {"abi", absl::StrCat(abi)}})
      .Set(1);
  runs_started_ = &BuildCounter()
                       .Name("exportd_runs_started_total")
                       .Help("Run attempts started, by export")
                       .Register(r);
  runs_finished_ = &BuildCounter()
                        .Name("exportd_runs_finished_total")
                        .Help("Runs that reached a final state, by export and state")
                        .Register(r);
  run_duration_ = &BuildHistogram()
                       .Name("exportd_run_duration_seconds")
                       .Help("From a run's first start to its final state, by export")
                       .Register(r);
  records_ = &BuildCounter()
                  .Name("exportd_records_total")
                  .Help("Records committed, by export, destination and outcome")
                  .Register(r);
  calls_ = &BuildCounter()
                .Name("exportd_destination_calls_total")
                .Help("Calls to destination plugins, by destination, call and canonical status")
                .Register(r);
  call_latency_ = &BuildHistogram()
                       .Name("exportd_destination_call_duration_seconds")
                       .Help("Duration of calls to destination plugins, by destination and call")
                       .Register(r);
  requests_ = &BuildCounter()
                   .Name("exportd_destination_requests_total")
                   .Help("HTTP requests plugins made to their destinations, by destination, "
                         "endpoint and HTTP status (0: no answer)")
                   .Register(r);
  request_latency_ = &BuildHistogram()
                          .Name("exportd_destination_request_duration_seconds")
                          .Help("Duration of HTTP requests to destinations, by destination and "
                                "endpoint")
                          .Register(r);
  throttled_ = &BuildCounter()
                    .Name("exportd_destination_throttled_total")
                    .Help("Answers by which a destination throttled exportd (HTTP 429)")
                    .Register(r);
  limiter_rate_ = &BuildGauge()
                       .Name("exportd_connection_rate_limit_requests_per_second")
                       .Help("Requests per second a connection's rate budget allows now "
                             "(0: no limit)")
                       .Register(r);
  queued_runs_ = &BuildGauge()
                      .Name("exportd_runs_queued")
                      .Help("Runs waiting in the queue")
                      .Register(r)
                      .Add({});
  oldest_queued_ = &BuildGauge()
                        .Name("exportd_oldest_queued_run_age_seconds")
                        .Help("How long the oldest queued run has waited (0: none queued)")
                        .Register(r)
                        .Add({});
  upload_rows_ = &BuildCounter()
                      .Name("exportd_upload_rows_total")
                      .Help("Segment members received in committed uploads")
                      .Register(r)
                      .Add({});
  upload_bytes_ = &BuildCounter()
                       .Name("exportd_upload_bytes_total")
                       .Help("Bytes of member chunks received in committed uploads")
                       .Register(r)
                       .Add({});
  store_latency_ = &BuildHistogram()
                        .Name("exportd_store_operation_duration_seconds")
                        .Help("Duration of store operations, by operation")
                        .Register(r);
  plugins_loaded_ = &BuildGauge()
                         .Name("exportd_plugins_loaded")
                         .Help("Destination plugins registered")
                         .Register(r)
                         .Add({});
  plugins_refused_ = &BuildGauge()
                          .Name("exportd_plugins_refused")
                          .Help("Destination plugin libraries refused at start-up")
                          .Register(r)
                          .Add({});
  notifications_ = &BuildCounter()
                        .Name("exportd_notifications_total")
                        .Help("Webhook notification delivery attempts, by export and outcome "
                              "(delivered, retried, gave_up)")
                        .Register(r);
}

Metrics::~Metrics() = default;

absl::StatusOr<int> Metrics::Serve(const std::string& listen) {
  if (exposer_ != nullptr) return absl::FailedPreconditionError("metrics are served already");
  // civetweb takes "HOST:PORT"; it throws when it cannot bind.
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on --metrics-listen '", listen,
        "': the address is in use or invalid (", e.what(),
        "); use HOST:PORT, e.g. 127.0.0.1:9464"));
  }
  exposer_->RegisterCollectable(registry_);
  std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty()) {
    exposer_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on --metrics-listen '", listen, "'"));
  }
  serving_.store(true, std::memory_order_release);
  return ports.front();
}

std::string Metrics::Text() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void Metrics::RunStarted(absl::string_view export_name) {
  runs_started_->Add({{"export", S(export_name)}}).Increment();
}

void Metrics::RunFinished(absl::string_view export_name, absl::string_view state,
                          absl::Duration duration) {
  runs_finished_->Add({{"export", S(export_name)}, {"state", S(state)}}).Increment();
  run_duration_->Add({{"export", S(export_name)}}, RunBuckets())
      .Observe(absl::ToDoubleSeconds(duration));
}

void Metrics::Records(absl::string_view export_name, absl::string_view destination,
                      RecordOutcome outcome, std::int64_t count) {
  if (count <= 0) return;
  records_
      ->Add({{"export", S(export_name)},
             {"destination", S(destination)},
             {"outcome", S(OutcomeName(outcome))}})
      .Increment(static_cast<double>(count));
}

void Metrics::PluginCall(absl::string_view destination, absl::string_view call,
                         absl::string_view status, absl::Duration latency) {
  calls_->Add({{"destination", S(destination)}, {"call", S(call)}, {"status", S(status)}})
      .Increment();
  call_latency_->Add({{"destination", S(destination)}, {"call", S(call)}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::DestinationRequest(absl::string_view destination, absl::string_view endpoint,
                                 int http_status, absl::Duration latency) {
  requests_
      ->Add({{"destination", S(destination)},
             {"endpoint", S(endpoint)},
             {"status", absl::StrCat(http_status)}})
      .Increment();
  request_latency_->Add({{"destination", S(destination)}, {"endpoint", S(endpoint)}},
                        LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(std::max(absl::ZeroDuration(), latency)));
}

void Metrics::Throttled(absl::string_view destination) {
  throttled_->Add({{"destination", S(destination)}}).Increment();
}

void Metrics::LimiterRate(absl::string_view connection, double requests_per_second) {
  limiter_rate_->Add({{"connection", S(connection)}}).Set(requests_per_second);
}

void Metrics::Queue(std::int64_t queued, absl::Duration oldest_age) {
  queued_runs_->Set(static_cast<double>(queued));
  oldest_queued_->Set(absl::ToDoubleSeconds(oldest_age));
}

void Metrics::Upload(std::int64_t rows, std::int64_t bytes) {
  upload_rows_->Increment(static_cast<double>(rows));
  upload_bytes_->Increment(static_cast<double>(bytes));
}

void Metrics::StoreOperation(absl::string_view operation, absl::Duration latency) {
  store_latency_->Add({{"operation", S(operation)}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::Plugins(std::int64_t loaded, std::int64_t refused) {
  plugins_loaded_->Set(static_cast<double>(loaded));
  plugins_refused_->Set(static_cast<double>(refused));
}

void Metrics::Notification(absl::string_view export_name, absl::string_view outcome) {
  notifications_->Add({{"export", S(export_name)}, {"outcome", S(outcome)}}).Increment();
}

}  // namespace exportd::observability
