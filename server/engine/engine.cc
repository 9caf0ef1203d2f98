#include "server/engine/engine.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/auth/auth.h"
#include "server/common/clock.h"
#include "server/common/free_memory.h"
#include "server/common/ids.h"
#include "server/common/log.h"
#include "server/common/plugin_log.h"
#include "server/common/status_macros.h"
#include "server/common/terminal_text.h"
#include "server/common/run_states.h"
#include "server/engine/progress.h"
#include "server/engine/retry.h"
#include "server/engine/scheduler.h"
#include "server/engine/lease.h"
#include "server/engine/metered_connection.h"
#include "server/engine/run_log.h"
#include "server/store/queue_summary.h"
#include "server/notify/outbox.h"
#include "server/destinations/connection_resolver.h"
#include "server/destinations/validation.h"
#include "server/sync/segment_sync.h"

namespace exportd::engine {

struct Engine::LiveRun {
  absl::Mutex mu;
  v1::Run run ABSL_GUARDED_BY(mu);
  RunProgress progress ABSL_GUARDED_BY(mu);
  std::atomic<bool> cancel{false};
  std::atomic<bool> crashed{false};
  // This replica's lease on the run; set before the run is executed.
  std::unique_ptr<LeaseKeeper> keeper;
  // The run's log lines; set before the run is executed.
  std::unique_ptr<RunLog> log;
  // What the run's final message says besides its counts (an audience made
  // again after it was deleted at the destination).
  std::vector<std::string> notes ABSL_GUARDED_BY(mu);
  // The destination's message for the first record of this attempt that it
  // could not deliver yet (retryable), for the run's message.
  std::string retry_reason ABSL_GUARDED_BY(mu);

  // Asked to stop: a cancel here or through the store.
  bool cancel_asked() const { return cancel || keeper->cancel_requested(); }
};

// The plugin's view of a run: cancellation, sleeping, logging.
class Engine::Context final : public sdk::RunContext {
 public:
  Context(Engine* engine, LiveRun* live, std::string run_id, std::string export_name)
      : engine_(engine), live_(live) {
    fields_.component = "engine";
    fields_.run_id = std::move(run_id);
    fields_.export_name = std::move(export_name);
  }
  // The segment being synced, for the log lines (between segments only).
  void set_segment(std::string segment) {
    absl::MutexLock lock(&mu_);
    fields_.segment = std::move(segment);
  }
  bool cancelled() const override {
    return live_->cancel_asked() || live_->crashed || live_->keeper->lost() ||
           engine_->shutting_down_;
  }
  // The plugin's time is the destination clock (real time but in tests): it
  // paces requests and sleeps with it, as the rate budgets do. The engine's
  // own decisions (retries, leases, schedules) use its clock.
  bool SleepFor(absl::Duration d) override {
    const Clock* clock = engine_->options_.destination_clock;
    const absl::Time end = clock->Now() + d;
    while (!cancelled()) {
      const absl::Time now = clock->Now();
      if (now >= end) return true;
      absl::SleepFor(std::min(end - now, absl::Milliseconds(50)));
    }
    return false;
  }
  absl::Time Now() const override { return engine_->options_.destination_clock->Now(); }
  // The engine's own lines (and the sync stages'), about the run or the
  // segment being synced; the plugin's come through LogDestination.
  void Log(sdk::LogLevel level, std::string_view message) override {
    LogAs(level, message, /*destination=*/false);
  }
  // A line the destination plugin logged (RouteDestinationLog).
  void LogDestination(sdk::LogLevel level, std::string_view message) {
    LogAs(level, message, /*destination=*/true);
  }

 private:
  // Thread-safe, as the SDK requires: one write per line, so lines from
  // parallel batches do not interleave. The plugin's text is escaped: it often
  // quotes the destination, whose "\n" must not start a line of its own.
  void LogAs(sdk::LogLevel level, std::string_view message, bool destination) {
    LogFields fields;
    {
      absl::MutexLock lock(&mu_);
      fields = fields_;
    }
    const absl::string_view text(message.data(), message.size());
    exportd::Log(PluginLogLevel(level), fields, EscapeForTerminal(text));
    live_->log->Add(RunLogLevelOf(level),
                    destination              ? std::string("destination")
                    : fields.segment.empty() ? std::string("engine")
                                             : SegmentSource(fields.segment),
                    text);
  }

  Engine* engine_;
  LiveRun* live_;
  absl::Mutex mu_;
  LogFields fields_ ABSL_GUARDED_BY(mu_);
};

// Applies progress to the live run and commits batches with its checkpoint.
class Engine::Tracker final : public sync::RunTracker {
 public:
  // `destination` (the destination type) labels the record counts.
  Tracker(Engine* engine, LiveRun* live, std::string destination)
      : engine_(engine), live_(live), destination_(std::move(destination)) {}

  void Update(int index, const std::function<void(v1::SegmentProgress&)>& fn) override {
    absl::MutexLock lock(&live_->mu);
    fn(*live_->run.mutable_segments(index));
    Estimate();
  }

  // In the live run only (what GetRun and WatchRun show): a store write here
  // could race a batch's checkpoint. The next checkpoint carries it.
  void ShowWait(const std::string& message) override {
    absl::MutexLock lock(&live_->mu);
    live_->run.set_message(EscapeForTerminal(message));
  }
  void NoteRetryable(const std::string& message) override {
    absl::MutexLock lock(&live_->mu);
    if (live_->retry_reason.empty()) live_->retry_reason = message;
  }

  absl::Status Commit(int index, const std::function<void(v1::SegmentProgress&)>& fn,
                      store::BatchCommit& commit) override {
    v1::SegmentProgress before, after;
    {
      absl::MutexLock lock(&live_->mu);
      before = live_->run.segments(index);
      fn(*live_->run.mutable_segments(index));
      Estimate();
      commit.checkpoint = live_->run;
      commit.lease = live_->keeper->lease();
      absl::Status committed = engine_->store_->CommitBatch(commit);
      // Refused for a lost lease: the run is another replica's now.
      live_->keeper->NoteIfLost(committed);
      EXPORTD_RETURN_IF_ERROR(committed);
      after = live_->run.segments(index);
    }
    CountRecords(commit.checkpoint.export_name(), before, after);
    // The lines of what led to this batch, with it.
    engine_->FlushLog(*live_);
    std::function<bool(const std::string&)> hook;
    {
      absl::MutexLock lock(&engine_->mu_);
      hook = engine_->crash_hook_;
    }
    if (hook && !hook(commit.checkpoint.id())) live_->crashed = true;
    return absl::OkStatus();
  }

