// exportctl run get|watch|cancel|rejections|log, and the run watcher shared
// with `export run --watch`.
#include <atomic>
#include <cmath>
#include <csignal>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "exportd/v1/run.grpc.pb.h"
#include "server/common/run_states.h"

namespace exportd::client {
namespace {

using exportd::v1::RunService;

constexpr int kDefaultRejectionsLimit = 50;
// `run log --follow` asks for new lines this often while the run goes on.
constexpr absl::Duration kLogPollInterval = absl::Milliseconds(500);
constexpr int kProgressBarWidth = 30;
// Off a terminal (a file, tee, a CI log) a progress line within the same state
// is printed at most this often; state changes are always printed.
constexpr absl::Duration kPlainProgressInterval = absl::Seconds(5);
// The exit status after Ctrl-C, as a shell reports a SIGINT.
constexpr int kExitInterrupted = 130;

std::atomic<bool> g_interrupted{false};
extern "C" void OnInterrupt(int) { g_interrupted.store(true); }

// While alive, Ctrl-C (SIGINT) ends the watch instead of the process: it
// cancels `context` (if not null), and interrupted() says so. The run itself
// goes on.
class InterruptCancels {
 public:
  explicit InterruptCancels(grpc::ClientContext* context) {
    g_interrupted.store(false);
    previous_ = std::signal(SIGINT, OnInterrupt);
    watcher_ = std::thread([this, context] {
      while (!done_.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
        if (g_interrupted.load()) {
          if (context != nullptr) context->TryCancel();
          return;
        }
      }
    });
  }
  ~InterruptCancels() {
    done_.Notify();
    watcher_.join();
    std::signal(SIGINT, previous_ == SIG_ERR ? SIG_DFL : previous_);
  }
  bool interrupted() const { return g_interrupted.load(); }

