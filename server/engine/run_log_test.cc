// RunLog: lines in order, one append per flush, hidden values, escaping, the
// in-memory bound; RouteDestinationLog; the wording of the engine's lines.
#include "server/engine/run_log.h"

#include <map>
#include <thread>

#include "exportd/sdk/testing/temp_dir.h"
#include "exportd/sdk/testing/test_run_context.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"

namespace exportd::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class RunLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::SqliteStore::Open((dir_.path() / "exportd.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  std::vector<v1::RunLogLine> Stored(const std::string& run_id = "run-1") {
    auto lines = store_->ListRunLog(run_id, 0, 1000, v1::RUN_LOG_LEVEL_UNSPECIFIED, nullptr);
    EXPECT_TRUE(lines.ok()) << lines.status();
    return lines.ok() ? *lines : std::vector<v1::RunLogLine>();
  }
  static std::vector<std::string> Messages(const std::vector<v1::RunLogLine>& lines) {
    std::vector<std::string> out;
    for (const auto& line : lines) out.push_back(line.message());
    return out;
  }

  sdk::testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  FakeClock clock_{absl::FromUnixSeconds(1'700'000'000)};
};

TEST_F(RunLogTest, LinesAreStoredInOrderOnlyWhenFlushed) {
  RunLog log(store_.get(), "run-1", &clock_);
  log.Add(v1::RUN_LOG_LEVEL_INFO, "engine", "one");
  clock_.Advance(absl::Seconds(1));
  log.Add(v1::RUN_LOG_LEVEL_WARNING, "segment VIP", "two");
  EXPECT_TRUE(Stored().empty()) << "nothing is written before a flush";
  ASSERT_TRUE(log.Flush().ok());
  ASSERT_TRUE(log.Flush().ok()) << "an empty flush is fine";
  log.Add(v1::RUN_LOG_LEVEL_ERROR, "destination", "three");
  ASSERT_TRUE(log.Flush().ok());
  auto lines = Stored();
  EXPECT_THAT(Messages(lines), ElementsAre("one", "two", "three"));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].at_micros(), 1'700'000'000'000'000);
  EXPECT_EQ(lines[1].at_micros(), 1'700'000'001'000'000);
  EXPECT_EQ(lines[1].source(), "segment VIP");
  EXPECT_EQ(lines[1].level(), v1::RUN_LOG_LEVEL_WARNING);
}

TEST_F(RunLogTest, SecretValuesAreHiddenAndControlCharactersEscaped) {
  RunLog log(store_.get(), "run-1", &clock_);
  log.HideValues({"s3cr3t-key", ""});
  log.Add(v1::RUN_LOG_LEVEL_WARNING, "destination",
          "GET /api/lists?api_key=s3cr3t-key failed:\n\x1b[2Jforged");
  ASSERT_TRUE(log.Flush().ok());
  auto lines = Stored();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].message(), "GET /api/lists?api_key=[hidden] failed:\\n\\x1b[2Jforged");
  EXPECT_THAT(lines[0].message(), Not(HasSubstr("s3cr3t")));
}

TEST_F(RunLogTest, LinesPastTheInMemoryBoundAreCountedInTheNextFlush) {
  RunLog log(store_.get(), "run-1", &clock_);
  for (size_t i = 0; i < RunLog::kMaxPending + 3; ++i) {
    log.Add(v1::RUN_LOG_LEVEL_DEBUG, "destination", "x");
  }
  ASSERT_TRUE(log.Flush().ok());
  auto lines = Stored();
  ASSERT_EQ(lines.size(), static_cast<size_t>(store::kMaxRunLogLines));
  // 1000 lines were kept in memory and a note about the other 3 added; the
  // store kept 999, and its last line counts the two it dropped and quotes
  // the note.
  EXPECT_THAT(lines.back().message(),
              HasSubstr("2 more log lines were dropped (a run keeps 1000); the newest: 3 log "
                        "lines came faster than they could be stored and were dropped"));
  EXPECT_EQ(lines.back().level(), v1::RUN_LOG_LEVEL_WARNING);
}