 private:
  void Estimate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(live_->mu) {
    live_->progress.Estimate(live_->run, engine_->options_.clock->Now());
  }
  // What one committed batch added to the segment's counts.
  void CountRecords(const std::string& export_name, const v1::SegmentProgress& before,
                    const v1::SegmentProgress& after) {
    observability::Metrics* m = engine_->options_.metrics;
    if (m == nullptr) return;
    using observability::RecordOutcome;
    m->Records(export_name, destination_, RecordOutcome::kDelivered,
               (after.added() + after.updated()) - (before.added() + before.updated()));
    m->Records(export_name, destination_, RecordOutcome::kRejected,
               after.rejected() - before.rejected());
    m->Records(export_name, destination_, RecordOutcome::kRetryable,
               after.retryable() - before.retryable());
    m->Records(export_name, destination_, RecordOutcome::kRemoved,
               after.removed() - before.removed());
  }

  Engine* engine_;
  LiveRun* live_;
  const std::string destination_;
};

namespace {

// The store behind the rate budgets: learned rates are loaded when a
// connection's budget is first used and saved when they change.
destinations::RateBudgetRegistry::Hooks RateHooks(store::Store* store) {
  destinations::RateBudgetRegistry::Hooks hooks;
  hooks.load = [store](const std::string& id) -> std::optional<destinations::LearnedRate> {
    auto rate = store->GetConnectionRate(id);
    if (!rate.ok()) return std::nullopt;
    return destinations::LearnedRate{rate->requests_per_second, rate->records_per_second};
  };
  hooks.save = [store](const std::string& id, const destinations::LearnedRate& rate) {
    absl::Status saved =
        store->PutConnectionRate(id, {rate.requests_per_second, rate.records_per_second,
                                      NowMicros()});  // When it was learned: wall time.
    if (!saved.ok()) {
      Log(LogLevel::kWarning, {"engine"},
          absl::StrCat("connection ", id, ": cannot keep its learned rate: ",
                       EscapeForTerminal(saved.ToString())));
    }
  };
  return hooks;
}

destinations::RateBudgetOptions BudgetOptions(const Clock* clock) {
  destinations::RateBudgetOptions options;
  options.clock = clock;
  return options;
}

}  // namespace

Engine::Engine(store::Store* store, const crypto::SecretBox* secrets,
               destinations::DestinationRegistry* registry, EngineOptions options,
               std::string replica_id)
    : store_(store),
      secrets_(secrets),
      registry_(registry),
      options_(std::move(options)),
      scheduler_(store, options_.system_refresh, [this](const v1::Export& e,
                                                        v1::RunTrigger trigger) {
        TriggerOptions scheduled;
        scheduled.trigger = trigger;
        scheduled.requested_by = "scheduler";
        return Trigger(e.id(), scheduled).status();
      }),
      budgets_(RateHooks(store), BudgetOptions(options_.destination_clock)),
      shares_(store, replica_id, options_.clock),
      queue_(store, RunQueueOptions{std::move(replica_id),
                                    LeaseTiming{options_.lease, options_.lease_renew_every,
                                                options_.clock}}) {}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(store::Store* store,
                                                       const crypto::SecretBox* secrets,
                                                       destinations::DestinationRegistry* registry,
                                                       EngineOptions options) {
  if (options.workers < 1) {
    return absl::InvalidArgumentError("the engine needs at least one worker (--run-workers)");
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--run-attempts ", options.max_attempts, ": a run needs at least 1 attempt"));
  }
  if (options.retry_base < absl::ZeroDuration() || options.retry_base == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--run-retry-backoff ", absl::FormatDuration(options.retry_base),
                     ": must be a finite duration such as 30s or 2m"));
  }
  if (options.lease < absl::Seconds(1) || options.lease == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lease-seconds ", absl::FormatDuration(options.lease),
                     ": a lease lasts at least 1 second; the default is 15"));
  }
  if (options.clock == nullptr) options.clock = Clock::Real();
  if (options.destination_clock == nullptr) options.destination_clock = Clock::Real();
  std::string replica_id = options.replica_id.empty() ? DefaultReplicaId() : options.replica_id;
  return std::unique_ptr<Engine>(
      new Engine(store, secrets, registry, std::move(options), std::move(replica_id)));
}

Engine::~Engine() { Shutdown(); }

absl::Status Engine::Start() {
  // The leases of this replica's previous life (or, when no other replica
  // shares the store, every lease) belong to dead processes: their runs
  // resume at once instead of after their expiry.
  EXPORTD_RETURN_IF_ERROR(
      store_->ReleaseLeasesOf(options_.only_replica ? "" : queue_.replica_id()));
  shares_.Start();
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { WorkerLoop(); });
  threads_.emplace_back([this] { SchedulerLoop(); });
  return absl::OkStatus();
}

void Engine::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  shutting_down_ = true;
  for (auto& t : threads_) t.join();
  threads_.clear();
  shares_.Stop();
}

void Engine::SetCrashHookForTesting(std::function<bool(const std::string&)> hook) {
  absl::MutexLock lock(&mu_);
  crash_hook_ = std::move(hook);
}

