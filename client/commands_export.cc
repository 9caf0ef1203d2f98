// exportctl export create|list|get|update|delete|duplicate|detach|run|runs|run-all
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "exportd/v1/export.grpc.pb.h"
#include "exportd/v1/run.grpc.pb.h"

namespace exportd::client {
namespace {

using exportd::v1::ExportService;
using exportd::v1::RunService;

constexpr int kDefaultRunsLimit = 20;

std::string ModeLabel(exportd::v1::ExportMode mode) {
  switch (mode) {
    case exportd::v1::EXPORT_MODE_MIRROR:
      return "mirror";
    case exportd::v1::EXPORT_MODE_ADD_ONLY:
      return "add-only";
    default:
      return "-";
  }
}

std::string ScheduleSummary(const exportd::v1::Schedule& s) {
  if (!s.enabled()) return "on demand";
  if (s.follow_system_refresh()) return "system refresh";
  return absl::StrCat(s.cron(), " (", s.timezone().empty() ? "UTC" : s.timezone(), ")");
}

std::string MappingSummary(const exportd::v1::Export& e) {
  std::vector<std::string> parts;
  for (const auto& m : e.mappings()) {
    parts.push_back(absl::StrCat(m.destination_field(), "=", m.profile_field()));
  }
  return absl::StrJoin(parts, ", ");
}

// The connection's name; "-" when detached; a note when the server hides a
// connection the caller may not see.
std::string ConnectionLabel(const exportd::v1::Export& e) {
  if (e.connection_hidden()) return "(not shared with contributors)";
  if (!e.connection_name().empty()) return e.connection_name();
  return e.connection_id().empty() ? "-" : e.connection_id();
}

std::string SegmentSummary(const exportd::v1::Export& e) {
  return e.segment_names().empty() ? absl::StrJoin(e.segments(), ", ")
                                   : absl::StrJoin(e.segment_names(), ", ");
}

// "failed, recovered" or "-" without a webhook.
std::string NotifySummary(const exportd::v1::Export& e) {
  if (e.notify_url().empty()) return "-";
  return absl::StrJoin(e.notify_on(), ", ");
}

// The signing secret of a webhook just set or rotated: the one time it is shown.
void PrintNewSecret(CommandContext& ctx, const exportd::v1::Export& e) {
  if (e.new_notify_secret().empty()) return;
  PrintLine(ctx.out(),
            "Webhook signing secret (shown only now; keep it where the receiver verifies "
            "X-Exportd-Signature, see docs/notifications.md):\n  $0",
            e.new_notify_secret());
}

// --notify-url and --notify-on into a request's fields; --notify-on values
// may be comma-separated (exportd checks them).
template <typename Request>
void ApplyNotifyFlags(const cli::ParsedArgs& args, Request* request) {
  if (args.Has("notify-url")) request->set_notify_url(args.Get("notify-url"));
  for (const std::string& value : args.GetAll("notify-on")) {
    for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      request->add_notify_on(std::string(absl::StripAsciiWhitespace(part)));
    }
  }
}

void PrintExport(CommandContext& ctx, const exportd::v1::Export& e) {
  if (ctx.json()) {
    ctx.out() << ToJson(e);
    return;
  }
  PrintDetails(ctx.out(),
               {{"Name", e.name()},
                {"ID", e.id()},
                {"Active", e.active() ? "yes" : "no (connection detached)"},
                {"Connection", ConnectionLabel(e)},
                {"Segments", SegmentSummary(e)},
                {"Mappings", MappingSummary(e)},
                {"Mode", ModeLabel(e.mode())},
                {"Schedule", ScheduleSummary(e.schedule())},
                {"Next run", FormatTimeIfSet(e.schedule().next_run_at_micros())},
                {"Webhook", e.notify_url().empty() ? "-" : e.notify_url()},
                {"Notify on", NotifySummary(e)},
                {"Signing secret", e.notify_secret_set() ? "set" : "-"},
                {"Created by", e.created_by()},
                {"Created", FormatTime(e.created_at_micros())},
                {"Updated", FormatTime(e.updated_at_micros())}});
}

absl::StatusOr<exportd::v1::ExportMode> ParseMode(const std::string& text) {
  if (text == "mirror") return exportd::v1::EXPORT_MODE_MIRROR;
  if (text == "add-only") return exportd::v1::EXPORT_MODE_ADD_ONLY;
  return absl::InvalidArgumentError(
      absl::StrCat("--mode takes mirror or add-only, got '", text, "'"));
}

absl::Status CollectMappings(const cli::ParsedArgs& args,
                             google::protobuf::RepeatedPtrField<exportd::v1::FieldMapping>* out) {
  for (const std::string& text : args.GetAll("map")) {
    absl::StatusOr<exportd::v1::FieldMapping> mapping = cli::ParseMapping(text);
    if (!mapping.ok()) return mapping.status();
    *out->Add() = *std::move(mapping);
  }
  return absl::OkStatus();
}

bool HasScheduleFlags(const cli::ParsedArgs& args) {
  return args.Has("schedule") || args.Has("timezone") || args.Has("follow-system-refresh") ||
         args.Has("no-schedule");
}

// Applies the schedule flags to `schedule` (the export's current one on update).
absl::Status ApplySchedule(const cli::ParsedArgs& args, exportd::v1::Schedule* schedule) {
  const bool follow = args.IsSet("follow-system-refresh");
  if (args.Has("schedule") && follow) {
    return absl::InvalidArgumentError(
        "--schedule and --follow-system-refresh exclude each other: pick a cron schedule or the "
        "system refresh");
  }
  if (args.IsSet("no-schedule") && (args.Has("schedule") || follow || args.Has("timezone"))) {
    return absl::InvalidArgumentError("--no-schedule excludes the other schedule flags");
  }
  schedule->clear_next_run_at_micros();  // output only
  if (args.IsSet("no-schedule")) {
    schedule->Clear();
    return absl::OkStatus();
  }
  if (args.Has("schedule")) {
    schedule->set_cron(args.Get("schedule"));
    schedule->set_follow_system_refresh(false);
    schedule->set_enabled(true);
  }
  if (follow) {
    schedule->clear_cron();
    schedule->set_follow_system_refresh(true);
    schedule->set_enabled(true);
  }
  if (args.Has("timezone")) {
    if (!schedule->enabled() || schedule->follow_system_refresh()) {
      return absl::InvalidArgumentError("--timezone applies to a cron --schedule");
    }
    schedule->set_timezone(args.Get("timezone"));
  }
  return absl::OkStatus();
}

int Create(CommandContext& ctx, const cli::ParsedArgs& args) {
  exportd::v1::CreateExportRequest request;
  request.set_name(args.Get("name"));
  request.set_connection(args.Get("connection"));
  for (const std::string& segment : args.GetAll("segment")) request.add_segments(segment);
  if (absl::Status s = CollectMappings(args, request.mutable_mappings()); !s.ok()) {
    return ctx.UsageError(s.message());
  }
  request.set_mode(exportd::v1::EXPORT_MODE_MIRROR);
  if (args.Has("mode")) {
    absl::StatusOr<exportd::v1::ExportMode> mode = ParseMode(args.Get("mode"));
    if (!mode.ok()) return ctx.UsageError(mode.status().message());
    request.set_mode(*mode);
  }
  if (args.Has("no-schedule")) return ctx.UsageError("--no-schedule is for 'export update'");
  if (absl::Status s = ApplySchedule(args, request.mutable_schedule()); !s.ok()) {
    return ctx.UsageError(s.message());
  }
  if (args.Has("notify-on") && !args.Has("notify-url")) {
    return ctx.UsageError("--notify-on needs --notify-url (the webhook to notify)");
  }
  if (args.Has("notify-url") && args.Get("notify-url").empty()) {
    return ctx.UsageError("--notify-url \"\" removes a webhook: it is for 'export update'");
  }
  ApplyNotifyFlags(args, &request);
  auto stub = ExportService::NewStub(ctx.channel());
  exportd::v1::Export created;
  grpc::Status status = Invoke(ctx, stub.get(), &ExportService::Stub::CreateExport, request, &created);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(created);
  } else {
    PrintLine(ctx.out(),
              "Created export '$0' (id $1). It runs $2; run it now with: exportctl export run $3 "
              "--watch",
              created.name(), created.id(), ScheduleSummary(created.schedule()),
              ShellQuote(created.name()));
    PrintNewSecret(ctx, created);
  }
  return kExitOk;
}

