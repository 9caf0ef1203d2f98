// The notifications a finished run fires, for the store's outbox, where the
// Notifier (notifier.h) of any replica delivers them. The engine builds them
// when a run reaches its final state and stores them with that state, in one
// transaction (Store::EndLeasedRun):
//
//   EXPORTD_ASSIGN_OR_RETURN(std::vector<store::Notification> n,
//                            RunNotifications(*store, ended_run, now_micros));
//   EXPORTD_RETURN_IF_ERROR(store->EndLeasedRun(ended_run, lease, n));
//   if (!n.empty()) notifier->Wake();
#ifndef EXPORTD_SERVER_NOTIFY_OUTBOX_H_
#define EXPORTD_SERVER_NOTIFY_OUTBOX_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "exportd/v1/run.pb.h"
#include "server/store/store.h"

namespace exportd::notify {

// The final state of the export's finished run before `run` (dry runs
// aside), if there is one.
absl::StatusOr<std::optional<v1::RunState>> PreviousFinishedState(store::Store& store,
                                                                  const v1::Run& run);

// One notification per trigger that `run` (in its final state; the store may
// still hold its previous one) fires for its export's webhook (none without
// a webhook, or for a dry run), due at `now_micros`. NOT_FOUND when the export
// is gone.
absl::StatusOr<std::vector<store::Notification>> RunNotifications(store::Store& store,
                                                                  const v1::Run& run,
                                                                  std::int64_t now_micros);


}  // namespace exportd::notify

#endif  // EXPORTD_SERVER_NOTIFY_OUTBOX_H_
