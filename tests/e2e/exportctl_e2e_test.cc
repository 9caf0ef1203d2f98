// exportctl against the real exportd: the server runs as a subprocess on port
// 0 with a temporary data directory; exportctl runs in-process through
// RunExportctl and finds the admin token through EXPORTD_DATA_DIR, as a user
// on the same machine would.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/str_split.h"
#include "client/exportctl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

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

// An exportd process on port 0 with its own temporary data directory, started
// once for the suite (and, with `extra_args`, by tests that need their own).
// With `must_listen` false, exiting before it listens is expected (see log()).
class ExportdProcess {
 public:
  explicit ExportdProcess(const std::string& name = "exportctl-e2e",
                          std::vector<std::string> extra_args = {}, bool must_listen = true) {
    dir_ = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "data");
    const std::string log = (dir_ / "exportd.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<std::string> args = {
          EXPORTD_BINARY,           "--listen",     "127.0.0.1:0",     "--data-dir",
          (dir_ / "data").string(), "--plugin-dir", EXPORTD_PLUGIN_DIR};
      args.insert(args.end(), extra_args.begin(), extra_args.end());
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(EXPORTD_BINARY, argv.data());
      ::_exit(127);
    }
    // Wait for "listening on 127.0.0.1:PORT", polling the log with a deadline.
    const std::regex listening("listening on 127\\.0\\.0\\.1:([0-9]+)");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      std::smatch match;
      std::string contents = text.str();
      if (std::regex_search(contents, match, listening)) {
        address_ = "127.0.0.1:" + match[1].str();
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        if (must_listen) ADD_FAILURE() << "exportd exited before listening:\n" << contents;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "exportd did not print 'listening on' within 60s";
  }

  ~ExportdProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  const std::string& address() const { return address_; }
  // What exportd printed so far.
  std::string log() const {
    std::ifstream in(dir_ / "exportd.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  std::filesystem::path data_dir() const { return dir_ / "data"; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  pid_t pid_ = -1;
  std::filesystem::path dir_;
  std::string address_;
};

// exportctl in-process with `env` as its whole environment.
Result RunWithEnv(std::vector<std::string> args, std::map<std::string, std::string> env,
                  const std::string& stdin_text = "") {
  args.insert(args.begin(), "exportctl");
  std::ostringstream out, err;
  std::istringstream in(stdin_text);
  int code = RunExportctl(args, out, err, in, [env](const std::string& name) {
    auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
  return {code, out.str(), err.str()};
}

class ExportctlE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ExportdProcess(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_FALSE(server_->address().empty()) << "exportd is not running"; }

  Result Run(std::vector<std::string> args, const std::string& stdin_text = "") {
    args.insert(args.begin(), {"--server", server_->address()});
    return RunWithEnv(args, {{"EXPORTD_DATA_DIR", server_->data_dir().string()}}, stdin_text);
  }

  nlohmann::json Json(std::vector<std::string> args) {
    args.insert(args.begin(), {"--output", "json"});
    Result result = Run(args);
    EXPECT_EQ(result.code, 0) << result.err;
    return nlohmann::json::parse(result.out);
  }

  std::string WriteFile(const std::string& name, const std::string& contents) {
    std::string path = (server_->dir() / name).string();
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

  static ExportdProcess* server_;
};

ExportdProcess* ExportctlE2eTest::server_ = nullptr;

TEST_F(ExportctlE2eTest, WhoAmIWithTheLocalAdminToken) {
  Result result = Run({"whoami"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("ADMIN"));
  EXPECT_EQ(Json({"whoami"})["role"], "ROLE_ADMIN");
}

TEST_F(ExportctlE2eTest, SegmentFromA100kRowCsvRoundTrips) {
  std::string csv = "Email,FirstName,Age,Joined\n";
  for (int i = 0; i < 100000; ++i) {
    csv += "user" + std::to_string(i) + "@example.com,\"First, " + std::to_string(i) + "\"," +
           std::to_string(i % 90) + ",2024-05-01T12:00:00Z\n";
  }
  std::string path = WriteFile("people.csv", csv);
  Result created = Run({"segment", "create", "--name", "People", "--from-csv", path, "--field",
                        "Age:int", "--field", "Joined:timestamp"});
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("Uploaded 100,000 rows"));
  EXPECT_THAT(created.out, HasSubstr("now has 100,000 members"));

  nlohmann::json segment = Json({"segment", "get", "People"});
  EXPECT_EQ(segment["name"], "People");
  EXPECT_EQ(segment["member_count"], "100000");
  ASSERT_EQ(segment["schema"].size(), 4u);
  EXPECT_EQ(segment["schema"][2]["type"], "FIELD_TYPE_INT");

  nlohmann::json members = Json({"segment", "members", "People", "--limit", "5"});
  ASSERT_EQ(members["rows"].size(), 5u);
  const std::string first_id = members["rows"][0]["profile_id"];
  EXPECT_THAT(first_id, testing::MatchesRegex("user[0-9]+@example.com"));

  Result list = Run({"segment", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("100,000"));
}

TEST_F(ExportctlE2eTest, BadCsvRowLeavesTheOldSnapshot) {
  std::string good = WriteFile("good.csv", "id,score\na,1.5\nb,2\nc,\n");
  ASSERT_EQ(Run({"segment", "create", "--name", "Scores", "--from-csv", good, "--field",
                 "score:double"})
                .code,
            0);
  std::string text = "id,score\n";
  for (int i = 0; i < 20000; ++i) text += "p" + std::to_string(i) + ",1\n";
  text += "broken,one point five\n";
  std::string bad = WriteFile("bad.csv", text);
  Result result = Run({"segment", "upload", "Scores", "--from-csv", bad, "--field",
                       "score:double"});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(result.err,
              HasSubstr("row 20002, field 'score' (double): cannot parse 'one point five'"));
  nlohmann::json segment = Json({"segment", "get", "Scores"});
  EXPECT_EQ(segment["member_count"], "3");
  EXPECT_EQ(segment["snapshot_version"], "1");
  // The server notices the cancellation asynchronously; poll with a deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (segment["upload_in_progress"] == true && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    segment = Json({"segment", "get", "Scores"});
  }
  EXPECT_EQ(segment["upload_in_progress"], false);
  EXPECT_EQ(segment["member_count"], "3");
}

TEST_F(ExportctlE2eTest, ConnectionAndExportCreateListGet) {
  std::filesystem::create_directories(server_->dir() / "out");
  Result connection = Run({"connection", "create", "--name", "files", "--type", "jsonl",
                           "--setting", "directory=" + (server_->dir() / "out").string(),
                           "--accept-privacy-terms"});
  ASSERT_EQ(connection.code, 0) << connection.err;
  std::string csv = WriteFile("vip.csv", "Email,Name\nann@example.com,Ann\n");
  ASSERT_EQ(Run({"segment", "create", "--name", "VIP", "--from-csv", csv}).code, 0);

  Result created = Run({"export", "create", "--name", "vip-files", "--connection", "files",
                        "--segment", "VIP", "--map", "email=Email", "--mode", "add-only"});
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("Created export 'vip-files'"));

  nlohmann::json list = Json({"export", "list"});
  ASSERT_TRUE(list["exports"].is_array());
  bool found = false;
  for (const auto& e : list["exports"]) {
    if (e["name"] == "vip-files") {
      found = true;
      EXPECT_EQ(e["connection_name"], "files");
      EXPECT_EQ(e["mode"], "EXPORT_MODE_ADD_ONLY");
      EXPECT_EQ(e["mappings"][0]["destination_field"], "email");
    }
  }
  EXPECT_TRUE(found) << list.dump();

  Result get = Run({"export", "get", "vip-files"});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("email=Email"));
  EXPECT_THAT(get.out, HasSubstr("VIP"));
  Result table = Run({"export", "list"});
  EXPECT_THAT(table.out, StartsWith("NAME"));

  // Every command's --output json parses.
  for (std::vector<std::string> args :
       {std::vector<std::string>{"connection", "list"}, {"connection", "get", "files"},
        {"segment", "list"}, {"export", "get", "vip-files"}, {"destination", "list"},
        {"audit", "list", "--limit", "5"}}) {
    Json(args);
  }
}

TEST_F(ExportctlE2eTest, ExportUsersAreAddedAndRemovedAndShown) {
  std::filesystem::create_directories(server_->dir() / "eu-out");
  Result created = Run({"connection", "create", "--name", "team files", "--type", "jsonl",
                        "--setting", "directory=" + (server_->dir() / "eu-out").string(),
                        "--accept-privacy-terms"});
  ASSERT_EQ(created.code, 0) << created.err;
  Result added = Run({"connection", "update", "team files", "--add-self-as-export-user"});
  ASSERT_EQ(added.code, 0) << added.err;
  Result got = Run({"connection", "get", "team files"});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_THAT(got.out, ::testing::ContainsRegex("Export users: +admin"));
  Result wrong = Run({"connection", "update", "team files", "--remove-export-user", "nobody"});
  EXPECT_NE(wrong.code, 0);
  EXPECT_THAT(wrong.err, HasSubstr("'nobody' is not an export user of connection 'team files'"));
  Result removed = Run({"connection", "update", "team files", "--remove-export-user", "admin"});
  ASSERT_EQ(removed.code, 0) << removed.err;
  EXPECT_TRUE(Json({"connection", "get", "team files"})["export_users"].empty());
}

// The statement agreed to is the destination's: `connection create` without
// --accept-privacy-terms prints jsonl's and creates nothing; the connection
// records the version accepted; `destination get` prints the statement too.
TEST_F(ExportctlE2eTest, ConnectionCreateShowsTheDestinationsPrivacyStatement) {
  std::filesystem::create_directories(server_->dir() / "consent-out");
  const std::vector<std::string> create = {
      "connection", "create",
      "--name",     "consent-files",
      "--type",     "jsonl",
      "--setting",  "directory=" + (server_->dir() / "consent-out").string()};
  Result shown = Run(create);
  EXPECT_EQ(shown.code, 2);
  EXPECT_THAT(shown.out, StartsWith("Data privacy and compliance statement of JSON Lines files "
                                    "(version 2026-12-01):\n  This connection writes the profile "
                                    "data"));
  EXPECT_THAT(shown.out, HasSubstr("\n\n  Anyone who can read that directory can read the "
                                   "data"));
  EXPECT_THAT(shown.err, HasSubstr("connection 'consent-files' was not created"));
  EXPECT_THAT(shown.err, HasSubstr("pass --accept-privacy-terms to agree to it"));
  EXPECT_EQ(Run({"connection", "get", "consent-files"}).code, 1);

  std::vector<std::string> accepted = create;
  accepted.push_back("--accept-privacy-terms");
  Result created = Run(accepted);
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("Tested: the destination accepted it."));
  EXPECT_THAT(created.out, HasSubstr("statement version 2026-12-01."));
  Result get = Run({"connection", "get", "consent-files"});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_THAT(get.out,
              testing::ContainsRegex(
                  "Consent: +admin at [0-9-]+ [0-9:]+ UTC, statement version 2026-12-01\n"));
  EXPECT_EQ(Json({"connection", "get", "consent-files"})["consent_statement_version"],
            "2026-12-01");

  // A version other than the current one is refused: the statement changed.
  std::vector<std::string> outdated = create;
  outdated[3] = "consent-outdated";
  outdated.insert(outdated.end(),
                  {"--accept-privacy-terms", "--privacy-statement-version", "2020-01-01"});
  Result refused = Run(outdated);
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, HasSubstr("error: FAILED_PRECONDITION: connection 'consent-outdated': "
                                     "destination 'jsonl' changed its data privacy and "
                                     "compliance statement"));

  Result destination = Run({"destination", "get", "jsonl"});
  ASSERT_EQ(destination.code, 0) << destination.err;
  EXPECT_THAT(destination.out, HasSubstr("Data privacy and compliance statement of JSON Lines "
                                         "files (version 2026-12-01):\n"));
  EXPECT_THAT(destination.out, HasSubstr("compliance rules\n  (for example the GDPR).\n"));
  EXPECT_THAT(Run({"destination", "list"}).out, HasSubstr("version 2026-12-01"));
}

