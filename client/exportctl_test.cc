// Drives exportctl in-process (RunExportctl) against an in-process fake of
// the exportd services.
#include "client/exportctl.h"

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/str_split.h"
#include "client/testing/fake_exportd.h"
#include "exportd/sdk/destination.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/auth/auth.h"

namespace exportd::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct Result {
  int code;
  std::string out;
  std::string err;
};

class ExportctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_["EXPORTD_TOKEN"] = "t0k";
    dir_ = std::filesystem::temp_directory_path() /
           ("exportctl-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result Run(std::vector<std::string> args, const std::string& stdin_text = "") {
    args.insert(args.begin(), {"exportctl", "--server", server_.address()});
    std::ostringstream out, err;
    std::istringstream in(stdin_text);
    int code = RunExportctl(args, out, err, in, [this](const std::string& name) {
      auto it = env_.find(name);
      return it == env_.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    return {code, out.str(), err.str()};
  }

  std::string WriteFile(const std::string& name, const std::string& contents) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

  fakes::FakeExportd server_;
  std::map<std::string, std::string> env_;
  std::filesystem::path dir_;
};

TEST_F(ExportctlTest, HelpAtEveryLevel) {
  Result global = Run({"--help"});
  EXPECT_EQ(global.code, 0);
  EXPECT_THAT(global.out, HasSubstr("Usage: exportctl [global flags] <noun> <verb>"));
  Result noun = Run({"export", "--help"});
  EXPECT_EQ(noun.code, 0);
  EXPECT_THAT(noun.out, HasSubstr("duplicate NAME"));
  Result verb = Run({"connection", "create", "--help"});
  EXPECT_EQ(verb.code, 0);
  EXPECT_THAT(verb.out, HasSubstr("--accept-privacy-terms"));
  EXPECT_THAT(verb.out, HasSubstr("env:VAR"));
  Result help_word = Run({"help", "segment", "upload"});
  EXPECT_EQ(help_word.code, 0);
  EXPECT_THAT(help_word.out, StartsWith("Usage: exportctl [global flags] segment upload NAME"));
}

TEST_F(ExportctlTest, VersionPrintsTheAbi) {
  Result version = Run({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_THAT(version.out,
              HasSubstr("(plugin ABI " + std::to_string(exportd::sdk::kAbiVersion) + ")"));
  Result json = Run({"-o", "json", "--version"});
  EXPECT_EQ(nlohmann::json::parse(json.out)["plugin_abi_version"], exportd::sdk::kAbiVersion);
}

TEST_F(ExportctlTest, UsageErrorsExitTwoWithAHint) {
  Result missing = Run({"export", "create", "--name", "x"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_EQ(missing.err,
            "error: missing required flag --connection CONNECTION\n"
            "hint: see 'exportctl export create --help'\n");
  Result unknown = Run({"segmnt", "list"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown command 'segmnt' (did you mean 'segment'?)"));
  Result bad_map = Run({"export", "create", "--name", "x", "--connection", "c", "--segment", "s",
                        "--map", "email"});
  EXPECT_EQ(bad_map.code, 2);
  EXPECT_THAT(bad_map.err, HasSubstr("--map takes DEST=FIELD"));
  Result no_consent = Run({"connection", "create", "--name", "n", "--type", "iterable"});
  EXPECT_EQ(no_consent.code, 2);
  EXPECT_THAT(no_consent.err, HasSubstr("pass --accept-privacy-terms"));
  Result unset_env = Run({"connection", "create", "--name", "n", "--type", "iterable",
                          "--secret", "api_key=env:NOT_SET", "--accept-privacy-terms"});
  EXPECT_EQ(unset_env.code, 2);
  EXPECT_THAT(unset_env.err, HasSubstr("environment variable NOT_SET is not set"));
  Result output = Run({"segment", "list", "--output", "yaml"});
  EXPECT_EQ(output.code, 2);
  EXPECT_THAT(output.err, HasSubstr("--output takes table or json, got 'yaml'"));
}

// Without --accept-privacy-terms, `connection create` shows the destination's
// statement and creates nothing; with it, it sends the version it knows and
// asks the server to test the connection first (unless --no-test).
TEST_F(ExportctlTest, ConnectionCreateShowsTheStatementAndSendsItsVersion) {
  Result shown = Run({"connection", "create", "--name", "n", "--type", "iterable"});
  EXPECT_EQ(shown.code, 2);
  EXPECT_EQ(shown.out,
            "Data privacy and compliance statement of Iterable (version 2026-12-01):\n"
            "  Profile data goes to the fake Iterable.\n"
            "\n"
            "  It stays in this test.\n");
  EXPECT_THAT(shown.err, HasSubstr("connection 'n' was not created: creating it needs your "
                                   "agreement to the data privacy and compliance statement of "
                                   "destination 'iterable' (version 2026-12-01, above); pass "
                                   "--accept-privacy-terms to agree to it"));
  EXPECT_EQ(server_.last_create_connection().display_name(), "");

  Result unknown = Run({"connection", "create", "--name", "n", "--type", "nope"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("NOT_FOUND: no destination named 'nope'"));

  Result created =
      Run({"connection", "create", "--name", "n", "--type", "iterable", "--accept-privacy-terms"});
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("Tested: the destination accepted it."));
  EXPECT_THAT(created.out,
              HasSubstr("You agreed to the data privacy and compliance statement version "
                        "2026-12-01."));
  exportd::v1::CreateConnectionRequest sent = server_.last_create_connection();
  EXPECT_TRUE(sent.accept_privacy_terms());
  EXPECT_EQ(sent.privacy_statement_version(), "2026-12-01");
  EXPECT_TRUE(sent.test_before_save());

  Result untested =
      Run({"connection", "create", "--name", "m", "--type", "iterable", "--accept-privacy-terms",
           "--no-test", "--privacy-statement-version", "2025-01-01"});
  ASSERT_EQ(untested.code, 0) << untested.err;
  EXPECT_THAT(untested.out, HasSubstr("Not tested (--no-test): 'exportctl connection test m'"));
  sent = server_.last_create_connection();
  EXPECT_EQ(sent.display_name(), "m");
  EXPECT_EQ(sent.privacy_statement_version(), "2025-01-01");
  EXPECT_FALSE(sent.test_before_save());
}

TEST_F(ExportctlTest, ServerErrorsPrintTheCodeAndExitOne) {
  Result result = Run({"connection", "get", "nope"});
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(result.err, "error: NOT_FOUND: connection 'nope' not found\n");
  EXPECT_EQ(server_.last_authorization(), "Bearer t0k");
}

TEST_F(ExportctlTest, SegmentCreateFromCsvUploadsTypedRows) {
  std::string csv = WriteFile("people.csv",
                              "Email,Age,Joined\r\n"
                              "ann@example.com,31,2024-05-01\r\n"
                              "\"bob@example.com\",,\"2024-05-01T12:00:00+02:00\"\r\n");
  Result result = Run({"segment", "create", "--name", "VIP", "--from-csv", csv, "--field",
                       "Age:int", "--field", "Joined:timestamp"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("Uploaded 2 rows"));
  EXPECT_THAT(result.out, HasSubstr("now has 2 members"));
  std::optional<exportd::v1::Segment> segment = server_.segment("VIP");
  ASSERT_TRUE(segment.has_value());
  ASSERT_EQ(segment->schema_size(), 3);
  EXPECT_EQ(segment->schema(1).type(), exportd::v1::FIELD_TYPE_INT);
  std::vector<exportd::v1::MemberRow> rows = server_.first_rows("VIP");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].profile_id(), "bob@example.com");
  EXPECT_EQ(rows[1].values(1).kind_case(), exportd::v1::Value::KIND_NOT_SET);
  EXPECT_EQ(rows[1].values(2).timestamp_micros(), 1714557600LL * 1000000);
}

TEST_F(ExportctlTest, UploadFromStdinWithJsonOutput) {
  ASSERT_EQ(Run({"segment", "create", "--name", "S"}).code, 0);
  Result result = Run({"-o", "json", "segment", "upload", "S", "--from-csv", "-"},
                      "id,name\n1,Ann\n2,Bob\n3,Cy\n");
  ASSERT_EQ(result.code, 0) << result.err;
  nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["rows_received"], "3");  // int64 is a string in proto JSON
  EXPECT_EQ(json["segment"]["name"], "S");
}

// Create and upload are one step: a bad row leaves no segment, so the same
// command works once the file is fixed (it used to fail with ALREADY_EXISTS).
TEST_F(ExportctlTest, CreateFromCsvWithABadRowLeavesNoSegment) {
  std::string bad = WriteFile("bad.csv", "id,age\n1,30\nbad,forty\n");
  Result result = Run({"segment", "create", "--name", "S", "--from-csv", bad, "--field",
                       "age:int"});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(result.err, HasSubstr("cannot parse 'forty' as an int"));
  EXPECT_THAT(result.err, HasSubstr("Removed segment 'S' again because the upload failed; fix "
                                    "the file and run the same command again."));
  EXPECT_FALSE(server_.segment("S").has_value());
  std::string good = WriteFile("good.csv", "id,age\n1,30\n2,40\n");
  Result again = Run({"segment", "create", "--name", "S", "--from-csv", good, "--field",
                      "age:int"});
  EXPECT_EQ(again.code, 0) << again.err;
  ASSERT_TRUE(server_.segment("S").has_value());
  EXPECT_EQ(server_.segment("S")->member_count(), 2);
}

TEST_F(ExportctlTest, BadRowCancelsTheUploadAndKeepsTheOldSnapshot) {
  std::string good = WriteFile("good.csv", "id,age\n1,30\n2,40\n");
  ASSERT_EQ(Run({"segment", "create", "--name", "S", "--from-csv", good, "--field", "age:int"})
                .code,
            0);
  // Enough rows to span several chunks before the bad one.
  std::string text = "id,age\n";
  for (int i = 0; i < 12000; ++i) text += std::to_string(i) + ",1\n";
  text += "bad,forty\n";
  std::string bad = WriteFile("bad.csv", text);
  Result result = Run({"segment", "upload", "S", "--from-csv", bad, "--field", "age:int"});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(result.err, HasSubstr("bad.csv: row 12002, field 'age' (int): cannot parse "
                                    "'forty' as an int"));
  EXPECT_THAT(result.err, HasSubstr("keeps its previous members"));
  std::optional<exportd::v1::Segment> segment = server_.segment("S");
  ASSERT_TRUE(segment.has_value());
  EXPECT_EQ(segment->member_count(), 2);
  EXPECT_EQ(segment->snapshot_version(), 1);
  // The server sees the cancellation once it notices it; poll with a deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (server_.cancelled_uploads() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(server_.cancelled_uploads(), 1);
}

TEST_F(ExportctlTest, UnknownFieldColumnIsAUsageError) {
  std::string csv = WriteFile("p.csv", "Email,Age\na@x,1\n");
  Result result = Run({"segment", "create", "--name", "S", "--from-csv", csv, "--field",
                       "age:int"});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("'age' is not a column of " + csv + " (columns: Email, Age)"));
  EXPECT_FALSE(server_.segment("S").has_value());  // nothing was created
}

TEST_F(ExportctlTest, WatchPrintsProgressLinesAndExitsZeroOnSuccess) {
  Result result = Run({"export", "run", "ok", "--watch"});
  EXPECT_EQ(result.code, 0) << result.err;
  // Not a TTY: one plain line per update, then the final state and counts.
  EXPECT_THAT(result.out, HasSubstr("QUEUED    1,000 members\n"));
  EXPECT_THAT(result.out, HasSubstr("RUNNING    50% 500/1,000 sent  250 rec/s  ETA 2s\n"));
  EXPECT_THAT(result.out, HasSubstr("State:        SUCCEEDED_WITH_REJECTIONS"));
  EXPECT_THAT(result.out, HasSubstr("exportctl run rejections run-ok"));
  EXPECT_EQ(result.out.find('\r'), std::string::npos);
}

TEST_F(ExportctlTest, WatchOffATerminalPrintsEachStateOnceAndFlushes) {
  Result result = Run({"run", "watch", "run-ok"});
  EXPECT_EQ(result.code, 0) << result.err;
  // One line per state, in order, before the final details.
  const size_t queued = result.out.find("QUEUED ");
  const size_t running = result.out.find("RUNNING ");
  const size_t done = result.out.find("SUCCEEDED_WITH_REJECTIONS 100%");
  ASSERT_NE(queued, std::string::npos) << result.out;
  ASSERT_NE(running, std::string::npos) << result.out;
  ASSERT_NE(done, std::string::npos) << result.out;
  EXPECT_LT(queued, running);
  EXPECT_LT(running, done);
  EXPECT_EQ(result.out.find("QUEUED ", queued + 1), std::string::npos);
}

TEST_F(ExportctlTest, CtrlCDuringAWatchSaysTheRunGoesOn) {
  Result result;
  std::thread watch([&] { result = Run({"run", "watch", "run-slow"}); });
  // The handler is in place before the stream opens; wait until it is open.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (server_.waiting_watches() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(server_.waiting_watches(), 1);
  std::raise(SIGINT);
  watch.join();
  EXPECT_EQ(result.code, 130);
  EXPECT_THAT(result.out, HasSubstr("RUNNING "));
  EXPECT_EQ(result.err,
            "Stopped watching; run run-slow goes on on the server.\n"
            "Watch it again with: exportctl run watch run-slow\n"
            "Cancel it with:      exportctl run cancel run-slow\n");
}

TEST_F(ExportctlTest, CancelSaysItWasRequestedAndWaitWaitsForTheEnd) {
  Result requested = Run({"run", "cancel", "run-ok"});
  EXPECT_EQ(requested.code, 0) << requested.err;
  EXPECT_EQ(requested.out,
            "Cancel of run run-ok of export 'ok' requested; it is RUNNING until the run stops. "
            "Wait for its final state with: exportctl run watch run-ok\n");
  Result waited = Run({"run", "cancel", "run-ok", "--wait"});
  EXPECT_EQ(waited.code, 0) << waited.err;
  EXPECT_EQ(waited.out,
            "Cancel of run run-ok of export 'ok' requested; waiting for it to end.\n"
            "Run run-ok of export 'ok' ended CANCELED.\n");
  Result ended = Run({"run", "cancel", "run-fails", "--wait"});
  EXPECT_EQ(ended.code, 0) << ended.err;
  EXPECT_EQ(ended.out, "Run run-fails of export 'fails' ended FAILED.\n");
}

// While a run is running, `run get` shows the server's rate and ETA; once it
// has ended, neither.
TEST_F(ExportctlTest, RunGetShowsRateAndEtaWhileTheRunIsRunning) {
  Result running = Run({"run", "get", "run-slow"});
  EXPECT_EQ(running.code, 0) << running.err;
  EXPECT_THAT(running.out, HasSubstr("State:        RUNNING\n"));
  EXPECT_THAT(running.out, HasSubstr("Rate:         250 records/s\n"));
  EXPECT_THAT(running.out, HasSubstr("ETA:          2s\n"));
  Result ended = Run({"run", "get", "run-ok"});
  EXPECT_EQ(ended.code, 0) << ended.err;
  EXPECT_THAT(ended.out, Not(HasSubstr("Rate:")));
  EXPECT_THAT(ended.out, Not(HasSubstr("ETA:")));
}

// The engine's run attempts are named as such, apart from the message that
// quotes a destination's tries.
TEST_F(ExportctlTest, RunGetNamesTheNextRunAttempt) {
  Result result = Run({"run", "get", "run-retrying"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("State:             FAILED_RETRYING\n"));
  EXPECT_THAT(result.out, HasSubstr("Next run attempt:  2 at 2024-05-01 12:00:00 UTC\n"));
  EXPECT_THAT(result.out,
              HasSubstr("Message:           Iterable request failed after 2 tries: GET "
                        "/api/lists: HTTP 503; the run will be tried again (run attempt 2 of "
                        "3) in 30s\n"));
  EXPECT_THAT(result.out, Not(HasSubstr("Attempt:")));
}

TEST_F(ExportctlTest, RejectionsNameTheirSegment) {
  Result result = Run({"run", "rejections", "run-ok"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("p1          VIP       "));
  EXPECT_THAT(result.out, Not(HasSubstr("seg-vip")));
  // A segment deleted since is shown by its id.
  EXPECT_THAT(result.out, HasSubstr("p2          seg-gone  "));
}

// A contributor sees a connection's name and type only; the fields it may not
// see are left out, not printed empty.
TEST_F(ExportctlTest, ConnectionGetLeavesOutWhatTheCallerMayNotSee) {
  Result result = Run({"connection", "get", "shared"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.out,
            "Name:                      shared\n"
            "ID:                        conn-1\n"
            "Type:                      iterable\n"
            "Shared with contributors:  yes\n");
}

// Names in the commands a hint prints are quoted for the shell.
TEST_F(ExportctlTest, HintsQuoteNamesForTheShell) {
  Result created = Run({"export", "create", "--name", "VIP Customers", "--connection", "shared",
                        "--segment", "VIP", "--map", "email=Email"});
  EXPECT_EQ(created.code, 0) << created.err;
  EXPECT_THAT(created.out,
              HasSubstr("run it now with: exportctl export run 'VIP Customers' --watch\n"));
  Result plain = Run({"export", "create", "--name", "vip-2024", "--connection", "shared",
                      "--segment", "VIP", "--map", "email=Email"});
  EXPECT_THAT(plain.out, HasSubstr("run it now with: exportctl export run vip-2024 --watch\n"));
}

TEST_F(ExportctlTest, ASecondRunWhileOneIsQueuedSaysItJoinedIt) {
  Result first = Run({"export", "run", "ok"});
  EXPECT_EQ(first.code, 0) << first.err;
  EXPECT_THAT(first.out, StartsWith("Started run run-ok of export 'ok' (QUEUED)."));
  Result second = Run({"export", "run", "ok"});
  EXPECT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(second.out,
            "Export 'ok' already had run run-ok queued; this request joined it. Follow it with: "
            "exportctl run watch run-ok\n");
  Result watched = Run({"export", "run", "ok", "--watch"});
  EXPECT_THAT(watched.out, StartsWith("Joined the queued run run-ok of export 'ok':\n"));
}

// The help says "true or false": "--flag true" must parse, not fail with
// "unexpected argument 'true'".
TEST_F(ExportctlTest, BooleanFlagsTakeTrueOrFalseAsTheNextArgument) {
  for (const std::string value : {"true", "false"}) {
    Result result = Run({"connection", "update", "prod", "--share-with-contributors", value});
    EXPECT_NE(result.code, 2) << result.err;
    EXPECT_THAT(result.err, Not(HasSubstr("unexpected argument")));
  }
  Result dry = Run({"export", "run", "ok", "--dry-run", "false"});
  EXPECT_EQ(dry.code, 0) << dry.err;
  EXPECT_THAT(dry.out, StartsWith("Started run run-ok"));  // not watched: no dry run
}

TEST_F(ExportctlTest, WatchExitsThreeWhenTheRunFails) {
  Result result = Run({"run", "watch", "run-fails"});
  EXPECT_EQ(result.code, 3);
  EXPECT_EQ(result.err, "error: run run-fails ended FAILED: destination said no\n");
  Result missing = Run({"run", "watch", "nope"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.err, "error: NOT_FOUND: run 'nope' not found\n");
}

TEST_F(ExportctlTest, WatchWithJsonPrintsOnlyTheFinalRun) {
  Result result = Run({"--output", "json", "export", "run", "ok", "--watch"});
  EXPECT_EQ(result.code, 0) << result.err;
  nlohmann::json run = nlohmann::json::parse(result.out);
  EXPECT_EQ(run["state"], "RUN_STATE_SUCCEEDED_WITH_REJECTIONS");
  EXPECT_EQ(run["segments"][0]["rejected"], "2");
}

TEST_F(ExportctlTest, StatusShowsTheServerItsRunsAndTheNextScheduledRuns) {
  Result result = Run({"status"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  const std::string& out = result.out;
  EXPECT_THAT(out, HasSubstr("Version:"));
  EXPECT_THAT(out, HasSubstr("9.8.7 (plugin ABI 3)\n"));
  EXPECT_THAT(out, HasSubstr("postgresql exportd on db.internal:5432\n"));
  EXPECT_THAT(out, HasSubstr("host-a:41\n"));
  EXPECT_THAT(out, HasSubstr("iterable 1.2.0\n"));
  EXPECT_THAT(out, HasSubstr("3 (oldest waiting 2m05s)\n"));
  EXPECT_THAT(out, HasSubstr("Runs in progress:\n"));
  EXPECT_THAT(out, HasSubstr("  RUN    EXPORT          STATE            REPLICA\n"));
  EXPECT_THAT(out, HasSubstr("  run-1  vip             RUNNING          host-b:7\n"));
  // An export name cannot forge a line or clear the screen; no replica holds run-2.
  EXPECT_THAT(out, HasSubstr("  run-2  churn\\n\\x1b[2J  FAILED_RETRYING  -\n"));
  EXPECT_THAT(out, HasSubstr("Next scheduled runs:\n  EXPORT  AT\n  daily   2024-05-01 12:00:00 UTC\n"));

  Result json = Run({"--output", "json", "status"});
  ASSERT_EQ(json.code, 0) << json.err;
  nlohmann::json parsed = nlohmann::json::parse(json.out);
  EXPECT_EQ(parsed["version"], "9.8.7");
  EXPECT_EQ(parsed["store_location"], "exportd on db.internal:5432");
  EXPECT_EQ(parsed["runs_in_progress"][1]["export_name"], "churn\n\x1b[2J");
  EXPECT_EQ(parsed["runs_in_progress"][1]["state"], "RUN_STATE_FAILED_RETRYING");
  EXPECT_EQ(parsed["queued_runs"], "3");
  EXPECT_EQ(parsed["next_scheduled_runs"][0]["export_name"], "daily");
  EXPECT_EQ(parsed["next_scheduled_runs"][0]["at_micros"], "1714564800000000");
}

TEST_F(ExportctlTest, UnreachableServerHints) {
  std::ostringstream out, err;
  std::istringstream in;
  int code = RunExportctl({"exportctl", "--server", "127.0.0.1:1", "whoami"}, out, err, in,
                          [](const std::string& name) {
                            return name == "EXPORTD_TOKEN" ? std::optional<std::string>("x")
                                                           : std::nullopt;
                          });
  EXPECT_EQ(code, 1);
  EXPECT_THAT(err.str(), StartsWith("error: UNAVAILABLE: "));
  EXPECT_THAT(err.str(), HasSubstr("hint: is exportd running at 127.0.0.1:1?"));
}

TEST_F(ExportctlTest, TokenHashPrintsTheTokensFileLineForATokenOnStdin) {
  Result result = Run({"token", "hash", "--principal", "dashboards", "--role", "Viewer"},
                      "piped-token-0123456789abcdef0123456789\n");
  ASSERT_EQ(result.code, 0) << result.err;
  // sha256sum of the token without its newline.
  EXPECT_EQ(result.out,
            "sha256:963dbac56d196598d068d461b4f9a9707fe0c518544e29da82e3b6bd38e61546 dashboards "
            "viewer\n");
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(server_.last_authorization(), "") << "token hash needs no server";
  Result json = Run({"-o", "json", "token", "hash", "--principal", "d", "--role", "viewer"},
                    "piped-token-0123456789abcdef0123456789");
  ASSERT_EQ(json.code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["line"],
            "sha256:963dbac56d196598d068d461b4f9a9707fe0c518544e29da82e3b6bd38e61546 d viewer");
  EXPECT_FALSE(nlohmann::json::parse(json.out).contains("token"));
}

TEST_F(ExportctlTest, TokenHashNewPrintsTheTokenOnceAndALineExportdAccepts) {
  Result result =
      Run({"token", "hash", "--new", "--principal", "segment-sync", "--role", "contributor"});
  ASSERT_EQ(result.code, 0) << result.err;
  std::vector<std::string> lines = absl::StrSplit(result.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << result.out;
  ASSERT_THAT(lines[0], StartsWith("token: "));
  const std::string token = lines[0].substr(7);
  EXPECT_EQ(token.size(), 64u);
  EXPECT_THAT(lines[1], StartsWith("sha256:"));
  EXPECT_THAT(lines[1], Not(HasSubstr(token)));
  EXPECT_THAT(result.err, HasSubstr("shown only now"));

  std::string tokens = WriteFile("tokens", lines[1] + "\n");
  std::filesystem::permissions(tokens, std::filesystem::perms::owner_read,
                               std::filesystem::perm_options::replace);
  auto auth = auth::Authenticator::FromTokensFile(tokens);
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto who = (*auth)->Authenticate("Bearer " + token);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->name, "segment-sync");
  EXPECT_EQ(who->role, exportd::v1::ROLE_CONTRIBUTOR);

  Result json =
      Run({"-o", "json", "token", "hash", "--new", "--principal", "p", "--role", "admin"});
  ASSERT_EQ(json.code, 0) << json.err;
  nlohmann::json parsed = nlohmann::json::parse(json.out);
  EXPECT_EQ(parsed["line"],
            "sha256:" + auth::TokenSha256Hex(parsed["token"].get<std::string>()) + " p admin");
  EXPECT_NE(parsed["token"], token);
}

TEST_F(ExportctlTest, TokenHashRefusesWhatExportdWouldRefuse) {
  Result short_token =
      Run({"token", "hash", "--principal", "p", "--role", "viewer"}, "too-short-secret\n");
  EXPECT_EQ(short_token.code, 1);
  EXPECT_THAT(short_token.err,
              HasSubstr("the token is 16 characters long; tokens need at least 32"));
  EXPECT_THAT(short_token.err, Not(HasSubstr("too-short")));
  Result empty = Run({"token", "hash", "--principal", "p", "--role", "viewer"}, "\n");
  EXPECT_EQ(empty.code, 2);
  EXPECT_THAT(empty.err, HasSubstr("no token on standard input"));
  Result two = Run({"token", "hash", "--principal", "p", "--role", "viewer"},
                   std::string(32, 'a') + "\n" + std::string(32, 'b') + "\n");
  EXPECT_EQ(two.code, 1);
  EXPECT_THAT(two.err, HasSubstr("whitespace"));
  Result principal =
      Run({"token", "hash", "--new", "--principal", "ops\x1b[2J", "--role", "admin"});
  EXPECT_EQ(principal.code, 2);
  EXPECT_THAT(principal.err,
              HasSubstr("--principal: principal \"ops\\x1b[2J\" contains the control "
                        "character U+001B"));
  Result role = Run({"token", "hash", "--new", "--principal", "p", "--role", "owner"});
  EXPECT_EQ(role.code, 2);
  EXPECT_THAT(role.err, HasSubstr("--role: unknown role 'owner'"));
  Result missing = Run({"token", "hash", "--new", "--principal", "p"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("missing required flag --role ROLE"));
}

TEST_F(ExportctlTest, TokenHashIsInTheHelp) {
  EXPECT_THAT(Run({"--help"}).out, HasSubstr("  token        Make tokens-file lines"));
  Result verb = Run({"token", "hash", "--help"});
  EXPECT_EQ(verb.code, 0);
  EXPECT_THAT(verb.out, HasSubstr("Usage: exportctl [global flags] token hash --principal NAME"));
  EXPECT_THAT(verb.out, HasSubstr("--new"));
}

// Names and values from the store cannot clear the terminal or forge lines in
// tables and plain lines; JSON keeps them exact.
TEST_F(ExportctlTest, TablesAndLinesEscapeControlCharacters) {
  const std::string forged = "VIP\n\x1b[2J";
  Result created = Run({"segment", "create", "--name", forged});
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_EQ(created.out, "Created segment 'VIP\\n\\x1b[2J' (id seg-1, no members yet).\n");
  Result got = Run({"segment", "get", forged});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_THAT(got.out, HasSubstr("Name:                VIP\\n\\x1b[2J\n"));

  std::string csv = WriteFile("notes.csv", "id,Note\n1,\"a\n\x1b[2Jb\"\n");
  ASSERT_EQ(Run({"segment", "create", "--name", "S", "--from-csv", csv}).code, 0);
  Result members = Run({"segment", "members", "S"});
  ASSERT_EQ(members.code, 0) << members.err;
  EXPECT_EQ(members.out,
            "PROFILE ID  id  Note\n"
            "1           1   a\\n\\x1b[2Jb\n");
  Result json = Run({"-o", "json", "segment", "members", "S"});
  ASSERT_EQ(json.code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["rows"][0]["values"][1]["string_value"], "a\n\x1b[2Jb");

  // Server errors quote names too.
  Result missing = Run({"connection", "get", "x\nerror: forged"});
  EXPECT_EQ(missing.err, "error: NOT_FOUND: connection 'x\\nerror: forged' not found\n");
}

TEST_F(ExportctlTest, SecretWithoutNameIsNeverEchoed) {
  for (std::vector<std::string> secret : {std::vector<std::string>{"--secret", "s3cr3tvalue"},
                                          {"--secret", "=s3cr3tvalue"},
                                          {"--secret=s3cr3tvalue"},
                                          {"--secret", "api_key", "s3cr3tvalue"},
                                          {"--secret=api_key", "s3cr3tvalue"}}) {
    std::vector<std::string> args = {
        "connection", "create", "--name", "n", "--type", "iterable", "--accept-privacy-terms"};
    args.insert(args.end(), secret.begin(), secret.end());
    Result result = Run(args);
    EXPECT_EQ(result.code, 2) << secret[0];
    EXPECT_THAT(result.err, HasSubstr("--secret")) << secret[0];
    EXPECT_THAT(result.err, Not(HasSubstr("s3cr3tvalue"))) << result.err;
  }
  Result no_equals = Run({"connection", "update", "prod", "--secret", "s3cr3tvalue"});
  EXPECT_THAT(no_equals.err, HasSubstr("--secret takes NAME=VALUE"));
  Result extra = Run({"connection", "update", "prod", "--secret", "api_key", "s3cr3tvalue"});
  EXPECT_EQ(extra.code, 2);
  EXPECT_THAT(extra.err, HasSubstr("unexpected argument after --secret KEY=VALUE (not shown"));
  EXPECT_THAT(extra.err, Not(HasSubstr("s3cr3tvalue")));
}

// Command lines are visible to other local users (ps): a secret or token
// written out on one gets a warning that says what to use instead.
TEST_F(ExportctlTest, SecretsOnTheCommandLineWarn) {
  Result literal = Run({"connection", "update", "prod", "--secret", "api_key=s3cr3tvalue"});
  EXPECT_THAT(literal.err,
              HasSubstr("warning: --secret api_key: a value on the command line can be read by "
                        "other local users (ps); write NAME=env:VAR or NAME=@FILE"));
  EXPECT_THAT(literal.err, Not(HasSubstr("s3cr3tvalue")));
  env_["ITERABLE_API_KEY"] = "s3cr3tvalue";
  std::string file = WriteFile("key.txt", "s3cr3tvalue\n");
  Result indirect = Run({"connection", "update", "prod", "--secret", "api_key=env:ITERABLE_API_KEY",
                         "--secret", "pin=@" + file});
  EXPECT_THAT(indirect.err, Not(HasSubstr("warning")));

  Result token = Run({"--token", "t0k", "segment", "get", "nope"});
  EXPECT_THAT(token.err,
              StartsWith("warning: --token on the command line can be read by other local users "
                         "(ps); set $EXPORTD_TOKEN or use --token-file FILE instead\n"));
  EXPECT_EQ(server_.last_authorization(), "Bearer t0k");
  Result from_env = Run({"segment", "get", "nope"});
  EXPECT_EQ(from_env.err, "error: NOT_FOUND: segment 'nope' not found\n");
}

TEST_F(ExportctlTest, WebhookFlagsReachTheServerAndTheSecretIsShownOnce) {
  Result created = Run({"export", "create", "--name", "vip", "--connection", "c", "--segment", "VIP",
                        "--notify-url", "https://hooks.example.com/exportd", "--notify-on",
                        "failed,rejections>5%"});
  ASSERT_EQ(created.code, 0) << created.err;
  const auto create = server_.last_create_export();
  EXPECT_EQ(create.notify_url(), "https://hooks.example.com/exportd");
  EXPECT_THAT(create.notify_on(), ::testing::ElementsAre("failed", "rejections>5%"));
  EXPECT_THAT(created.out, HasSubstr("Webhook signing secret (shown only now"));
  EXPECT_THAT(created.out, HasSubstr("fake-signing-secret"));

  Result got = Run({"export", "get", "vip"});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_THAT(got.out, HasSubstr("https://hooks.example.com/exportd"));
  EXPECT_THAT(got.out, HasSubstr("failed, rejections>5%"));
  EXPECT_THAT(got.out, ::testing::ContainsRegex("Signing secret: +set"));
  EXPECT_THAT(got.out, Not(HasSubstr("fake-signing-secret")));

  Result rotated = Run({"export", "update", "vip", "--rotate-notify-secret"});
  ASSERT_EQ(rotated.code, 0) << rotated.err;
  EXPECT_TRUE(server_.last_update_export().rotate_notify_secret());
  EXPECT_FALSE(server_.last_update_export().has_notify_url());
  EXPECT_THAT(rotated.out, HasSubstr("rotated-signing-secret"));

  Result removed = Run({"export", "update", "vip", "--notify-url", ""});
  ASSERT_EQ(removed.code, 0) << removed.err;
  EXPECT_TRUE(server_.last_update_export().has_notify_url());
  EXPECT_EQ(server_.last_update_export().notify_url(), "");
  EXPECT_FALSE(server_.last_update_export().rotate_notify_secret());
  Result after = Run({"export", "get", "vip"});
  EXPECT_THAT(after.out, ::testing::ContainsRegex("Webhook: +-"));
  EXPECT_THAT(after.out, ::testing::ContainsRegex("Signing secret: +-"));
}

TEST_F(ExportctlTest, WebhookFlagMistakesAreCaughtBeforeTheCall) {
  Result no_url = Run({"export", "create", "--name", "vip", "--connection", "c", "--segment", "VIP",
                       "--notify-on", "failed"});
  EXPECT_EQ(no_url.code, 2);
  EXPECT_THAT(no_url.err, HasSubstr("--notify-on needs --notify-url"));
  Result empty = Run({"export", "create", "--name", "vip", "--connection", "c", "--segment", "VIP",
                      "--notify-url", ""});
  EXPECT_EQ(empty.code, 2);
  EXPECT_THAT(empty.err, HasSubstr("it is for 'export update'"));
  Result help = Run({"export", "update", "--help"});
  EXPECT_THAT(help.out, HasSubstr("--rotate-notify-secret"));
  EXPECT_THAT(help.out, HasSubstr("rejections>N%"));
}

}  // namespace
}  // namespace exportd::client
