// A run's log as the engine keeps it (v1.RunLogLine, RunService.ListRunLog):
// what the engine did with the run and what the destination plugin logged
// through its RunContext, collected in memory and written to the store in
// batches (Store::AppendRunLog, which numbers the lines and keeps at most
// store::kMaxRunLogLines of them).
//
//   RunLog log(store, run.id(), clock);
//   log.HideValues(secret_setting_values);
//   log.Add(v1::RUN_LOG_LEVEL_INFO, "engine", "run started: ...");
//   ...
//   log.Flush();  // after each committed batch, each segment, and before the
//                 // run's final state is shown
//
// Every message is made one line without control characters
// (EscapeForTerminal, as run messages are), after the values to hide were
// replaced, so that a connection's secrets never reach the log, even when a
// plugin quotes them.
#ifndef EXPORTD_SERVER_ENGINE_RUN_LOG_H_
#define EXPORTD_SERVER_ENGINE_RUN_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "exportd/sdk/destination.h"
#include "exportd/v1/export.pb.h"
#include "exportd/v1/run.pb.h"
#include "server/common/clock.h"
#include "server/store/store.h"

namespace exportd::engine {

// The run-log level of a plugin's line.
v1::RunLogLevel RunLogLevelOf(sdk::LogLevel level);

// The source of the lines the engine logs about one segment: "segment VIP".
std::string SegmentSource(absl::string_view segment_name);

// What the engine logs at the steps of a run, worded in one place.
// "run started (attempt 1 of 3): on demand, requested by ann; incremental,
// mirror mode; segments: VIP (1000 members)".
std::string RunStartMessage(const v1::Run& run, const v1::Export& e, int max_attempts);
// "started: 1000 members to audience 17; incremental (resuming)".
struct SegmentPlan {
  bool dry_run = false;
  bool full = false;
  bool mapping_changed = false;  // The reason for `full`: the mapping or the keying changed.
  bool resuming = false;
  bool mirror = false;
};
std::string SegmentStartMessage(const v1::SegmentProgress& segment, const SegmentPlan& plan);
// "done: 18 added, 1 updated, 0 removed, 1 rejected, 980 unchanged".
std::string SegmentDoneMessage(const v1::SegmentProgress& segment, bool dry_run);
// A run moved to `state` with `message`: "run FAILED: ...", at a level that
// says how bad it is (SUCCEEDED, CANCELED and QUEUED info, FAILED error, the
// others warning).
v1::RunLogLevel FinalLogLevel(v1::RunState state);
std::string FinalLogMessage(v1::RunState state, absl::string_view message);

class RunLog {
 public:
  // What replaces a hidden value in a line.
  static constexpr absl::string_view kHidden = "[hidden]";
  // Lines kept in memory between two flushes; past them a line is dropped
  // and counted, and the next flush says how many were.
  static constexpr size_t kMaxPending = store::kMaxRunLogLines;

  // `store` and `clock` outlive the log.
  RunLog(store::Store* store, std::string run_id, const Clock* clock);

  // Hides each of `values` (the connection's secret settings; empty ones are
  // ignored) in the lines added from now on. Thread-safe.
  void HideValues(const std::vector<std::string>& values);

  // Adds a line, timed now. Thread-safe and quick: no store access.
  void Add(v1::RunLogLevel level, absl::string_view source, absl::string_view message);

  // Writes the lines added since the last flush to the store, in one append,
  // in the order they were added. Thread-safe: flushes wait for each other,
  // Add does not wait for a flush. A failed write keeps those lines for the
  // next flush (within kMaxPending) rather than holding the run.
  absl::Status Flush();

  const std::string& run_id() const { return run_id_; }

 private:
  store::Store* const store_;
  const std::string run_id_;
  const Clock* const clock_;

  absl::Mutex mu_;
  std::vector<std::string> hidden_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::RunLogLine> pending_ ABSL_GUARDED_BY(mu_);
  std::int64_t overflow_ ABSL_GUARDED_BY(mu_) = 0;
  // Held while writing, so that two flushes store their lines in order.
  absl::Mutex flush_mu_ ABSL_ACQUIRED_BEFORE(mu_);
};

// `inner`, whose calls hand the plugin a RunContext that sends its Log lines
// to `log` (the engine attributes them to the destination) and everything
// else to the context of the call. Null stays null.
std::unique_ptr<sdk::Connection> RouteDestinationLog(
    std::unique_ptr<sdk::Connection> inner,
    std::function<void(sdk::LogLevel level, std::string_view message)> log);

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_RUN_LOG_H_
