// The seed feature end to end: iterable-sandbox and exportd as real processes,
// exportctl in-process. A segment of 10,000 profiles (some invalid emails,
// some upper-case) goes to an Iterable list named exactly as the segment; a
// run killed with SIGKILL mid-way resumes after a restart and ends in the
// same destination state and counts.
#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "client/exportctl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"

namespace exportd {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr char kApiKey[] = "e2e-api-key-0123456789abcdef0123";

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// POST (with `body`) or DELETE `url`; returns the HTTP status, 200 expected.
long HttpSend(const std::string& method, const std::string& url, const std::string& body) {
  CURL* curl = curl_easy_init();
  std::string response;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  if (method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  EXPECT_EQ(rc, CURLE_OK) << url;
  EXPECT_EQ(status, 200) << method << " " << url << ": " << response;
  return status;
}

long HttpPost(const std::string& url, const std::string& body) {
  return HttpSend("POST", url, body);
}

// POST `body` to an /api URL of the sandbox with the API key; the HTTP status.
long HttpPostWithKey(const std::string& url, const std::string& body) {
  CURL* curl = curl_easy_init();
  std::string response;
  struct curl_slist* headers =
      curl_slist_append(nullptr, (std::string("Api-Key: ") + kApiKey).c_str());
  headers = curl_slist_append(headers, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return status;
}

// The most of `micros` (sorted) in any window of `window_micros`.
int MaxInWindow(const std::vector<std::int64_t>& micros, std::int64_t window_micros) {
  int best = 0;
  size_t first = 0;
  for (size_t last = 0; last < micros.size(); ++last) {
    while (micros[last] - micros[first] >= window_micros) ++first;
    best = std::max(best, static_cast<int>(last - first + 1));
  }
  return best;
}

json HttpGetJson(const std::string& url) {
  CURL* curl = curl_easy_init();
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  EXPECT_EQ(rc, CURLE_OK) << url;
  return json::parse(body, nullptr, /*allow_exceptions=*/false);
}

class IterableE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = std::filesystem::temp_directory_path() / "iterable_e2eXXXXXX";
    dir_ = mkdtemp(dir.data());
    sandbox_ = std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{SANDBOX_BINARY, "--listen", "127.0.0.1:0", "--api-key", kApiKey},
        dir_ + "/sandbox.log");
    sandbox_port_ = sandbox_->WaitForPort();
    ASSERT_GT(sandbox_port_, 0) << sandbox_->Log();
    StartExportd();
  }
  void TearDown() override {
    exportd_.reset();
    sandbox_.reset();
    std::filesystem::remove_all(dir_);
  }
  void StartExportd(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {EXPORTD_BINARY, "--listen",     "127.0.0.1:0",
                                     "--data-dir",   dir_ + "/data", "--plugin-dir",
                                     EXPORTD_PLUGIN_DIR};
    args.insert(args.end(), extra.begin(), extra.end());
    exportd_ = std::make_unique<testing::ChildProcess>(
        args, dir_ + "/exportd-" + std::to_string(++starts_) + ".log");
    exportd_port_ = exportd_->WaitForPort();
    ASSERT_GT(exportd_port_, 0) << exportd_->Log();
  }
  // The port of exportd's /metrics, from its start-up log (--metrics-listen).
  int MetricsPort() {
    const std::regex metrics("metrics: http://127\\.0\\.0\\.1:([0-9]+)/metrics");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string log = exportd_->Log();
      std::smatch match;
      if (std::regex_search(log, match, metrics)) return std::stoi(match[1].str());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 0;
  }
  // GET http://127.0.0.1:port/path: the body.
  static std::string HttpGetText(int port, const std::string& path) {
    CURL* curl = curl_easy_init();
    std::string body;
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    EXPECT_EQ(rc, CURLE_OK) << url;
    return body;
  }
  // exportctl, as a user on this machine runs it.
  std::pair<int, std::string> Ctl(std::vector<std::string> args) {
    args.insert(args.begin(),
                {"exportctl", "--server", "127.0.0.1:" + std::to_string(exportd_port_)});
    std::map<std::string, std::string> env = {{"EXPORTD_DATA_DIR", dir_ + "/data"},
                                              {"ITERABLE_API_KEY", kApiKey}};
    std::ostringstream out, err;
    std::istringstream in;
    int code = client::RunExportctl(args, out, err, in, [env](const std::string& name) {
      auto it = env.find(name);
      return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    return {code, out.str() + err.str()};
  }
  json CtlJson(std::vector<std::string> args) {
    args.insert(args.begin(), {"--output", "json"});
    auto [code, text] = Ctl(args);
    EXPECT_EQ(code, 0) << text;
    return json::parse(text, nullptr, false);
  }
  // Profiles p1..pN; every 50th email invalid, every 7th upper-case.
  std::string WriteCsv(int n) {
    std::string path = dir_ + "/segment.csv";
    std::ofstream csv(path);
    csv << "ProfileId,Email,FirstName,Points\n";
    for (int i = 1; i <= n; ++i) {
      std::string email = "user" + std::to_string(i) + (i % 50 == 0 ? "@invalid" : "@example.com");
      if (i % 7 == 0) {
        for (char& ch : email) ch = static_cast<char>(std::toupper(ch));
      }
      csv << "p" << i << "," << email << ",Name" << i << "," << i % 100 << "\n";
    }
    return path;
  }
  void CreateExport(int profiles, const std::string& segment) {
    auto [code, text] = Ctl({"connection", "create", "--name", "Iterable sandbox", "--type",
                             "iterable", "--setting",
                             "base_url=http://127.0.0.1:" + std::to_string(sandbox_port_),
                             "--secret", "api_key=env:ITERABLE_API_KEY",
                             "--accept-privacy-terms"});
    ASSERT_EQ(code, 0) << text;
    std::tie(code, text) = Ctl({"segment", "create", "--name", segment, "--from-csv",
                                WriteCsv(profiles), "--id-field", "ProfileId", "--field",
                                "Points:int"});
    ASSERT_EQ(code, 0) << text;
    std::tie(code, text) =
        Ctl({"export", "create", "--name", "vip", "--connection", "Iterable sandbox",
             "--segment", segment, "--map", "email=Email", "--map", "firstName=FirstName",
             "--map", "points=Points"});
    ASSERT_EQ(code, 0) << text;
  }
  // Starts the sandbox again with `extra` flags (e.g. --project-type user_id).
  void RestartSandbox(const std::vector<std::string>& extra) {
    sandbox_.reset();
    std::vector<std::string> args = {SANDBOX_BINARY, "--listen", "127.0.0.1:0", "--api-key",
                                     kApiKey};
    args.insert(args.end(), extra.begin(), extra.end());
    sandbox_ = std::make_unique<testing::ChildProcess>(
        args, dir_ + "/sandbox-" + std::to_string(++sandbox_starts_) + ".log");
    sandbox_port_ = sandbox_->WaitForPort();
    ASSERT_GT(sandbox_port_, 0) << sandbox_->Log();
  }
  // The members of the only list named `name`, by userId: their email ("" if none).
  std::map<std::string, std::string> MembersByUserId(const std::string& name) {
    std::map<std::string, std::string> out;
    for (const json& list : HttpGetJson(SandboxUrl("/_sandbox/lists"))) {
      if (list["name"] != name) continue;
      for (const json& m : HttpGetJson(SandboxUrl(
               "/_sandbox/lists/" + std::to_string(list["id"].get<std::int64_t>()) + "/members"))) {
        out[m.value("userId", "")] = m.value("email", "");
      }
    }
    return out;
  }
  std::string SandboxUrl(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(sandbox_port_) + path;
  }
  // When the sandbox received each subscribe request (any answer), at or
  // after `since_micros`, in microseconds since the epoch, sorted.
  std::vector<std::int64_t> SubscribeTimes(std::int64_t since_micros = 0) {
    std::vector<std::int64_t> out;
    for (const json& r : HttpGetJson(SandboxUrl("/_sandbox/requests"))) {
      if (r["route"] != "POST /api/lists/subscribe") continue;
      std::int64_t at = r["atMicros"].get<std::int64_t>();
      if (at >= since_micros) out.push_back(at);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  void CreateConnection(const std::vector<std::string>& settings) {
    std::vector<std::string> args = {"connection", "create", "--name", "Iterable sandbox",
                                     "--type", "iterable", "--setting",
                                     "base_url=" + SandboxUrl("")};
    for (const std::string& s : settings) {
      args.push_back("--setting");
      args.push_back(s);
    }
    for (const char* a : {"--secret", "api_key=env:ITERABLE_API_KEY", "--accept-privacy-terms"}) {
      args.push_back(a);
    }
    auto [code, text] = Ctl(args);
    ASSERT_EQ(code, 0) << text;
  }
  void CreateSegmentAndExport(const std::string& segment, const std::string& export_name,
                              int profiles) {
    auto [code, text] = Ctl({"segment", "create", "--name", segment, "--from-csv",
                             WriteCsv(profiles), "--id-field", "ProfileId"});
    ASSERT_EQ(code, 0) << text;
    std::tie(code, text) = Ctl({"export", "create", "--name", export_name, "--connection",
                                "Iterable sandbox", "--segment", segment, "--map",
                                "email=Email"});
    ASSERT_EQ(code, 0) << text;
  }
  // Polls the run until it is final; returns it.
  json WaitForRun(const std::string& run_id) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    json run;
    while (std::chrono::steady_clock::now() < deadline) {
      run = CtlJson({"run", "get", run_id});
      std::string state = run.value("state", "");
      if (state != "RUN_STATE_QUEUED" && state != "RUN_STATE_RUNNING" &&
          state != "RUN_STATE_FAILED_RETRYING") {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return run;
  }

  // The sandbox's members of the list named `name`, by email.
  std::map<std::string, json> ListMembers(const std::string& name) {
    std::string base = "http://127.0.0.1:" + std::to_string(sandbox_port_) + "/_sandbox/lists";
    json lists = HttpGetJson(base);
    std::map<std::string, json> out;
    int matches = 0;
    for (const auto& list : lists) {
      if (list["name"] != name) continue;
      ++matches;
      json members =
          HttpGetJson(base + "/" + std::to_string(list["id"].get<std::int64_t>()) + "/members");
      for (const auto& m : members) out[m["email"].get<std::string>()] = m["dataFields"];
    }
    EXPECT_EQ(matches, 1) << lists.dump();
    return out;
  }
  void ExpectAllValidMembersDelivered(int profiles, const std::string& segment) {
    auto members = ListMembers(segment);
    int valid = profiles - profiles / 50;
    EXPECT_EQ(static_cast<int>(members.size()), valid);
    for (int i : {1, 7, 49, 343, profiles - 1}) {
      if (i % 50 == 0) continue;
      std::string email = "user" + std::to_string(i) + "@example.com";  // lowercase
      ASSERT_TRUE(members.count(email)) << email;
      EXPECT_EQ(members[email]["firstName"], "Name" + std::to_string(i));
      EXPECT_EQ(members[email]["points"], i % 100);
    }
    EXPECT_FALSE(members.count("user50@invalid"));
  }

  std::string dir_;
  std::unique_ptr<testing::ChildProcess> sandbox_, exportd_;
  int sandbox_port_ = 0, exportd_port_ = 0, starts_ = 0, sandbox_starts_ = 0;
};

TEST_F(IterableE2eTest, SegmentOfTenThousandProfilesReachesAListNamedAsTheSegment) {
  const int kProfiles = 10000;
  CreateExport(kProfiles, "VIP Customers (EU)");
  auto [code, text] = Ctl({"export", "run", "vip", "--watch"});
  EXPECT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("SUCCEEDED_WITH_REJECTIONS"));
  ExpectAllValidMembersDelivered(kProfiles, "VIP Customers (EU)");

  json runs = CtlJson({"export", "runs", "vip"});
  json run = runs.is_array() ? runs[0] : runs["runs"][0];
  const json& segment = run["segments"][0];
  EXPECT_EQ(std::stoi(segment["added"].get<std::string>()), kProfiles - kProfiles / 50);
  EXPECT_EQ(std::stoi(segment["rejected"].get<std::string>()), kProfiles / 50);
  json rejections = CtlJson({"run", "rejections", run["id"], "--limit", "1000"});
  json list = rejections.is_array() ? rejections : rejections["rejections"];
  ASSERT_EQ(list.size(), static_cast<size_t>(kProfiles / 50));
  std::set<std::string> rejected;
  for (const auto& r : list) {
    rejected.insert(r["profile_id"].get<std::string>());
    EXPECT_EQ(r["field"], "email");
  }
  EXPECT_TRUE(rejected.count("p50"));
  EXPECT_TRUE(rejected.count("p10000"));

  // Nothing changed: the next run sends nothing and still ends well.
  std::tie(code, text) = Ctl({"export", "run", "vip", "--watch"});
  EXPECT_EQ(code, 0) << text;
  // The API key never shows up in exportd's log.
  EXPECT_EQ(exportd_->Log().find(kApiKey), std::string::npos);
}

// A wrong API key is caught when the connection is created: exportd tests it
// against Iterable first (the sandbox refuses keys it was not started with)
// and saves nothing; --no-test saves it untested.
TEST_F(IterableE2eTest, ConnectionWithAWrongApiKeyIsNotSaved) {
  const std::string wrong_key = dir_ + "/wrong.key";
  std::ofstream(wrong_key) << "not-the-sandbox-key-0123456789abcdef";
  const std::vector<std::string> create = {"connection",
                                           "create",
                                           "--name",
                                           "Wrong key",
                                           "--type",
                                           "iterable",
                                           "--setting",
                                           "base_url=" + SandboxUrl(""),
                                           "--secret",
                                           "api_key=@" + wrong_key,
                                           "--accept-privacy-terms"};
  auto [code, text] = Ctl(create);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(text, HasSubstr("error: FAILED_PRECONDITION: connection 'Wrong key' was not saved: "
                              "testing it against destination 'iterable' failed: "
                              "UNAUTHENTICATED: Iterable rejected the API key (BadApiKey)"));
  EXPECT_THAT(text, HasSubstr("--no-test"));
  EXPECT_EQ(text.find("not-the-sandbox-key"), std::string::npos) << text;
  EXPECT_EQ(CtlJson({"connection", "list"})["connections"].size(), 0u);

  std::vector<std::string> untested = create;
  untested.push_back("--no-test");
  std::tie(code, text) = Ctl(untested);
  ASSERT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("Created connection 'Wrong key'"));
  EXPECT_THAT(text, HasSubstr("Not tested (--no-test)"));
  json connections = CtlJson({"connection", "list"});
  ASSERT_EQ(connections["connections"].size(), 1u);
  // The right key passes the test.
  std::tie(code, text) = Ctl({"connection", "create", "--name", "Right key", "--type", "iterable",
                              "--setting", "base_url=" + SandboxUrl(""), "--secret",
                              "api_key=env:ITERABLE_API_KEY", "--accept-privacy-terms"});
  ASSERT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("Tested: the destination accepted it."));
}

TEST_F(IterableE2eTest, RunKilledWithSigkillResumesAfterRestartWithNothingLostOrCountedTwice) {
  const int kProfiles = 30000;
  CreateExport(kProfiles, "Big Segment");
  // Slow the destination down so the run is caught mid-way.
  std::string faults = "http://127.0.0.1:" + std::to_string(sandbox_port_) + "/_sandbox/faults";
  {
    CURL* curl = curl_easy_init();
    std::string body = R"({"latencyMs": 150})", response;
    curl_easy_setopt(curl, CURLOPT_URL, faults.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    ASSERT_EQ(curl_easy_perform(curl), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    ASSERT_EQ(status, 200) << response;
  }
  json run = CtlJson({"export", "run", "vip"});
  std::string run_id = run["id"];
  // Wait until some, but not all, batches are committed; then kill -9.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::int64_t added_before = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    json got = CtlJson({"run", "get", run_id});
    if (got.contains("segments") && got["segments"][0].contains("added")) {
      added_before = std::stoll(got["segments"][0]["added"].get<std::string>());
    }
    if (added_before >= 3000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  exportd_->Stop(SIGKILL);
  ASSERT_GE(added_before, 3000);
  ASSERT_LT(added_before, kProfiles - kProfiles / 50) << "the run ended before the kill";

  StartExportd();
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  json final_run;
  while (std::chrono::steady_clock::now() < deadline) {
    final_run = CtlJson({"run", "get", run_id});
    std::string state = final_run.value("state", "");
    if (state != "RUN_STATE_QUEUED" && state != "RUN_STATE_RUNNING") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(final_run["state"], "RUN_STATE_SUCCEEDED_WITH_REJECTIONS") << final_run.dump();
  const json& segment = final_run["segments"][0];
  EXPECT_EQ(std::stoi(segment["added"].get<std::string>()), kProfiles - kProfiles / 50);
  EXPECT_EQ(std::stoi(segment["rejected"].get<std::string>()), kProfiles / 50);
  EXPECT_EQ(std::stoi(segment.value("updated", std::string("0"))), 0)
      << "resent members must not count as updates";
  EXPECT_EQ(final_run["attempt"], 2) << "one attempt before the kill, one after";
  ExpectAllValidMembersDelivered(kProfiles, "Big Segment");
}

// Mirror mode keyed by the email Iterable keys by: a changed email removes the
// old one, a shared email stays while a member has it and is sent once, an
// email that became invalid is removed. A dry run finds the same.
TEST_F(IterableE2eTest, MirrorModeIsKeyedByTheEmailIterableKeysBy) {
  auto write = [&](const std::string& name, const std::string& rows) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "ProfileId,Email,FirstName,Points\n" << rows;
    return path;
  };
  auto [code, text] = Ctl({"connection", "create", "--name", "Iterable sandbox", "--type",
                           "iterable", "--setting",
                           "base_url=http://127.0.0.1:" + std::to_string(sandbox_port_),
                           "--secret", "api_key=env:ITERABLE_API_KEY", "--accept-privacy-terms"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"segment", "create", "--name", "Mirror", "--from-csv",
                              write("one.csv",
                                    "p1,x1@example.com,One,1\n"
                                    "p2,x2@example.com,Two,2\n"
                                    "p3,shared@example.com,Three,3\n"
                                    "p4,Shared@Example.com ,Four,4\n"),
                              "--id-field", "ProfileId", "--field", "Points:int"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "create", "--name", "vip", "--connection",
                              "Iterable sandbox", "--segment", "Mirror", "--map", "email=Email",
                              "--map", "firstName=FirstName", "--map", "points=Points"});
  ASSERT_EQ(code, 0) << text;
  auto count = [](const json& segment, const char* name) {
    return segment.contains(name) ? std::stoll(segment[name].get<std::string>()) : 0;
  };
  // Runs a dry run then the real run; both must find the same.
  auto dry_then_run = [&]() -> json {
    auto [code, text] = Ctl({"export", "run", "vip", "--dry-run"});
    EXPECT_EQ(code, 0) << text;
    std::tie(code, text) = Ctl({"export", "run", "vip", "--watch"});
    json runs = CtlJson({"export", "runs", "vip"});
    json list = runs.is_array() ? runs : runs["runs"];
    const json& real = list[0]["segments"][0];
    const json& dry = list[1]["segments"][0];
    EXPECT_TRUE(list[1].value("dry_run", false)) << list.dump();
    for (const char* name : {"to_add", "to_update", "to_remove", "unchanged", "duplicates"}) {
      EXPECT_EQ(count(dry, name), count(real, name)) << name << ": " << list.dump();
    }
    return list[0];
  };

  json first = dry_then_run();
  EXPECT_EQ(first["state"], "RUN_STATE_SUCCEEDED") << first.dump();
  EXPECT_EQ(count(first["segments"][0], "added"), 3);
  EXPECT_EQ(count(first["segments"][0], "duplicates"), 1);
  auto members = ListMembers("Mirror");
  EXPECT_EQ(members.size(), 3u);
  ASSERT_TRUE(members.count("shared@example.com"));
  EXPECT_EQ(members["shared@example.com"]["firstName"], "Four") << "the greatest profile id wins";
  json rejections = CtlJson({"run", "rejections", first["id"]});
  json list = rejections.is_array() ? rejections : rejections["rejections"];
  ASSERT_EQ(list.size(), 1u) << rejections.dump();
  EXPECT_EQ(list[0]["profile_id"], "p3");
  EXPECT_EQ(list[0]["reason_code"], "duplicate_identifier");
  EXPECT_THAT(list[0]["message"].get<std::string>(), HasSubstr("'p4', which won"));
  // `run get` shows the duplicates in a column of their own.
  std::tie(code, text) = Ctl({"run", "get", first["id"].get<std::string>()});
  EXPECT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("DUPLICATES")) << text;

  // p1 changes its email, p2's becomes invalid, p3 leaves (p4 keeps shared@).
  std::tie(code, text) = Ctl({"segment", "upload", "Mirror", "--from-csv",
                              write("two.csv",
                                    "p1,x1new@example.com,One,1\n"
                                    "p2,x2@invalid,Two,2\n"
                                    "p4,Shared@Example.com ,Four,4\n"),
                              "--id-field", "ProfileId", "--field", "Points:int"});
  ASSERT_EQ(code, 0) << text;
  json second = dry_then_run();
  EXPECT_EQ(second["state"], "RUN_STATE_SUCCEEDED_WITH_REJECTIONS") << second.dump();
  const json& p = second["segments"][0];
  EXPECT_EQ(count(p, "added"), 1);
  EXPECT_EQ(count(p, "removed"), 2);  // x1@ and x2@
  EXPECT_EQ(count(p, "rejected"), 1);
  EXPECT_EQ(count(p, "unchanged"), 1);
  members = ListMembers("Mirror");
  EXPECT_EQ(members.size(), 2u);
  EXPECT_TRUE(members.count("x1new@example.com"));
  EXPECT_TRUE(members.count("shared@example.com"));
  EXPECT_FALSE(members.count("x1@example.com"));
  EXPECT_FALSE(members.count("x2@example.com"));
  rejections = CtlJson({"run", "rejections", second["id"]});
  list = rejections.is_array() ? rejections : rejections["rejections"];
  ASSERT_EQ(list.size(), 1u) << rejections.dump();
  EXPECT_EQ(list[0]["profile_id"], "p2");
  EXPECT_THAT(list[0]["message"].get<std::string>(),
              HasSubstr("previous email was removed from the audience"));
}

// Two exports on one connection, run at the same time, share the
// connection's rate: the sandbox never sees more than requests_per_second
// (plus the bucket's burst) in any window.
TEST_F(IterableE2eTest, TwoRunsOnOneConnectionStayWithinItsRate) {
  CreateConnection({"requests_per_second=4", "batch_size=50"});
  CreateSegmentAndExport("Segment A", "a", 1000);  // 20 requests.
  CreateSegmentAndExport("Segment B", "b", 1000);  // 20 requests.
  std::string run_a = CtlJson({"export", "run", "a"})["id"];
  std::string run_b = CtlJson({"export", "run", "b"})["id"];
  json a = WaitForRun(run_a), b = WaitForRun(run_b);
  EXPECT_EQ(a["state"], "RUN_STATE_SUCCEEDED_WITH_REJECTIONS") << a.dump();
  EXPECT_EQ(b["state"], "RUN_STATE_SUCCEEDED_WITH_REJECTIONS") << b.dump();
  std::vector<std::int64_t> times = SubscribeTimes();
  ASSERT_EQ(times.size(), 40u);
  // One limiter: a burst of 4, then 4 per second (one more for the time a
  // request takes to arrive). Each run with a limiter of its own would send
  // up to twice that.
  int in_1s = MaxInWindow(times, 1'000'000), in_3s = MaxInWindow(times, 3'000'000);
  std::cerr << "max subscribe requests in 1 s: " << in_1s << ", in 3 s: " << in_3s << "\n";
  EXPECT_LE(in_1s, 4 + 4 + 1);
  EXPECT_LE(in_3s, 4 + 12 + 1);
  // And the runs did overlap.
  EXPECT_LT(std::stoll(a["started_at_micros"].get<std::string>()),
            std::stoll(b["finished_at_micros"].get<std::string>()));
  EXPECT_LT(std::stoll(b["started_at_micros"].get<std::string>()),
            std::stoll(a["finished_at_micros"].get<std::string>()));
  EXPECT_EQ(ListMembers("Segment A").size(), 980u);
  EXPECT_EQ(ListMembers("Segment B").size(), 980u);
}

// The Iterable plugin reports each HTTP request it makes: /metrics counts
// them by endpoint and HTTP status (a throttled subscribe as 429), with their
// latency, and exportctl status shows the loaded plugin.
TEST_F(IterableE2eTest, MetricsCountIterableRequestsByEndpointAndHttpStatus) {
  exportd_.reset();
  StartExportd({"--metrics-listen", "127.0.0.1:0"});
  const int metrics_port = MetricsPort();
  ASSERT_GT(metrics_port, 0) << exportd_->Log();
  HttpPost(SandboxUrl("/_sandbox/faults"), R"({"rateLimits":{"subscribe":2},"retryAfterSeconds":1})");
  CreateConnection({"requests_per_second=8", "batch_size=50", "parallel_requests=1"});
  CreateSegmentAndExport("Counted", "counted", 300);  // 6 subscribe requests.
  auto [code, text] = Ctl({"export", "run", "counted", "--watch"});
  EXPECT_EQ(code, 0) << text;
  json stats = HttpGetJson(SandboxUrl("/_sandbox/stats"));
  const int throttled = stats["requests"]["POST /api/lists/subscribe"].value("429", 0);
  const int subscribed = stats["requests"]["POST /api/lists/subscribe"].value("200", 0);
  ASSERT_GE(throttled, 1) << "the run must have been throttled: " << stats.dump();

  const std::string exposition = HttpGetText(metrics_port, "/metrics");
  // The sample of one label set, e.g. requests{endpoint="/api/lists",status="200"}.
  auto sample = [&](const std::string& name, const std::string& endpoint,
                    const std::string& status) {
    std::string labels = "destination=\"iterable\",endpoint=\"" + endpoint + "\"";
    if (!status.empty()) labels += ",status=\"" + status + "\"";
    const std::regex line("(^|\n)" + name + "\\{" + labels + "\\} ([0-9.e+]+)");
    std::smatch match;
    if (!std::regex_search(exposition, match, line)) return -1.0;
    return std::stod(match[2].str());
  };
  EXPECT_EQ(sample("exportd_destination_requests_total", "/api/lists/subscribe", "200"),
            subscribed)
      << exposition;
  EXPECT_EQ(sample("exportd_destination_requests_total", "/api/lists/subscribe", "429"),
            throttled)
      << exposition;
  // The list was looked for and created.
  EXPECT_GE(sample("exportd_destination_requests_total", "/api/lists", "200"), 2) << exposition;
  EXPECT_EQ(sample("exportd_destination_request_duration_seconds_count", "/api/lists/subscribe",
                   ""),
            subscribed + throttled)
      << exposition;
  // Endpoints carry no list id and no key.
  EXPECT_EQ(exposition.find(kApiKey), std::string::npos);
  const std::regex any_endpoint("endpoint=\"([^\"]*)\"");
  std::set<std::string> endpoints;
  for (std::sregex_iterator it(exposition.begin(), exposition.end(), any_endpoint), end;
       it != end; ++it) {
    endpoints.insert((*it)[1].str());
  }
  EXPECT_EQ(endpoints, (std::set<std::string>{"/api/lists", "/api/lists/subscribe"}))
      << exposition;

  json status = CtlJson({"status"});
  ASSERT_TRUE(status["destinations"].is_array()) << status.dump();
  std::set<std::string> loaded;
  for (const json& d : status["destinations"]) loaded.insert(d["name"].get<std::string>());
  EXPECT_TRUE(loaded.count("iterable")) << status.dump();
  EXPECT_EQ(status["store_kind"], "sqlite");
  EXPECT_EQ(status["store_location"], dir_ + "/data/exportd.db");
  EXPECT_EQ(status["queued_runs"], "0");
}

// The rate a connection learned from 429s is kept: after a restart exportd
// starts there, instead of flooding the destination at the ceiling again.
TEST_F(IterableE2eTest, TheLearnedRateSurvivesARestart) {
  HttpPost(SandboxUrl("/_sandbox/faults"), R"({"rateLimits":{"subscribe":2},"retryAfterSeconds":1})");
  CreateConnection({"requests_per_second=8", "batch_size=50", "parallel_requests=1"});
  CreateSegmentAndExport("Throttled", "throttled", 600);  // 12 requests.
  auto [code, text] = Ctl({"export", "run", "throttled", "--watch"});
  EXPECT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("SUCCEEDED_WITH_REJECTIONS"));
  EXPECT_FALSE(SubscribeTimes().empty());
  json stats = HttpGetJson(SandboxUrl("/_sandbox/stats"));
  ASSERT_GE(stats["requests"]["POST /api/lists/subscribe"].value("429", 0), 1)
      << "the first run must have been throttled: " << stats.dump();

  exportd_->Stop(SIGKILL);
  StartExportd();
  const std::int64_t restarted = std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
  std::tie(code, text) = Ctl({"export", "run", "throttled", "--full", "--watch"});
  EXPECT_EQ(code, 0) << text;
  // exportd says where it starts, and keeps to it.
  std::string log = exportd_->Log();
  size_t at = log.find("requests/s, the rate learned from the destination's throttling");
  ASSERT_NE(at, std::string::npos) << "the learned rate was not used after the restart:\n" << log;
  size_t from = log.rfind("sending at most ", at);
  ASSERT_NE(from, std::string::npos);
  double learned = std::stod(log.substr(from + std::string("sending at most ").size()));
  EXPECT_LT(learned, 8);
  std::vector<std::int64_t> times = SubscribeTimes(restarted);
  ASSERT_EQ(times.size() >= 12, true) << times.size();
  int in_1s = MaxInWindow(times, 1'000'000);
  std::cerr << "learned " << learned << " requests/s; after the restart at most " << in_1s
            << " subscribe requests in 1 s\n";
  // A bucket of ceil(learned) plus a second's worth, and one for arrival jitter.
  EXPECT_LE(in_1s, 2 * static_cast<int>(std::ceil(learned)) + 1);
}

// A JSON 429 that names params.rateLimitReset (and no Retry-After) pauses the
// connection until that time: the request after a refusal arrives once the
// sandbox's bucket has a token again, so no refusal follows another. Without
// the reset the engine's backoff (250 ms, doubling) would run into the 2 s
// bucket several times in a row.
TEST_F(IterableE2eTest, ARateLimitResetIsWaitedForBeforeTheNextRequest) {
  HttpPost(SandboxUrl("/_sandbox/faults"),
           R"({"rateLimits":{"subscribe":0.5},"rateLimitReset":true})");
  CreateConnection({"requests_per_second=20", "batch_size=50", "parallel_requests=1"});
  CreateSegmentAndExport("Reset", "reset", 200);  // 4 requests.
  auto [code, text] = Ctl({"export", "run", "reset", "--watch"});
  EXPECT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("SUCCEEDED_WITH_REJECTIONS"));
  std::vector<std::string> outcomes;
  for (const json& r : HttpGetJson(SandboxUrl("/_sandbox/requests"))) {
    if (r["route"] == "POST /api/lists/subscribe") outcomes.push_back(r["outcome"]);
  }
  ASSERT_GE(std::count(outcomes.begin(), outcomes.end(), "429"), 1)
      << "the run must have been throttled";
  EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), "200"), 4);
  for (size_t i = 1; i < outcomes.size(); ++i) {
    EXPECT_FALSE(outcomes[i - 1] == "429" && outcomes[i] == "429")
        << "request " << i << " went out before the rate-limit reset";
  }
  EXPECT_THAT(exportd_->Log(), HasSubstr("pauses for"));
  EXPECT_EQ(ListMembers("Reset").size(), 196u);
}