int List(CommandContext& ctx, const cli::ParsedArgs&) {
  auto stub = ExportService::NewStub(ctx.channel());
  exportd::v1::ListExportsResponse response;
  grpc::Status status = Invoke(ctx, stub.get(), &ExportService::Stub::ListExports,
                               exportd::v1::ListExportsRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(response);
    return kExitOk;
  }
  Table table({"NAME", "CONNECTION", "SEGMENTS", "MAPPINGS", "MODE", "SCHEDULE", "ACTIVE"});
  for (const auto& e : response.exports()) {
    table.AddRow({e.name(), ConnectionLabel(e),
                  SegmentSummary(e), MappingSummary(e), ModeLabel(e.mode()),
                  ScheduleSummary(e.schedule()), e.active() ? "yes" : "no"});
  }
  table.Print(ctx.out());
  return kExitOk;
}

int Get(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = ExportService::NewStub(ctx.channel());
  exportd::v1::GetExportRequest request;
  request.set_export_(args.positionals()[0]);
  exportd::v1::Export e;
  grpc::Status status = Invoke(ctx, stub.get(), &ExportService::Stub::GetExport, request, &e);
  if (!status.ok()) return ctx.RpcError(status);
  PrintExport(ctx, e);
  return kExitOk;
}

int Update(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = ExportService::NewStub(ctx.channel());
  exportd::v1::UpdateExportRequest request;
  request.set_export_(args.positionals()[0]);
  if (args.Has("name")) request.set_name(args.Get("name"));
  if (args.Has("connection")) request.set_connection(args.Get("connection"));
  for (const std::string& segment : args.GetAll("segment")) request.add_segments(segment);
  if (absl::Status s = CollectMappings(args, request.mutable_mappings()); !s.ok()) {
    return ctx.UsageError(s.message());
  }
  if (args.Has("mode")) {
    absl::StatusOr<exportd::v1::ExportMode> mode = ParseMode(args.Get("mode"));
    if (!mode.ok()) return ctx.UsageError(mode.status().message());
    request.set_mode(*mode);
  }
  if (HasScheduleFlags(args)) {
    // The schedule is replaced as a whole: start from the current one so that
    // e.g. --timezone alone keeps the cron expression.
    exportd::v1::GetExportRequest get;
    get.set_export_(request.export_());
    exportd::v1::Export current;
    grpc::Status status = Invoke(ctx, stub.get(), &ExportService::Stub::GetExport, get, &current);
    if (!status.ok()) return ctx.RpcError(status);
    *request.mutable_schedule() = current.schedule();
    if (absl::Status s = ApplySchedule(args, request.mutable_schedule()); !s.ok()) {
      return ctx.UsageError(s.message());
    }
  }
  ApplyNotifyFlags(args, &request);
  request.set_rotate_notify_secret(args.IsSet("rotate-notify-secret"));
  if (!request.has_name() && !request.has_connection() && request.segments().empty() &&
      request.mappings().empty() && request.mode() == exportd::v1::EXPORT_MODE_UNSPECIFIED &&
      !request.has_schedule() && !request.has_notify_url() && request.notify_on().empty() &&
      !request.rotate_notify_secret()) {
    return ctx.UsageError(
        "nothing to update: pass --name, --connection, --segment, --map, --mode, a schedule "
        "flag, --notify-url, --notify-on or --rotate-notify-secret");
  }
  exportd::v1::Export updated;
  grpc::Status status = Invoke(ctx, stub.get(), &ExportService::Stub::UpdateExport, request, &updated);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(updated);
  } else {
    PrintLine(ctx.out(), "Updated export '$0'.", updated.name());
    PrintNewSecret(ctx, updated);
  }
  return kExitOk;
}

