#include "server/engine/run_log.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_replace.h"
#include "server/common/terminal_text.h"

namespace exportd::engine {

v1::RunLogLevel RunLogLevelOf(sdk::LogLevel level) {
  switch (level) {
    case sdk::LogLevel::kDebug:
      return v1::RUN_LOG_LEVEL_DEBUG;
    case sdk::LogLevel::kInfo:
      return v1::RUN_LOG_LEVEL_INFO;
    case sdk::LogLevel::kWarning:
      return v1::RUN_LOG_LEVEL_WARNING;
    case sdk::LogLevel::kError:
      return v1::RUN_LOG_LEVEL_ERROR;
  }
  return v1::RUN_LOG_LEVEL_INFO;
}

std::string SegmentSource(absl::string_view segment_name) {
  return absl::StrCat("segment ", segment_name);
}

namespace {

absl::string_view StateName(v1::RunState state) {
  absl::string_view name = v1::RunState_Name(state);
  absl::ConsumePrefix(&name, "RUN_STATE_");
  return name;
}

absl::string_view TriggerWords(v1::RunTrigger trigger) {
  switch (trigger) {
    case v1::RUN_TRIGGER_SCHEDULE:
      return "scheduled";
    case v1::RUN_TRIGGER_RUN_ALL:
      return "run all";
    case v1::RUN_TRIGGER_ON_DEMAND:
    default:
      return "on demand";
  }
}

}  // namespace

std::string RunStartMessage(const v1::Run& run, const v1::Export& e, int max_attempts) {
  std::string out =
      absl::StrCat("run started (attempt ", run.attempt(), " of ",
                   std::max(max_attempts, run.attempt()), "): ", TriggerWords(run.trigger()));
  if (!run.requested_by().empty()) absl::StrAppend(&out, ", requested by ", run.requested_by());
  if (!run.run_as().empty()) {
    absl::StrAppend(&out, ", with the authority of export user ", run.run_as());
  }
  absl::StrAppend(&out, "; ",
                  run.dry_run() ? "dry run (nothing is sent)"
                  : run.full()  ? "full resend"
                                : "incremental",
                  ", ", e.mode() == v1::EXPORT_MODE_ADD_ONLY ? "add-only" : "mirror", " mode");
  if (run.attempt() > 1) absl::StrAppend(&out, "; resuming from the last committed batch");
  std::vector<std::string> segments;
  for (const v1::SegmentProgress& p : run.segments()) {
    segments.push_back(absl::StrCat(p.segment_name().empty() ? p.segment_id() : p.segment_name(),
                                    " (", p.total_members(), " members", p.done() ? ", done" : "",
                                    ")"));
  }
  absl::StrAppend(&out, "; segments: ", segments.empty() ? "none" : absl::StrJoin(segments, ", "));
  return out;
}

std::string SegmentStartMessage(const v1::SegmentProgress& segment, const SegmentPlan& plan) {
  std::string out = absl::StrCat("started: ", segment.total_members(), " members");
  if (!plan.dry_run && !segment.audience_id().empty()) {
    absl::StrAppend(&out, " to audience ", segment.audience_id());
  }
  absl::StrAppend(&out, "; ",
                  plan.dry_run ? "dry run"
                  : plan.full
                      ? (plan.mapping_changed ? "full resend (the mapping or how members are keyed changed)" : "full resend")
                      : "incremental");
  if (plan.resuming) absl::StrAppend(&out, " (resuming)");
  if (!plan.mirror) absl::StrAppend(&out, "; members who left stay at the destination");
  return out;
}

std::string SegmentDoneMessage(const v1::SegmentProgress& p, bool dry_run) {
  std::string out =
      dry_run
          ? absl::StrCat("done (dry run): would add ", p.to_add(), ", update ", p.to_update(),
                         ", remove ", p.to_remove(), "; ", p.unchanged(), " unchanged")
          : absl::StrCat("done: ", p.added(), " added, ", p.updated(), " updated, ", p.removed(),
                         " removed, ", p.rejected(), " rejected, ", p.unchanged(), " unchanged");
  if (p.duplicates() > 0) {
    absl::StrAppend(&out, ", ", p.duplicates(), " not sent for sharing an identifier");
  }
  return out;
}

v1::RunLogLevel FinalLogLevel(v1::RunState state) {
  switch (state) {
    case v1::RUN_STATE_SUCCEEDED:
    case v1::RUN_STATE_CANCELED:  // Someone asked for it.
    case v1::RUN_STATE_QUEUED:
    case v1::RUN_STATE_RUNNING:
      return v1::RUN_LOG_LEVEL_INFO;
    case v1::RUN_STATE_FAILED:
      return v1::RUN_LOG_LEVEL_ERROR;
    default:
      return v1::RUN_LOG_LEVEL_WARNING;
  }
}

std::string FinalLogMessage(v1::RunState state, absl::string_view message) {
  return absl::StrCat("run ", StateName(state), message.empty() ? "" : ": ", message);
}

RunLog::RunLog(store::Store* store, std::string run_id, const Clock* clock)
    : store_(store), run_id_(std::move(run_id)), clock_(clock) {}

void RunLog::HideValues(const std::vector<std::string>& values) {
  absl::MutexLock lock(&mu_);
  for (const std::string& value : values) {
    if (!value.empty()) hidden_.push_back(value);
  }
}

void RunLog::Add(v1::RunLogLevel level, absl::string_view source, absl::string_view message) {
  v1::RunLogLine line;
  line.set_at_micros(clock_->NowMicros());
  line.set_level(level);
  line.set_source(EscapeForTerminal(source));
  absl::MutexLock lock(&mu_);
  if (pending_.size() >= kMaxPending) {
    ++overflow_;
    return;
  }
  std::string text(message);
  // Before escaping: the value as the plugin was given it.
  for (const std::string& value : hidden_) {
    absl::StrReplaceAll({{value, kHidden}}, &text);
  }
  line.set_message(EscapeForTerminal(text));
  pending_.push_back(std::move(line));
}

absl::Status RunLog::Flush() {
  absl::MutexLock flushing(&flush_mu_);
  std::vector<v1::RunLogLine> lines;
  {
    absl::MutexLock lock(&mu_);
    lines.swap(pending_);
    if (overflow_ > 0) {
      v1::RunLogLine& note = lines.emplace_back();
      note.set_at_micros(clock_->NowMicros());
      note.set_level(v1::RUN_LOG_LEVEL_WARNING);
      note.set_source("engine");
      note.set_message(absl::StrCat(overflow_,
                                    " log lines came faster than they could be "
                                    "stored and were dropped"));
      overflow_ = 0;
    }
  }
  if (lines.empty()) return absl::OkStatus();
  absl::Status stored = store_->AppendRunLog(run_id_, lines);
  if (stored.ok()) return absl::OkStatus();
  // Kept for the next flush, ahead of what came meanwhile, within the same
  // in-memory bound (past it the newest are counted as dropped).
  const size_t kept = lines.size();
  {
    absl::MutexLock lock(&mu_);
    for (v1::RunLogLine& line : pending_) lines.push_back(std::move(line));
    if (lines.size() > kMaxPending) {
      overflow_ += static_cast<std::int64_t>(lines.size() - kMaxPending);
      lines.resize(kMaxPending);
    }
    pending_ = std::move(lines);
  }
  return absl::Status(stored.code(),
                      absl::StrCat("run ", run_id_, ": ", kept,
                                   " log lines could not be stored yet (the next flush tries "
                                   "again): ",
                                   stored.message()));
}

namespace {

// The plugin's context for one call: its Log lines go to the run log's
// router, everything else to the context of the call.
class DestinationLogContext final : public sdk::RunContext {
 public:
  DestinationLogContext(sdk::RunContext& inner,
                        const std::function<void(sdk::LogLevel, std::string_view)>& log)
      : inner_(inner), log_(log) {}
  bool cancelled() const override { return inner_.cancelled(); }
  bool SleepFor(absl::Duration d) override { return inner_.SleepFor(d); }
  absl::Time Now() const override { return inner_.Now(); }
  void Log(sdk::LogLevel level, std::string_view message) override { log_(level, message); }
  void ReportThrottle(absl::Duration retry_after) override { inner_.ReportThrottle(retry_after); }
  void RequestDone(std::string_view endpoint, int http_status, absl::Duration latency) override {
    inner_.RequestDone(endpoint, http_status, latency);
  }

