// Puts the notifications a finished run fires into the store's outbox, where
// the Notifier (notifier.h) of any replica delivers them. The engine calls
// it once, when a run reaches its final state.
//
//   EXPORTD_ASSIGN_OR_RETURN(int queued, EnqueueRunNotifications(*store, run, now_micros));
//   if (queued > 0) notifier->Wake();
#ifndef EXPORTD_SERVER_NOTIFY_OUTBOX_H_
#define EXPORTD_SERVER_NOTIFY_OUTBOX_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "exportd/v1/run.pb.h"
#include "server/store/store.h"

namespace exportd::notify {

// The final state of the export's finished run before `run` (dry runs
// aside), if there is one.
absl::StatusOr<std::optional<v1::RunState>> PreviousFinishedState(store::Store& store,
                                                                  const v1::Run& run);

// Enqueues one notification per trigger that `run` (final, persisted) fires
// for its export's webhook (none without a webhook), due at `now_micros`,
// and returns how many. Enqueuing a run's notifications again adds nothing.
// NOT_FOUND when the export is gone.
absl::StatusOr<int> EnqueueRunNotifications(store::Store& store, const v1::Run& run,
                                            std::int64_t now_micros);

}  // namespace exportd::notify

#endif  // EXPORTD_SERVER_NOTIFY_OUTBOX_H_