// The list calls are the engine's to pace too: a JSON 429 with
// params.rateLimitReset on GET /api/lists (a segment's audience look-up) is
// reported to the engine, which waits on the connection's budget until the
// reset and calls again, spending no run attempt; the plugin does not retry
// it. (engine_test's AThrottledAudienceCallWaitsForTheResetThenTheRunSucceeds
// waits for resets minutes ahead, on a fake clock.)
TEST_F(IterableE2eTest, AListLookUpRateLimitedIsWaitedForByTheEngine) {
  CreateConnection({});
  for (const char* segment : {"First", "Second"}) {
    auto [code, text] = Ctl({"segment", "create", "--name", segment, "--from-csv", WriteCsv(20),
                             "--id-field", "ProfileId"});
    ASSERT_EQ(code, 0) << text;
  }
  auto [code, text] = Ctl({"export", "create", "--name", "both", "--connection", "Iterable sandbox",
                           "--segment", "First", "--segment", "Second", "--map", "email=Email"});
  ASSERT_EQ(code, 0) << text;
  // One GET /api/lists every 4 s: the second segment's look-up comes too soon.
  HttpPost(SandboxUrl("/_sandbox/faults"),
           R"({"rateLimits":{"lists":0.25},"rateLimitReset":true})");
  std::tie(code, text) = Ctl({"export", "run", "both", "--watch"});
  EXPECT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("SUCCEEDED")) << text;
  json runs = CtlJson({"export", "runs", "both"});
  json list = runs.is_array() ? runs : runs["runs"];
  ASSERT_FALSE(list.empty()) << runs.dump();
  EXPECT_EQ(list[0].value("attempt", 0), 1) << "a throttle is not a failed attempt";
  // Each GET after a 429 waits for the token the sandbox's reset named: 4 s
  // after the last one that went through.
  std::vector<std::pair<std::string, std::int64_t>> gets;  // outcome, arrival
  for (const json& r : HttpGetJson(SandboxUrl("/_sandbox/requests"))) {
    if (r["route"] != "GET /api/lists") continue;
    gets.emplace_back(r["outcome"].get<std::string>(), r["atMicros"].get<std::int64_t>());
  }
  int throttled = 0;
  std::int64_t last_ok = 0;
  for (size_t i = 0; i < gets.size(); ++i) {
    if (gets[i].first == "200") last_ok = gets[i].second;
    if (gets[i].first != "429") continue;
    ++throttled;
    ASSERT_LT(i + 1, gets.size()) << "no look-up after the 429";
    EXPECT_EQ(gets[i + 1].first, "200") << "GET /api/lists went out before the rate-limit reset";
    EXPECT_GE(gets[i + 1].second, last_ok + 4'000'000 - 1'000)
        << "GET /api/lists went out before the rate-limit reset";
  }
  EXPECT_EQ(throttled, 1) << "the second segment's look-up must have been rate-limited";
  const std::string log = exportd_->Log();
  EXPECT_THAT(log, HasSubstr("the destination throttled the call that finds or creates the "
                             "segment's audience (Iterable rate-limited GET /api/lists"))
      << log;
  EXPECT_EQ(log.find("GET /api/lists: HTTP 429"), std::string::npos) << "the plugin retried a 429";
  EXPECT_EQ(ListMembers("Second").size(), 20u);
}

