#include "server/notify/outbox.h"

#include <string>
#include <vector>

#include "server/common/run_states.h"
#include "server/common/status_macros.h"
#include "server/notify/triggers.h"
#include "server/notify/webhook.h"

namespace exportd::notify {

absl::StatusOr<std::optional<v1::RunState>> PreviousFinishedState(store::Store& store,
                                                                  const v1::Run& run) {
  // Newest first: the runs after `run` in the listing are older than it.
  bool past_run = false;
  store::PageRequest page;
  page.limit = 100;
  for (int pages = 0; pages < 10; ++pages) {
    std::string next;
    EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Run> runs,
                             store.ListRuns(run.export_id(), page, &next));
    for (const v1::Run& r : runs) {
      if (r.id() == run.id()) {
        past_run = true;
        continue;
      }
      if (!past_run || r.dry_run() || !IsFinal(r.state())) continue;
      return std::optional<v1::RunState>(r.state());
    }
    if (next.empty()) break;
    page.after = next;
  }
  return std::optional<v1::RunState>();
}

absl::StatusOr<std::vector<store::Notification>> RunNotifications(store::Store& store,
                                                                  const v1::Run& run,
                                                                  std::int64_t now_micros) {
  std::vector<store::Notification> out;
  if (run.dry_run() || !IsFinal(run.state())) return out;
  EXPORTD_ASSIGN_OR_RETURN(v1::Export e, store.GetExport(run.export_id()));
  if (e.notify_url().empty()) return out;
  EXPORTD_ASSIGN_OR_RETURN(
      NotifyTriggers triggers,
      ParseNotifyOn(std::vector<std::string>(e.notify_on().begin(), e.notify_on().end())));
  std::optional<v1::RunState> previous;
  const bool succeeded = run.state() == v1::RUN_STATE_SUCCEEDED ||
                         run.state() == v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS;
  if (triggers.recovered && succeeded) {
    EXPORTD_ASSIGN_OR_RETURN(previous, PreviousFinishedState(store, run));
  }
  for (const std::string& trigger : FiredTriggers(triggers, run, previous)) {
    store::Notification& n = out.emplace_back();
    n.run_id = run.id();
    n.trigger = trigger;
    n.export_id = e.id();
    n.export_name = e.name();
    n.url = e.notify_url();
    n.body = NotificationBody(run, trigger);
    n.created_at_micros = now_micros;
    n.next_attempt_at_micros = now_micros;
  }
  return out;
}

}  // namespace exportd::notify