int Delete(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = ExportService::NewStub(ctx.channel());
  exportd::v1::DeleteExportRequest request;
  request.set_export_(args.positionals()[0]);
  request.set_delete_audiences(args.IsSet("delete-audiences"));
  exportd::v1::DeleteExportResponse response;
  grpc::Status status = Invoke(ctx, stub.get(), &ExportService::Stub::DeleteExport, request, &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(response);
  } else {
    PrintLine(ctx.out(), "Deleted export '$0'.", request.export_());
    PrintAudienceDeletion(
        ctx.out(), {response.deleted_audiences().begin(), response.deleted_audiences().end()},
        {response.kept_audiences().begin(), response.kept_audiences().end()},
        request.delete_audiences());
  }
  return kExitOk;
}

int Duplicate(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = ExportService::NewStub(ctx.channel());
  exportd::v1::DuplicateExportRequest request;
  request.set_export_(args.positionals()[0]);
  request.set_new_name(args.Get("new-name"));
  exportd::v1::Export copy;
  grpc::Status status = Invoke(ctx, stub.get(), &ExportService::Stub::DuplicateExport, request, &copy);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(copy);
  } else {
    PrintLine(ctx.out(), "Duplicated export '$0' as '$1' (id $2).", request.export_(), copy.name(),
              copy.id());
    PrintNewSecret(ctx, copy);
  }
  return kExitOk;
}