absl::StatusOr<v1::Run> Engine::Enqueue(const v1::Export& e, const TriggerOptions& options) {
  v1::Run run;
  run.set_id(NewId("run"));
  run.set_export_id(e.id());
  run.set_export_name(e.name());
  run.set_state(v1::RUN_STATE_QUEUED);
  run.set_trigger(options.trigger);
  run.set_dry_run(options.dry_run);
  run.set_full(options.full);
  run.set_requested_by(options.requested_by);
  run.set_requested_by_role(options.requested_by_role);
  run.set_created_at_micros(options_.clock->NowMicros());
  run.set_eta_seconds(-1);
  for (int i = 0; i < e.segments_size(); ++i) {
    auto* p = run.add_segments();
    p->set_segment_id(e.segments(i));
    if (i < e.segment_names_size()) p->set_segment_name(e.segment_names(i));
  }
  // One run per export: a queued run that has not started absorbs new triggers.
  auto join = [&](v1::Run& queued) {
    if (options.full) queued.set_full(true);
    // An admin's (or exportd's own) trigger keeps the joined run from being
    // skipped for a contributor who lost the connection meanwhile.
    if (queued.requested_by_role() == v1::ROLE_CONTRIBUTOR &&
        options.requested_by_role != v1::ROLE_CONTRIBUTOR) {
      queued.set_requested_by(options.requested_by);
      queued.set_requested_by_role(options.requested_by_role);
    }
  };
  const std::string new_id = run.id();
  EXPORTD_ASSIGN_OR_RETURN(run, queue_.Enqueue(std::move(run), join));
  Wake();
  if (run.id() != new_id) run.set_joined_queued_run(true);
  return run;
}

absl::StatusOr<v1::Run> Engine::Trigger(absl::string_view export_ref,
                                        const TriggerOptions& options) {
  EXPORTD_ASSIGN_OR_RETURN(v1::Export e, store_->GetExport(export_ref));
  if (!e.active() || e.connection_id().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "export '", e.name(),
        "' is inactive: its connection was detached; attach one with 'exportctl export update ",
        e.name(), " --connection NAME'"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("exportd is shutting down; try again later");
  }
  return Enqueue(e, options);
}

absl::StatusOr<std::string> Engine::RequesterRefused(const v1::Export& e, const std::string& who,
                                                     v1::Role role) {
  if (role == v1::ROLE_UNSPECIFIED) return std::string();
  auth::Principal principal{who, role};
  if (e.connection_id().empty()) {
    return auth::MayUseConnection(principal, nullptr) ? "" : "the export has no connection";
  }
  EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection stored,
                           store_->GetConnection(e.connection_id()));
  if (auth::MayUseConnection(principal, &stored.connection)) return std::string();
  return absl::StrCat(auth::RoleName(role), " '", who,
                      "' asked for this run, and the export's connection is not shared with "
                      "contributors (any more); an admin can run it");
}

absl::StatusOr<std::string> Engine::ExportUserRefused(const v1::Export& e,
                                                      v1::RunTrigger trigger,
                                                      std::string& run_as) {
  run_as.clear();
  if (trigger == v1::RUN_TRIGGER_ON_DEMAND || trigger == v1::RUN_TRIGGER_UNSPECIFIED ||
      !options_.principal_role || e.connection_id().empty()) {
    return std::string();
  }
  EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection stored,
                           store_->GetConnection(e.connection_id()));
  const v1::Connection& c = stored.connection;
  if (c.export_users().empty()) return std::string();
  // In the order they were added: the first one who may still use the
  // connection lends the run its authority.
  std::vector<std::string> why;
  for (const std::string& user : c.export_users()) {
    std::optional<v1::Role> role = options_.principal_role(user);
    if (!role.has_value()) {
      why.push_back(absl::StrCat("'", user, "' holds no token or certificate any more"));
      continue;
    }
    if (!auth::MayUseConnection(auth::Principal{user, *role}, &c)) {
      why.push_back(absl::StrCat("'", user, "' is a ", auth::RoleName(*role),
                                 *role == v1::ROLE_CONTRIBUTOR
                                     ? " and the connection is not shared with contributors"
                                     : ""));
      continue;
    }
    run_as = user;
    return std::string();
  }
  return absl::StrCat("no export user of connection '", c.display_name(),
                      "' may run it: ", absl::StrJoin(why, "; "),
                      ". An admin can add themself: exportctl connection update ",
                      ShellQuote(c.display_name()), " --add-self-as-export-user");
}

absl::StatusOr<std::vector<v1::Run>> Engine::TriggerAll(const std::string& requested_by,
                                                        v1::Role requested_by_role) {
  EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Export> exports, store_->ListExports());
  std::vector<v1::Run> runs;
  for (const v1::Export& e : exports) {
    if (!e.schedule().enabled() || !e.active()) continue;
    EXPORTD_ASSIGN_OR_RETURN(std::string refused,
                             RequesterRefused(e, requested_by, requested_by_role));
    if (!refused.empty()) continue;
    TriggerOptions options;
    options.trigger = v1::RUN_TRIGGER_RUN_ALL;
    options.requested_by = requested_by;
    options.requested_by_role = requested_by_role;
    EXPORTD_ASSIGN_OR_RETURN(v1::Run run, Trigger(e.id(), options));
    runs.push_back(std::move(run));
  }
  return runs;
}

absl::StatusOr<v1::Run> Engine::Cancel(absl::string_view run_id) {
  {
    // Under mu_: Execute() reads `cancel` when it lets go of the run, under
    // mu_ too, so that a cancel in between is not lost.
    absl::MutexLock lock(&mu_);
    auto it = live_.find(std::string(run_id));
    if (it != live_.end()) {
      LiveRun& live = *it->second;
      absl::MutexLock run_lock(&live.mu);
      if (IsFinal(live.run.state())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "run '", run_id, "' already ended (", v1::RunState_Name(live.run.state()), ")"));
      }
      live.cancel = true;
      return live.run;
    }
  }
  // Queued (here or elsewhere), or run by another replica, which the store
  // tells at its next heartbeat.
  EXPORTD_ASSIGN_OR_RETURN(v1::Run run, CancelQueued(run_id, "canceled before it started"));
  Wake();
  return run;
}

