// The run queue as the engine sees it: the store holds it (store::Store's
// claims and leases), so that any replica on the same store can take the next
// run, and a dead replica's runs are taken over when their leases expire.
// Nothing here is cached: every answer comes from the store.
//
//   RunQueue queue(store, {replica_id, lease_timing});
//   EXPORTD_ASSIGN_OR_RETURN(v1::Run run, queue.Enqueue(fresh, join));
//   EXPORTD_ASSIGN_OR_RETURN(auto claimed, queue.Claim());
//   if (claimed) { LeaseKeeper keeper(store, claimed->lease, timing); ... }
#ifndef EXPORTD_SERVER_ENGINE_RUN_QUEUE_H_
#define EXPORTD_SERVER_ENGINE_RUN_QUEUE_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "exportd/v1/run.pb.h"
#include "server/engine/lease.h"
#include "server/store/store.h"

namespace exportd::engine {

struct RunQueueOptions {
  // This replica's id: the holder of the leases it claims. Not empty.
  std::string replica_id;
  LeaseTiming timing;
};

class RunQueue {
 public:
  RunQueue(store::Store* store, RunQueueOptions options)
      : store_(store), options_(std::move(options)) {}

  const std::string& replica_id() const { return options_.replica_id; }
  const LeaseTiming& timing() const { return options_.timing; }

  // Queues `fresh` (a new QUEUED run) unless a QUEUED run of the same export
  // and the same dry_run waits unclaimed: that run absorbs the trigger
  // (`join` changes it) and is returned instead. One run per export: a
  // trigger while one runs queues one follow-up, never more.
  absl::StatusOr<v1::Run> Enqueue(v1::Run fresh, const std::function<void(v1::Run&)>& join);

  // Claims the next run this replica may start: the store's oldest due run
  // (store::Store::ClaimNextRun says which: runs wait while a segment of
  // their export is being uploaded). nullopt when there is none.
  absl::StatusOr<std::optional<store::ClaimedRun>> Claim();

  // Cancels a run that waits in the queue (no replica holds it), with
  // `message`. When a replica holds it, asks that replica through the store
  // to cancel it and returns the run as it is. FAILED_PRECONDITION when the
  // run already ended.
  absl::StatusOr<v1::Run> Cancel(absl::string_view run_id, const std::string& message);

 private:
  store::Store* const store_;
  const RunQueueOptions options_;
  // Two triggers of one export on this replica do not both queue a run.
  absl::Mutex enqueue_mu_;
};

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_RUN_QUEUE_H_
