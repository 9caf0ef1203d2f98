#include "server/engine/metered_connection.h"

#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace exportd::engine {
namespace {

// Passes everything through and counts the throttle reports and the
// destination requests the plugin reports.
class MeteredContext final : public sdk::RunContext {
 public:
  MeteredContext(sdk::RunContext& inner, observability::Metrics& metrics,
                 const std::string& destination)
      : inner_(inner), metrics_(metrics), destination_(destination) {}
  bool cancelled() const override { return inner_.cancelled(); }
  bool SleepFor(absl::Duration d) override { return inner_.SleepFor(d); }
  absl::Time Now() const override { return inner_.Now(); }
  void Log(sdk::LogLevel level, std::string_view message) override { inner_.Log(level, message); }
  void ReportThrottle(absl::Duration retry_after) override {
    metrics_.Throttled(destination_);
    inner_.ReportThrottle(retry_after);
  }
  void RequestDone(std::string_view endpoint, int http_status, absl::Duration latency) override {
    metrics_.DestinationRequest(destination_, absl::string_view(endpoint.data(), endpoint.size()),
                                http_status, latency);
    inner_.RequestDone(endpoint, http_status, latency);
  }

 private:
  sdk::RunContext& inner_;
  observability::Metrics& metrics_;
  const std::string& destination_;
};

class MeteredConnection final : public sdk::Connection {
 public:
  MeteredConnection(std::unique_ptr<sdk::Connection> inner, observability::Metrics& metrics,
                    std::string destination, std::string connection,
                    std::shared_ptr<destinations::RateBudget> budget)
      : inner_(std::move(inner)),
        metrics_(metrics),
        destination_(std::move(destination)),
        connection_(std::move(connection)),
        budget_(std::move(budget)) {
    NoteRate();
  }

 private:
  // Latency is measured on the steady clock: it is what the call took,
  // whatever the engine's clock says.
  template <typename Call>
  auto Timed(const char* call_name, sdk::RunContext& ctx, Call call) {
    MeteredContext metered(ctx, metrics_, destination_);
    const auto start = std::chrono::steady_clock::now();
    auto result = call(metered);
    const absl::Duration took = absl::FromChrono(std::chrono::steady_clock::now() - start);
    metrics_.PluginCall(destination_, call_name,
                        absl::StatusCodeToString(result.status().code()), took);
    NoteRate();
    return result;
  }

 public:
  sdk::SyncSpeed speed() const override { return inner_->speed(); }
  absl::Status Check(sdk::RunContext& ctx) override {
    MeteredContext metered(ctx, metrics_, destination_);
    return inner_->Check(metered);
  }
  absl::StatusOr<sdk::Audience> EnsureAudience(std::string_view segment_name,
                                               std::string_view existing_id,
                                               sdk::RunContext& ctx) override {
    return Timed("ensure_audience", ctx, [&](sdk::RunContext& c) {
      return inner_->EnsureAudience(segment_name, existing_id, c);
    });
  }
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Upsert(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& records,
                                                         sdk::RunContext& ctx) override {
    return Timed("upsert", ctx,
                 [&](sdk::RunContext& c) { return inner_->Upsert(audience, records, c); });
  }
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Remove(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& records,
                                                         sdk::RunContext& ctx) override {
    return Timed("remove", ctx,
                 [&](sdk::RunContext& c) { return inner_->Remove(audience, records, c); });
  }
  absl::Status DeleteAudience(const sdk::Audience& audience, sdk::RunContext& ctx) override {
    MeteredContext metered(ctx, metrics_, destination_);
    return inner_->DeleteAudience(audience, metered);
  }

 private:
  void NoteRate() {
    if (budget_ != nullptr) {
      metrics_.LimiterRate(connection_, budget_->current().requests_per_second);
    }
  }

  std::unique_ptr<sdk::Connection> inner_;
  observability::Metrics& metrics_;
  const std::string destination_;
  const std::string connection_;
  const std::shared_ptr<destinations::RateBudget> budget_;
};

}  // namespace

std::unique_ptr<sdk::Connection> MeterConnection(std::unique_ptr<sdk::Connection> inner,
                                                 observability::Metrics* metrics,
                                                 std::string destination, std::string connection,
                                                 std::shared_ptr<destinations::RateBudget> budget) {
  if (metrics == nullptr || inner == nullptr) return inner;
  return std::make_unique<MeteredConnection>(std::move(inner), *metrics, std::move(destination),
                                             std::move(connection), std::move(budget));
}

}  // namespace exportd::engine