// A userID-based project: the export must map userId, members go by userId,
// and the mirror diff keys by it (a changed email is an update of the same
// member, not a removal and an addition).
TEST_F(IterableE2eTest, UserIdProjectIsKeyedByUserIdFromMappingToMirror) {
  RestartSandbox({"--project-type", "user_id"});
  CreateConnection({"project_type=user_id"});
  auto write = [&](const std::string& name, const std::string& rows) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "ProfileId,UserId,Email,FirstName\n" << rows;
    return path;
  };
  const std::string long_id(53, 'u');
  auto [code, text] = Ctl({"segment", "create", "--name", "Users", "--from-csv",
                           write("one.csv", "p1,u1,x1@example.com,One\n"
                                            "p2,u2,,Two\n"
                                            "p3,u3,shared@example.com,Three\n"
                                            "p4,u4,Shared@Example.com ,Four\n"
                                            "p5," + long_id + ",x5@example.com,Five\n"),
                           "--id-field", "ProfileId"});
  ASSERT_EQ(code, 0) << text;
  // The project type decides what the export must map.
  std::tie(code, text) = Ctl({"export", "create", "--name", "users", "--connection",
                              "Iterable sandbox", "--segment", "Users", "--map", "email=Email"});
  EXPECT_NE(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("mapping for field 'userId' is missing"));
  EXPECT_THAT(text, HasSubstr("project_type is 'user_id'"));
  std::tie(code, text) = Ctl({"export", "create", "--name", "users", "--connection",
                              "Iterable sandbox", "--segment", "Users", "--map", "userId=UserId",
                              "--map", "email=Email", "--map", "firstName=FirstName"});
  ASSERT_EQ(code, 0) << text;

  std::tie(code, text) = Ctl({"export", "run", "users", "--watch"});
  EXPECT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("SUCCEEDED_WITH_REJECTIONS"));
  EXPECT_EQ(MembersByUserId("Users"),
            (std::map<std::string, std::string>{{"u1", "x1@example.com"},
                                                {"u2", ""},
                                                {"u3", "shared@example.com"},
                                                {"u4", "shared@example.com"}}))
      << "two userIds may share an email; none is a duplicate";
  json runs = CtlJson({"export", "runs", "users"});
  json list = runs.is_array() ? runs : runs["runs"];
  json rejections = CtlJson({"run", "rejections", list[0]["id"]});
  json rejected = rejections.is_array() ? rejections : rejections["rejections"];
  ASSERT_EQ(rejected.size(), 1u) << rejections.dump();
  EXPECT_EQ(rejected[0]["profile_id"], "p5");
  EXPECT_EQ(rejected[0]["reason_code"], "invalid_user_id");
  EXPECT_EQ(rejected[0]["field"], "userId");

  // p1 changes its email (same userId), p3 leaves.
  std::tie(code, text) = Ctl({"segment", "upload", "Users", "--from-csv",
                              write("two.csv", "p1,u1,x1new@example.com,One\n"
                                               "p2,u2,,Two\n"
                                               "p4,u4,Shared@Example.com ,Four\n"),
                              "--id-field", "ProfileId"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "run", "users", "--watch"});
  EXPECT_EQ(code, 0) << text;
  EXPECT_EQ(MembersByUserId("Users"),
            (std::map<std::string, std::string>{
                {"u1", "x1new@example.com"}, {"u2", ""}, {"u4", "shared@example.com"}}));
  runs = CtlJson({"export", "runs", "users"});
  list = runs.is_array() ? runs : runs["runs"];
  const json& second = list[0]["segments"][0];
  EXPECT_EQ(second.value("removed", std::string("0")), "1") << list[0].dump();
  EXPECT_EQ(second.value("added", std::string("0")), "0") << list[0].dump();
}

