// The stage that talks to the destination: batches go out with up to
// `max_parallel_batches` in flight, each after the connection's shared rate
// budget allows it (one Upsert/Remove call per batch). A throttled batch
// (RESOURCE_EXHAUSTED after RunContext::ReportThrottle) slows the connection
// down and is sent again, a bounded number of times. Each answered batch goes
// to the Committer.
//
// A pause the destination asked for (Retry-After, a rate-limit reset) is
// waited for in full, however far away, unless the run is cancelled; a pause
// of kShowWaitsFrom or more is shown as the run's message meanwhile
// (WaitMessage).
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
#include "server/destinations/rate_budget.h"
#include "server/sync/committer.h"
#include "server/sync/pending_batch.h"

namespace exportd::sync {

struct DispatchOptions {
  sdk::Connection* connection = nullptr;
  sdk::Audience audience;
  // Named in the message of a batch throttled too often.
  std::string connection_name;
  // The destination's display name (e.g. "Iterable"), for the message shown
  // while the run waits for its rate limit.
  std::string destination_name;
  // Shows what the run waits for (RunTracker::ShowWait); may be empty.
  std::function<void(const std::string& message)> show_wait;
  int max_parallel_batches = 1;
  // Null: no shared limit (tests).
  destinations::RateBudget* budget = nullptr;
  int max_throttle_resends = 8;
};

// Pauses at least this long are shown (DispatchOptions::show_wait).
inline constexpr absl::Duration kShowWaitsFrom = absl::Seconds(5);

// "waiting for Iterable's rate limit until 14:05 UTC": a pause until `until`
// (UTC; with the date when not on `now`'s day).
std::string WaitMessage(const std::string& destination_name, absl::Time until, absl::Time now);

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
  // Waits for the budget (and any pause in it), showing a long pause. False
  // when the run was cancelled meanwhile.
  bool AcquireBudget(std::int64_t records);
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
