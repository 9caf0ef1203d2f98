// exportctl destination list|get
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "exportd/v1/destination.grpc.pb.h"

namespace exportd::client {
namespace {

using exportd::v1::DestinationService;

std::string SettingsSummary(const exportd::v1::Destination& d) {
  std::vector<std::string> parts;
  for (const auto& s : d.settings()) {
    std::string part = s.name();
    if (s.secret()) absl::StrAppend(&part, " (secret)");
    if (s.required()) absl::StrAppend(&part, "*");
    parts.push_back(std::move(part));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string MappingSummary(const exportd::v1::Destination& d) {
  std::vector<std::string> parts;
  for (const auto& m : d.mapping_fields()) parts.push_back(m.name() + (m.required() ? "*" : ""));
  std::string summary = parts.empty() ? "-" : absl::StrJoin(parts, ", ");
  if (d.allows_extra_fields()) absl::StrAppend(&summary, " (+ any)");
  return summary;
}

// `text` as lines of at most `width` columns (a longer word gets a line of
// its own), each word escaped.
std::vector<std::string> Wrap(absl::string_view text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    const std::string escaped = EscapeForTerminal(word);
    if (!line.empty() && DisplayWidth(line) + 1 + DisplayWidth(escaped) > width) {
      lines.push_back(std::move(line));
      line.clear();
    }
    if (!line.empty()) line += ' ';
    line += escaped;
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

void PrintDestination(CommandContext& ctx, const exportd::v1::Destination& d) {
  PrintDetails(ctx.out(),
               {{"Name", d.name()},
                {"Display name", d.display_name()},
                {"Version", d.version()},
                {"Description", d.description()},
                {"Removes members", d.supports_removal() ? "yes" : "no"},
                {"Extra fields", d.allows_extra_fields() ? "allowed" : "not allowed"},
                {"Reserved fields",
                 d.reserved_fields().empty() ? "-" : absl::StrJoin(d.reserved_fields(), ", ")},
                {"Speed (at most)",
                 absl::StrCat(d.speed().max_records_per_batch(), " records/batch, ",
                              d.speed().max_parallel_batches(), " parallel, ",
                              d.speed().requests_per_second() > 0
                                  ? absl::StrCat(d.speed().requests_per_second(), " req/s, ")
                                  : std::string(),
                              d.speed().records_per_second() > 0
                                  ? absl::StrCat(d.speed().records_per_second(), " rec/s")
                                  : std::string("no rate limit"))},
                {"Library", d.library_path()}});
  ctx.out() << "Settings:\n";
  Table settings({"  NAME", "TYPE", "REQUIRED", "SECRET", "DEFAULT", "DESCRIPTION"});
  for (const auto& s : d.settings()) {
    std::string type = EnumLabel(exportd::v1::SettingSpec::Type_descriptor(), s.type());
    if (!s.allowed_values().empty()) {
      absl::StrAppend(&type, " (", absl::StrJoin(s.allowed_values(), "|"), ")");
    }
    settings.AddRow({"  " + s.name(), type, s.required() ? "yes" : "no", s.secret() ? "yes" : "no",
                     s.default_value().empty() ? "-" : s.default_value(), s.description()});
  }
  settings.Print(ctx.out());
  ctx.out() << "Mapping fields:\n";
  Table mappings({"  NAME", "REQUIRED", "DESCRIPTION"});
  for (const auto& m : d.mapping_fields()) {
    mappings.AddRow({"  " + m.name(), m.required() ? "yes" : "no", m.description()});
  }
  mappings.Print(ctx.out());
  PrintPrivacyStatement(ctx.out(), d);
}

int List(CommandContext& ctx, const cli::ParsedArgs&) {
  auto stub = DestinationService::NewStub(ctx.channel());
  exportd::v1::ListDestinationsResponse response;
  grpc::Status status = Invoke(ctx, stub.get(), &DestinationService::Stub::ListDestinations,
                               exportd::v1::ListDestinationsRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(response);
    return kExitOk;
  }
  Table table({"NAME", "VERSION", "SETTINGS", "MAPPING FIELDS", "REMOVAL", "PRIVACY STATEMENT"});
  for (const auto& d : response.destinations()) {
    table.AddRow(
        {d.name(), d.version(), SettingsSummary(d), MappingSummary(d),
         d.supports_removal() ? "yes" : "no",
         d.privacy_statement_version().empty() ? "-" : "version " + d.privacy_statement_version()});
  }
  table.Print(ctx.out());
  ctx.out() << "(* required; plugin ABI " << response.host_abi_version()
            << "; 'exportctl destination get NAME' shows the privacy statement)\n";
  if (!response.refused().empty()) {
    ctx.out() << "\nRefused plugin libraries:\n";
    Table refused({"  LIBRARY", "REASON"});
    for (const auto& r : response.refused()) refused.AddRow({"  " + r.library_path(), r.reason()});
    refused.Print(ctx.out());
  }
  return kExitOk;
}

int Get(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = DestinationService::NewStub(ctx.channel());
  exportd::v1::GetDestinationRequest request;
  request.set_name(args.positionals()[0]);
  exportd::v1::Destination destination;
  grpc::Status status =
      Invoke(ctx, stub.get(), &DestinationService::Stub::GetDestination, request, &destination);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(destination);
  } else {
    PrintDestination(ctx, destination);
  }
  return kExitOk;
}

}  // namespace

void PrintPrivacyStatement(std::ostream& out, const exportd::v1::Destination& d) {
  PrintLine(out, "Data privacy and compliance statement of $0 (version $1):",
            d.display_name().empty() ? d.name() : d.display_name(),
            d.privacy_statement_version().empty() ? "-" : d.privacy_statement_version());
  if (d.privacy_statement().empty()) {
    out << "  (none)\n";
    return;
  }
  // Paragraphs are separated by blank lines; a single line break is kept.
  bool first = true;
  for (absl::string_view paragraph : absl::StrSplit(d.privacy_statement(), "\n\n")) {
    if (absl::StripAsciiWhitespace(paragraph).empty()) continue;
    if (!first) out << "\n";
    first = false;
    for (absl::string_view line : absl::StrSplit(paragraph, '\n')) {
      for (const std::string& wrapped : Wrap(line, 76)) out << "  " << wrapped << "\n";
    }
  }
}

NounSpec DestinationCommands() {
  return {"destination",
          "The destination plugins the server loaded (and refused).",
          {
              {"list", {}, "List loaded destinations and refused plugin files.", "", {}, List},
              {"get",
               {"NAME"},
               "Show a destination's manifest and privacy statement.",
               "Shows the settings, the mapping fields and, in full, the data privacy and "
               "compliance statement that 'exportctl connection create --accept-privacy-terms' "
               "agrees to.",
               {},
               Get},
          }};
}

}  // namespace exportd::client