int Detach(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = ExportService::NewStub(ctx.channel());
  exportd::v1::DetachExportRequest request;
  request.set_export_(args.positionals()[0]);
  exportd::v1::Export e;
  grpc::Status status = Invoke(ctx, stub.get(), &ExportService::Stub::DetachExport, request, &e);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(e);
  } else {
    PrintLine(ctx.out(),
              "Detached export '$0' from its connection; it is inactive and keeps its "
              "configuration. Attach a connection with: exportctl export update $1 --connection "
              "NAME",
              e.name(), ShellQuote(e.name()));
  }
  return kExitOk;
}

int Run(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = RunService::NewStub(ctx.channel());
  exportd::v1::RunExportRequest request;
  request.set_export_(args.positionals()[0]);
  request.set_dry_run(args.IsSet("dry-run"));
  request.set_full(args.IsSet("full"));
  exportd::v1::Run run;
  grpc::Status status = Invoke(ctx, stub.get(), &RunService::Stub::RunExport, request, &run);
  if (!status.ok()) return ctx.RpcError(status);
  // A dry run is only useful for its result, so it is always watched.
  if (args.IsSet("watch") || request.dry_run()) {
    if (!ctx.json()) {
      PrintLine(ctx.out(), "$0 $1 of export '$2'$3:",
                run.joined_queued_run() ? "Joined the queued run" : "Run", run.id(),
                run.export_name(),
                request.dry_run() ? " (dry run)" : "");
    }
    return WatchRun(ctx, run.id());
  }
  if (ctx.json()) {
    ctx.out() << ToJson(run);
  } else if (run.joined_queued_run()) {
    PrintLine(ctx.out(),
              "Export '$1' already had run $0 queued; this request joined it. Follow it with: "
              "exportctl run watch $2",
              run.id(), run.export_name(), ShellQuote(run.id()));
  } else {
    PrintLine(ctx.out(), "Started run $0 of export '$1' ($2). Follow it with: exportctl run watch $3",
              run.id(), run.export_name(), RunStateLabel(run.state()), ShellQuote(run.id()));
  }
  return kExitOk;
}