absl::StatusOr<v1::Run> Engine::CancelQueued(absl::string_view run_id, const std::string& message) {
  // The log's last line goes first, so that it is there when the run shows
  // CANCELED. A run a replica holds gets its line from that replica. (Should
  // a replica claim the run between this read and the cancel, the cancel
  // reaches it through the store, and its lines follow this one.)
  auto stored = store_->GetRun(run_id);
  if (stored.ok() && !IsFinal(stored->state()) &&
      stored->lease_expires_at_micros() <= options_.clock->NowMicros()) {
    v1::RunLogLine line;
    line.set_at_micros(options_.clock->NowMicros());
    line.set_level(FinalLogLevel(v1::RUN_STATE_CANCELED));
    line.set_source("engine");
    line.set_message(FinalLogMessage(v1::RUN_STATE_CANCELED, message));
    absl::Status logged = store_->AppendRunLog(run_id, {line});
    if (!logged.ok()) {
      Log(LogLevel::kError, {"engine", std::string(run_id)},
          absl::StrCat("cannot store the run's last log line: ",
                       EscapeForTerminal(logged.ToString())));
    }
  }
  return queue_.Cancel(run_id, message);
}

absl::StatusOr<v1::Run> Engine::GetRun(absl::string_view run_id) {
  std::shared_ptr<LiveRun> live;
  {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(std::string(run_id));
    if (it != live_.end()) live = it->second;
  }
  if (live == nullptr) return store_->GetRun(run_id);
  absl::MutexLock lock(&live->mu);
  // A run that stalls (nothing finished for a while) shows it in its rate.
  if (live->run.state() == v1::RUN_STATE_RUNNING) {
    live->progress.Estimate(live->run, options_.clock->Now());
  }
  return live->run;
}

absl::Time Engine::NextScheduledRun(const v1::Export& e, absl::Time now) const {
  return scheduler_.NextRun(e, now);
}

namespace {

// An idle worker looks at the queue at least this often, for what nothing
// announces: an upload made straight through the store, a clock that jumped.
constexpr absl::Duration kIdlePoll = absl::Milliseconds(250);

}  // namespace

void Engine::Wake() {
  absl::MutexLock lock(&mu_);
  ++wake_generation_;
}

absl::Duration Engine::IdleWait() {
  absl::Time now = options_.clock->Now();
  if (next_retry_ <= now) {
    // Due now: look at once, then poll as usual.
    next_retry_ = absl::InfiniteFuture();
    return absl::ZeroDuration();
  }
  return std::min(kIdlePoll, next_retry_ - now);
}

void Engine::WorkerLoop() {
  struct Wait {
    Engine* engine;
    std::uint64_t seen;
  } wait{this, 0};
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](Wait* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                 return w->engine->stopping_ ||
                                        w->engine->wake_generation_ != w->seen;
                               },
                               &wait),
                           IdleWait());
      if (stopping_) return;
      wait.seen = wake_generation_;
    }
    absl::StatusOr<std::optional<store::ClaimedRun>> claimed = queue_.Claim();
    if (!claimed.ok()) {
      Log(LogLevel::kError, {"engine"},
          absl::StrCat("cannot claim the next run: ",
                       EscapeForTerminal(claimed.status().ToString())));
      continue;
    }
    if (!claimed->has_value()) continue;
    Wake();  // Another worker may find the next one.
    Execute(std::move(**claimed));
  }
}

void Engine::SchedulerLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](Engine* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                 return e->stopping_;
                               },
                               this),
                           options_.schedule_tick);
      if (stopping_) return;
    }
    scheduler_.Tick(options_.clock->Now());
    MeasureQueue();
  }
}

void Engine::MeasureQueue() {
  // A read of every unfinished run each tick: only for a server whose
  // metrics someone can read.
  if (options_.metrics == nullptr || !options_.metrics->serving()) return;
  auto unfinished = store_->ListUnfinishedRuns();
  if (!unfinished.ok()) return;
  const store::QueueSummary queue = store::SummarizeQueue(*unfinished, options_.clock->Now());
  options_.metrics->Queue(queue.queued, queue.oldest_queued_age);
}

absl::Status Engine::Persist(LiveRun& live) {
  v1::Run copy;
  {
    absl::MutexLock lock(&live.mu);
    copy = live.run;
  }
  absl::Status written = store_->UpdateLeasedRun(copy, live.keeper->lease());
  live.keeper->NoteIfLost(written);
  return written;
}

void Engine::FlushLog(LiveRun& live) {
  absl::Status flushed = live.log->Flush();
  if (!flushed.ok()) Log(LogLevel::kError, {"engine"}, EscapeForTerminal(flushed.ToString()));
}

void Engine::Finish(LiveRun& live, v1::RunState state, const std::string& message) {
  {
    absl::MutexLock lock(&live.mu);
    absl::Status allowed = CheckTransition(live.run.state(), state);
    if (!allowed.ok()) {
      Log(LogLevel::kError, {"engine", live.run.id(), live.run.export_name()},
          allowed.ToString());
      return;
    }
  }
  // Stored before anyone sees the run in its new state (GetRun reads the
  // live run), so that a caller who saw it end finds its last line.
  live.log->Add(FinalLogLevel(state), "engine", FinalLogMessage(state, message));
  FlushLog(live);
  // The new state is written first and shown after: a caller who sees the run
  // end finds it ended in the store too (another replica's GetRun, a restart).
  v1::Run next;
  {
    absl::MutexLock lock(&live.mu);
    next = live.run;
  }
  next.set_state(state);
  // Messages quote destinations' answers and names; escaped here, once, so
  // that every reader of the run (exportctl, logs, the console) gets one line.
  next.set_message(EscapeForTerminal(message));
  std::vector<store::Notification> notifications;
  if (IsFinal(state)) {
    next.set_finished_at_micros(options_.clock->NowMicros());
    next.set_eta_seconds(0);
    notifications = RunNotifications(next);
  }
  // The end and the webhook notifications it fires are one write: a crash
  // cannot leave an ended run whose alert was never queued.
  absl::Status persisted = store_->EndLeasedRun(next, live.keeper->lease(), notifications);
  live.keeper->NoteIfLost(persisted);
  if (!persisted.ok()) {
    // Not stored, so not ended: the lease is left to run out (as if this
    // replica had died here, rather than claiming the run again at once into
    // the same failure), and the run resumes; what it delivered is
    // recognised by its run id.
    Log(LogLevel::kError, {"engine", next.id()},
        absl::StrCat("cannot store that the run ended (it resumes when its lease expires): ",
                     EscapeForTerminal(persisted.ToString())));
    if (!live.keeper->lost()) live.crashed = true;
    return;
  }
  {
    absl::MutexLock lock(&live.mu);
    live.run.set_state(next.state());
    live.run.set_message(next.message());
    live.run.set_finished_at_micros(next.finished_at_micros());
    live.run.set_eta_seconds(next.eta_seconds());
  }
  if (IsFinal(state)) {
    if (options_.metrics != nullptr) {
      const std::int64_t started = next.started_at_micros();
      options_.metrics->RunFinished(
          next.export_name(), RunStateLabel(state),
          started == 0 ? absl::ZeroDuration()
                       : absl::Microseconds(next.finished_at_micros() - started));
    }
    // The delivery happens on the notifier's thread, never here.
    if (!notifications.empty() && options_.notifications_queued) options_.notifications_queued();
  }
}

