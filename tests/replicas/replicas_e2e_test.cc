// Several exportd replicas on one PostgreSQL (started by the test), the
// Iterable sandbox with latency, exportctl in-process against any replica:
// a replica killed with SIGKILL mid-run loses the run to another, which
// finishes it exactly; a cancel sent to a replica that does not hold a run
// stops it; WatchRun through a third replica follows the run to its end; two
// replicas on one connection together stay within its rate; no password
// shows in any replica's log.
#include <curl/curl.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "client/exportctl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"
#include "tests/support/postgres_server.h"

namespace exportd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

constexpr char kApiKey[] = "replicas-api-key-0123456789abcdef";
// libpq would send it if the server asked; no log may show it.
constexpr char kPassword[] = "Pg-Pa55word-never-logged";

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string Http(const std::string& url, const std::string* post_body = nullptr) {
  CURL* curl = curl_easy_init();
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  if (post_body != nullptr) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post_body->c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  EXPECT_EQ(rc, CURLE_OK) << url;
  return body;
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

std::int64_t Count(const json& progress, const char* field) {
  return progress.contains(field) ? std::stoll(progress[field].get<std::string>()) : 0;
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = std::filesystem::temp_directory_path() / "replicas_e2eXXXXXX";
    dir_ = mkdtemp(dir.data());
    auto server = testing::PostgresServer::Shared();
    ASSERT_TRUE(server.ok()) << server.status();
    auto conninfo = (*server)->CreateDatabase();
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    conninfo_ = *conninfo;
    sandbox_ = std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{SANDBOX_BINARY, "--listen", "127.0.0.1:0", "--api-key", kApiKey},
        dir_ + "/sandbox.log");
    sandbox_port_ = sandbox_->WaitForPort();
    ASSERT_GT(sandbox_port_, 0) << sandbox_->Log();
  }
  void TearDown() override {
    for (auto& r : replicas_) {
      if (r == nullptr) continue;
      EXPECT_THAT(r->Log(), Not(HasSubstr(kPassword)));
    }
    replicas_.clear();
    sandbox_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Replicas r1..rN on the database, sharing one data directory (its master
  // key and admin token; on PostgreSQL it is not locked). r1 starts first:
  // it creates the key.
  void StartReplicas(int n, const std::vector<std::string>& extra = {}) {
    ::setenv("PGPASSWORD", kPassword, 1);
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> args = {EXPORTD_BINARY,   "--listen",      "127.0.0.1:0",
                                       "--data-dir",     dir_ + "/data",  "--store",
                                       conninfo_,        "--replica-id",  Id(i),
                                       "--lease-seconds", "2",            "--plugin-dir",
                                       EXPORTD_PLUGIN_DIR};
      args.insert(args.end(), extra.begin(), extra.end());
      replicas_.push_back(std::make_unique<testing::ChildProcess>(
          args, dir_ + "/" + Id(i) + "-" + std::to_string(++starts_) + ".log"));
      ports_.push_back(replicas_.back()->WaitForPort());
      ASSERT_GT(ports_.back(), 0) << replicas_.back()->Log();
    }
    ::unsetenv("PGPASSWORD");
  }
  static std::string Id(int i) { return "r" + std::to_string(i + 1); }
  int IndexOf(const std::string& replica_id) {
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (Id(static_cast<int>(i)) == replica_id) return static_cast<int>(i);
    }
    return -1;
  }

  // exportctl against replica `i`.
  std::pair<int, std::string> Ctl(int i, std::vector<std::string> args) {
    args.insert(args.begin(), {"exportctl", "--server", "127.0.0.1:" + std::to_string(ports_[i])});
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
  json CtlJson(int i, std::vector<std::string> args) {
    args.insert(args.begin(), {"--output", "json"});
    auto [code, text] = Ctl(i, args);
    EXPECT_EQ(code, 0) << text;
    return json::parse(text, nullptr, false);
  }
  std::string SandboxUrl(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(sandbox_port_) + path;
  }
  void SetLatency(int ms) {
    std::string body = "{\"latencyMs\": " + std::to_string(ms) + "}";
    Http(SandboxUrl("/_sandbox/faults"), &body);
  }
  void CreateConnection(int via, const std::vector<std::string>& settings) {
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
    auto [code, text] = Ctl(via, args);
    ASSERT_EQ(code, 0) << text;
  }
  // Profiles p1..pN, every 50th email invalid; a segment and an export of it.
  void CreateSegmentAndExport(int via, const std::string& segment, const std::string& name,
                              int profiles) {
    const std::string path = dir_ + "/" + name + ".csv";
    {
      std::ofstream csv(path);
      csv << "ProfileId,Email\n";
      for (int i = 1; i <= profiles; ++i) {
        csv << "p" << i << ",user" << i << (i % 50 == 0 ? "@invalid" : "@example.com") << "\n";
      }
    }
    auto [code, text] = Ctl(via, {"segment", "create", "--name", segment, "--from-csv", path,
                                  "--id-field", "ProfileId"});
    ASSERT_EQ(code, 0) << text;
    std::tie(code, text) = Ctl(via, {"export", "create", "--name", name, "--connection",
                                     "Iterable sandbox", "--segment", segment, "--map",
                                     "email=Email"});
    ASSERT_EQ(code, 0) << text;
  }
  bool Final(const json& run) {
    const std::string state = run.value("state", "");
    return state != "RUN_STATE_QUEUED" && state != "RUN_STATE_RUNNING" &&
           state != "RUN_STATE_FAILED_RETRYING";
  }
  // Polls the run through replica `via` until `done` holds (or a deadline).
  template <typename Done>
  json PollRun(int via, const std::string& run_id, Done done, int seconds = 120) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    json run;
    while (std::chrono::steady_clock::now() < deadline) {
      run = CtlJson(via, {"run", "get", run_id});
      if (done(run)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return run;
  }
  // The number of members of the only list named `name`.
  size_t ListSize(const std::string& name) {
    json lists = json::parse(Http(SandboxUrl("/_sandbox/lists")), nullptr, false);
    size_t size = 0;
    int matches = 0;
    for (const auto& list : lists) {
      if (list["name"] != name) continue;
      ++matches;
      size = list["memberCount"].get<size_t>();
    }
    EXPECT_EQ(matches, 1) << lists.dump();
    return size;
  }
  std::vector<std::int64_t> SubscribeTimes() {
    std::vector<std::int64_t> out;
    for (const json& r : json::parse(Http(SandboxUrl("/_sandbox/requests")), nullptr, false)) {
      if (r["route"] == "POST /api/lists/subscribe") out.push_back(r["atMicros"].get<std::int64_t>());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string dir_, conninfo_;
  std::unique_ptr<testing::ChildProcess> sandbox_;
  std::vector<std::unique_ptr<testing::ChildProcess>> replicas_;
  std::vector<int> ports_;
  int sandbox_port_ = 0, starts_ = 0;
};

TEST_F(ReplicasTest, AReplicaKilledMidRunLosesTheRunToAnotherThatFinishesItExactly) {
  constexpr int kProfiles = 200000;
  constexpr int kValid = kProfiles - kProfiles / 50;
  StartReplicas(3);
  CreateConnection(0, {"batch_size=1000", "parallel_requests=2"});
  CreateSegmentAndExport(1, "Two Hundred K", "big", kProfiles);
  SetLatency(100);
  const std::string run_id = CtlJson(2, {"export", "run", "big"})["id"];
  // Wait until some batches are committed; then kill -9 whoever holds it.
  json caught = PollRun(0, run_id, [](const json& run) {
    return run.value("state", "") == "RUN_STATE_RUNNING" &&
           Count(run["segments"][0], "added") >= 20000;
  });
  const int holder = IndexOf(caught.value("replica", ""));
  ASSERT_GE(holder, 0) << caught.dump();
  const std::int64_t added_before = Count(caught["segments"][0], "added");
  replicas_[holder]->Stop(SIGKILL);
  ASSERT_LT(added_before, kValid) << "the run ended before the kill";
  const int other = (holder + 1) % 3, third = (holder + 2) % 3;
  // The third replica watches the run to its end (WatchRun, from the store).
  auto watched = std::async(std::launch::async, [&] {
    return Ctl(third, {"run", "watch", run_id});
  });
  json done = PollRun(other, run_id, [&](const json& run) { return Final(run); });
  EXPECT_EQ(done["state"], "RUN_STATE_SUCCEEDED_WITH_REJECTIONS") << done.dump();
  EXPECT_NE(done.value("replica", ""), Id(holder)) << "another replica finished it";
  EXPECT_EQ(done["attempt"], 2) << "one attempt before the kill, one after";
  const json& segment = done["segments"][0];
  EXPECT_EQ(Count(segment, "added"), kValid);
  EXPECT_EQ(Count(segment, "rejected"), kProfiles / 50);
  EXPECT_EQ(Count(segment, "updated"), 0) << "no batch is counted twice";
  EXPECT_EQ(ListSize("Two Hundred K"), static_cast<size_t>(kValid));
  auto [watch_code, watch_text] = watched.get();
  EXPECT_EQ(watch_code, 0) << watch_text;
  EXPECT_THAT(watch_text, HasSubstr("SUCCEEDED")) << watch_text;
  // A run the next replica reads is the same.
  EXPECT_EQ(CtlJson(third, {"run", "get", run_id})["state"], done["state"]);
}

TEST_F(ReplicasTest, ACancelSentToAReplicaNotHoldingTheRunStopsIt) {
  constexpr int kProfiles = 30000;
  StartReplicas(2);
  CreateConnection(0, {"batch_size=500", "parallel_requests=1"});
  CreateSegmentAndExport(0, "Cancel Me", "slow", kProfiles);
  SetLatency(100);
  const std::string run_id = CtlJson(0, {"export", "run", "slow"})["id"];
  json running = PollRun(0, run_id, [](const json& run) {
    return run.value("state", "") == "RUN_STATE_RUNNING" &&
           Count(run["segments"][0], "added") >= 1000;
  });
  const int holder = IndexOf(running.value("replica", ""));
  ASSERT_GE(holder, 0) << running.dump();
  const int other = 1 - holder;
  const auto sent = std::chrono::steady_clock::now();
  auto [code, text] = Ctl(other, {"run", "cancel", run_id});
  ASSERT_EQ(code, 0) << text;
  json canceled = PollRun(other, run_id, [&](const json& run) { return Final(run); }, 30);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  std::cerr << "a cancel through the other replica ended the run after " << seconds << " s\n";
  EXPECT_EQ(canceled["state"], "RUN_STATE_CANCELED") << canceled.dump();
  EXPECT_EQ(canceled.value("replica", ""), Id(holder));
  EXPECT_LT(Count(canceled["segments"][0], "added"), kProfiles - kProfiles / 50);
}

TEST_F(ReplicasTest, TwoReplicasOnOneConnectionTogetherStayWithinItsRate) {
  // One run at a time per replica: the two runs land on different replicas.
  StartReplicas(2, {"--run-workers", "1"});
  CreateConnection(0, {"requests_per_second=4", "batch_size=50"});
  CreateSegmentAndExport(0, "Segment A", "a", 1000);  // 20 requests.
  CreateSegmentAndExport(1, "Segment B", "b", 1000);  // 20 requests.
  const std::string run_a = CtlJson(0, {"export", "run", "a"})["id"];
  const std::string run_b = CtlJson(1, {"export", "run", "b"})["id"];
  json a = PollRun(0, run_a, [&](const json& run) { return Final(run); });
  json b = PollRun(1, run_b, [&](const json& run) { return Final(run); });
  EXPECT_EQ(a["state"], "RUN_STATE_SUCCEEDED_WITH_REJECTIONS") << a.dump();
  EXPECT_EQ(b["state"], "RUN_STATE_SUCCEEDED_WITH_REJECTIONS") << b.dump();
  EXPECT_NE(a.value("replica", ""), b.value("replica", ""));
  // And they overlapped.
  EXPECT_LT(std::stoll(a["started_at_micros"].get<std::string>()),
            std::stoll(b["finished_at_micros"].get<std::string>()));
  EXPECT_LT(std::stoll(b["started_at_micros"].get<std::string>()),
            std::stoll(a["finished_at_micros"].get<std::string>()));
  std::vector<std::int64_t> times = SubscribeTimes();
  ASSERT_EQ(times.size(), 40u);
  // Each replica sends half the rate once it knows of the other: a burst of
  // 4 and 4 per second together, plus what goes while they start (the first
  // alone at the whole rate until its next refresh, 250 ms, and the
  // newcomer's burst of 2). Each with the whole rate would send up to twice
  // that: 32 in 3 s, all 40 in 5 s.
  const int in_3s = MaxInWindow(times, 3'000'000), in_5s = MaxInWindow(times, 5'000'000);
  std::cerr << "max subscribe requests in 3 s: " << in_3s << ", in 5 s: " << in_5s << "\n";
  EXPECT_LE(in_3s, 4 + 12 + 5);
  EXPECT_LE(in_5s, 4 + 20 + 5);
  EXPECT_EQ(ListSize("Segment A"), 980u);
  EXPECT_EQ(ListSize("Segment B"), 980u);
}

}  // namespace
}  // namespace exportd