// The server tests a new connection before saving it: a jsonl directory that
// does not exist is refused (and nothing saved) unless --no-test.
TEST_F(ExportctlE2eTest, ConnectionCreateTestsBeforeSavingUnlessNoTest) {
  const std::string missing = (server_->dir() / "not-there-yet").string();
  const std::vector<std::string> create = {"connection",
                                           "create",
                                           "--name",
                                           "later-files",
                                           "--type",
                                           "jsonl",
                                           "--setting",
                                           "directory=" + missing,
                                           "--accept-privacy-terms"};
  Result refused = Run(create);
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, HasSubstr("error: FAILED_PRECONDITION: connection 'later-files' was "
                                     "not saved: testing it against destination 'jsonl' failed: "
                                     "FAILED_PRECONDITION: directory '" +
                                     missing + "' does not exist"));
  EXPECT_EQ(Run({"connection", "get", "later-files"}).code, 1);

  std::vector<std::string> untested = create;
  untested.push_back("--no-test");
  Result saved = Run(untested);
  ASSERT_EQ(saved.code, 0) << saved.err;
  EXPECT_THAT(saved.out, HasSubstr("Not tested (--no-test)"));
  EXPECT_EQ(Run({"connection", "get", "later-files"}).code, 0);
}

TEST_F(ExportctlE2eTest, UnknownConnectionIsNotFound) {
  Result get = Run({"connection", "get", "no-such-connection"});
  EXPECT_EQ(get.code, 1);
  EXPECT_THAT(get.err, StartsWith("error: NOT_FOUND: "));
  EXPECT_THAT(get.err, HasSubstr("no-such-connection"));

  std::string csv = WriteFile("s.csv", "Email\nx@example.com\n");
  ASSERT_EQ(Run({"segment", "create", "--name", "Lonely", "--from-csv", csv}).code, 0);
  Result create = Run({"export", "create", "--name", "orphan", "--connection", "no-such-connection",
                       "--segment", "Lonely", "--map", "email=Email"});
  EXPECT_EQ(create.code, 1);
  EXPECT_THAT(create.err, StartsWith("error: NOT_FOUND: "));
  EXPECT_THAT(create.err, HasSubstr("no-such-connection"));
}