std::vector<store::Notification> Engine::RunNotifications(const v1::Run& ended) {
  absl::StatusOr<std::vector<store::Notification>> notifications =
      notify::RunNotifications(*store_, ended, options_.clock->NowMicros());
  if (notifications.ok()) return *std::move(notifications);
  // The run ends all the same; only its alert is lost, and said so.
  if (!absl::IsNotFound(notifications.status())) {
    Log(LogLevel::kError, {"engine", ended.id(), ended.export_name()},
        absl::StrCat("cannot build the run's webhook notifications: ",
                     EscapeForTerminal(notifications.status().ToString())));
  }
  return {};
}

void Engine::Execute(store::ClaimedRun claimed) {
  const std::string id = claimed.run.id();
  if (shutting_down_) {
    // Claimed while shutting down: give it back untouched.
    store_->ReleaseLease(claimed.lease).IgnoreError();
    return;
  }
  auto live = std::make_shared<LiveRun>();
  {
    absl::MutexLock lock(&live->mu);
    live->run = std::move(claimed.run);
  }
  if (claimed.cancel_requested) live->cancel = true;
  live->keeper = std::make_unique<LeaseKeeper>(store_, claimed.lease, queue_.timing());
  live->log = std::make_unique<RunLog>(store_, id, options_.clock);
  {
    absl::MutexLock lock(&mu_);
    live_[id] = live;
  }
  ExecuteClaimed(live);
  live->keeper->Stop();
  if (live->keeper->lost()) {
    // Another replica took the run over: it is theirs to change, not ours.
    const std::string lost =
        absl::StrCat("this replica ('", queue_.replica_id(),
                     "') lost its lease and stopped the run; the replica that holds it now "
                     "continues it");
    Log(LogLevel::kWarning, {"engine", id}, lost);
    live->log->Add(v1::RUN_LOG_LEVEL_WARNING, "engine", lost);
    FlushLog(*live);
  } else if (!live->crashed) {
    absl::Status released = store_->ReleaseLease(live->keeper->lease());
    if (!released.ok()) {
      Log(LogLevel::kError, {"engine", id}, EscapeForTerminal(released.ToString()));
    }
  }
  bool cancel_after;
  {
    absl::MutexLock lock(&mu_);
    live_.erase(id);
    cancel_after = live->cancel && !live->crashed && !live->keeper->lost();
  }
  if (cancel_after) {
    // Canceled after it stopped executing (e.g. while it became
    // FAILED_RETRYING): it waits unclaimed in the queue now.
    auto canceled = CancelQueued(id, "canceled; what was delivered stays delivered");
    if (!canceled.ok() && !absl::IsFailedPrecondition(canceled.status())) {
      Log(LogLevel::kError, {"engine", id}, EscapeForTerminal(canceled.status().ToString()));
    }
  }
  // What the run's pages, batches and held changes took goes back to the
  // system, so that the next upload or run starts from exportd's own size.
  ReturnFreeMemoryToTheSystem();
  // A follow-up of the same export, or a retry, may be startable now.
  Wake();
}