// A customer deletes the list in Iterable: the next run creates it again by
// the segment's exact name, sends the whole segment (not just what changed)
// and says so in its log and message.
TEST_F(IterableE2eTest, AListDeletedInIterableIsCreatedAgainWithTheWholeSegment) {
  CreateConnection({});
  CreateSegmentAndExport("Deleted Later", "deleted", 100);
  auto [code, text] = Ctl({"export", "run", "deleted", "--watch"});
  ASSERT_EQ(code, 0) << text;
  std::int64_t old_id = 0;
  for (const json& list : HttpGetJson(SandboxUrl("/_sandbox/lists"))) {
    if (list["name"] == "Deleted Later") old_id = list["id"].get<std::int64_t>();
  }
  ASSERT_GT(old_id, 0);
  HttpSend("DELETE", SandboxUrl("/_sandbox/lists/" + std::to_string(old_id)), "");

  std::tie(code, text) = Ctl({"export", "run", "deleted", "--watch"});
  EXPECT_EQ(code, 0) << text;
  EXPECT_EQ(ListMembers("Deleted Later").size(), 98u) << "the whole segment, not a diff";
  json runs = CtlJson({"export", "runs", "deleted"});
  json list = runs.is_array() ? runs : runs["runs"];
  const std::string message = list[0].value("message", "");
  EXPECT_THAT(message, HasSubstr(std::to_string(old_id) + " used before no longer exists"));
  EXPECT_THAT(message, HasSubstr("sent the whole segment"));
  EXPECT_THAT(exportd_->Log(), HasSubstr("used before no longer exists"));
  // And the run after that is a diff against the new list again.
  std::tie(code, text) = Ctl({"export", "run", "deleted", "--watch"});
  EXPECT_EQ(code, 0) << text;
  runs = CtlJson({"export", "runs", "deleted"});
  list = runs.is_array() ? runs : runs["runs"];
  EXPECT_EQ(list[0].value("message", "").find("no longer exists"), std::string::npos)
      << list[0].dump();
  EXPECT_EQ(list[0]["segments"][0].value("added", std::string("0")), "0") << list[0].dump();
}

