// The run engine: queues, runs, retries, resumes and schedules exports.
//
// The store is the run queue (run_queue.h): a worker claims the next run with
// a lease that a heartbeat renews while it runs (lease.h), and every batch
// commit and run update carries the lease, so that a replica that lost a run
// cannot change it. Several engines (replicas, each with its own
// --replica-id) can share one store; a dead replica's runs are taken over when
// their leases expire and resume from their last committed batch.
//
// One run per export at a time: a trigger while one is queued or running
// queues one follow-up, never more. A bounded pool of workers runs different
// exports concurrently.
//
//   EXPORTD_ASSIGN_OR_RETURN(auto engine, Engine::Create(deps, options));
//   engine->Start();
//   EXPORTD_ASSIGN_OR_RETURN(v1::Run run, engine->Trigger("vip", {}, who));
//   ...
//   engine->Shutdown();
#ifndef EXPORTD_SERVER_ENGINE_ENGINE_H_
#define EXPORTD_SERVER_ENGINE_ENGINE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "exportd/v1/run.pb.h"
#include "server/common/clock.h"
#include "server/crypto/secret_box.h"
#include "server/destinations/rate_budget.h"
#include "server/engine/refresh_schedule.h"
#include "server/engine/scheduler.h"
#include "server/destinations/registry.h"
#include "server/engine/rate_share.h"
#include "server/engine/run_queue.h"
#include "server/observability/metrics.h"
#include "server/store/store.h"
#include "server/sync/segment_sync.h"

namespace exportd::engine {

struct EngineOptions {
  int workers = 2;
  // Run attempts of a run that fails for a retryable reason, the first
  // included (--run-attempts). A plugin's retries of single requests are its
  // own and not counted here.
  int max_attempts = 3;
  // Backoff before run attempt n+1: retry_base * 2^(n-1), with up to 20%
  // jitter (--run-retry-backoff).
  absl::Duration retry_base = absl::Seconds(30);
  // This replica's id, the holder of the run leases it claims (--replica-id);
  // DefaultReplicaId() ("host:pid") when empty. Unique among the replicas
  // that share a store.
  std::string replica_id;
  // How long a claim holds a run unless renewed (--lease-seconds), and how
  // often the heartbeat renews it (a third of the lease when zero).
  absl::Duration lease = absl::Seconds(15);
  absl::Duration lease_renew_every = absl::ZeroDuration();
  // No other replica shares the store (SQLite: the data directory is locked),
  // so every lease in it at Start() is a dead process's and ends at once.
  // Otherwise only the leases held under this replica id do.
  bool only_replica = false;
  // The time leases and retries are measured in. Not null.
  const Clock* clock = Clock::Real();
  // The time the calls to destinations are paced and waited in: the rate
  // budgets (a throttle's pause, however far away) and the time a plugin
  // reads and sleeps on (RunContext::Now and SleepFor). Tests give a
  // FakeClock and move it: a wait ends once the clock passes its end. Not
  // null.
  const Clock* destination_clock = Clock::Real();
  // How often the scheduler looks for due exports.
  absl::Duration schedule_tick = absl::Seconds(1);
  // The system refresh schedule for exports that follow it (none if unset).
  std::optional<RefreshSchedule> system_refresh;
  // How often one batch (or a segment's audience call) is sent again after
  // the destination throttled it, before the attempt fails (retryably).
  int max_throttle_resends = 8;
  // Where runs, records, destination calls, rate budgets, the queue and batch
  // commits are counted; null: nowhere. Outlives the engine.
  observability::Metrics* metrics = nullptr;
  // Called on a worker thread after a run that ended queued webhook
  // notifications in the store's outbox (server/notify/outbox.h), e.g. to
  // wake the notifier; may be empty.
  std::function<void()> notifications_queued;
  // A segment's identifier hashes a run keeps in memory (8 bytes each);
  // beyond them the run keeps them in a temporary file under $TMPDIR.
  size_t identifier_memory_hashes = sync::IdentifierSetOptions().memory_hashes;
  // The changes an incremental run holds in memory while it reads the
  // snapshot once (sync::SegmentSyncOptions::held_memory_bytes); beyond them
  // it reads the snapshot a second time instead.
  size_t held_memory_bytes = sync::SegmentSyncOptions().held_memory_bytes;
  // The role of a principal that still holds a credential (nullopt: none),
  // e.g. auth::Authenticator::RoleOf. A connection's export users are checked
  // with it when a scheduled, system-refresh or run-all run starts. Empty:
  // export users are not checked (such runs have exportd's authority).
  std::function<std::optional<v1::Role>(const std::string& principal)> principal_role;
};

struct TriggerOptions {
  bool dry_run = false;
  bool full = false;
  v1::RunTrigger trigger = v1::RUN_TRIGGER_ON_DEMAND;
  // Who asked: a principal, or (role UNSPECIFIED) exportd itself. The run is
  // checked against this principal again when it starts.
  std::string requested_by;
  v1::Role requested_by_role = v1::ROLE_UNSPECIFIED;
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(store::Store* store,
                                                        const crypto::SecretBox* secrets,
                                                        destinations::DestinationRegistry* registry,
                                                        EngineOptions options);
  ~Engine();

  // Starts the workers and the scheduler; they claim queued runs and runs
  // whose leases expired (interrupted ones resume from their checkpoint).
  absl::Status Start();
  // Stops scheduling; running runs stop at their next batch, stay resumable
  // (QUEUED) and their leases are released, for any replica to take.
  void Shutdown();