void Engine::ExecuteClaimed(const std::shared_ptr<LiveRun>& live) {
  std::string export_id;
  {
    absl::MutexLock lock(&live->mu);
    export_id = live->run.export_id();
  }
  auto e = store_->GetExport(export_id);
  if (!e.ok() || !e->active()) {
    Finish(*live, v1::RUN_STATE_SKIPPED,
           e.ok() ? "the export is inactive: its connection was detached"
                  : "the export was deleted");
    return;
  }
  // Checked again now: the connection may have been unshared since the trigger.
  std::string requested_by;
  v1::Role requested_by_role;
  {
    absl::MutexLock lock(&live->mu);
    requested_by = live->run.requested_by();
    requested_by_role = live->run.requested_by_role();
  }
  v1::RunTrigger trigger;
  {
    absl::MutexLock lock(&live->mu);
    trigger = live->run.trigger();
  }
  std::string run_as;
  auto refused = RequesterRefused(*e, requested_by, requested_by_role);
  if (refused.ok() && refused->empty()) refused = ExportUserRefused(*e, trigger, run_as);
  if (!refused.ok() || !refused->empty()) {
    Finish(*live, v1::RUN_STATE_SKIPPED,
           refused.ok() ? *refused
                        : absl::StrCat("cannot check who may run it: ",
                                       refused.status().message()));
    return;
  }
  {
    absl::MutexLock lock(&live->mu);
    live->run.set_run_as(run_as);
  }
  // The segments' sizes, so that watchers see them from the first update.
  std::vector<std::int64_t> members;
  for (const std::string& segment_id : e->segments()) {
    auto segment = store_->GetSegment(segment_id);
    members.push_back(segment.ok() ? segment->member_count() : 0);
  }
  {
    absl::MutexLock lock(&live->mu);
    for (int i = 0; i < live->run.segments_size() && i < static_cast<int>(members.size()); ++i) {
      auto* p = live->run.mutable_segments(i);
      if (!p->done() && p->segment_id() == e->segments(i)) p->set_total_members(members[i]);
    }
    if (live->run.state() == v1::RUN_STATE_FAILED_RETRYING) {
      live->run.set_state(v1::RUN_STATE_QUEUED);
    }
    live->run.set_state(v1::RUN_STATE_RUNNING);
    live->run.set_attempt(live->run.attempt() + 1);
    if (live->run.started_at_micros() == 0) {
      live->run.set_started_at_micros(options_.clock->NowMicros());
    }
    live->run.set_message("");
    live->run.set_next_attempt_at_micros(0);
    if (options_.metrics != nullptr) options_.metrics->RunStarted(live->run.export_name());
    // A resumed attempt recounts what is left; what was done stays counted.
    for (auto& p : *live->run.mutable_segments()) {
      p.set_to_add(p.added());
      p.set_to_update(p.updated());
      p.set_to_remove(p.removed());
      p.set_unchanged(0);
      p.set_retryable(0);
    }
    live->progress = RunProgress();
    live->log->Add(v1::RUN_LOG_LEVEL_INFO, "engine",
                   RunStartMessage(live->run, *e, options_.max_attempts));
    live->retry_reason.clear();
  }
  Persist(*live).IgnoreError();
  FlushLog(*live);

  bool crashed = false;
  absl::Status status = RunSegments(*live, *e, &crashed);

  // Lost to another replica, which continues the run: nothing more is
  // written (the store would refuse it anyway).
  if (live->keeper->lost()) return;
  if (crashed || live->crashed) {
    // As if the process died here: the store keeps RUNNING, the checkpoint
    // and the lease, which expires since nobody renews it.
    live->crashed = true;
    return;
  }
  std::int64_t rejected = 0, retryable = 0;
  int attempt = 0;
  std::string retry_reason;
  {
    absl::MutexLock run_lock(&live->mu);
    for (const auto& p : live->run.segments()) {
      rejected += p.rejected();
      retryable += p.retryable();
    }
    attempt = live->run.attempt();
    retry_reason = live->retry_reason;
  }
  if (status.code() == absl::StatusCode::kCancelled || live->cancel_asked()) {
    if (shutting_down_ && !live->cancel_asked()) {
      Finish(*live, v1::RUN_STATE_QUEUED, "interrupted by shutdown; resumes at the next start");
    } else {
      Finish(*live, v1::RUN_STATE_CANCELED, "canceled; what was delivered stays delivered");
    }
    return;
  }
  bool retry = (!status.ok() && IsRetryable(status.code())) || (status.ok() && retryable > 0);
  if (retry) {
    std::string why =
        status.ok() ? absl::StrCat(retryable, " records could not be delivered yet",
                                   retry_reason.empty() ? "" : absl::StrCat(" (", retry_reason, ")"))
                    : std::string(status.message());
    // The engine's run attempts, told apart from a plugin's tries of one
    // request that `why` may quote.
    static thread_local std::mt19937_64 rng(std::random_device{}());
    RetryDecision next = DecideRetry({options_.max_attempts, options_.retry_base}, attempt, why,
                                     std::uniform_real_distribution<double>(0, 1)(rng));
    if (next.give_up) {
      Finish(*live, v1::RUN_STATE_FAILED, next.message);
      return;
    }
    const absl::Duration delay = next.delay;
    {
      absl::MutexLock run_lock(&live->mu);
      live->run.set_next_attempt_at_micros(absl::ToUnixMicros(options_.clock->Now() + delay));
    }
    {
      absl::MutexLock lock(&mu_);
      next_retry_ = std::min(next_retry_, options_.clock->Now() + delay);
    }
    Finish(*live, v1::RUN_STATE_FAILED_RETRYING, next.message);
    return;
  }
  if (!status.ok()) {
    Finish(*live, v1::RUN_STATE_FAILED, std::string(status.message()));
    return;
  }
  std::string message =
      rejected > 0
          ? absl::StrCat(rejected, " records were rejected; see 'exportctl run rejections ",
                         live->run.id(), "'")
          : std::string();
  {
    absl::MutexLock lock(&live->mu);
    for (const std::string& note : live->notes) {
      absl::StrAppend(&message, message.empty() ? "" : "; ", note);
    }
  }
  Finish(*live, rejected > 0 ? v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS : v1::RUN_STATE_SUCCEEDED,
         message);
}

namespace {

// Whether a one-pass diff is likely to pay (sync::SegmentSyncOptions::
// one_pass): the export's last finished run before `run_id` synced this
// segment (so most members should be unchanged) and found no members sharing
// an identifier (a one-pass diff would find them again and read the
// snapshot twice).
bool OnePassLikelyPays(store::Store& store, const std::string& export_id,
                       const std::string& run_id, const std::string& segment_id) {
  std::string next;
  auto runs = store.ListRuns(export_id, {5, ""}, &next);
  if (!runs.ok()) return false;
  for (const v1::Run& r : *runs) {
    if (r.id() == run_id || !IsFinal(r.state()) || r.dry_run()) continue;
    for (const v1::SegmentProgress& p : r.segments()) {
      if (p.segment_id() == segment_id) return p.duplicates() == 0 && p.done();
    }
    return false;
  }
  return false;
}

// Records the segment's audience in its progress, and whether this run
// created it (a later attempt finds it, which does not undo that).
void NoteAudience(v1::SegmentProgress& p, const sdk::Audience& audience) {
  if (p.audience_id() != audience.id) p.set_audience_created(false);
  p.set_audience_id(audience.id);
  if (audience.created) p.set_audience_created(true);
}

// Why a run sends a segment's every member again although it was not asked
// to (the run's log and message say it).
std::string ResyncNote(const std::string& segment, const sync::DeliveryChange& changed,
                       const std::string& keyed_by) {
  std::string why;
  if (changed.keying) {
    why = absl::StrCat("members are now keyed by ", keyed_by.empty() ? "profile id" : keyed_by,
                       ", and those delivered before were keyed otherwise (a connection setting "
                       "or the identifier mapping changed)");
  }
  if (changed.mapping) {
    absl::StrAppend(&why, why.empty() ? "" : "; ",
                    "the export's mapping changed since the last delivery");
  }
  return absl::StrCat("segment '", segment, "': a full resync, every member sent again: ", why);
}

// The segment's audience, found or created within the connection's rate
// budget: a throttled call waits for the budget (a long pause shows as the
// run's message) and is made again, as a batch is; it costs no run attempt.
absl::StatusOr<sdk::Audience> EnsureAudience(const sync::SegmentSyncOptions& o,
                                             const std::string& segment_name,
                                             const std::string& remembered_id,
                                             sync::RunTracker& tracker, sdk::RunContext& ctx) {
  absl::StatusOr<sdk::Audience> audience;
  const absl::Status status = sync::CallWithinBudget(
      sync::ThrottlingFor(o, tracker), "the call that finds or creates the segment's audience", 0,
      ctx, [&](sdk::RunContext& call) {
        audience = o.connection->EnsureAudience(segment_name, remembered_id, call);
        return audience.status();
      });
  if (!status.ok()) return status;
  return audience;
}

}  // namespace