// A user forgotten in Iterable (a privacy deletion) is rejected as
// `forgotten` once and not sent again while its email stays the same.
TEST_F(IterableE2eTest, AForgottenUserIsRejectedOnceAndNotSentAgain) {
  HttpPost(SandboxUrl("/_sandbox/forget"), R"({"email":"User3@example.com"})");
  CreateExport(20, "VIP");
  auto [code, text] = Ctl({"export", "run", "vip", "--watch"});
  ASSERT_EQ(code, 0) << text;
  json runs = CtlJson({"export", "runs", "vip"});
  json list = runs.is_array() ? runs : runs["runs"];
  json rejections = CtlJson({"run", "rejections", list[0]["id"]});
  json rejected = rejections.is_array() ? rejections : rejections["rejections"];
  ASSERT_EQ(rejected.size(), 1u) << rejections.dump();
  EXPECT_EQ(rejected[0]["reason_code"], "forgotten");
  EXPECT_EQ(rejected[0]["profile_id"], "p3");
  EXPECT_EQ(ListMembers("VIP").size(), 19u);

  // The next run sends nothing: p3 is not retried.
  const std::int64_t since = absl::ToUnixMicros(absl::Now());
  std::tie(code, text) = Ctl({"export", "run", "vip", "--watch"});
  ASSERT_EQ(code, 0) << text;
  EXPECT_TRUE(SubscribeTimes(since).empty());
  runs = CtlJson({"export", "runs", "vip"});
  list = runs.is_array() ? runs : runs["runs"];
  EXPECT_EQ(list[0]["segments"][0].value("rejected", std::string("0")), "0") << list[0].dump();
}

