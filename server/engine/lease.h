// Keeps a replica's lease on the run it executes: a heartbeat renews the lease
// in the store while the run goes on, and notices when the lease was lost
// (this replica stalled past the expiry and another one took the run over)
// or when someone asked to cancel the run through the store.
//
//   EXPORTD_ASSIGN_OR_RETURN(auto claimed, store->ClaimNextRun(request));
//   LeaseKeeper keeper(store, claimed->lease, {absl::Seconds(15), absl::Seconds(5), clock});
//   ...                               // every write carries keeper.lease()
//   if (keeper.lost()) return;        // another replica holds the run now
//   keeper.Stop();
//   store->ReleaseLease(keeper.lease());
#ifndef EXPORTD_SERVER_ENGINE_LEASE_H_
#define EXPORTD_SERVER_ENGINE_LEASE_H_

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/store/store.h"

namespace exportd::engine {

// "host:pid": the replica id of this process when --replica-id is not set.
std::string DefaultReplicaId();

struct LeaseTiming {
  // How long a claim or a renewal holds the run (--lease-seconds).
  absl::Duration lease = absl::Seconds(15);
  // How often the heartbeat renews it (wall time): unless set, a third of
  // the lease (so two renewals may fail before the lease ends), and at most
  // kMaxRenewEvery, because the heartbeat is also how a cancel sent to
  // another replica reaches the run.
  absl::Duration renew_every = absl::ZeroDuration();
  static constexpr absl::Duration kMaxRenewEvery = absl::Seconds(1);
  // The time leases are measured in. Not null.
  const Clock* clock = Clock::Real();

  absl::Duration RenewEvery() const {
    return renew_every > absl::ZeroDuration() ? renew_every : std::min(lease / 3, kMaxRenewEvery);
  }
};

class LeaseKeeper {
 public:
  // Starts the heartbeat for `lease`, which the caller just claimed.
  LeaseKeeper(store::Store* store, store::RunLease lease, LeaseTiming timing);
  // Stops the heartbeat (the lease is left as it is).
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Stops the heartbeat; idempotent. The lease then ends at its expiry unless
  // released.
  void Stop();
  // The lease as last renewed; every write of the run carries it.
  store::RunLease lease() const;
  // True once the store refused a renewal or a write with LeaseLostError.
  bool lost() const { return lost_; }
  // Records a LeaseLostError a write got; returns whether `status` is one.
  bool NoteIfLost(const absl::Status& status);
  // True once a heartbeat learnt that someone asked to cancel the run.
  bool cancel_requested() const { return cancel_requested_; }
  // Renews now, on the caller's thread (tests; the heartbeat does this).
  absl::Status RenewNow();

 private:
  void Heartbeat();

  store::Store* const store_;
  const LeaseTiming timing_;
  mutable absl::Mutex mu_;
  store::RunLease lease_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> lost_{false};
  std::atomic<bool> cancel_requested_{false};
  std::thread thread_;
};

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_LEASE_H_
