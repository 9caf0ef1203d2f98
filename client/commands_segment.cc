// exportctl segment create|upload|list|get|delete|members
#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/csv_reader.h"
#include "exportd/v1/segment.grpc.pb.h"

namespace exportd::client {
namespace {

using exportd::v1::SegmentService;

constexpr int kDefaultMembersLimit = 100;

std::string SchemaSummary(const google::protobuf::RepeatedPtrField<exportd::v1::SchemaField>& s) {
  std::vector<std::string> parts;
  for (const auto& field : s) {
    parts.push_back(absl::StrCat(field.name(), ":", cli::FieldTypeName(field.type())));
  }
  return absl::StrJoin(parts, ", ");
}

// --field NAME:TYPE flags, in order.
absl::StatusOr<std::vector<std::pair<std::string, exportd::v1::FieldType>>> FieldTypes(
    const cli::ParsedArgs& args) {
  absl::StatusOr<CsvImportOptions> options = ParseCsvImportOptions("", args.GetAll("field"));
  if (!options.ok()) return options.status();
  return std::move(options->field_types);
}

// An open CSV source: a file, or stdin for "-".
struct CsvSource {
  std::unique_ptr<std::ifstream> file;
  std::istream* stream = nullptr;
  std::string name;
  std::unique_ptr<MemberCsvReader> reader;
};

// Opens --from-csv and reads its header. Problems here are usage errors.
absl::StatusOr<CsvSource> OpenCsv(CommandContext& ctx, const cli::ParsedArgs& args) {
  CsvSource source;
  source.name = args.Get("from-csv");
  if (source.name == "-") {
    source.stream = &ctx.in();
    source.name = "stdin";
  } else {
    source.file = std::make_unique<std::ifstream>(source.name, std::ios::binary);
    if (!*source.file) {
      return absl::InvalidArgumentError(absl::StrCat("cannot open CSV file '", source.name, "'"));
    }
    source.stream = source.file.get();
  }
  absl::StatusOr<CsvImportOptions> options =
      ParseCsvImportOptions(args.Get("id-field"), args.GetAll("field"));
  if (!options.ok()) return options.status();
  auto reader = MemberCsvReader::Open(*source.stream, source.name, *options);
  if (!reader.ok()) return reader.status();
  source.reader = *std::move(reader);
  return source;
}

// Streams the CSV's rows into the segment over UploadMembers: the header, the
// rows in chunks, then the trailer with the row count. On a bad row the stream
// is cancelled before the trailer, so the server keeps the previous snapshot.
int Upload(CommandContext& ctx, const std::string& segment, CsvSource& source) {
  const auto started = std::chrono::steady_clock::now();
  auto stub = SegmentService::NewStub(ctx.channel());
  grpc::ClientContext context;
  ctx.PrepareStream(&context);
  exportd::v1::UploadMembersResponse response;
  std::unique_ptr<grpc::ClientWriter<exportd::v1::UploadMembersRequest>> writer =
      stub->UploadMembers(&context, &response);

  bool stream_ok = false;
  absl::Status csv = WriteCsvUpload(
      *source.reader, segment,
      [&](const exportd::v1::UploadMembersRequest& request) { return writer->Write(request); },
      &stream_ok);
  if (!csv.ok()) {
    context.TryCancel();
    writer->Finish().IgnoreError();
    ctx.Fail(csv.message());
    PrintLine(ctx.err(),
              "Nothing was committed: segment '$0' keeps its previous members. Fix the file "
              "and run the command again.",
              segment);
    return kExitError;
  }
  if (stream_ok) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return ctx.RpcError(status);
  if (!stream_ok) return ctx.Fail("the server closed the upload stream early");

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (ctx.json()) {
    ctx.out() << ToJson(response);
    return kExitOk;
  }
  const int64_t sent = source.reader->rows_read();
  std::string rate;
  if (seconds > 0 && sent > 0) {
    rate = absl::StrCat(" (", FormatCount(static_cast<int64_t>(sent / seconds)), " rows/s)");
  }
  PrintLine(ctx.out(), "Uploaded $0 rows from $1 to segment '$2' in $3$4.", FormatCount(sent),
            source.name, response.segment().name(), absl::StrFormat("%.1fs", seconds), rate);
  PrintLine(ctx.out(), "Segment '$0' now has $1 members (snapshot $2, server received $3 rows).",
            response.segment().name(), FormatCount(response.segment().member_count()),
            response.segment().snapshot_version(), FormatCount(response.rows_received()));
  return kExitOk;
}

void PrintSegment(CommandContext& ctx, const exportd::v1::Segment& s) {
  if (ctx.json()) {
    ctx.out() << ToJson(s);
    return;
  }
  PrintDetails(ctx.out(), {{"Name", s.name()},
                           {"ID", s.id()},
                           {"Members", FormatCount(s.member_count())},
                           {"Snapshot", absl::StrCat(s.snapshot_version())},
                           {"Upload in progress", s.upload_in_progress() ? "yes" : "no"},
                           {"Created", FormatTime(s.created_at_micros())},
                           {"Updated", FormatTime(s.updated_at_micros())}});
  ctx.out() << "Schema:\n";
  Table table({"  FIELD", "TYPE"});
  for (const auto& field : s.schema()) {
    table.AddRow({"  " + field.name(), cli::FieldTypeName(field.type())});
  }
  table.Print(ctx.out());
}

int Create(CommandContext& ctx, const cli::ParsedArgs& args) {
  exportd::v1::CreateSegmentRequest request;
  request.set_name(args.Get("name"));
  std::optional<CsvSource> source;
  if (args.Has("from-csv")) {
    absl::StatusOr<CsvSource> opened = OpenCsv(ctx, args);
    if (!opened.ok()) return ctx.UsageError(opened.status().message());
    source = *std::move(opened);
    for (const auto& field : source->reader->schema()) *request.add_schema() = field;
  } else {
    if (args.Has("id-field")) return ctx.UsageError("--id-field needs --from-csv FILE");
    auto types = FieldTypes(args);
    if (!types.ok()) return ctx.UsageError(types.status().message());
    for (const auto& [name, type] : *types) {
      exportd::v1::SchemaField* field = request.add_schema();
      field->set_name(name);
      field->set_type(type);
    }
  }

  auto stub = SegmentService::NewStub(ctx.channel());
  exportd::v1::Segment segment;
  grpc::Status status =
      Invoke(ctx, stub.get(), &SegmentService::Stub::CreateSegment, request, &segment);
  if (!status.ok()) return ctx.RpcError(status);
  if (!source.has_value()) {
    if (ctx.json()) {
      ctx.out() << ToJson(segment);
    } else {
      PrintLine(ctx.out(), "Created segment '$0' (id $1, no members yet).", segment.name(),
                segment.id());
    }
    return kExitOk;
  }
  if (!ctx.json()) {
    PrintLine(ctx.out(), "Created segment '$0' (id $1) with fields $2; profile id from '$3'.",
              segment.name(), segment.id(), SchemaSummary(segment.schema()),
              source->reader->id_field());
  }
  int code = Upload(ctx, segment.name(), *source);
  if (code != kExitOk) {
    // Create and upload are one step: a failed upload leaves no segment, so
    // the same command can simply be run again.
    exportd::v1::DeleteSegmentRequest remove;
    remove.set_segment(segment.id());
    exportd::v1::DeleteSegmentResponse removed;
    grpc::Status deleted =
        Invoke(ctx, stub.get(), &SegmentService::Stub::DeleteSegment, remove, &removed);
    if (deleted.ok()) {
      PrintLine(ctx.err(),
                "Removed segment '$0' again because the upload failed; fix the file and run the "
                "same command again.",
                segment.name());
    } else {
      PrintLine(ctx.err(),
                "The segment was created without members, and removing it failed ($0); upload "
                "them with: exportctl segment upload $1 --from-csv FILE",
                deleted.error_message(), ShellQuote(segment.name()));
    }
  }
  return code;
}

int UploadCommand(CommandContext& ctx, const cli::ParsedArgs& args) {
  absl::StatusOr<CsvSource> source = OpenCsv(ctx, args);
  if (!source.ok()) return ctx.UsageError(source.status().message());
  return Upload(ctx, args.positionals()[0], *source);
}

int List(CommandContext& ctx, const cli::ParsedArgs&) {
  auto stub = SegmentService::NewStub(ctx.channel());
  exportd::v1::ListSegmentsResponse response;
  grpc::Status status = Invoke(ctx, stub.get(), &SegmentService::Stub::ListSegments,
                               exportd::v1::ListSegmentsRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(response);
    return kExitOk;
  }
  Table table({"NAME", "ID", "MEMBERS", "SNAPSHOT", "FIELDS", "UPDATED"});
  for (const auto& s : response.segments()) {
    table.AddRow({s.name(), s.id(),
                  FormatCount(s.member_count()) + (s.upload_in_progress() ? " (uploading)" : ""),
                  absl::StrCat(s.snapshot_version()), SchemaSummary(s.schema()),
                  FormatTime(s.updated_at_micros())});
  }
  table.Print(ctx.out());
  return kExitOk;
}

int Get(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = SegmentService::NewStub(ctx.channel());
  exportd::v1::GetSegmentRequest request;
  request.set_segment(args.positionals()[0]);
  exportd::v1::Segment segment;
  grpc::Status status =
      Invoke(ctx, stub.get(), &SegmentService::Stub::GetSegment, request, &segment);
  if (!status.ok()) return ctx.RpcError(status);
  PrintSegment(ctx, segment);
  return kExitOk;
}

int Delete(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = SegmentService::NewStub(ctx.channel());
  exportd::v1::DeleteSegmentRequest request;
  request.set_segment(args.positionals()[0]);
  request.set_delete_audiences(args.IsSet("delete-audiences"));
  exportd::v1::DeleteSegmentResponse response;
  grpc::Status status =
      Invoke(ctx, stub.get(), &SegmentService::Stub::DeleteSegment, request, &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(response);
  } else {
    PrintLine(ctx.out(), "Deleted segment '$0'.", request.segment());
    PrintAudienceDeletion(
        ctx.out(), {response.deleted_audiences().begin(), response.deleted_audiences().end()},
        {response.kept_audiences().begin(), response.kept_audiences().end()},
        request.delete_audiences());
  }
  return kExitOk;
}

int Members(CommandContext& ctx, const cli::ParsedArgs& args) {
  int limit = kDefaultMembersLimit;
  if (args.Has("limit")) {
    absl::StatusOr<int> parsed = cli::ParsePositiveInt("limit", args.Get("limit"));
    if (!parsed.ok()) return ctx.UsageError(parsed.status().message());
    limit = *parsed;
  }
  auto stub = SegmentService::NewStub(ctx.channel());
  exportd::v1::ListMembersRequest request;
  request.set_segment(args.positionals()[0]);
  exportd::v1::ListMembersResponse all;
  while (all.rows_size() < limit) {
    request.set_page_size(std::min(limit - all.rows_size(), 1000));
    exportd::v1::ListMembersResponse page;
    grpc::Status status = Invoke(ctx, stub.get(), &SegmentService::Stub::ListMembers, request, &page);
    if (!status.ok()) return ctx.RpcError(status);
    if (all.schema().empty()) *all.mutable_schema() = page.schema();
    for (auto& row : *page.mutable_rows()) {
      if (all.rows_size() == limit) break;
      *all.add_rows() = std::move(row);
    }
    all.set_next_page_token(page.next_page_token());
    if (page.next_page_token().empty() || page.rows().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (ctx.json()) {
    ctx.out() << ToJson(all);
    return kExitOk;
  }
  std::vector<std::string> headers = {"PROFILE ID"};
  for (const auto& field : all.schema()) headers.push_back(field.name());
  Table table(std::move(headers));
  for (const auto& row : all.rows()) {
    std::vector<std::string> cells = {row.profile_id()};
    for (const auto& value : row.values()) cells.push_back(FormatValue(value));
    table.AddRow(std::move(cells));
  }
  table.Print(ctx.out());
  if (!all.next_page_token().empty()) {
    ctx.out() << "(first " << FormatCount(all.rows_size()) << " members; raise --limit for more)\n";
  }
  return kExitOk;
}

const cli::FlagSpec kFromCsvFlag = {"from-csv", "FILE",
                                    "CSV file whose header row names the profile fields (- for "
                                    "stdin)."};
const cli::FlagSpec kIdFieldFlag = {"id-field", "FIELD",
                                    "The column holding the profile id (default: the first)."};
const cli::FlagSpec kFieldFlag = {
    "field", "NAME:TYPE",
    "Types a column: string (default), int, double, bool or timestamp (ISO 8601).", false, true};

const char kCsvRules[] =
    "CSV rules: RFC 4180 (quoted fields may hold commas, quotes as \"\" and newlines; CRLF or LF). "
    "Every column becomes a profile field; values are not trimmed. An empty unquoted cell in a "
    "non-string column is null. Timestamps are ISO 8601 (2024-05-01T12:00:00Z, "
    "2024-05-01T14:00:00+02:00, 2024-05-01), UTC when no offset is given. The file is streamed; "
    "a bad row stops the upload before anything is committed, and the segment keeps its previous "
    "members.";

}  // namespace

NounSpec SegmentCommands() {
  return {"segment",
          "Segments and their members.",
          {
              {"create",
               {},
               "Create a segment, optionally with members from a CSV file.",
               absl::StrCat("Without --from-csv, --field flags give the schema.\n\n", kCsvRules,
                            "\n\nExample:\n  exportctl segment create --name VIP --from-csv "
                            "vip.csv --id-field Email \\\n    --field Age:int --field "
                            "SignedUp:timestamp"),
               {{"name", "NAME", "The segment's name, unique.", true},
                kFromCsvFlag,
                kIdFieldFlag,
                kFieldFlag},
               Create},
              {"upload",
               {"NAME"},
               "Replace a segment's members with a CSV file's rows.",
               absl::StrCat("The file's header becomes the segment's schema for the new "
                            "snapshot.\n\n",
                            kCsvRules),
               {{"from-csv", "FILE", "CSV file whose header row names the profile fields (- for "
                                     "stdin).",
                 true},
                kIdFieldFlag,
                kFieldFlag},
               UploadCommand},
              {"list", {}, "List segments.", "", {}, List},
              {"get", {"NAME"}, "Show one segment and its schema.", "", {}, Get},
              {"delete",
               {"NAME"},
               "Delete a segment.",
               "A segment an export uses is not deleted. With --delete-audiences, the "
               "destination audiences (Iterable lists) of this segment that exports created go "
               "too, except those another export uses; an audience that existed before stays.",
               {{"delete-audiences", "",
                 "Also delete the segment's audiences that exports created."}},
               Delete},
              {"members",
               {"NAME"},
               "List a segment's members.",
               "",
               {{"limit", "N", "At most N members (default 100)."}},
               Members},
          }};
}

}  // namespace exportd::client
