#include "server/api/server_service.h"

#include <algorithm>
#include <vector>

#include "absl/time/clock.h"
#include "server/common/status_macros.h"
#include "server/engine/engine.h"
#include "server/store/queue_summary.h"

namespace exportd::api {
namespace {

// The next scheduled runs shown, soonest first.
constexpr size_t kMaxScheduledRuns = 10;

}  // namespace

grpc::ServerUnaryReactor* ServerService::GetServerStatus(grpc::CallbackServerContext* ctx,
                                                         const v1::GetServerStatusRequest*,
                                                         v1::ServerStatus* resp) {
  return HandleUnary(ctx, deps_, "/exportd.v1.ServerService/GetServerStatus",
                     auth::Action::kRead, Audit::kNo,
                     [&](const auth::Principal&, std::string&) { return Fill(*resp); });
}

absl::Status ServerService::Fill(v1::ServerStatus& status) const {
  const absl::Time now = absl::Now();
  status.set_time_micros(absl::ToUnixMicros(now));
  status.set_version(identity_.version);
  status.set_plugin_abi_version(sdk::kAbiVersion);
  status.set_store_kind(identity_.store_kind);
  status.set_store_location(identity_.store_location);
  if (deps_.engine != nullptr) status.set_replica(deps_.engine->replica_id());
  for (const auto& d : deps_.registry->List()) {
    auto* loaded = status.add_destinations();
    loaded->set_name(d.manifest->name);
    loaded->set_version(d.manifest->version);
  }

  EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Run> unfinished, deps_.store->ListUnfinishedRuns());
  const store::QueueSummary queue = store::SummarizeQueue(unfinished, now);
  status.set_queued_runs(queue.queued);
  status.set_oldest_queued_age_seconds(absl::ToDoubleSeconds(queue.oldest_queued_age));
  for (const v1::Run* run : queue.in_progress) {
    auto* shown = status.add_runs_in_progress();
    shown->set_run_id(run->id());
    shown->set_export_name(run->export_name());
    shown->set_state(run->state());
    // An expired lease is held by nobody: another replica takes the run.
    if (run->lease_expires_at_micros() > absl::ToUnixMicros(now)) {
      shown->set_replica(run->replica());
    }
  }

  if (deps_.engine == nullptr) return absl::OkStatus();
  EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Export> exports, deps_.store->ListExports());
  std::vector<v1::ScheduledRun> scheduled;
  for (const v1::Export& e : exports) {
    const absl::Time next = deps_.engine->NextScheduledRun(e, now);
    if (next == absl::InfiniteFuture()) continue;
    v1::ScheduledRun& run = scheduled.emplace_back();
    run.set_export_name(e.name());
    run.set_at_micros(absl::ToUnixMicros(next));
  }
  std::sort(scheduled.begin(), scheduled.end(),
            [](const v1::ScheduledRun& a, const v1::ScheduledRun& b) {
              return a.at_micros() != b.at_micros() ? a.at_micros() < b.at_micros()
                                                    : a.export_name() < b.export_name();
            });
  if (scheduled.size() > kMaxScheduledRuns) scheduled.resize(kMaxScheduledRuns);
  for (auto& run : scheduled) *status.add_next_scheduled_runs() = std::move(run);
  return absl::OkStatus();
}

}  // namespace exportd::api
