// The scheduler on its own: a real SQLite store, times handed in by the test
// (no wall clock, no threads), a trigger that records what it was asked.
#include "server/engine/scheduler.h"

#include <filesystem>
#include <vector>

#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"

namespace exportd::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// 2026-03-02 10:00:30 UTC, a Monday.
const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2026, 3, 2, 10, 0, 30), absl::UTCTimeZone());

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = std::filesystem::temp_directory_path() / "scheduler_testXXXXXX";
    dir_ = mkdtemp(dir.data());
    store_ = std::move(*store::SqliteStore::Open(dir_ + "/exportd.db"));
    store::StoredConnection c;
    c.connection.set_id("conn-1");
    c.connection.set_display_name("c");
    c.connection.set_destination_type("fake");
    ASSERT_TRUE(store_->CreateConnection(c).ok());
    v1::Segment segment;
    segment.set_id("seg-1");
    segment.set_name("VIP");
    ASSERT_TRUE(store_->CreateSegment(segment).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // An active export saved at `saved` with the given schedule.
  v1::Export AddExport(const std::string& id, absl::Time saved, const std::string& cron,
                       bool follow_system_refresh = false) {
    v1::Export e;
    e.set_id(id);
    e.set_name(id);
    e.set_connection_id("conn-1");
    e.add_segments("seg-1");
    e.set_active(true);
    e.set_updated_at_micros(absl::ToUnixMicros(saved));
    e.mutable_schedule()->set_enabled(true);
    e.mutable_schedule()->set_cron(cron);
    e.mutable_schedule()->set_timezone("UTC");
    e.mutable_schedule()->set_follow_system_refresh(follow_system_refresh);
    EXPECT_TRUE(store_->CreateExport(e).ok());
    return e;
  }

  Scheduler Make(std::optional<RefreshSchedule> refresh = std::nullopt) {
    return Scheduler(store_.get(), std::move(refresh), [this](const v1::Export& e) {
      triggered_.push_back(e.id());
      return absl::OkStatus();
    });
  }

  std::string dir_;
  std::unique_ptr<store::SqliteStore> store_;
  std::vector<std::string> triggered_;
};

TEST_F(SchedulerTest, MissedFiringsCollapseIntoOneRunThenTheScheduleIsFollowed) {
  AddExport("every-minute", kNow - absl::Hours(2), "* * * * *");  // 120 firings missed.
  Scheduler scheduler = Make();
  scheduler.Tick(kNow);
  EXPECT_THAT(triggered_, ElementsAre("every-minute"));
  scheduler.Tick(kNow + absl::Seconds(20));  // 10:00:50: no new firing.
  EXPECT_THAT(triggered_, ElementsAre("every-minute"));
  scheduler.Tick(kNow + absl::Seconds(31));  // 10:01:01: the 10:01 firing.
  EXPECT_THAT(triggered_, ElementsAre("every-minute", "every-minute"));
}

TEST_F(SchedulerTest, AnExportSavedAfterTheLastFiringWaitsForTheNext) {
  AddExport("hourly", kNow - absl::Seconds(10), "0 * * * *");  // Saved 10:00:20, fired 10:00.
  Scheduler scheduler = Make();
  scheduler.Tick(kNow);
  EXPECT_THAT(triggered_, IsEmpty());
  scheduler.Tick(kNow + absl::Hours(1));
  EXPECT_THAT(triggered_, ElementsAre("hourly"));
}

TEST_F(SchedulerTest, TheLastRunCountsAsActedUpon) {
  v1::Export e = AddExport("hourly", kNow - absl::Hours(5), "0 * * * *");
  v1::Run run;
  run.set_id("run-1");
  run.set_export_id(e.id());
  run.set_state(v1::RUN_STATE_SUCCEEDED);
  run.set_created_at_micros(absl::ToUnixMicros(kNow - absl::Seconds(5)));  // After 10:00.
  ASSERT_TRUE(store_->CreateRun(run).ok());
  Scheduler scheduler = Make();
  scheduler.Tick(kNow);
  EXPECT_THAT(triggered_, IsEmpty());
}

TEST_F(SchedulerTest, DisabledAndInactiveExportsNeverFire) {
  v1::Export disabled = AddExport("disabled", kNow - absl::Hours(1), "* * * * *");
  disabled.mutable_schedule()->set_enabled(false);
  ASSERT_TRUE(store_->UpdateExport(disabled).ok());
  v1::Export inactive = AddExport("inactive", kNow - absl::Hours(1), "* * * * *");
  inactive.set_active(false);
  ASSERT_TRUE(store_->UpdateExport(inactive).ok());
  Scheduler scheduler = Make();
  scheduler.Tick(kNow);
  EXPECT_THAT(triggered_, IsEmpty());
  EXPECT_EQ(scheduler.NextRun(disabled, kNow), absl::InfiniteFuture());
}

TEST_F(SchedulerTest, FollowersOfTheSystemRefreshFireOnlyWhenOneIsSet) {
  v1::Export e = AddExport("follower", kNow - absl::Hours(12), "", /*follow=*/true);
  {
    Scheduler without = Make();
    without.Tick(kNow);
    EXPECT_THAT(triggered_, IsEmpty());
    EXPECT_EQ(without.NextRun(e, kNow), absl::InfiniteFuture());
  }
  auto refresh = RefreshSchedule::Parse("daily 02:00,14:00 UTC");
  ASSERT_TRUE(refresh.ok()) << refresh.status();
  Scheduler with = Make(*refresh);
  with.Tick(kNow);  // 02:00 today was missed.
  EXPECT_THAT(triggered_, ElementsAre("follower"));
  EXPECT_EQ(with.NextRun(e, kNow),
            absl::FromCivil(absl::CivilSecond(2026, 3, 2, 14, 0, 0), absl::UTCTimeZone()));
}

TEST_F(SchedulerTest, NextRunFollowsTheCronInTheExportsTimeZone) {
  v1::Export e = AddExport("berlin", kNow, "30 6 * * *");
  e.mutable_schedule()->set_timezone("Europe/Berlin");  // 06:30 CET = 05:30 UTC.
  Scheduler scheduler = Make();
  EXPECT_EQ(scheduler.NextRun(e, kNow),
            absl::FromCivil(absl::CivilSecond(2026, 3, 3, 5, 30, 0), absl::UTCTimeZone()));
}

}  // namespace
}  // namespace exportd::engine