// A data field of another type than Iterable holds is rejected with the data
// field as the rejection's FIELD, not the email.
TEST_F(IterableE2eTest, ATypeMismatchNamesTheDataField) {
  CreateExport(20, "Typed");  // points as integers.
  auto [code, text] = Ctl({"export", "run", "vip", "--watch"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"segment", "create", "--name", "Untyped", "--from-csv",
                              WriteCsv(20), "--id-field", "ProfileId"});  // points as text.
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "create", "--name", "text points", "--connection",
                              "Iterable sandbox", "--segment", "Untyped", "--map", "email=Email",
                              "--map", "points=Points"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "run", "text points", "--watch"});
  EXPECT_EQ(code, 0) << text;
  json runs = CtlJson({"export", "runs", "text points"});
  json list = runs.is_array() ? runs : runs["runs"];
  json rejections = CtlJson({"run", "rejections", list[0]["id"]});
  json rejected = rejections.is_array() ? rejections : rejections["rejections"];
  int mismatches = 0;
  for (const json& r : rejected) {
    if (r["reason_code"] != "invalid_data") continue;
    ++mismatches;
    EXPECT_EQ(r["field"], "points") << r.dump();
    EXPECT_THAT(r["message"].get<std::string>(), HasSubstr("data field 'points' (text here)"));
  }
  EXPECT_EQ(mismatches, 20 - 20 / 50) << rejections.dump();
}