TEST_F(ExportctlE2eTest, RunWatchRunsAndConnectionInUse) {
  std::filesystem::create_directories(server_->dir() / "run-out");
  ASSERT_EQ(Run({"connection", "create", "--name", "run-files", "--type", "jsonl", "--setting",
                 "directory=" + (server_->dir() / "run-out").string(), "--accept-privacy-terms"})
                .code,
            0);
  std::string csv = WriteFile("run.csv", "Email,Name\na@example.com,A\nb@example.com,B\n");
  ASSERT_EQ(Run({"segment", "create", "--name", "RunMe", "--from-csv", csv}).code, 0);
  ASSERT_EQ(Run({"export", "create", "--name", "run-me", "--connection", "run-files", "--segment",
                 "RunMe", "--map", "email=Email"})
                .code,
            0);

  Result dry = Run({"export", "run", "run-me", "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_THAT(dry.out, HasSubstr("WOULD ADD"));

  Result watched = Run({"export", "run", "run-me", "--watch"});
  ASSERT_EQ(watched.code, 0) << watched.err;
  EXPECT_THAT(watched.out, HasSubstr("State:"));
  EXPECT_THAT(watched.out, HasSubstr("SUCCEEDED"));

  nlohmann::json runs = Json({"export", "runs", "run-me", "--limit", "5"});
  ASSERT_GE(runs["runs"].size(), 2u);
  const std::string run_id = runs["runs"][0]["id"];
  EXPECT_EQ(Json({"run", "get", run_id})["state"], "RUN_STATE_SUCCEEDED");

  // Run all: only exports with an enabled schedule, and a word when there is none.
  Result none = Run({"export", "run-all"});
  ASSERT_EQ(none.code, 0) << none.err;
  EXPECT_THAT(none.out, HasSubstr("No export has an enabled schedule, so no run was started"));
  ASSERT_EQ(Run({"export", "update", "run-me", "--schedule", "0 6 * * *"}).code, 0);
  Result all = Run({"export", "run-all"});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_THAT(all.out, HasSubstr("Started 1 run(s) of scheduled exports."));
  EXPECT_THAT(all.out, HasSubstr("run-me"));

  Result in_use = Run({"connection", "delete", "run-files"});
  EXPECT_EQ(in_use.code, 1);
  EXPECT_THAT(in_use.err, StartsWith("error: FAILED_PRECONDITION: "));
  EXPECT_THAT(in_use.err, HasSubstr("hint: pass --detach-exports"));
  nlohmann::json deleted = Json({"connection", "delete", "run-files", "--detach-exports"});
  EXPECT_EQ(deleted["detached_exports"].size(), 1u);
  EXPECT_EQ(Json({"export", "get", "run-me"})["active"], false);
}

// `run log`: the run's lines as "TIME LEVEL [SOURCE] MESSAGE", from a level
// up, as JSON lines, and followed while the run goes on until its last line.
TEST_F(ExportctlE2eTest, RunLogPrintsTheRunsLinesAndFollowsARunToItsEnd) {
  std::filesystem::create_directories(server_->dir() / "log-out");
  ASSERT_EQ(Run({"connection", "create", "--name", "log-files", "--type", "jsonl", "--setting",
                 "directory=" + (server_->dir() / "log-out").string(), "--accept-privacy-terms"})
                .code,
            0);
  std::string csv = WriteFile("log.csv", "Email,Name\na@example.com,A\nb@example.com,B\n");
  ASSERT_EQ(Run({"segment", "create", "--name", "Logged", "--from-csv", csv}).code, 0);
  ASSERT_EQ(Run({"export", "create", "--name", "logged", "--connection", "log-files", "--segment",
                 "Logged", "--map", "email=Email"})
                .code,
            0);

  // Followed from the moment it was queued: every line up to the last.
  const std::string run_id = Json({"export", "run", "logged"})["id"];
  Result followed = Run({"run", "log", run_id, "--follow"});
  ASSERT_EQ(followed.code, 0) << followed.err;
  const std::vector<std::string> lines = absl::StrSplit(followed.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 4u) << followed.out;
  const std::regex line_format(
      "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
      "(DEBUG  |INFO   |WARNING|ERROR  ) \\[[a-z]+( [A-Za-z]+)?\\] .+");
  for (const std::string& line : lines) {
    EXPECT_TRUE(std::regex_match(line, line_format)) << line;
  }
  EXPECT_THAT(lines.front(), HasSubstr("INFO    [engine] run started (attempt 1 of 3): on demand"));
  EXPECT_THAT(followed.out, HasSubstr("[segment Logged] started: 2 members"));
  EXPECT_THAT(followed.out,
              HasSubstr("[segment Logged] done: 2 added, 0 updated, 0 removed, 0 rejected"));
  EXPECT_THAT(lines.back(), HasSubstr("INFO    [engine] run SUCCEEDED"));

  // The same lines again, without --follow; none at warning or above.
  Result again = Run({"run", "log", run_id});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out, followed.out);
  Result warnings = Run({"run", "log", run_id, "--level", "warning"});
  ASSERT_EQ(warnings.code, 0) << warnings.err;
  EXPECT_EQ(warnings.out, "");

  // --json: one RunLogLine a line.
  Result json = Run({"run", "log", run_id, "--json"});
  ASSERT_EQ(json.code, 0) << json.err;
  const std::vector<std::string> objects = absl::StrSplit(json.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(objects.size(), lines.size());
  nlohmann::json last = nlohmann::json::parse(objects.back());
  EXPECT_EQ(last["seq"], std::to_string(lines.size()));
  EXPECT_EQ(last["level"], "RUN_LOG_LEVEL_INFO");
  EXPECT_EQ(last["source"], "engine");
  EXPECT_EQ(last["message"], "run SUCCEEDED");

  Result loud = Run({"run", "log", run_id, "--level", "loud"});
  EXPECT_EQ(loud.code, 2);
  EXPECT_THAT(loud.err, HasSubstr("--level takes debug, info, warning or error, got 'loud'"));
  Result unknown = Run({"run", "log", "run-nope"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, StartsWith("error: NOT_FOUND: "));
  Result help = Run({"run", "--help"});
  EXPECT_THAT(help.out, HasSubstr("log"));
}

// An export that follows the system refresh on an exportd started without
// one would never run: exportd refuses it and says how to start exportd, and
// its start-up log says whether there is a refresh schedule.
TEST_F(ExportctlE2eTest, FollowingTheSystemRefreshNeedsOne) {
  EXPECT_THAT(server_->log(), HasSubstr("system refresh: none (exports cannot follow it; start "
                                        "with --system-refresh SPEC"));
  std::filesystem::create_directories(server_->dir() / "refresh-out");
  ASSERT_EQ(Run({"connection", "create", "--name", "refresh-files", "--type", "jsonl", "--setting",
                 "directory=" + (server_->dir() / "refresh-out").string(),
                 "--accept-privacy-terms"})
                .code,
            0);
  std::string csv = WriteFile("refresh.csv", "Email\na@example.com\n");
  ASSERT_EQ(Run({"segment", "create", "--name", "Refreshed", "--from-csv", csv}).code, 0);
  Result refused = Run({"export", "create", "--name", "follower", "--connection", "refresh-files",
                        "--segment", "Refreshed", "--map", "email=Email",
                        "--follow-system-refresh"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, StartsWith("error: FAILED_PRECONDITION: export 'follower': "));
  EXPECT_THAT(refused.err, HasSubstr("this exportd was started without one, so the export would "
                                     "never run; start exportd with --system-refresh SPEC"));
  EXPECT_EQ(Run({"export", "get", "follower"}).code, 1) << "nothing was saved";
  // The same for an update; other changes to the export still work.
  ASSERT_EQ(Run({"export", "create", "--name", "follower", "--connection", "refresh-files",
                 "--segment", "Refreshed", "--map", "email=Email"})
                .code,
            0);
  Result update = Run({"export", "update", "follower", "--follow-system-refresh"});
  EXPECT_EQ(update.code, 1);
  EXPECT_THAT(update.err, StartsWith("error: FAILED_PRECONDITION: "));
  EXPECT_THAT(update.err, HasSubstr("--system-refresh SPEC"));
  EXPECT_EQ(Run({"export", "update", "follower", "--schedule", "0 6 * * *"}).code, 0);

  ExportdProcess with_refresh("exportctl-e2e-refresh",
                              {"--system-refresh", "daily 02:00,14:00 UTC"});
  ASSERT_FALSE(with_refresh.address().empty()) << with_refresh.log();
  EXPECT_THAT(with_refresh.log(), HasSubstr("system refresh: daily 02:00,14:00 UTC (next "));
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", with_refresh.address()});
    return RunWithEnv(args, {{"EXPORTD_DATA_DIR", with_refresh.data_dir().string()}});
  };
  std::filesystem::create_directories(with_refresh.dir() / "out");
  ASSERT_EQ(run({"connection", "create", "--name", "files", "--type", "jsonl", "--setting",
                 "directory=" + (with_refresh.dir() / "out").string(), "--accept-privacy-terms"})
                .code,
            0);
  ASSERT_EQ(run({"segment", "create", "--name", "R", "--from-csv", csv}).code, 0);
  Result followed = run({"export", "create", "--name", "follower", "--connection", "files",
                         "--segment", "R", "--map", "email=Email", "--follow-system-refresh"});
  ASSERT_EQ(followed.code, 0) << followed.err;
  EXPECT_THAT(followed.out, HasSubstr("It runs system refresh"));
  Result got = run({"export", "get", "follower"});
  EXPECT_THAT(got.out, testing::ContainsRegex("Schedule: +system refresh\n"));
  EXPECT_THAT(got.out, testing::ContainsRegex("Next run: +20[0-9-]+ (02|14):00:00 UTC"));
}

// Names are the user's words: a segment in use is refused by name, with the
// exports by name; hints quote names for the shell.
TEST_F(ExportctlE2eTest, NamesWithSpacesAreNamedAndQuoted) {
  std::filesystem::create_directories(server_->dir() / "names-out");
  ASSERT_EQ(Run({"connection", "create", "--name", "name-files", "--type", "jsonl", "--setting",
                 "directory=" + (server_->dir() / "names-out").string(), "--accept-privacy-terms"})
                .code,
            0);
  std::string csv = WriteFile("names.csv", "Email\na@example.com\n");
  ASSERT_EQ(Run({"segment", "create", "--name", "VIP Customers", "--from-csv", csv}).code, 0);
  Result created = Run({"export", "create", "--name", "VIP to files", "--connection",
                        "name-files", "--segment", "VIP Customers", "--map", "email=Email"});
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_THAT(created.out,
              HasSubstr("run it now with: exportctl export run 'VIP to files' --watch\n"));

  Result in_use = Run({"segment", "delete", "VIP Customers"});
  EXPECT_EQ(in_use.code, 1);
  EXPECT_THAT(in_use.err, StartsWith("error: FAILED_PRECONDITION: segment 'VIP Customers' is used "
                                     "by exports: VIP to files; "));
  const std::string segment_id = Json({"segment", "get", "VIP Customers"})["id"];
  EXPECT_THAT(in_use.err, Not(HasSubstr(segment_id)));

  Result detached = Run({"export", "detach", "VIP to files"});
  ASSERT_EQ(detached.code, 0) << detached.err;
  EXPECT_THAT(detached.out,
              HasSubstr("with: exportctl export update 'VIP to files' --connection NAME\n"));
}

// A contributor sees a connection's name and type only: `connection get`
// leaves out what it may not see instead of printing it empty.
TEST(ExportctlContributorE2eTest, ConnectionGetLeavesOutWhatAContributorMayNotSee) {
  const std::filesystem::path tokens = std::filesystem::temp_directory_path() /
                                       ("exportctl-e2e-role-tokens-" + std::to_string(::getpid()));
  const std::string admin(40, 'a'), contributor(40, 'c');
  std::ofstream(tokens) << admin << " alice admin\n" << contributor << " bob contributor\n";
  std::filesystem::permissions(tokens,
                               std::filesystem::perms::owner_read |
                                   std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  ExportdProcess server("exportctl-e2e-roles", {"--tokens-file", tokens.string()});
  ASSERT_FALSE(server.address().empty()) << server.log();
  auto as = [&](const std::string& token, std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", server.address()});
    return RunWithEnv(args, {{"EXPORTD_TOKEN", token}});
  };
  std::filesystem::create_directories(server.dir() / "out");
  ASSERT_EQ(as(admin, {"connection", "create", "--name", "shared files", "--type", "jsonl",
                       "--setting", "directory=" + (server.dir() / "out").string(),
                       "--share-with-contributors", "--accept-privacy-terms"})
                .code,
            0);
  Result full = as(admin, {"connection", "get", "shared files"});
  ASSERT_EQ(full.code, 0) << full.err;
  EXPECT_THAT(full.out, HasSubstr("Created by:"));
  EXPECT_THAT(full.out, HasSubstr("alice"));

  Result limited = as(contributor, {"connection", "get", "shared files"});
  ASSERT_EQ(limited.code, 0) << limited.err;
  EXPECT_THAT(limited.out, HasSubstr("Name:"));
  EXPECT_THAT(limited.out, HasSubstr("shared files"));
  EXPECT_THAT(limited.out, HasSubstr("Type:"));
  for (const char* hidden : {"Created by", "Consent accepted", "Settings", "Created:", "Updated:"}) {
    EXPECT_THAT(limited.out, Not(HasSubstr(hidden))) << limited.out;
  }
  // No line ends right after its label.
  EXPECT_THAT(limited.out, Not(testing::ContainsRegex(":[ ]*\n"))) << limited.out;
  std::filesystem::remove(tokens);
}

// The lease and retry flags: the replica id shows in `run get` next to the
// attempt; bad values are refused before exportd listens.
TEST(ExportdLeaseFlagsE2eTest, ReplicaIdShowsInRunGetAndBadValuesAreRefused) {
  ExportdProcess server("exportctl-e2e-replica",
                        {"--replica-id", "replica-7", "--lease-seconds", "5", "--run-attempts",
                         "2", "--run-retry-backoff", "2m"});
  ASSERT_FALSE(server.address().empty()) << server.log();
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", server.address()});
    return RunWithEnv(args, {{"EXPORTD_DATA_DIR", server.data_dir().string()}});
  };
  std::filesystem::create_directories(server.dir() / "out");
  ASSERT_EQ(run({"connection", "create", "--name", "files", "--type", "jsonl", "--setting",
                 "directory=" + (server.dir() / "out").string(), "--accept-privacy-terms"})
                .code,
            0);
  const std::string csv = (server.dir() / "r.csv").string();
  std::ofstream(csv) << "Email\na@example.com\n";
  ASSERT_EQ(run({"segment", "create", "--name", "R", "--from-csv", csv}).code, 0);
  ASSERT_EQ(
      run({"export", "create", "--name", "r", "--connection", "files", "--segment", "R", "--map",
           "email=Email"})
          .code,
      0);
  Result watched = run({"export", "run", "r", "--watch"});
  ASSERT_EQ(watched.code, 0) << watched.err;
  Result runs = run({"--output", "json", "export", "runs", "r"});
  ASSERT_EQ(runs.code, 0) << runs.err;
  nlohmann::json first = nlohmann::json::parse(runs.out)["runs"][0];
  EXPECT_EQ(first["replica"], "replica-7");
  EXPECT_EQ(first["attempt"], 1);
  Result got = run({"run", "get", first["id"].get<std::string>()});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_THAT(got.out, HasSubstr("Replica"));
  EXPECT_THAT(got.out, HasSubstr("replica-7"));

  for (const auto& [flag, value, says] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"--run-retry-backoff", "soon", "--run-retry-backoff 'soon' is not a duration"},
           {"--run-attempts", "0", "--run-attempts must be a whole number of at least 1"},
           {"--lease-seconds", "x", "--lease-seconds must be a whole number of at least 1"}}) {
    ExportdProcess refused("exportctl-e2e-bad-flag", {flag, value}, /*must_listen=*/false);
    EXPECT_TRUE(refused.address().empty()) << flag;
    EXPECT_THAT(refused.log(), HasSubstr(says));
  }
}

TEST_F(ExportctlE2eTest, DestinationsListTheLoadedPlugins) {
  nlohmann::json destinations = Json({"destination", "list"});
  bool jsonl = false;
  for (const auto& d : destinations["destinations"]) jsonl |= d["name"] == "jsonl";
  EXPECT_TRUE(jsonl) << destinations.dump();
  Result table = Run({"destination", "get", "jsonl"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("directory"));
}

// `exportctl token hash --new` makes a token and a tokens-file line that holds
// only its hash; exportd started with that file accepts the token.
TEST(ExportctlTokenE2eTest, ATokenFromTokenHashAuthenticatesWithExportd) {
  Result made = RunWithEnv({"-o", "json", "token", "hash", "--new", "--principal", "segment-sync",
                            "--role", "contributor"},
                           {});
  ASSERT_EQ(made.code, 0) << made.err;
  nlohmann::json json = nlohmann::json::parse(made.out);
  const std::string token = json["token"];
  const std::filesystem::path tokens = std::filesystem::temp_directory_path() /
                                       ("exportctl-e2e-tokens-" + std::to_string(::getpid()));
  std::ofstream(tokens) << json["line"].get<std::string>() << "\n";
  std::filesystem::permissions(tokens, std::filesystem::perms::owner_read,
                               std::filesystem::perm_options::replace);
  ExportdProcess server("exportctl-e2e-hashed", {"--tokens-file", tokens.string()});
  ASSERT_FALSE(server.address().empty()) << server.log();

  Result who =
      RunWithEnv({"-o", "json", "--server", server.address(), "whoami"}, {{"EXPORTD_TOKEN", token}});
  ASSERT_EQ(who.code, 0) << who.err;
  EXPECT_EQ(nlohmann::json::parse(who.out)["principal"], "segment-sync");
  EXPECT_EQ(nlohmann::json::parse(who.out)["role"], "ROLE_CONTRIBUTOR");

  const std::string wrong = "wrong-" + token.substr(6);
  Result refused = RunWithEnv({"--server", server.address(), "whoami"}, {{"EXPORTD_TOKEN", wrong}});
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, StartsWith("error: UNAUTHENTICATED: "));
  // Logged with the caller's address, never with the token.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (server.log().find("authentication failed") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_THAT(server.log(), HasSubstr("exportd: authentication failed: unknown token (principal "
                                      "unknown) from ipv4:127.0.0.1:"));
  EXPECT_THAT(server.log(), Not(HasSubstr(token.substr(6, 16))));
  std::filesystem::remove(tokens);
}

TEST(ExportctlTokenE2eTest, ExportdRefusesATokensFileOthersCanRead) {
  const std::filesystem::path tokens = std::filesystem::temp_directory_path() /
                                       ("exportctl-e2e-open-tokens-" + std::to_string(::getpid()));
  std::ofstream(tokens) << std::string(40, 'a') << " alice admin\n";
  std::filesystem::permissions(tokens,
                               std::filesystem::perms::owner_read |
                                   std::filesystem::perms::owner_write |
                                   std::filesystem::perms::others_read,
                               std::filesystem::perm_options::replace);
  ExportdProcess server("exportctl-e2e-open", {"--tokens-file", tokens.string()},
                        /*must_listen=*/false);
  EXPECT_TRUE(server.address().empty());
  EXPECT_THAT(server.log(), HasSubstr("--tokens-file '" + tokens.string() +
                                      "' is readable by group or others (mode 0604); run "
                                      "'chmod 600 " +
                                      tokens.string() + "'"));
  std::filesystem::remove(tokens);
}

}  // namespace
}  // namespace exportd::client
