// The scheduler on its own: a real store (SQLite and PostgreSQL, the test's
// parameter), times handed in by the test (no wall clock, no threads), a
// trigger that records what it was asked.
#include "server/engine/scheduler.h"

#include <filesystem>
#include <vector>

#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/store_test_fixture.h"

namespace exportd::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// 2026-03-02 10:00:30 UTC, a Monday.
const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2026, 3, 2, 10, 0, 30), absl::UTCTimeZone());

class SchedulerTest : public store::StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (HasFatalFailure()) return;
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

  Scheduler Make(std::optional<RefreshSchedule> refresh = std::nullopt,
                 store::Store* store = nullptr) {
    return Scheduler(store != nullptr ? store : store_.get(), std::move(refresh),
                     [this](const v1::Export& e, v1::RunTrigger trigger) {
      triggered_.push_back(e.id());
      triggers_.push_back(trigger);
      return absl::OkStatus();
    });
  }

  std::vector<std::string> triggered_;
  // The trigger of each run in triggered_.
  std::vector<v1::RunTrigger> triggers_;
};

TEST_P(SchedulerTest, MissedFiringsCollapseIntoOneRunThenTheScheduleIsFollowed) {
  AddExport("every-minute", kNow - absl::Hours(2), "* * * * *");  // 120 firings missed.
  Scheduler scheduler = Make();
  scheduler.Tick(kNow);
  EXPECT_THAT(triggered_, ElementsAre("every-minute"));
  scheduler.Tick(kNow + absl::Seconds(20));  // 10:00:50: no new firing.
  EXPECT_THAT(triggered_, ElementsAre("every-minute"));
  scheduler.Tick(kNow + absl::Seconds(31));  // 10:01:01: the 10:01 firing.
  EXPECT_THAT(triggered_, ElementsAre("every-minute", "every-minute"));
  EXPECT_THAT(triggers_, ElementsAre(v1::RUN_TRIGGER_SCHEDULE, v1::RUN_TRIGGER_SCHEDULE));
}

TEST_P(SchedulerTest, AnExportSavedAfterTheLastFiringWaitsForTheNext) {
  AddExport("hourly", kNow - absl::Seconds(10), "0 * * * *");  // Saved 10:00:20, fired 10:00.
  Scheduler scheduler = Make();
  scheduler.Tick(kNow);
  EXPECT_THAT(triggered_, IsEmpty());
  scheduler.Tick(kNow + absl::Hours(1));
  EXPECT_THAT(triggered_, ElementsAre("hourly"));
}

TEST_P(SchedulerTest, TheLastRunCountsAsActedUpon) {
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

TEST_P(SchedulerTest, DisabledAndInactiveExportsNeverFire) {
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

TEST_P(SchedulerTest, FollowersOfTheSystemRefreshFireOnlyWhenOneIsSet) {
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
  // Told apart from a cron schedule's runs in the run's trigger.
  EXPECT_THAT(triggers_, ElementsAre(v1::RUN_TRIGGER_SYSTEM_REFRESH));
  EXPECT_EQ(with.NextRun(e, kNow),
            absl::FromCivil(absl::CivilSecond(2026, 3, 2, 14, 0, 0), absl::UTCTimeZone()));
}

TEST_P(SchedulerTest, NextRunFollowsTheCronInTheExportsTimeZone) {
  v1::Export e = AddExport("berlin", kNow, "30 6 * * *");
  e.mutable_schedule()->set_timezone("Europe/Berlin");  // 06:30 CET = 05:30 UTC.
  Scheduler scheduler = Make();
  EXPECT_EQ(scheduler.NextRun(e, kNow),
            absl::FromCivil(absl::CivilSecond(2026, 3, 3, 5, 30, 0), absl::UTCTimeZone()));
}

// Three replicas on one store, each with its scheduler: every firing runs
// once, and so does the one catch-up of firings missed while all were down.
TEST_P(SchedulerTest, ThreeReplicasFireEachOccurrenceOnce) {
  AddExport("every-minute", kNow - absl::Hours(2), "* * * * *");
  std::vector<std::unique_ptr<store::Store>> stores;
  std::vector<Scheduler> replicas;
  for (int i = 0; i < 3; ++i) {
    auto store = OpenAnother();
    ASSERT_TRUE(store.ok()) << store.status();
    stores.push_back(std::move(*store));
    replicas.push_back(Make(std::nullopt, stores.back().get()));
  }
  // Each replica ticks at its own moment within the same minutes.
  for (int minute = 0; minute < 3; ++minute) {
    for (int i = 0; i < 3; ++i) {
      replicas[i].Tick(kNow + absl::Minutes(minute) + absl::Seconds(5 * i));
    }
  }
  // The catch-up at 10:00, then 10:01 and 10:02: three runs, not nine.
  EXPECT_THAT(triggered_, ElementsAre("every-minute", "every-minute", "every-minute"));
  // A replica started later catches up on nothing that was fired.
  auto late_store = OpenAnother();
  ASSERT_TRUE(late_store.ok());
  Scheduler late = Make(std::nullopt, late_store->get());
  late.Tick(kNow + absl::Minutes(2) + absl::Seconds(20));
  EXPECT_EQ(triggered_.size(), 3u);
}

TEST_P(SchedulerTest, AFiringIsClaimedOnceAndNeverAnEarlierOne) {
  EXPECT_TRUE(*store_->ClaimScheduledFiring("exp-1", 100));
  EXPECT_FALSE(*store_->ClaimScheduledFiring("exp-1", 100));
  EXPECT_FALSE(*store_->ClaimScheduledFiring("exp-1", 99));
  EXPECT_TRUE(*store_->ClaimScheduledFiring("exp-2", 100));
  EXPECT_TRUE(*store_->ClaimScheduledFiring("exp-1", 160));
  Reopen();
  EXPECT_FALSE(*store_->ClaimScheduledFiring("exp-1", 160));
}

INSTANTIATE_TEST_SUITE_P(Stores, SchedulerTest, store::EveryStore(), store::StoreName());

}  // namespace
}  // namespace exportd::engine