// A change of the connection's project_type: what was delivered was keyed by
// another identifier, so the next run sends every member again (and says
// why) without removing anyone who is still in the segment; a member who
// left is removed by the identifier the project now keys by.
TEST_F(IterableE2eTest, AChangedProjectTypeMakesTheNextRunAFullResync) {
  CreateConnection({"project_type=email"});
  auto write = [&](const std::string& name, const std::string& rows) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "ProfileId,UserId,Email\n" << rows;
    return path;
  };
  auto [code, text] = Ctl({"segment", "create", "--name", "Keyed", "--from-csv",
                           write("one.csv",
                                 "p1,u1,x1@example.com\n"
                                 "p2,u2,x2@example.com\n"
                                 "p3,u3,x3@example.com\n"),
                           "--id-field", "ProfileId"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) =
      Ctl({"export", "create", "--name", "keyed", "--connection", "Iterable sandbox", "--segment",
           "Keyed", "--map", "email=Email", "--map", "userId=UserId"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "run", "keyed", "--watch"});
  ASSERT_EQ(code, 0) << text;
  auto latest = [&] {
    json runs = CtlJson({"export", "runs", "keyed"});
    json list = runs.is_array() ? runs : runs["runs"];
    return list[0];
  };
  auto count = [](const json& run, const char* name) {
    const json& p = run["segments"][0];
    return p.contains(name) ? std::stoll(p[name].get<std::string>()) : 0;
  };
  EXPECT_EQ(count(latest(), "added"), 3) << latest().dump();

  std::tie(code, text) =
      Ctl({"connection", "update", "Iterable sandbox", "--setting", "project_type=user_id"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"segment", "upload", "Keyed", "--from-csv",
                              write("two.csv",
                                    "p1,u1,x1@example.com\n"
                                    "p2,u2,x2@example.com\n"),
                              "--id-field", "ProfileId"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "run", "keyed", "--watch"});
  ASSERT_EQ(code, 0) << text;
  json full = latest();
  EXPECT_EQ(full["state"], "RUN_STATE_SUCCEEDED") << full.dump();
  EXPECT_EQ(count(full, "updated"), 2) << "every member sent again: " << full.dump();
  EXPECT_EQ(count(full, "added"), 0) << full.dump();
  EXPECT_EQ(count(full, "removed"), 1) << "only the member who left: " << full.dump();
  const std::string message = full.value("message", "");
  EXPECT_THAT(message, HasSubstr("a full resync"));
  EXPECT_THAT(message, HasSubstr("members are now keyed by userId (project_type user_id)"));
  EXPECT_THAT(exportd_->Log(), HasSubstr("a full resync"));
  EXPECT_EQ(MembersByUserId("Keyed"), (std::map<std::string, std::string>{
                                          {"u1", "x1@example.com"}, {"u2", "x2@example.com"}}));

  // The run after that is incremental again.
  std::tie(code, text) = Ctl({"export", "run", "keyed", "--watch"});
  ASSERT_EQ(code, 0) << text;
  json next = latest();
  EXPECT_EQ(count(next, "updated"), 0) << next.dump();
  EXPECT_EQ(next.value("message", "").find("full resync"), std::string::npos) << next.dump();
}

