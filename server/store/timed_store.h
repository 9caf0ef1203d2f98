// A Store that times every operation of the store it wraps and tells an
// observer (the metrics: exportd_store_operation_duration_seconds) how long
// each took, by the Store method's name ("CommitBatch", "GetRun",
// "ClaimNextRun", ...). The one place store latency is measured, for every
// store: the server wraps the store it opened in it when metrics are served.
//
//   auto timed = TimeStore(std::move(store), [&metrics](absl::string_view op, absl::Duration d) {
//     metrics.StoreOperation(op, d);
//   });
//
// Durations are measured on the steady clock. For the reads that call back
// per row (ForEachChunkBytes, ForEachDelivered, LookupDelivered) the time
// includes the caller's work in the callback. A snapshot writer from
// BeginSnapshot is timed too: "SnapshotWriter.AppendBytes" (a call that
// writes staged chunks) and "SnapshotWriter.Commit".
#ifndef EXPORTD_SERVER_STORE_TIMED_STORE_H_
#define EXPORTD_SERVER_STORE_TIMED_STORE_H_

#include <functional>
#include <memory>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/store.h"

namespace exportd::store {

// Called after every operation, from the thread that made it; must be
// thread-safe and quick.
using OperationObserver = std::function<void(absl::string_view operation, absl::Duration took)>;

// `inner` wrapped; `inner` itself when `observer` is empty.
std::unique_ptr<Store> TimeStore(std::unique_ptr<Store> inner, OperationObserver observer);

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_TIMED_STORE_H_