TEST_F(RunLogTest, LinesAFailedFlushCouldNotStoreAreStoredByTheNextOne) {
  // The store refuses run-log writes for a while (a full disk, a lock).
  auto db = store::Database::Open((dir_.path() / "exportd.db").string(), /*read_only=*/false);
  ASSERT_TRUE(db.ok()) << db.status();
  ASSERT_TRUE((*db)->Exec("CREATE TRIGGER refuse BEFORE INSERT ON run_log "
                          "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
                  .ok());
  RunLog log(store_.get(), "run-1", &clock_);
  log.Add(v1::RUN_LOG_LEVEL_INFO, "engine", "one");
  log.Add(v1::RUN_LOG_LEVEL_INFO, "engine", "two");
  absl::Status failed = log.Flush();
  EXPECT_FALSE(failed.ok());
  EXPECT_THAT(std::string(failed.message()),
              HasSubstr("2 log lines could not be stored yet (the next flush tries again)"));
  EXPECT_THAT(std::string(failed.message()), HasSubstr("disk is full"));
  log.Add(v1::RUN_LOG_LEVEL_INFO, "engine", "three");

  ASSERT_TRUE((*db)->Exec("DROP TRIGGER refuse").ok());
  ASSERT_TRUE(log.Flush().ok());
  EXPECT_THAT(Messages(Stored()), ElementsAre("one", "two", "three"));
}

TEST_F(RunLogTest, ParallelAddsAndFlushesLoseNothing) {
  RunLog log(store_.get(), "run-1", &clock_);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < 50; ++i) {
        log.Add(v1::RUN_LOG_LEVEL_INFO, "destination", std::to_string(t * 100 + i));
        if (i % 10 == 9) EXPECT_TRUE(log.Flush().ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE(log.Flush().ok());
  auto lines = Stored();
  ASSERT_EQ(lines.size(), 200u);
  // Each thread's lines are in the order it added them.
  std::map<int, int> last;
  for (const auto& line : lines) {
    int n = std::stoi(line.message());
    auto it = last.find(n / 100);
    if (it != last.end()) {
      EXPECT_LT(it->second, n);
    }
    last[n / 100] = n;
  }
}

// A plugin's connection that logs and reports a throttle in every call.
class LoggingConnection final : public sdk::Connection {
 public:
  sdk::SyncSpeed speed() const override { return {}; }
  absl::Status Check(sdk::RunContext& ctx) override {
    ctx.Log(sdk::LogLevel::kInfo, "checked");
    return absl::OkStatus();
  }
  absl::StatusOr<sdk::Audience> EnsureAudience(std::string_view name, std::string_view,
                                               sdk::RunContext& ctx) override {
    ctx.Log(sdk::LogLevel::kWarning, "ensured");
    sdk::Audience audience;
    audience.id = "17";
    audience.name = std::string(name);
    return audience;
  }
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Upsert(const sdk::Audience&,
                                                         const sdk::RecordBatch&,
                                                         sdk::RunContext& ctx) override {
    ctx.Log(sdk::LogLevel::kError, "upserted");
    ctx.ReportThrottle(absl::Seconds(2));
    return std::vector<sdk::RecordOutcome>();
  }
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Remove(const sdk::Audience&,
                                                         const sdk::RecordBatch&,
                                                         sdk::RunContext& ctx) override {
    ctx.Log(sdk::LogLevel::kDebug, "removed");
    return std::vector<sdk::RecordOutcome>();
  }
};

TEST(RouteDestinationLogTest, ThePluginsLinesGoToTheRouterTheRestToTheCallsContext) {
  std::vector<std::pair<sdk::LogLevel, std::string>> routed;
  auto connection = RouteDestinationLog(std::make_unique<LoggingConnection>(),
                                        [&routed](sdk::LogLevel level, std::string_view message) {
                                          routed.emplace_back(level, std::string(message));
                                        });
  sdk::testing::TestRunContext ctx;
  ASSERT_TRUE(connection->Check(ctx).ok());
  auto audience = connection->EnsureAudience("VIP", "", ctx);
  ASSERT_TRUE(audience.ok());
  EXPECT_EQ(audience->id, "17");
  ASSERT_TRUE(connection->Upsert(*audience, {}, ctx).ok());
  ASSERT_TRUE(connection->Remove(*audience, {}, ctx).ok());
  EXPECT_THAT(routed, ElementsAre(std::pair(sdk::LogLevel::kInfo, std::string("checked")),
                                  std::pair(sdk::LogLevel::kWarning, std::string("ensured")),
                                  std::pair(sdk::LogLevel::kError, std::string("upserted")),
                                  std::pair(sdk::LogLevel::kDebug, std::string("removed"))));
  EXPECT_TRUE(ctx.logs().empty()) << "the call's context got no line";
  EXPECT_EQ(ctx.throttles(), std::vector<absl::Duration>{absl::Seconds(2)});
  EXPECT_EQ(RouteDestinationLog(nullptr, [](sdk::LogLevel, std::string_view) {}), nullptr);
}

TEST(RunLogMessagesTest, SayWhatTheRunAndItsSegmentsDid) {
  v1::Export e;
  e.set_mode(v1::EXPORT_MODE_MIRROR);
  v1::Run run;
  run.set_attempt(1);
  run.set_trigger(v1::RUN_TRIGGER_ON_DEMAND);
  run.set_requested_by("ann");
  auto* p = run.add_segments();
  p->set_segment_name("VIP");
  p->set_total_members(1000);
  EXPECT_EQ(RunStartMessage(run, e, 3),
            "run started (attempt 1 of 3): on demand, requested by ann; incremental, mirror "
            "mode; segments: VIP (1000 members)");
  run.set_attempt(2);
  run.set_full(true);
  run.set_trigger(v1::RUN_TRIGGER_SCHEDULE);
  run.clear_requested_by();
  e.set_mode(v1::EXPORT_MODE_ADD_ONLY);
  EXPECT_EQ(RunStartMessage(run, e, 3),
            "run started (attempt 2 of 3): scheduled; full resend, add-only mode; resuming from "
            "the last committed batch; segments: VIP (1000 members)");

  p->set_audience_id("17");
  EXPECT_EQ(SegmentStartMessage(*p, {false, true, true, false, true}),
            "started: 1000 members to audience 17; full resend (the mapping or how members are keyed changed)");
  EXPECT_EQ(SegmentStartMessage(*p, {true, false, false, false, false}),
            "started: 1000 members; dry run; members who left stay at the destination");
  p->set_added(18);
  p->set_updated(1);
  p->set_rejected(1);
  p->set_unchanged(980);
  EXPECT_EQ(SegmentDoneMessage(*p, false),
            "done: 18 added, 1 updated, 0 removed, 1 rejected, 980 unchanged");

  EXPECT_EQ(FinalLogMessage(v1::RUN_STATE_SUCCEEDED, ""), "run SUCCEEDED");
  EXPECT_EQ(FinalLogMessage(v1::RUN_STATE_FAILED, "it broke"), "run FAILED: it broke");
  EXPECT_EQ(FinalLogLevel(v1::RUN_STATE_SUCCEEDED), v1::RUN_LOG_LEVEL_INFO);
  EXPECT_EQ(FinalLogLevel(v1::RUN_STATE_FAILED), v1::RUN_LOG_LEVEL_ERROR);
  EXPECT_EQ(FinalLogLevel(v1::RUN_STATE_FAILED_RETRYING), v1::RUN_LOG_LEVEL_WARNING);
  EXPECT_EQ(FinalLogLevel(v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS), v1::RUN_LOG_LEVEL_WARNING);
}

}  // namespace
}  // namespace exportd::engine
