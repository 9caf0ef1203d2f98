#include "client/output.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "server/common/run_states.h"

namespace exportd::client {
namespace {

// The code point starting at text[*i]; advances *i past it. A malformed byte
// is one code point of its own.
char32_t NextCodePoint(absl::string_view text, size_t* i) {
  const unsigned char lead = static_cast<unsigned char>(text[*i]);
  const int length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3
                                  : (lead >> 3) == 0x1E ? 4 : 1;
  if (length == 1 || *i + length > text.size()) {
    ++*i;
    return lead;
  }
  char32_t cp = lead & (0x7F >> length);
  for (int k = 1; k < length; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[*i + k]) & 0x3F);
  *i += length;
  return cp;
}

// Columns a code point takes on a terminal: 2 for East Asian wide and
// full-width characters (CJK, Hangul, kana, full-width forms, emoji), 0 for
// combining marks, 1 otherwise.
size_t CodePointWidth(char32_t cp) {
  if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F)) return 0;
  if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0x303E) ||
      (cp >= 0x3041 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
      (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFE30 && cp <= 0xFE4F) ||
      (cp >= 0xFF00 && cp <= 0xFF60) || (cp >= 0xFFE0 && cp <= 0xFFE6) ||
      (cp >= 0x1F300 && cp <= 0x1F64F) || (cp >= 0x1F900 && cp <= 0x1F9FF) ||
      (cp >= 0x20000 && cp <= 0x3FFFD)) {
    return 2;
  }
  return 1;
}

}  // namespace

size_t DisplayWidth(absl::string_view text) {
  size_t width = 0;
  for (size_t i = 0; i < text.size();) width += CodePointWidth(NextCodePoint(text, &i));
  return width;
}

std::string TruncateToWidth(absl::string_view text, size_t max_width) {
  if (DisplayWidth(text) <= max_width) return std::string(text);
  if (max_width == 0) return "";
  std::string out;
  size_t width = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const size_t w = CodePointWidth(NextCodePoint(text, &i));
    if (width + w > max_width - 1) break;  // room for the ellipsis
    absl::StrAppend(&out, text.substr(start, i - start));
    width += w;
  }
  return out + "\u2026";
}

namespace {

std::string JsonOf(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    // Only possible for malformed Any fields, which the API does not use.
    return absl::StrCat("{\"error\": \"cannot print JSON: ", status.ToString(), "\"}\n");
  }
  if (json.empty() || json.back() != '\n') json.push_back('\n');
  return json;
}

}  // namespace

// Cells are kept escaped, so that the columns align on what is printed.
Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {
  for (std::string& header : headers_) header = EscapeForTerminal(header);
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  for (std::string& cell : cells) cell = TruncateToWidth(EscapeForTerminal(cell), kMaxCellWidth);
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) widths[i] = DisplayWidth(headers_[i]);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - DisplayWidth(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  };
  print_row(headers_);
  for (const auto& row : rows_) print_row(row);
}

void PrintDetails(std::ostream& out,
                  const std::vector<std::pair<std::string, std::string>>& details) {
  size_t width = 0;
  for (const auto& [key, value] : details) {
    if (!value.empty()) width = std::max(width, DisplayWidth(key));
  }
  for (const auto& [key, value] : details) {
    if (value.empty()) continue;
    out << key << ':' << std::string(width - DisplayWidth(key) + 2, ' ') << EscapeForTerminal(value)
        << '\n';
  }
}

std::string ToJson(const google::protobuf::Message& message) { return JsonOf(message, true); }

std::string ToCompactJson(const google::protobuf::Message& message) {
  return JsonOf(message, false);
}

std::string FormatTime(int64_t micros) {
  if (micros == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMicros(micros),
                          absl::UTCTimeZone());
}

std::string FormatTimeIfSet(int64_t micros) { return micros == 0 ? "" : FormatTime(micros); }

