// Fires exports' schedules: a cron expression in the export's time zone, or
// the system refresh schedule (--system-refresh). The one owner of "is an
// export due": after a restart, or when an export was saved, any number of
// missed firings collapse into one catch-up run (CatchUp in cron.h). With
// several replicas on one store each firing runs once: the store gives it
// to one scheduler (Store::ClaimScheduledFiring).
//
//   Scheduler scheduler(store, system_refresh,
//                       [&](const v1::Export& e, v1::RunTrigger trigger) {
//     TriggerOptions options;
//     options.trigger = trigger;  // SCHEDULE or SYSTEM_REFRESH
//     return engine.Trigger(e.id(), options).status();
//   });
//   scheduler.Tick(absl::Now());   // every second, from the engine's thread
#ifndef EXPORTD_SERVER_ENGINE_SCHEDULER_H_
#define EXPORTD_SERVER_ENGINE_SCHEDULER_H_

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "exportd/v1/export.pb.h"
#include "exportd/v1/run.pb.h"
#include "server/engine/refresh_schedule.h"
#include "server/store/store.h"

namespace exportd::engine {

class Scheduler {
 public:
  // Queues a scheduled run of the export: RUN_TRIGGER_SCHEDULE for its own
  // cron, RUN_TRIGGER_SYSTEM_REFRESH when it follows the system refresh.
  using TriggerFn = std::function<absl::Status(const v1::Export&, v1::RunTrigger)>;

  Scheduler(store::Store* store, std::optional<RefreshSchedule> system_refresh, TriggerFn trigger);

  // One pass at time `now`: triggers every active export whose schedule fired
  // since it last acted on it (or since the export's last run or change).
  // Not thread-safe: one caller (the engine's scheduler thread, or a test).
  void Tick(absl::Time now);

  // The first firing of `e`'s schedule strictly after `now`, or
  // InfiniteFuture when it has none (disabled, no cron, no system refresh).
  absl::Time NextRun(const v1::Export& e, absl::Time now) const;

  // The system refresh schedule; nullopt when exportd has none.
  const std::optional<RefreshSchedule>& system_refresh() const { return system_refresh_; }

  // What a run started by `e`'s schedule is triggered by.
  static v1::RunTrigger TriggerOf(const v1::Export& e);

 private:
  store::Store* const store_;
  const std::optional<RefreshSchedule> system_refresh_;
  const TriggerFn trigger_;
  // Export id -> the time up to which its firings were acted upon.
  std::map<std::string, absl::Time> acted_until_;
};

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_SCHEDULER_H_