// `export delete --delete-audiences` deletes the Iterable lists the export
// created; a list another export uses, a list Iterable keeps (in use by a
// campaign) and a list that existed before the export stay, each said why.
TEST_F(IterableE2eTest, DeletingAnExportWithItsAudiencesDeletesOnlyTheListsItCreated) {
  CreateConnection({});
  for (const char* segment : {"Own", "Shared", "Busy", "Existing"}) {
    auto [code, text] = Ctl({"segment", "create", "--name", segment, "--from-csv", WriteCsv(5),
                             "--id-field", "ProfileId"});
    ASSERT_EQ(code, 0) << text;
  }
  // A list of the name exists before the export.
  ASSERT_EQ(HttpPostWithKey(SandboxUrl("/api/lists"), R"({"name":"Existing"})"), 200);
  auto [code, text] = Ctl({"export", "create", "--name", "a", "--connection", "Iterable sandbox",
                           "--segment", "Own", "--segment", "Shared", "--segment", "Busy",
                           "--segment", "Existing", "--map", "email=Email"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "run", "a", "--watch"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "create", "--name", "b", "--connection", "Iterable sandbox",
                              "--segment", "Shared", "--map", "email=Email"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "run", "b", "--watch"});
  ASSERT_EQ(code, 0) << text;
  std::map<std::string, std::int64_t> ids;
  for (const json& list : HttpGetJson(SandboxUrl("/_sandbox/lists"))) {
    ids[list["name"].get<std::string>()] = list["id"].get<std::int64_t>();
  }
  ASSERT_EQ(ids.size(), 4u) << "export b uses export a's list 'Shared'";
  HttpPost(SandboxUrl("/_sandbox/lists/" + std::to_string(ids["Busy"]) + "/in-use"),
           R"({"inUse":true})");

  std::tie(code, text) = Ctl({"export", "delete", "a", "--delete-audiences"});
  EXPECT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("Deleted audiences: Own (" + std::to_string(ids["Own"]) + ")"));
  EXPECT_THAT(text,
              HasSubstr("Shared (" + std::to_string(ids["Shared"]) + "): export 'b' uses it too"));
  EXPECT_THAT(text, HasSubstr("Busy (" + std::to_string(ids["Busy"]) + "): Iterable keeps"));
  EXPECT_THAT(text, HasSubstr("List is in use"));
  EXPECT_THAT(text, HasSubstr("Existing (" + std::to_string(ids["Existing"]) +
                              "): not created by export 'a'"));
  std::set<std::string> left;
  for (const json& list : HttpGetJson(SandboxUrl("/_sandbox/lists"))) {
    left.insert(list["name"].get<std::string>());
  }
  EXPECT_EQ(left, (std::set<std::string>{"Shared", "Busy", "Existing"}));
  std::tie(code, text) = Ctl({"export", "get", "a"});
  EXPECT_NE(code, 0) << "the export is gone: " << text;
  // b's list is still delivered to.
  EXPECT_EQ(ListMembers("Shared").size(), 5u);
}

// Deleting a segment with --delete-audiences deletes the lists exports
// created for it (after it left them), not before it stops being used, and
// never another segment's.
TEST_F(IterableE2eTest, DeletingASegmentWithItsAudiencesDeletesTheListsExportsCreatedForIt) {
  CreateConnection({});
  for (const char* segment : {"Stays", "Goes"}) {
    auto [code, text] = Ctl({"segment", "create", "--name", segment, "--from-csv", WriteCsv(5),
                             "--id-field", "ProfileId"});
    ASSERT_EQ(code, 0) << text;
  }
  auto [code, text] = Ctl({"export", "create", "--name", "a", "--connection", "Iterable sandbox",
                           "--segment", "Stays", "--segment", "Goes", "--map", "email=Email"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"export", "run", "a", "--watch"});
  ASSERT_EQ(code, 0) << text;
  std::map<std::string, std::int64_t> ids;
  for (const json& list : HttpGetJson(SandboxUrl("/_sandbox/lists"))) {
    ids[list["name"].get<std::string>()] = list["id"].get<std::int64_t>();
  }
  ASSERT_EQ(ids.size(), 2u);
  // In use by export a: refused, and nothing is deleted in Iterable.
  std::tie(code, text) = Ctl({"segment", "delete", "Goes", "--delete-audiences"});
  EXPECT_NE(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_EQ(HttpGetJson(SandboxUrl("/_sandbox/lists")).size(), 2u);

  std::tie(code, text) = Ctl({"export", "update", "a", "--segment", "Stays"});
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = Ctl({"segment", "delete", "Goes", "--delete-audiences"});
  EXPECT_EQ(code, 0) << text;
  EXPECT_THAT(text, HasSubstr("Deleted segment 'Goes'."));
  EXPECT_THAT(text, HasSubstr("Deleted audiences: Goes (" + std::to_string(ids["Goes"]) + ")"));
  std::set<std::string> left;
  for (const json& list : HttpGetJson(SandboxUrl("/_sandbox/lists"))) {
    left.insert(list["name"].get<std::string>());
  }
  EXPECT_EQ(left, (std::set<std::string>{"Stays"}));
  EXPECT_EQ(ListMembers("Stays").size(), 5u);
}

}  // namespace
}  // namespace exportd