std::string FormatDuration(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "-";
  int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string FormatCount(int64_t count) {
  std::string digits = absl::StrCat(count < 0 ? -count : count);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return count < 0 ? "-" + out : out;
}

std::string EnumLabel(const google::protobuf::EnumDescriptor* descriptor, int value) {
  const google::protobuf::EnumValueDescriptor* v = descriptor->FindValueByNumber(value);
  if (v == nullptr) return absl::StrCat(value);
  // The prefix is the enum's name in UPPER_SNAKE_CASE plus '_' (RunState → RUN_STATE_).
  std::string prefix;
  for (char c : descriptor->name()) {
    if (std::isupper(static_cast<unsigned char>(c)) && !prefix.empty()) prefix.push_back('_');
    prefix.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  prefix.push_back('_');
  std::string name = v->name();
  if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  return name;
}

std::string RunStateLabel(exportd::v1::RunState state) {
  return EnumLabel(exportd::v1::RunState_descriptor(), state);
}

std::string FormatValue(const exportd::v1::Value& value) {
  using exportd::v1::Value;
  switch (value.kind_case()) {
    case Value::kStringValue:
      return value.string_value();
    case Value::kIntValue:
      return absl::StrCat(value.int_value());
    case Value::kDoubleValue:
      return absl::StrCat(value.double_value());
    case Value::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case Value::kTimestampMicros:
      return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMicros(value.timestamp_micros()),
                              absl::UTCTimeZone());
    case Value::KIND_NOT_SET:
      break;
  }
  return "";
}

RunTotals SumRun(const exportd::v1::Run& run) {
  RunTotals totals;
  for (const auto& segment : run.segments()) {
    totals.members += segment.total_members();
    totals.planned += segment.to_add() + segment.to_update() + segment.to_remove();
    totals.done += segment.added() + segment.updated() + segment.removed() + segment.rejected();
    totals.added += segment.added();
    totals.updated += segment.updated();
    totals.removed += segment.removed();
    totals.rejected += segment.rejected();
    totals.unchanged += segment.unchanged();
    totals.handled += segment.unchanged() + segment.added() + segment.updated() +
                      segment.removed() + segment.rejected() + segment.retryable();
    totals.work += std::max(segment.total_members(),
                            segment.to_add() + segment.to_update() + segment.unchanged()) +
                   segment.to_remove();
  }
  return totals;
}

std::string RenderProgressLine(const exportd::v1::Run& run, int bar_width, double* shown) {
  const RunTotals totals = SumRun(run);
  std::string line = absl::StrFormat("%-9s", RunStateLabel(run.state()));
  double fraction =
      totals.work > 0 ? std::min(1.0, static_cast<double>(totals.handled) / totals.work) : 0.0;
  if (shown != nullptr) {
    fraction = std::max(fraction, *shown);
    *shown = fraction;
  }
  if (bar_width > 0) {
    int filled = static_cast<int>(fraction * bar_width);
    absl::StrAppend(&line, " [", std::string(filled, '#'), std::string(bar_width - filled, '.'),
                    "]");
  }
  if (run.dry_run()) {
    // A dry run sends nothing: it says what it would send, and once it has
    // ended that is all of it, with no rate or ETA.
    if (exportd::IsFinal(run.state())) fraction = 1.0;
    absl::StrAppend(&line, absl::StrFormat(" %3d%%", static_cast<int>(fraction * 100)),
                    " would send ", FormatCount(totals.planned), " of ",
                    FormatCount(totals.members), " members");
    return line;
  }
  if (totals.planned > 0) {
    absl::StrAppend(&line, absl::StrFormat(" %3d%%", static_cast<int>(fraction * 100)), " ",
                    FormatCount(totals.done), "/", FormatCount(totals.planned), " sent");
  } else {
    absl::StrAppend(&line, " ", FormatCount(totals.members), " members");
  }
  if (run.rate() > 0) absl::StrAppend(&line, "  ", FormatCount(std::llround(run.rate())), " rec/s");
  if (run.eta_seconds() >= 0 && totals.planned > 0 && totals.done < totals.planned) {
    absl::StrAppend(&line, "  ETA ", FormatDuration(run.eta_seconds()));
  }
  if (totals.rejected > 0) absl::StrAppend(&line, "  ", FormatCount(totals.rejected), " rejected");
  if (!run.message().empty() && run.state() == exportd::v1::RUN_STATE_FAILED_RETRYING) {
    absl::StrAppend(&line, "  (", EscapeForTerminal(run.message()), ")");
  }
  return line;
}

void PrintAudienceDeletion(std::ostream& out, const std::vector<std::string>& deleted,
                           const std::vector<std::string>& kept, bool requested) {
  if (!deleted.empty()) PrintLine(out, "Deleted audiences: $0", absl::StrJoin(deleted, ", "));
  for (const std::string& one : kept) PrintLine(out, "Kept audience $0", one);
  if (requested && deleted.empty() && kept.empty()) PrintLine(out, "It had created no audiences.");
}

}  // namespace exportd::client