absl::Status Engine::RecreateAudience(sync::SegmentSyncOptions& o, const v1::Segment& segment,
                                      std::uint64_t fingerprint, const absl::Status& gone,
                                      Tracker& tracker, sdk::RunContext& ctx, LiveRun* live) {
  const std::string old_id = o.audience.id;
  const std::string note =
      absl::StrCat("segment '", segment.name(), "': the destination audience ", old_id,
                   " no longer exists (", gone.message(), "); created it again");
  auto audience = EnsureAudience(o, segment.name(), "", tracker, ctx);
  if (!audience.ok()) {
    return absl::Status(audience.status().code(),
                        absl::StrCat("segment '", segment.name(), "': the destination audience ",
                                     old_id, " no longer exists, and creating it again failed: ",
                                     audience.status().message()));
  }
  o.audience = *audience;
  EXPORTD_RETURN_IF_ERROR(
      store_->PutAudienceState(o.export_->id(), segment.id(), {audience->id, fingerprint}));
  tracker.Update(o.segment_index, [&](v1::SegmentProgress& p) { NoteAudience(p, *audience); });
  if (audience->created) Persist(*live).IgnoreError();
  const std::string said = absl::StrCat(note, " as ", audience->id,
                                        " and sent the whole segment to it");
  ctx.Log(sdk::LogLevel::kWarning, absl::StrCat(note, " as ", audience->id,
                                                "; sending the whole segment to it"));
  // What was delivered to the old audience does not count: every member goes
  // to the new one.
  o.full = true;
  o.resuming = false;
  absl::Status synced = sync::SyncSegment(o, *store_, tracker, ctx);
  if (absl::IsNotFound(synced)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "segment '", segment.name(), "': the destination audience disappeared again in this "
        "run: ", old_id, " was gone, ", audience->id, " was created in its place and is gone "
        "too (", synced.message(), "); find out what deletes it before running again"));
  }
  if (synced.ok()) {
    absl::MutexLock lock(&live->mu);
    live->notes.push_back(said);
  }
  return synced;
}

