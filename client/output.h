// How exportctl prints: aligned tables and detail blocks for people, JSON for
// programs (`--output json`), and the one-line progress of a run.
//
// Text for people never carries a control character from outside: tables,
// detail blocks, PrintLine's arguments and the progress line pass every value
// (a name, a member's value, a destination's message) through
// EscapeForTerminal (server/common/terminal_text.h), so a value holding
// a newline and ESC [2J prints as `\n\x1b[2J` instead of clearing the
// screen or starting a line of its own. JSON is printed exact: its own
// escaping already covers control characters.
//
// Usage:
//
//   Table table({"NAME", "MEMBERS"});
//   table.AddRow({"vip", "1200"});
//   table.Print(out);          // NAME  MEMBERS
//                              // vip   1200
//   PrintLine(out, "Created segment '$0' (id $1).", segment.name(), segment.id());
//   out << ToJson(segment);    // {"id": "...", "name": "vip", ...}
#ifndef EXPORTD_CLIENT_OUTPUT_H_
#define EXPORTD_CLIENT_OUTPUT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/substitute.h"
#include "exportd/v1/common.pb.h"
#include "exportd/v1/run.pb.h"
#include "google/protobuf/message.h"
#include "server/common/terminal_text.h"

namespace exportd::client {

enum class OutputFormat { kTable, kJson };

// Columns a UTF-8 text takes on a terminal: East Asian wide characters (CJK,
// Hangul, kana, full-width forms) and emoji count 2, combining marks 0.
size_t DisplayWidth(absl::string_view text);
// `text` cut to at most `max_width` columns, ending in "…" when it was cut.
std::string TruncateToWidth(absl::string_view text, size_t max_width);

// Columns aligned on the widest cell (in terminal columns, after escaping),
// separated by two spaces, no trailing spaces. Cells are escaped, and cut to
// kMaxCellWidth columns with "…" (--output json keeps every value whole).
class Table {
 public:
  static constexpr size_t kMaxCellWidth = 60;
  explicit Table(std::vector<std::string> headers);
  // Missing cells print empty; extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  size_t size() const { return rows_.size(); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "Key:   value" lines, keys aligned; for the `get` commands. Values are
// escaped. A pair whose value is empty is left out: a field the caller may
// not see (a contributor looking at a connection) or that has no value yet
// prints no line rather than an empty one. Pass "-" for "none" when that
// is worth saying.
void PrintDetails(std::ostream& out,
                  const std::vector<std::pair<std::string, std::string>>& details);

// Hints that print a command to run quote names with exportd::ShellQuote
// (server/common/terminal_text.h):
//   PrintLine(out, "Show it with: exportctl segment get $0", ShellQuote(name));
//   // Show it with: exportctl segment get 'VIP Customers'

// Writes one line: `format` (exportctl's own text) with $0..$9 replaced by
// `args`, each escaped, then '\n'. Arguments are anything absl::StrCat takes.
// Write "$$" for a literal '$'.
template <typename... Args>
void PrintLine(std::ostream& out, absl::string_view format, const Args&... args) {
  out << absl::Substitute(format, EscapeForTerminal(absl::AlphaNum(args).Piece())...) << '\n';
}

// The message as pretty-printed JSON with the proto field names (snake_case)
// and every field present, zero values included, followed by a newline.
std::string ToJson(const google::protobuf::Message& message);
// The same on one line (for streams of updates).
std::string ToCompactJson(const google::protobuf::Message& message);

// Microseconds since the epoch as "2024-05-01 12:00:00 UTC"; "-" for 0.
std::string FormatTime(int64_t micros);
// The same, but "" for 0: a detail line (PrintDetails) that is left out.
std::string FormatTimeIfSet(int64_t micros);
// Seconds as "45s", "3m05s", "2h01m"; "-" when negative (unknown).
std::string FormatDuration(double seconds);
// 1234567 → "1,234,567".
std::string FormatCount(int64_t count);
// An enum value without its type prefix: RUN_STATE_SUCCEEDED → "SUCCEEDED".
std::string EnumLabel(const google::protobuf::EnumDescriptor* descriptor, int value);
std::string RunStateLabel(exportd::v1::RunState state);
// A typed value for a table cell; null prints empty.
std::string FormatValue(const exportd::v1::Value& value);

// What a delete with --delete-audiences did at the destination: the audiences
// deleted, each one kept and why, or that there were none (`requested`: the
// flag was given).
void PrintAudienceDeletion(std::ostream& out, const std::vector<std::string>& deleted,
                           const std::vector<std::string>& kept, bool requested);

// Progress counts summed over a run's segments.
struct RunTotals {
  int64_t members = 0;
  int64_t planned = 0;  // to add + to update + to remove
  int64_t done = 0;     // added + updated + removed + rejected
  int64_t added = 0, updated = 0, removed = 0, rejected = 0, unchanged = 0;
  // Members (and leavers) the run has dealt with, of all it will deal with:
  // unchanged ones count once the diff has seen them, the others once sent.
  int64_t handled = 0, work = 0;
};
RunTotals SumRun(const exportd::v1::Run& run);

// One line describing a run's progress, e.g.
// "RUNNING  [#########...........]  45% 45,000/100,000 sent  12,000 rec/s  ETA 5s".
// The percentage is handled/work; the counts are the records sent and to
// send so far (the diff may still find more). `width` is the bar's width in
// characters (0: no bar). With `shown` (the fraction drawn last, 0 at first)
// the percentage never goes back: leavers found at the end of the diff add
// work. The run's message is escaped.
std::string RenderProgressLine(const exportd::v1::Run& run, int bar_width,
                               double* shown = nullptr);

}  // namespace exportd::client

#endif  // EXPORTD_CLIENT_OUTPUT_H_
