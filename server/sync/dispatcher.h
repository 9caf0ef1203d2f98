// The stage that talks to the destination: batches go out with up to
// `max_parallel_batches` in flight, each one Upsert/Remove call within the
// connection's shared rate budget (throttled_call.h: a throttled batch slows
// the connection down and is sent again, a bounded number of times; a pause
// the destination asked for is waited for in full, however far away, unless
// the run is cancelled, and a long one is shown as the run's message). Each
// answered batch goes to the Committer.
//
//   Dispatcher dispatcher(options, committer, ctx);
//   dispatcher.Submit(std::move(batch));   // blocks while N are waiting
//   EXPORTD_RETURN_IF_ERROR(dispatcher.Close());
#ifndef EXPORTD_SERVER_SYNC_DISPATCHER_H_
#define EXPORTD_SERVER_SYNC_DISPATCHER_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "exportd/sdk/destination.h"
#include "server/sync/committer.h"
#include "server/sync/pending_batch.h"
#include "server/sync/throttled_call.h"

namespace exportd::sync {

struct DispatchOptions {
  sdk::Connection* connection = nullptr;
  sdk::Audience audience;
  int max_parallel_batches = 1;
  // The budget every call waits for, how often a throttled batch is sent
  // again, and how a long wait is shown.
  ThrottledCallOptions throttling;
};

class Dispatcher {
 public:
  Dispatcher(const DispatchOptions& o, Committer& committer, sdk::RunContext& ctx);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Blocks while N batches are waiting. False once a failure stopped the sync.
  bool Submit(PendingBatch batch);
  // Waits for every batch, stops the workers, returns the first failure.
  absl::Status Close();

 private:
  void Work();
  // One call per batch, after the budget allows it; resends throttled ones.
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Deliver(const PendingBatch& batch);
  absl::Status Send(PendingBatch& batch);

  const DispatchOptions o_;
  Committer& committer_;
  sdk::RunContext& ctx_;
  std::vector<std::thread> threads_;
  // Condition variables rather than Mutex::Await (see DeliveredStream).
  absl::Mutex mu_;
  absl::CondVar work_, space_;  // A batch was queued (or close); one was taken (or an error).
  std::deque<PendingBatch> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_DISPATCHER_H_