  // Queues a run of the export (id or name). FAILED_PRECONDITION when the
  // export is inactive (connection detached).
  absl::StatusOr<v1::Run> Trigger(absl::string_view export_ref, const TriggerOptions& options);
  // Queues a run of every export whose schedule is enabled and that the
  // requester may run (auth::MayUseConnection).
  absl::StatusOr<std::vector<v1::Run>> TriggerAll(const std::string& requested_by,
                                                  v1::Role requested_by_role);
  // Cancels a queued, retrying or running run; a running run stops within a
  // second and keeps what was delivered.
  absl::StatusOr<v1::Run> Cancel(absl::string_view run_id);
  // Tells the workers that something a queued run may wait for has
  // changed (e.g. a segment upload ended), so they look again at once.
  void Wake();
  // The freshest view of a run (live progress while it runs).
  absl::StatusOr<v1::Run> GetRun(absl::string_view run_id);
  // The next scheduled run of an export, or InfiniteFuture.
  absl::Time NextScheduledRun(const v1::Export& e, absl::Time now) const;
  // The system refresh schedule (--system-refresh); nullopt when exportd was
  // started without one, and exports cannot follow it.
  const std::optional<RefreshSchedule>& system_refresh() const {
    return scheduler_.system_refresh();
  }

  // Test hook: called after every committed batch with the run id; returning
  // false simulates a crash at that point (the run stops where it is, as if
  // the process died, and stays RUNNING in the store under its lease, which
  // is no longer renewed).
  void SetCrashHookForTesting(std::function<bool(const std::string& run_id)> hook);

  // This replica's id.
  const std::string& replica_id() const { return queue_.replica_id(); }

 private:
  struct LiveRun;
  class Tracker;
  class Context;

  Engine(store::Store* store, const crypto::SecretBox* secrets,
         destinations::DestinationRegistry* registry, EngineOptions options,
         std::string replica_id);

  void WorkerLoop();
  // How long an idle worker may sleep before it must look at the queue
  // again: until the earliest retry this replica set is due, at most
  // kIdlePoll.
  absl::Duration IdleWait() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls scheduler_.Tick every schedule_tick until shutdown.
  void SchedulerLoop();
  // Sets the queue metrics: runs queued and the age of the oldest.
  void MeasureQueue();
  // Runs a run this replica claimed, under its lease.
  void Execute(store::ClaimedRun claimed);
  void ExecuteClaimed(const std::shared_ptr<LiveRun>& live);
  // Empty when the principal that asked for a run of `e` may run it (or
  // exportd itself asked), else why not.
  absl::StatusOr<std::string> RequesterRefused(const v1::Export& e, const std::string& who,
                                               v1::Role role);
  // For a run exportd started (schedule, system refresh) or a run-all: the
  // export user of `e`'s connection whose authority it has (`run_as`, empty
  // when the connection has none); the returned text is empty, else why no
  // export user may run it.
  absl::StatusOr<std::string> ExportUserRefused(const v1::Export& e, v1::RunTrigger trigger,
                                                std::string& run_as);
  absl::Status RunSegments(LiveRun& live, const v1::Export& e, bool* crashed);
  // After a segment's sync found its audience gone (NOT_FOUND `gone`):
  // creates it again by the segment's name, remembers the new id and sends the
  // whole segment to it. A second disappearance fails the run
  // (FAILED_PRECONDITION).
  absl::Status RecreateAudience(sync::SegmentSyncOptions& o, const v1::Segment& segment,
                                std::uint64_t fingerprint, const absl::Status& gone,
                                Tracker& tracker, sdk::RunContext& ctx, LiveRun* live);
  // Moves the run to `state` and persists it under its lease; its log gets
  // the line first.
  void Finish(LiveRun& live, v1::RunState state, const std::string& message)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Writes the run's pending log lines (an error goes to exportd's log).
  void FlushLog(LiveRun& live);
  // RunQueue::Cancel, with the run's last log line stored before.
  absl::StatusOr<v1::Run> CancelQueued(absl::string_view run_id, const std::string& message);
  // The webhook notifications `ended` (in its final state, not stored yet)
  // fires; none when they cannot be built (the error is logged).
  std::vector<store::Notification> RunNotifications(const v1::Run& ended);
  // Writes the live run under its lease; notes a lost lease.
  absl::Status Persist(LiveRun& live);
  absl::StatusOr<v1::Run> Enqueue(const v1::Export& e, const TriggerOptions& options);

  store::Store* const store_;
  const crypto::SecretBox* const secrets_;
  destinations::DestinationRegistry* const registry_;
  const EngineOptions options_;
  // Used by the scheduler thread only (NextRun is const and thread-safe).
  Scheduler scheduler_;
  // One rate budget per connection, shared by every run on it; the learned
  // rates are kept in the store.
  destinations::RateBudgetRegistry budgets_;
  // This replica's shares of the connections it sends on (several replicas
  // on one store split a connection's rate).
  RateShares shares_;

  RunQueue queue_;

  absl::Mutex mu_;
  // The runs this replica executes now, by id: a cache for live progress and
  // cancels. The store holds the truth (and the queue).
  std::map<std::string, std::shared_ptr<LiveRun>> live_ ABSL_GUARDED_BY(mu_);
  // When the earliest retry this replica scheduled is due (wall time).
  absl::Time next_retry_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped whenever a worker may find a run to start: a run queued or
  // ended, a cancel, Wake(). Other replicas' changes are seen by polling.
  std::uint64_t wake_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<bool(const std::string&)> crash_hook_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> shutting_down_{false};
  std::vector<std::thread> threads_;
};

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_ENGINE_H_