void PrintRunsTable(CommandContext& ctx,
                    const google::protobuf::RepeatedPtrField<exportd::v1::Run>& runs) {
  Table table({"ID", "EXPORT", "STATE", "TRIGGER", "STARTED", "DURATION", "ADDED", "UPDATED",
               "REMOVED", "REJECTED", "MESSAGE"});
  for (const auto& run : runs) {
    const RunTotals totals = SumRun(run);
    std::string duration = "-";
    if (run.started_at_micros() > 0 && run.finished_at_micros() > 0) {
      duration = FormatDuration((run.finished_at_micros() - run.started_at_micros()) / 1e6);
    }
    table.AddRow({run.id(), run.export_name(),
                  RunStateLabel(run.state()) + (run.dry_run() ? " (dry run)" : ""),
                  EnumLabel(exportd::v1::RunTrigger_descriptor(), run.trigger()),
                  FormatTime(run.started_at_micros()), duration, FormatCount(totals.added),
                  FormatCount(totals.updated), FormatCount(totals.removed),
                  FormatCount(totals.rejected), run.message()});
  }
  table.Print(ctx.out());
}

int Runs(CommandContext& ctx, const cli::ParsedArgs& args) {
  int limit = kDefaultRunsLimit;
  if (args.Has("limit")) {
    absl::StatusOr<int> parsed = cli::ParsePositiveInt("limit", args.Get("limit"));
    if (!parsed.ok()) return ctx.UsageError(parsed.status().message());
    limit = *parsed;
  }
  auto stub = RunService::NewStub(ctx.channel());
  exportd::v1::ListRunsRequest request;
  request.set_export_(args.positionals()[0]);
  exportd::v1::ListRunsResponse all;
  while (all.runs_size() < limit) {
    request.set_page_size(std::min(limit - all.runs_size(), 100));
    exportd::v1::ListRunsResponse page;
    grpc::Status status = Invoke(ctx, stub.get(), &RunService::Stub::ListRuns, request, &page);
    if (!status.ok()) return ctx.RpcError(status);
    for (auto& run : *page.mutable_runs()) {
      if (all.runs_size() == limit) break;
      *all.add_runs() = std::move(run);
    }
    all.set_next_page_token(page.next_page_token());
    if (page.next_page_token().empty() || page.runs().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (ctx.json()) {
    ctx.out() << ToJson(all);
    return kExitOk;
  }
  PrintRunsTable(ctx, all.runs());
  return kExitOk;
}

int RunAll(CommandContext& ctx, const cli::ParsedArgs&) {
  auto stub = RunService::NewStub(ctx.channel());
  exportd::v1::RunAllResponse response;
  grpc::Status status = Invoke(ctx, stub.get(), &RunService::Stub::RunAll,
                               exportd::v1::RunAllRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(response);
    return kExitOk;
  }
  if (response.runs().empty()) {
    ctx.out() << "No export has an enabled schedule, so no run was started. Give one a schedule "
                 "with 'exportctl export update NAME --schedule CRON' (or "
                 "--follow-system-refresh), or run one with 'exportctl export run NAME'.\n";
    return kExitOk;
  }
  ctx.out() << "Started " << response.runs_size() << " run(s) of scheduled exports.\n";
  PrintRunsTable(ctx, response.runs());
  return kExitOk;
}

std::vector<cli::FlagSpec> ExportFlags(bool create) {
  return {
      {"name", create ? "NAME" : "NEW_NAME", create ? "The export's name, unique." : "Rename.",
       create},
      {"connection", "CONNECTION",
       create ? "The connection (name or id) to export to." : "Attach this connection.", create},
      {"segment", "SEGMENT",
       create ? "A segment (name or id) to export." : "Replace the segments with these.", create,
       true},
      {"map", "DEST=FIELD",
       create ? "Map destination field DEST from profile field FIELD, e.g. email=Email."
              : "Replace the mappings with these.",
       false, true},
      {"mode", "MODE",
       create ? "mirror (default: members who leave are removed) or add-only."
              : "mirror or add-only."},
      {"schedule", "CRON", "Run on a five-field cron schedule, e.g. '0 6 * * *'."},
      {"timezone", "TZ", "IANA time zone of the cron schedule (default UTC)."},
      {"follow-system-refresh", "",
       "Run at exportd's system refresh times instead of on a cron (exportd must be started "
       "with --system-refresh SPEC; runs show trigger SYSTEM_REFRESH)."},
      {"notify-url", "URL",
       create ? "POST a signed JSON notification to this webhook when a run ends as --notify-on "
                "says (docs/notifications.md); its signing secret is shown once."
              : "Set the webhook (a new one gets a signing secret, shown once); \"\" removes "
                "it."},
      {"notify-on", "TRIGGERS",
       "When to notify, comma-separated: failed (a run failed for good), recovered (a run "
       "succeeded after a failed one), rejections>N% (more than N% of a run's records "
       "rejected). Default: failed,recovered.",
       false, true},
  };
}

std::vector<cli::FlagSpec> UpdateFlags() {
  std::vector<cli::FlagSpec> flags = ExportFlags(false);
  flags.push_back({"no-schedule", "", "Remove the schedule: the export runs on demand only."});
  flags.push_back({"rotate-notify-secret", "",
                   "Make a new webhook signing secret (shown once); the old one stops "
                   "verifying at once."});
  return flags;
}

const cli::FlagSpec kLimitFlag = {"limit", "N", "At most N runs, newest first (default 20)."};

}  // namespace

NounSpec ExportCommands() {
  return {"export",
          "Which segments go to which connection, mapped how, and when; and their runs.",
          {
              {"create",
               {},
               "Create an export (saving does not run it).",
               "Example:\n  exportctl export create --name vip-to-iterable --connection "
               "\"Iterable prod\" \\\n    --segment VIP --map email=Email --schedule '0 6 * * *' "
               "--timezone Europe/Berlin",
               ExportFlags(true),
               Create},
              {"list", {}, "List exports.", "", {}, List},
              {"get", {"NAME"}, "Show one export.", "", {}, Get},
              {"update",
               {"NAME"},
               "Change an export.",
               "Only the flags given change; --segment and --map replace the whole list.",
               UpdateFlags(),
               Update},
              {"delete",
               {"NAME"},
               "Delete an export.",
               "With --delete-audiences, the destination audiences (Iterable lists) its runs "
               "created go too, except those another export uses; an audience that existed "
               "before the export stays. The destination must be able to delete audiences.",
               {{"delete-audiences", "", "Also delete the audiences the export created."}},
               Delete},
              {"duplicate",
               {"NAME"},
               "Copy an export under a new name.",
               "",
               {{"new-name", "NEW_NAME", "The copy's name.", true}},
               Duplicate},
              {"detach",
               {"NAME"},
               "Detach an export from its connection (it becomes inactive).",
               "",
               {},
               Detach},
              {"run",
               {"NAME"},
               "Run an export now.",
               "Exit status with --watch (and --dry-run, which is always watched): 0 when the run "
               "succeeds (with or without rejections) or is skipped, 3 when it fails or is "
               "canceled.",
               {{"watch", "", "Follow the run's progress until it ends."},
                {"dry-run", "", "Only compute what would be added, updated and removed."},
                {"full", "", "Resend everything, ignoring what was delivered before."}},
               Run},
              {"runs", {"NAME"}, "List an export's recent runs.", "", {kLimitFlag}, Runs},
              {"run-all", {}, "Run every export that has a schedule.", "", {}, RunAll},
          }};
}

}  // namespace exportd::client
