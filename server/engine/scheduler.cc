#include "server/engine/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/terminal_text.h"
#include "server/engine/cron.h"

namespace exportd::engine {

Scheduler::Scheduler(store::Store* store, std::optional<RefreshSchedule> system_refresh,
                     TriggerFn trigger)
    : store_(store), system_refresh_(std::move(system_refresh)), trigger_(std::move(trigger)) {}

namespace {

// CatchUp for whichever schedule the export follows; nullopt when none.
std::optional<CatchUpPlan> PlanFor(const v1::Export& e,
                                   const std::optional<RefreshSchedule>& system_refresh,
                                   absl::Time since, absl::Time now) {
  const v1::Schedule& s = e.schedule();
  if (!s.enabled()) return std::nullopt;
  if (s.follow_system_refresh()) {
    if (!system_refresh) return std::nullopt;
    return CatchUp(*system_refresh, since, now);
  }
  if (s.cron().empty()) return std::nullopt;
  auto cron = CronSchedule::Parse(s.cron(), s.timezone());
  if (!cron.ok()) return std::nullopt;  // Refused when saved; a zone gone since.
  return CatchUp(*cron, since, now);
}

}  // namespace

v1::RunTrigger Scheduler::TriggerOf(const v1::Export& e) {
  return e.schedule().follow_system_refresh() ? v1::RUN_TRIGGER_SYSTEM_REFRESH
                                              : v1::RUN_TRIGGER_SCHEDULE;
}

absl::Time Scheduler::NextRun(const v1::Export& e, absl::Time now) const {
  std::optional<CatchUpPlan> plan = PlanFor(e, system_refresh_, now, now);
  return plan ? plan->next : absl::InfiniteFuture();
}

void Scheduler::Tick(absl::Time now) {
  auto exports = store_->ListExports();
  if (!exports.ok()) return;  // The next tick tries again.
  for (const v1::Export& e : *exports) {
    if (!e.schedule().enabled() || !e.active()) continue;
    auto [it, inserted] = acted_until_.emplace(e.id(), absl::InfinitePast());
    if (inserted) {
      // First look at this export: firings since its last run (or its last
      // change) count, so a restart catches up once.
      absl::Time since = absl::FromUnixMicros(e.updated_at_micros());
      auto latest = store_->LatestRun(e.id());
      if (latest.ok() && !latest->empty()) {
        since = std::max(since, absl::FromUnixMicros(latest->front().created_at_micros()));
      }
      it->second = since;
    }
    std::optional<CatchUpPlan> plan = PlanFor(e, system_refresh_, it->second, now);
    if (!plan || !plan->due) continue;
    // Every replica's scheduler sees the firing; the store gives it to one.
    absl::StatusOr<bool> mine =
        store_->ClaimScheduledFiring(e.id(), absl::ToUnixMicros(*plan->due));
    if (!mine.ok()) {
      Log(LogLevel::kError, {"scheduler", "", e.name()},
          absl::StrCat("scheduled run of ", EscapeForTerminal(e.name()),
                       ": cannot claim the firing (tried again next tick): ",
                       EscapeForTerminal(mine.status().ToString())));
      continue;
    }
    it->second = now;
    if (!*mine) continue;  // Another replica fired it.
    absl::Status queued = trigger_(e, TriggerOf(e));
    if (!queued.ok()) {
      Log(LogLevel::kError, {"scheduler", "", e.name()},
          absl::StrCat("scheduled run of ", EscapeForTerminal(e.name()), ": ",
                       EscapeForTerminal(queued.ToString())));
    }
  }
}

}  // namespace exportd::engine