 private:
  void (*previous_)(int) = SIG_DFL;
  absl::Notification done_;
  std::thread watcher_;
};

using exportd::IsFinal;
using exportd::IsSuccess;

int Get(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = RunService::NewStub(ctx.channel());
  exportd::v1::GetRunRequest request;
  request.set_run_id(args.positionals()[0]);
  exportd::v1::Run run;
  grpc::Status status = Invoke(ctx, stub.get(), &RunService::Stub::GetRun, request, &run);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(run);
  } else {
    PrintRunDetails(ctx, run);
  }
  return kExitOk;
}

int Watch(CommandContext& ctx, const cli::ParsedArgs& args) {
  return WatchRun(ctx, args.positionals()[0]);
}

// One WatchRun stream of run_id (the context outlives the reader).
struct RunStream {
  RunStream(CommandContext& ctx, const std::string& run_id)
      : stub(RunService::NewStub(ctx.channel())) {
    ctx.PrepareStream(&context);
    exportd::v1::WatchRunRequest request;
    request.set_run_id(run_id);
    reader = stub->WatchRun(&context, request);
  }
  std::unique_ptr<RunService::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<exportd::v1::Run>> reader;
};

// Follows run_id's WatchRun stream without printing until the run ends; *last
// is its final state.
grpc::Status WaitUntilFinal(CommandContext& ctx, const std::string& run_id,
                            exportd::v1::Run* last) {
  RunStream watch(ctx, run_id);
  exportd::v1::Run update;
  while (watch.reader->Read(&update)) *last = update;
  grpc::Status status = watch.reader->Finish();
  if (!status.ok() || IsFinal(last->state())) return status;
  // The stream ended without a final state: ask once more.
  exportd::v1::GetRunRequest get;
  get.set_run_id(run_id);
  return Invoke(ctx, watch.stub.get(), &RunService::Stub::GetRun, get, last);
}

int Cancel(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = RunService::NewStub(ctx.channel());
  exportd::v1::CancelRunRequest request;
  request.set_run_id(args.positionals()[0]);
  exportd::v1::Run run;
  grpc::Status status = Invoke(ctx, stub.get(), &RunService::Stub::CancelRun, request, &run);
  if (!status.ok()) return ctx.RpcError(status);
  const bool wait = args.IsSet("wait");
  if (wait && !IsFinal(run.state())) {
    if (!ctx.json()) {
      PrintLine(ctx.out(), "Cancel of run $0 of export '$1' requested; waiting for it to end.",
                run.id(), run.export_name());
      ctx.out().flush();
    }
    status = WaitUntilFinal(ctx, run.id(), &run);
    if (!status.ok()) return ctx.RpcError(status);
  }
  if (ctx.json()) {
    ctx.out() << ToJson(run);
  } else if (IsFinal(run.state())) {
    PrintLine(ctx.out(), "Run $0 of export '$1' ended $2.", run.id(), run.export_name(),
              RunStateLabel(run.state()));
  } else {
    PrintLine(ctx.out(),
              "Cancel of run $0 of export '$1' requested; it is $2 until the run stops. Wait for "
              "its final state with: exportctl run watch $3",
              run.id(), run.export_name(), RunStateLabel(run.state()), ShellQuote(run.id()));
  }
  return kExitOk;
}

int Rejections(CommandContext& ctx, const cli::ParsedArgs& args) {
  int limit = kDefaultRejectionsLimit;
  if (args.Has("limit")) {
    absl::StatusOr<int> parsed = cli::ParsePositiveInt("limit", args.Get("limit"));
    if (!parsed.ok()) return ctx.UsageError(parsed.status().message());
    limit = *parsed;
  }
  auto stub = RunService::NewStub(ctx.channel());
  exportd::v1::ListRejectionsRequest request;
  request.set_run_id(args.positionals()[0]);
  exportd::v1::ListRejectionsResponse all;
  while (all.rejections_size() < limit) {
    request.set_page_size(std::min(limit - all.rejections_size(), 1000));
    exportd::v1::ListRejectionsResponse page;
    grpc::Status status =
        Invoke(ctx, stub.get(), &RunService::Stub::ListRejections, request, &page);
    if (!status.ok()) return ctx.RpcError(status);
    all.set_total(page.total());
    for (auto& rejection : *page.mutable_rejections()) {
      if (all.rejections_size() == limit) break;
      *all.add_rejections() = std::move(rejection);
    }
    all.set_next_page_token(page.next_page_token());
    if (page.next_page_token().empty() || page.rejections().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (ctx.json()) {
    ctx.out() << ToJson(all);
    return kExitOk;
  }
  Table table({"PROFILE ID", "SEGMENT", "FIELD", "REASON", "REMOVAL", "MESSAGE"});
  for (const auto& r : all.rejections()) {
    // The id only for a segment deleted since.
    table.AddRow({r.profile_id(), r.segment_name().empty() ? r.segment_id() : r.segment_name(),
                  r.field().empty() ? "-" : r.field(),
                  r.reason_code(), r.removal() ? "yes" : "no", r.message()});
  }
  table.Print(ctx.out());
  ctx.out() << "(" << FormatCount(all.rejections_size()) << " of " << FormatCount(all.total())
            << " rejections" << (all.rejections_size() < all.total() ? "; raise --limit for more" : "")
            << ")\n";
  return kExitOk;
}

// "info" -> RUN_LOG_LEVEL_INFO; INVALID_ARGUMENT naming the choices.
absl::StatusOr<exportd::v1::RunLogLevel> ParseLogLevel(absl::string_view text) {
  exportd::v1::RunLogLevel level;
  if (exportd::v1::RunLogLevel_Parse(absl::StrCat("RUN_LOG_LEVEL_", absl::AsciiStrToUpper(text)),
                                     &level) &&
      level != exportd::v1::RUN_LOG_LEVEL_UNSPECIFIED) {
    return level;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--level takes debug, info, warning or error, got '", text, "'"));
}

// "2026-05-02T06:00:00.123Z INFO    [engine] run started ..."
void PrintLogLine(CommandContext& ctx, const exportd::v1::RunLogLine& line) {
  if (ctx.json()) {
    ctx.out() << ToCompactJson(line);
    return;
  }
  std::string level(
      absl::StripPrefix(exportd::v1::RunLogLevel_Name(line.level()), "RUN_LOG_LEVEL_"));
  level.resize(std::max<size_t>(level.size(), 7), ' ');
  PrintLine(ctx.out(), "$0 $1 [$2] $3",
            absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMicros(line.at_micros()),
                             absl::UTCTimeZone()),
            level, line.source(), line.message());
}

int Log(CommandContext& ctx, const cli::ParsedArgs& args) {
  const std::string run_id = args.positionals()[0];
  exportd::v1::ListRunLogRequest request;
  request.set_run_id(run_id);
  request.set_page_size(1000);
  if (args.Has("level")) {
    absl::StatusOr<exportd::v1::RunLogLevel> level = ParseLogLevel(args.Get("level"));
    if (!level.ok()) return ctx.UsageError(level.status().message());
    request.set_min_level(*level);
  }
  const bool follow = args.IsSet("follow");
  auto stub = RunService::NewStub(ctx.channel());
  InterruptCancels interrupt(nullptr);
  // Pages until the lines stored now are printed; with --follow, again
  // until the run is final. A final run has every line stored, so the pass
  // after it was seen final is the last.
  bool final_seen = !follow;
  exportd::v1::Run run;
  while (true) {
    exportd::v1::ListRunLogResponse page;
    grpc::Status status = Invoke(ctx, stub.get(), &RunService::Stub::ListRunLog, request, &page);
    if (!status.ok()) return ctx.RpcError(status);
    for (const auto& line : page.lines()) {
      PrintLogLine(ctx, line);
      request.set_after_seq(line.seq());
    }
    ctx.out().flush();
    if (page.next_after_seq() != 0) continue;
    if (final_seen) break;
    exportd::v1::GetRunRequest get;
    get.set_run_id(run_id);
    status = Invoke(ctx, stub.get(), &RunService::Stub::GetRun, get, &run);
    if (!status.ok()) return ctx.RpcError(status);
    if (IsFinal(run.state())) {
      final_seen = true;
      continue;
    }
    const absl::Time wake = absl::Now() + kLogPollInterval;
    while (absl::Now() < wake && !interrupt.interrupted()) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (interrupt.interrupted()) {
      PrintLine(ctx.err(),
                "Stopped following; run $0 goes on on the server. Follow it again with "
                "'exportctl run log $0 --follow'.",
                run_id);
      return kExitInterrupted;
    }
  }
  if (!follow || IsSuccess(run.state())) return kExitOk;
  PrintLine(ctx.err(), "error: run $0 ended $1$2", run_id, RunStateLabel(run.state()),
            run.message().empty() ? "" : ": " + run.message());
  return kExitRunFailed;
}

}  // namespace

void PrintRunDetails(CommandContext& ctx, const exportd::v1::Run& run) {
  std::vector<std::pair<std::string, std::string>> details = {
      {"Run", run.id()},
      {"Export", run.export_name()},
      {"State", RunStateLabel(run.state()) + (run.dry_run() ? " (dry run)" : "")},
      {"Trigger", EnumLabel(exportd::v1::RunTrigger_descriptor(), run.trigger())},
      {"Full resend", run.full() ? "yes" : "no"},
      {"Requested by", run.requested_by()},
      {"Runs as", run.run_as().empty() ? "-" : run.run_as() + " (export user)"},
      {"Created", FormatTime(run.created_at_micros())},
      {"Started", FormatTime(run.started_at_micros())},
      {"Finished", FormatTime(run.finished_at_micros())}};
  if (run.started_at_micros() > 0 && run.finished_at_micros() > 0) {
    details.emplace_back("Duration",
                         FormatDuration((run.finished_at_micros() - run.started_at_micros()) / 1e6));
  }
  if (run.state() == exportd::v1::RUN_STATE_RUNNING && !run.dry_run()) {
    // The server's estimate (exponentially weighted over the run).
    details.emplace_back("Rate", run.rate() > 0
                                     ? absl::StrCat(FormatCount(std::llround(run.rate())),
                                                    " records/s")
                                     : "measuring");
    details.emplace_back("ETA", run.eta_seconds() >= 0 ? FormatDuration(run.eta_seconds())
                                                       : "unknown yet");
  }
  // The engine's attempts of the whole run; a destination's tries of single
  // requests are counted in the message.
  if (run.attempt() > 1) details.emplace_back("Run attempt", absl::StrCat(run.attempt()));
  details.emplace_back("Replica", run.replica());
  if (run.next_attempt_at_micros() > 0) {
    details.emplace_back("Next run attempt", absl::StrCat(run.attempt() + 1, " at ",
                                                          FormatTime(run.next_attempt_at_micros())));
  }
  details.emplace_back("Message", run.message());
  PrintDetails(ctx.out(), details);
  if (run.segments().empty()) return;
  const bool dry = run.dry_run();
  // Profiles sharing an identifier with another (mirror mode): a column only
  // when there are any.
  bool duplicates = false;
  for (const auto& s : run.segments()) duplicates = duplicates || s.duplicates() > 0;
  std::vector<std::string> headers = {"SEGMENT", "AUDIENCE", "MEMBERS",
                                      dry ? "WOULD ADD" : "TO ADD",
                                      dry ? "WOULD UPDATE" : "TO UPDATE",
                                      dry ? "WOULD REMOVE" : "TO REMOVE",
                                      "UNCHANGED", "ADDED", "UPDATED", "REMOVED", "REJECTED"};
  if (duplicates) headers.push_back("DUPLICATES");
  Table table(headers);
  for (const auto& s : run.segments()) {
    std::vector<std::string> row = {
        s.segment_name().empty() ? s.segment_id() : s.segment_name(),
        s.audience_id().empty() ? "-" : s.audience_id(), FormatCount(s.total_members()),
        FormatCount(s.to_add()), FormatCount(s.to_update()), FormatCount(s.to_remove()),
        FormatCount(s.unchanged()), FormatCount(s.added()), FormatCount(s.updated()),
        FormatCount(s.removed()), FormatCount(s.rejected())};
    if (duplicates) row.push_back(FormatCount(s.duplicates()));
    table.AddRow(std::move(row));
  }
  table.Print(ctx.out());
  if (SumRun(run).rejected > 0) {
    PrintLine(ctx.out(), "See the rejected records with: exportctl run rejections $0",
              ShellQuote(run.id()));
  }
}

int WatchRun(CommandContext& ctx, const std::string& run_id) {
  RunStream watch(ctx, run_id);
  auto& stub = watch.stub;
  grpc::ClientContext& context = watch.context;
  auto& reader = watch.reader;

  exportd::v1::Run update;
  exportd::v1::Run last;
  bool received = false;
  size_t drawn_width = 0;
  double shown = 0;  // The percentage never goes back.
  std::string previous_line;
  exportd::v1::RunState previous_state = exportd::v1::RUN_STATE_UNSPECIFIED;
  absl::Time last_printed = absl::InfinitePast();
  InterruptCancels interrupt(&context);
  while (reader->Read(&update)) {
    received = true;
    last = update;
    if (ctx.json()) continue;  // only the final run is printed, as one JSON object
    if (ctx.out_is_tty()) {
      std::string line = RenderProgressLine(update, kProgressBarWidth, &shown);
      const size_t width = line.size();
      if (width < drawn_width) line.append(drawn_width - width, ' ');  // erase the old tail
      drawn_width = width;
      ctx.out() << '\r' << line << std::flush;
    } else {
      // One line per state change; within a state at most one progress line
      // every few seconds. Flushed each time, so a pipe or a log sees it now.
      std::string line = RenderProgressLine(update, 0, &shown);
      const absl::Time now = absl::Now();
      const bool state_changed = update.state() != previous_state;
      if (line != previous_line &&
          (state_changed || now - last_printed >= kPlainProgressInterval)) {
        ctx.out() << line << std::endl;
        previous_line = std::move(line);
        last_printed = now;
      }
      previous_state = update.state();
    }
  }
  if (drawn_width > 0) ctx.out() << '\n';
  grpc::Status status = reader->Finish();
  if (interrupt.interrupted()) {
    ctx.out().flush();
    PrintLine(ctx.err(),
              "Stopped watching; run $0 goes on on the server.\n"
              "Watch it again with: exportctl run watch $1\n"
              "Cancel it with:      exportctl run cancel $1",
              run_id, ShellQuote(run_id));
    return kExitInterrupted;
  }
  if (!status.ok()) return ctx.RpcError(status);

  if (!received || !IsFinal(last.state())) {
    // The stream ended without a final state: ask once more.
    exportd::v1::GetRunRequest get;
    get.set_run_id(run_id);
    grpc::Status get_status = Invoke(ctx, stub.get(), &RunService::Stub::GetRun, get, &last);
    if (!get_status.ok()) return ctx.RpcError(get_status);
  }
  if (ctx.json()) {
    ctx.out() << ToJson(last);
  } else {
    PrintRunDetails(ctx, last);
  }
  if (IsSuccess(last.state())) return kExitOk;
  if (!IsFinal(last.state())) {
    PrintLine(ctx.err(), "error: the watch ended while run $0 is still $1", run_id,
              RunStateLabel(last.state()));
    return kExitError;
  }
  PrintLine(ctx.err(), "error: run $0 ended $1$2", run_id, RunStateLabel(last.state()),
            last.message().empty() ? "" : ": " + last.message());
  return kExitRunFailed;
}

NounSpec RunCommands() {
  const cli::FlagSpec limit = {"limit", "N", "At most N rejections (default 50)."};
  return {"run",
          "One execution of an export: progress, cancel, rejected records.",
          {
              {"get", {"ID"}, "Show a run's state and counts.", "", {}, Get},
              {"watch",
               {"ID"},
               "Follow a run until it ends.",
               "Exits 0 when the run succeeds (with or without rejections) or is skipped, 3 when "
               "it fails or is canceled.",
               {},
               Watch},
              {"cancel",
               {"ID"},
               "Cancel a queued or running run.",
               "A running run stops after the batch it is sending; the cancel returns at once "
               "unless --wait is given.",
               {{"wait", "", "Wait until the run has reached its final state."}},
               Cancel},
              {"rejections",
               {"ID"},
               "List the records a run's destination rejected, and why.",
               "",
               {limit},
               Rejections},
              {"log",
               {"ID"},
               "Show a run's log: what the engine did and what the destination said.",
               "One line each: TIME LEVEL [SOURCE] MESSAGE, oldest first, times in UTC. SOURCE "
               "is 'engine', 'segment NAME' or 'destination' (the plugin). A run keeps at most "
               "1000 lines; the last one then says how many more were dropped. With --follow, "
               "new lines are printed as the run goes on until it ends, and the exit status is "
               "that of 'run watch' (0 succeeded or skipped, 3 failed or canceled). With --json "
               "(or -o json), one JSON object per line (RunLogLine).",
               {{"follow", "", "Print new lines until the run has ended."},
                {"level", "LEVEL", "Only lines of LEVEL or above: debug, info, warning or error."},
                {"json", "", "One JSON object per line (the same as -o json)."}},
               Log},
          }};
}

}  // namespace exportd::client
