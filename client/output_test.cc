#include "client/output.h"

#include <cstdio>
#include <sstream>

#include "exportd/v1/connection.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace exportd::client {
namespace {

using ::testing::HasSubstr;

TEST(TableTest, AlignsColumnsWithoutTrailingSpaces) {
  Table table({"NAME", "MEMBERS", "NOTE"});
  table.AddRow({"vip", "1,200", ""});
  table.AddRow({"everyone-in-europe", "3"});  // a missing cell prints empty
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(),
            "NAME                MEMBERS  NOTE\n"
            "vip                 1,200\n"
            "everyone-in-europe  3\n");
}

TEST(TableTest, CountsUtf8Characters) {
  Table table({"A", "B"});
  table.AddRow({"Zoë", "x"});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(), "A    B\nZoë  x\n");
}

// A value from the store or a destination cannot clear the screen or add a
// row; columns align on the escaped text.
TEST(TableTest, EscapesControlCharactersInCells) {
  Table table({"NAME", "NOTE"});
  table.AddRow({"vip\n\x1b[2J", "x"});
  table.AddRow({"b", "\u202eevil"});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(),
            "NAME          NOTE\n"
            "vip\\n\\x1b[2J  x\n"
            "b             \\u202eevil\n");
}

TEST(DetailsTest, EscapesValues) {
  std::ostringstream out;
  PrintDetails(out, {{"Name", "vip\nMembers:  999"}, {"Members", "3"}});
  EXPECT_EQ(out.str(), "Name:     vip\\nMembers:  999\nMembers:  3\n");
}

TEST(PrintLineTest, EscapesTheArgumentsNotTheFormat) {
  std::ostringstream out;
  PrintLine(out, "Created segment '$0' (id $1, $2 rows).", "vip\n\x1b[2J", "seg-1", 42);
  PrintLine(out, "costs $$5");
  EXPECT_EQ(out.str(),
            "Created segment 'vip\\n\\x1b[2J' (id seg-1, 42 rows).\n"
            "costs $5\n");
}

TEST(DetailsTest, AlignsKeys) {
  std::ostringstream out;
  PrintDetails(out, {{"Name", "vip"}, {"Members", "3"}});
  EXPECT_EQ(out.str(), "Name:     vip\nMembers:  3\n");
}

// What /bin/sh makes of `word` as one argument of printf.
std::string ShellSays(const std::string& word) {
  const std::string command = "printf '%s' " + word;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "<popen failed>";
  std::string out;
  char buffer[256];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  ::pclose(pipe);
  return out;
}

// A field with no value (one the caller may not see) prints no line; the
// keys align on the lines printed.
TEST(DetailsTest, LeavesOutEmptyValues) {
  std::ostringstream out;
  PrintDetails(out, {{"Name", "vip"}, {"Created by", ""}, {"Type", "iterable"}, {"Secrets", "-"}});
  EXPECT_EQ(out.str(), "Name:     vip\nType:     iterable\nSecrets:  -\n");
}