absl::Status Engine::RunSegments(LiveRun& live, const v1::Export& e, bool* crashed) {
  v1::Run run;
  {
    absl::MutexLock lock(&live.mu);
    run = live.run;
  }
  Context ctx(this, &live, run.id(), e.name());
  EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection stored,
                           store_->GetConnection(e.connection_id()));
  Tracker tracker(this, &live, stored.connection.destination_type());
  EXPORTD_ASSIGN_OR_RETURN(destinations::ResolvedConnection resolved,
                           destinations::ResolveConnection(stored, *secrets_, *registry_));
  const sdk::Manifest& manifest = resolved.destination->manifest();
  // A plugin that quotes a secret setting (an API key in a URL) does not put
  // it in the run's log, which every viewer may read.
  std::vector<std::string> secrets;
  for (const sdk::SettingSpec& spec : manifest.settings) {
    auto value = resolved.settings.find(spec.name);
    if (spec.secret && value != resolved.settings.end()) secrets.push_back(value->second);
  }
  live.log->HideValues(secrets);
  // Which mapped field keys members may depend on the connection's settings
  // (an Iterable project's type), which may have changed since the export
  // was saved.
  std::vector<std::pair<std::string, std::string>> mappings;
  for (const auto& m : e.mappings()) mappings.emplace_back(m.destination_field(), m.profile_field());
  absl::StatusOr<sdk::MappingCheck> keying =
      destinations::ValidateMappingsFor(*resolved.destination, resolved.settings, mappings);
  if (!keying.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("export '", e.name(), "' does not fit connection '",
                     stored.connection.display_name(), "': ", keying.status().message(),
                     "; update the export's mapping or the connection's settings"));
  }
  std::unique_ptr<sdk::Connection> connection;
  // The connection's speed (the manifest's, lowered by its settings) and its
  // rate budget, shared with every other run on the connection.
  sdk::SyncSpeed speed = manifest.speed;
  std::shared_ptr<destinations::RateBudget> budget;
  RateShares::Handle share;
  if (!run.dry_run()) {
    EXPORTD_ASSIGN_OR_RETURN(connection, resolved.destination->Connect(resolved.settings));
    connection = RouteDestinationLog(std::move(connection),
                                     [&ctx](sdk::LogLevel level, std::string_view message) {
                                       ctx.LogDestination(level, message);
                                     });
    speed = connection->speed();
    budget = budgets_.ForConnection(e.connection_id(), speed);
    share = shares_.Join(e.connection_id(), budget);
    connection = MeterConnection(std::move(connection), options_.metrics,
                                 stored.connection.destination_type(),
                                 stored.connection.display_name(), budget);
    const double rate = budget->current().requests_per_second;
    if (rate > 0 && (speed.requests_per_second == 0 || rate < speed.requests_per_second)) {
      ctx.Log(sdk::LogLevel::kInfo,
              absl::StrCat("connection '", stored.connection.display_name(), "': sending at most ",
                           absl::SixDigits(rate),
                           " requests/s, the rate learned from the destination's throttling (",
                           speed.requests_per_second > 0
                               ? absl::StrCat("its speed allows ", speed.requests_per_second)
                               : std::string("its speed sets no limit"),
                           ")"));
    }
  }
  for (int i = 0; i < run.segments_size(); ++i) {
    if (run.segments(i).done()) continue;  // Finished in an earlier attempt.
    const std::string& segment_id = run.segments(i).segment_id();
    auto segment = store_->GetSegment(segment_id);
    if (!segment.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "export '", e.name(), "': segment '", run.segments(i).segment_name(),
          "' no longer exists; update the export's segments"));
    }
    ctx.set_segment(segment->name());
    tracker.Update(i, [&](v1::SegmentProgress& p) {
      p.set_segment_name(segment->name());
      p.set_total_members(segment->member_count());
    });
    // What the delivered state was computed with: the mapping, and how the
    // destination keyed members. Either changed: every member is sent again.
    std::uint64_t fingerprint = sync::DeliveryFingerprint(e, *segment, keying->keyed_by);
    auto previous = store_->GetAudienceState(e.id(), segment->id());
    sync::DeliveryChange changed;
    if (previous.ok()) {
      changed = sync::CompareDelivery(previous->mapping_fingerprint, e, *segment, keying->keyed_by);
    }
    if (changed.any()) {
      const std::string note = ResyncNote(segment->name(), changed, keying->keyed_by);
      ctx.Log(sdk::LogLevel::kInfo, note);
      absl::MutexLock lock(&live.mu);
      live.notes.push_back(note);
    }

    sync::SegmentSyncOptions o;
    o.run_id = run.id();
    o.segment_index = i;
    o.export_ = &e;
    o.segment = &*segment;
    o.connection = connection.get();
    o.destination = resolved.destination;
    o.identifier_field = keying->identifier_field;
    o.full = run.full() || changed.any();
    o.rekeyed = changed.keying;
    o.resuming = run.attempt() > 1;
    o.dry_run = run.dry_run();
    o.mirror = e.mode() != v1::EXPORT_MODE_ADD_ONLY && manifest.supports_removal;
    o.max_records_per_batch = std::max(1, speed.max_records_per_batch);
    o.max_bytes_per_batch = std::max<std::int64_t>(1, speed.max_bytes_per_batch);
    o.max_parallel_batches = std::max(1, speed.max_parallel_batches);
    o.budget = budget.get();
    o.max_throttle_resends = options_.max_throttle_resends;
    o.identifiers.memory_hashes = options_.identifier_memory_hashes;
    o.held_memory_bytes = options_.held_memory_bytes;
    o.one_pass = OnePassLikelyPays(*store_, e.id(), run.id(), segment->id());
    if (!run.dry_run()) {
      auto audience = EnsureAudience(o, segment->name(), previous.ok() ? previous->audience_id : "",
                                     tracker, ctx);
      if (!audience.ok()) {
        return absl::Status(audience.status().code(),
                            absl::StrCat("segment '", segment->name(),
                                         "': the destination audience: ",
                                         audience.status().message()));
      }
      if (!audience->note.empty()) ctx.Log(sdk::LogLevel::kInfo, audience->note);
      if (previous.ok() && !previous->audience_id.empty() &&
          audience->id != previous->audience_id && !o.full) {
        // The audience used before is gone (deleted at the destination):
        // what was delivered to it is not in the new one.
        const std::string note = absl::StrCat(
            "segment '", segment->name(), "': the destination audience ", previous->audience_id,
            " used before no longer exists; sent the whole segment to ", audience->id);
        ctx.Log(sdk::LogLevel::kWarning, note);
        o.full = true;
        absl::MutexLock lock(&live.mu);
        live.notes.push_back(note);
      }
      o.audience = *audience;
      EXPORTD_RETURN_IF_ERROR(store_->PutAudienceState(
          e.id(), segment->id(),
          {audience->id, previous.ok() ? previous->mapping_fingerprint : fingerprint}));
      tracker.Update(i, [&](v1::SegmentProgress& p) { NoteAudience(p, *audience); });
      // Kept at once: deleting the export with its audiences relies on it.
      if (audience->created) EXPORTD_RETURN_IF_ERROR(Persist(live));
    }
    {
      v1::SegmentProgress progress;
      {
        absl::MutexLock lock(&live.mu);
        progress = live.run.segments(i);
      }
      live.log->Add(v1::RUN_LOG_LEVEL_INFO, SegmentSource(segment->name()),
                    SegmentStartMessage(
                        progress, {run.dry_run(), o.full, changed.any(), o.resuming, o.mirror}));
    }
    absl::Status synced = sync::SyncSegment(o, *store_, tracker, ctx);
    if (absl::IsNotFound(synced) && !run.dry_run() && !live.crashed) {
      // The audience was deleted at the destination: create it again by the
      // segment's name and send the whole segment to it, once per run.
      synced = RecreateAudience(o, *segment, fingerprint, synced, tracker, ctx, &live);
    }
    if (live.crashed) {
      *crashed = true;
      return absl::AbortedError("simulated crash");
    }
    EXPORTD_RETURN_IF_ERROR(synced);
    std::int64_t retryable = 0;
    {
      absl::MutexLock lock(&live.mu);
      retryable = live.run.segments(i).retryable();
    }
    if (retryable > 0) {
      // Not done: the next run attempt diffs the segment again and sends what
      // the destination could not take yet (what this run delivered is
      // recognised by its run id). The delivered state keeps the fingerprint
      // it had, so that a resync this attempt began is one again.
      live.log->Add(v1::RUN_LOG_LEVEL_WARNING, SegmentSource(segment->name()),
                    absl::StrCat(retryable,
                                 " records could not be delivered yet; the next run attempt "
                                 "sends them"));
      EXPORTD_RETURN_IF_ERROR(Persist(live));
      FlushLog(live);
      continue;
    }
    if (!run.dry_run()) {
      EXPORTD_RETURN_IF_ERROR(
          store_->PutAudienceState(e.id(), segment->id(), {o.audience.id, fingerprint}));
    }
    v1::SegmentProgress done;
    tracker.Update(i, [&](v1::SegmentProgress& p) {
      p.set_done(true);
      done = p;
    });
    live.log->Add(v1::RUN_LOG_LEVEL_INFO, SegmentSource(segment->name()),
                  SegmentDoneMessage(done, run.dry_run()));
    EXPORTD_RETURN_IF_ERROR(Persist(live));
    FlushLog(live);
  }
  return absl::OkStatus();
}

}  // namespace exportd::engine