 private:
  sdk::RunContext& inner_;
  const std::function<void(sdk::LogLevel, std::string_view)>& log_;
};

class DestinationLogConnection final : public sdk::Connection {
 public:
  DestinationLogConnection(std::unique_ptr<sdk::Connection> inner,
                           std::function<void(sdk::LogLevel, std::string_view)> log)
      : inner_(std::move(inner)), log_(std::move(log)) {}

  sdk::SyncSpeed speed() const override { return inner_->speed(); }
  absl::Status Check(sdk::RunContext& ctx) override {
    DestinationLogContext routed(ctx, log_);
    return inner_->Check(routed);
  }
  absl::StatusOr<sdk::Audience> EnsureAudience(std::string_view segment_name,
                                               std::string_view remembered_id,
                                               sdk::RunContext& ctx) override {
    DestinationLogContext routed(ctx, log_);
    return inner_->EnsureAudience(segment_name, remembered_id, routed);
  }
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Upsert(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext& ctx) override {
    DestinationLogContext routed(ctx, log_);
    return inner_->Upsert(audience, batch, routed);
  }
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Remove(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext& ctx) override {
    DestinationLogContext routed(ctx, log_);
    return inner_->Remove(audience, batch, routed);
  }

 private:
  std::unique_ptr<sdk::Connection> inner_;
  const std::function<void(sdk::LogLevel, std::string_view)> log_;
};

}  // namespace

std::unique_ptr<sdk::Connection> RouteDestinationLog(
    std::unique_ptr<sdk::Connection> inner,
    std::function<void(sdk::LogLevel level, std::string_view message)> log) {
  if (inner == nullptr) return inner;
  return std::make_unique<DestinationLogConnection>(std::move(inner), std::move(log));
}

}  // namespace exportd::engine