TEST(ShellQuoteTest, QuotesOnlyWhatTheShellWouldChange) {
  EXPECT_EQ(ShellQuote("vip-2024_a.b@c:d,e/f+g=h%"), "vip-2024_a.b@c:d,e/f+g=h%");
  EXPECT_EQ(ShellQuote("VIP Customers"), "'VIP Customers'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("$HOME"), "'$HOME'");
  EXPECT_EQ(ShellQuote("a\"b`c`\\d"), "'a\"b`c`\\d'");
  EXPECT_EQ(ShellQuote("*"), "'*'");
  EXPECT_EQ(ShellQuote("~root"), "'~root'");
  EXPECT_EQ(ShellQuote("Kunden München"), "'Kunden München'");
  EXPECT_EQ(ShellQuote(""), "''");
  // The shell reads each back as it was.
  for (const std::string word :
       {"VIP Customers", "it's", "$HOME", "a\"b`c`\\d", "*", "~root", "'", "a  b", "x;y|z&"}) {
    EXPECT_EQ(ShellSays(ShellQuote(word)), word);
  }
}

TEST(JsonTest, ProtoFieldNamesAndZeroValues) {
  exportd::v1::Connection connection;
  connection.set_display_name("Iterable prod");
  connection.mutable_settings()->insert({"region", "us"});
  nlohmann::json json = nlohmann::json::parse(ToJson(connection));
  EXPECT_EQ(json["display_name"], "Iterable prod");
  EXPECT_EQ(json["settings"]["region"], "us");
  EXPECT_EQ(json["shared_with_contributors"], false);  // zero values are printed
  EXPECT_TRUE(json["secret_names"].is_array());
  std::string compact = ToCompactJson(connection);
  EXPECT_EQ(compact.find('\n'), compact.size() - 1);
}

// JSON stays exact: its own escaping covers control characters.
TEST(JsonTest, ControlCharactersRoundTrip) {
  exportd::v1::Value value;
  value.set_string_value("a\n\x1b[2Jb\u202e");
  const std::string json = ToJson(value);
  EXPECT_EQ(json.find('\x1b'), std::string::npos) << json;
  EXPECT_EQ(nlohmann::json::parse(json)["string_value"], "a\n\x1b[2Jb\u202e");
}

TEST(FormatTest, CountsDurationsTimesAndEnums) {
  EXPECT_EQ(FormatCount(0), "0");
  EXPECT_EQ(FormatCount(999), "999");
  EXPECT_EQ(FormatCount(1000), "1,000");
  EXPECT_EQ(FormatCount(1234567), "1,234,567");
  EXPECT_EQ(FormatCount(-45000), "-45,000");
  EXPECT_EQ(FormatDuration(-1), "-");
  EXPECT_EQ(FormatDuration(45), "45s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(7260), "2h01m");
  EXPECT_EQ(FormatTime(0), "-");
  EXPECT_EQ(FormatTime(1714564800LL * 1000000), "2024-05-01 12:00:00 UTC");
  EXPECT_EQ(RunStateLabel(exportd::v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS),
            "SUCCEEDED_WITH_REJECTIONS");
  EXPECT_EQ(EnumLabel(exportd::v1::Role_descriptor(), exportd::v1::ROLE_ADMIN), "ADMIN");
}

TEST(FormatTest, Values) {
  exportd::v1::Value value;
  EXPECT_EQ(FormatValue(value), "");
  value.set_int_value(-3);
  EXPECT_EQ(FormatValue(value), "-3");
  value.set_bool_value(true);
  EXPECT_EQ(FormatValue(value), "true");
  value.set_timestamp_micros(1714564800LL * 1000000 + 250000);
  EXPECT_EQ(FormatValue(value), "2024-05-01T12:00:00.25Z");
}

exportd::v1::Run SampleRun() {
  exportd::v1::Run run;
  run.set_state(exportd::v1::RUN_STATE_RUNNING);
  run.set_rate(12000);
  run.set_eta_seconds(5);
  auto* a = run.add_segments();
  a->set_total_members(80000);
  a->set_to_add(60000);
  a->set_added(30000);
  auto* b = run.add_segments();
  b->set_to_update(30000);
  b->set_to_remove(10000);
  b->set_updated(15000);
  return run;
}

TEST(ProgressTest, LineWithBarRateAndEta) {
  // Handled 45,000 of 80,000 + (30,000 + 10,000) members and leavers.
  EXPECT_EQ(RenderProgressLine(SampleRun(), 10),
            "RUNNING   [###.......]  37% 45,000/100,000 sent  12,000 rec/s  ETA 5s");
  EXPECT_EQ(RenderProgressLine(SampleRun(), 0),
            "RUNNING    37% 45,000/100,000 sent  12,000 rec/s  ETA 5s");
}

TEST(TableTest, LongCellsAreCutWithAnEllipsis) {
  Table table({"ID", "MESSAGE"});
  table.AddRow({"1", std::string(300, 'x')});
  std::ostringstream out;
  table.Print(out);
  const std::string expected_cell = std::string(Table::kMaxCellWidth - 1, 'x') + "\u2026";
  EXPECT_EQ(out.str(), "ID  MESSAGE\n1   " + expected_cell + "\n");
}

TEST(TableTest, WideCharactersCountTwoColumns) {
  EXPECT_EQ(DisplayWidth("VIP"), 3u);
  EXPECT_EQ(DisplayWidth("\u9867\u5ba2"), 4u);     // 顧客
  EXPECT_EQ(DisplayWidth("caf\u00e9"), 4u);         // café
  EXPECT_EQ(DisplayWidth("e\u0301"), 1u);           // e + combining acute
  Table table({"NAME", "MEMBERS"});
  table.AddRow({"\u9867\u5ba2", "1"});
  table.AddRow({"VIP", "2"});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(), "NAME  MEMBERS\n\u9867\u5ba2  1\nVIP   2\n");
  // Cutting never splits a character or overshoots the width.
  EXPECT_EQ(TruncateToWidth("\u9867\u5ba2\u9867", 4), "\u9867\u2026");
  EXPECT_EQ(TruncateToWidth("abc", 3), "abc");
}

// "SUCCEEDED 33% 0/4 sent ETA 0s" read as if nothing had been sent: a dry run
// reports what it would send, at 100% once ended, with no rate or ETA.
TEST(ProgressTest, DryRunSaysWhatItWouldSendAtTheEnd) {
  exportd::v1::Run run;
  run.set_dry_run(true);
  run.set_state(exportd::v1::RUN_STATE_SUCCEEDED);
  run.set_rate(100);
  run.set_eta_seconds(0);
  auto* s = run.add_segments();
  s->set_total_members(12);
  s->set_to_add(3);
  s->set_to_update(1);
  s->set_unchanged(0);
  EXPECT_EQ(RenderProgressLine(run, 0), "SUCCEEDED 100% would send 4 of 12 members");
  run.set_state(exportd::v1::RUN_STATE_RUNNING);
  EXPECT_EQ(RenderProgressLine(run, 0), "RUNNING     0% would send 4 of 12 members");
}

// While the diff runs, the records to send grow with what it finds; the
// percentage counts members, so it only moves forward.
TEST(ProgressTest, PercentageNeverGoesBackWhileTheDiffFindsWork) {
  exportd::v1::Run run;
  run.set_state(exportd::v1::RUN_STATE_RUNNING);
  run.set_eta_seconds(-1);
  auto* p = run.add_segments();
  p->set_total_members(1000);
  double shown = 0;
  int last = -1;
  // The diff and the sender advance; at the end 100 leavers appear.
  for (int step = 0; step <= 10; ++step) {
    p->set_unchanged(step * 50);
    p->set_to_add(step * 50);
    p->set_added(std::max(0, step * 50 - 100));
    if (step == 10) {
      p->set_added(500);
      p->set_to_remove(100);
    }
    std::string line = RenderProgressLine(run, 0, &shown);
    int percent = std::stoi(line.substr(9, 4));
    EXPECT_GE(percent, last) << line;
    last = percent;
  }
  p->set_removed(100);
  p->set_done(true);
  EXPECT_EQ(RenderProgressLine(run, 0, &shown), "RUNNING   100% 600/600 sent");
  // Without the memory of what was shown, the leavers make it 90%.
  p->set_removed(0);
  EXPECT_EQ(RenderProgressLine(run, 0), "RUNNING    90% 500/600 sent");
}

TEST(ProgressTest, RetryMessageIsEscaped) {
  exportd::v1::Run run;
  run.set_state(exportd::v1::RUN_STATE_FAILED_RETRYING);
  run.set_eta_seconds(-1);
  run.set_message("down\r\x1b[2K");
  run.add_segments()->set_total_members(10);
  EXPECT_EQ(RenderProgressLine(run, 0), "FAILED_RETRYING 10 members  (down\\r\\x1b[2K)");
}

TEST(ProgressTest, BeforeTheDiffShowsMembers) {
  exportd::v1::Run run;
  run.set_state(exportd::v1::RUN_STATE_QUEUED);
  run.set_eta_seconds(-1);
  run.add_segments()->set_total_members(1500);
  EXPECT_EQ(RenderProgressLine(run, 0), "QUEUED    1,500 members");
}

TEST(ProgressTest, SumsSegments) {
  RunTotals totals = SumRun(SampleRun());
  EXPECT_EQ(totals.planned, 100000);
  EXPECT_EQ(totals.done, 45000);
  EXPECT_EQ(totals.members, 80000);
}

}  // namespace
}  // namespace exportd::client
