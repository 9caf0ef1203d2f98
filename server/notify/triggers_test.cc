#include "server/notify/triggers.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::notify {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::Run Finished(v1::RunState state, std::int64_t added, std::int64_t rejected) {
  v1::Run run;
  run.set_id("run-1");
  run.set_state(state);
  auto* p = run.add_segments();
  p->set_added(added);
  p->set_rejected(rejected);
  return run;
}

TEST(ParseNotifyOnTest, DefaultsToFailedAndRecovered) {
  auto triggers = ParseNotifyOn({});
  ASSERT_TRUE(triggers.ok()) << triggers.status();
  EXPECT_TRUE(triggers->failed);
  EXPECT_TRUE(triggers->recovered);
  EXPECT_FALSE(triggers->rejections_above_percent.has_value());
  EXPECT_THAT(NotifyOnValues(*triggers), ElementsAre("failed", "recovered"));
}

TEST(ParseNotifyOnTest, ReadsListsAndCanonicalises) {
  auto triggers = ParseNotifyOn({"recovered, rejections>5%", "rejections>2.5"});
  ASSERT_TRUE(triggers.ok()) << triggers.status();
  EXPECT_FALSE(triggers->failed);
  EXPECT_TRUE(triggers->recovered);
  EXPECT_EQ(*triggers->rejections_above_percent, 2.5);
  EXPECT_THAT(NotifyOnValues(*triggers), ElementsAre("recovered", "rejections>2.5%"));
}

TEST(ParseNotifyOnTest, NamesTheWrongValue) {
  auto unknown = ParseNotifyOn({"failed,succeeded"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("unknown trigger 'succeeded'; use failed, recovered or rejections>N%"));
  for (const char* bad : {"rejections>", "rejections>x%", "rejections>100%", "rejections>-1%"}) {
    auto parsed = ParseNotifyOn({bad});
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("percentage")) << bad;
  }
}

TEST(FiredTriggersTest, FailedForGood) {
  NotifyTriggers t = *ParseNotifyOn({});
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_FAILED, 0, 0), std::nullopt),
              ElementsAre("failed"));
  // Retrying, canceled and skipped runs are not "failed".
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_FAILED_RETRYING, 0, 0), std::nullopt),
              IsEmpty());
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_CANCELED, 0, 0), v1::RUN_STATE_FAILED),
              IsEmpty());
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_SKIPPED, 0, 0), v1::RUN_STATE_FAILED),
              IsEmpty());
}

TEST(FiredTriggersTest, RecoveredOnlyAfterAFailedRun) {
  NotifyTriggers t = *ParseNotifyOn({});
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_SUCCEEDED, 5, 0), v1::RUN_STATE_FAILED),
              ElementsAre("recovered"));
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS, 5, 1),
                            v1::RUN_STATE_FAILED),
              ElementsAre("recovered"));
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_SUCCEEDED, 5, 0), v1::RUN_STATE_SUCCEEDED),
              IsEmpty());
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_SUCCEEDED, 5, 0), std::nullopt), IsEmpty());
  v1::Run dry = Finished(v1::RUN_STATE_FAILED, 0, 0);
  dry.set_dry_run(true);
  EXPECT_THAT(FiredTriggers(t, dry, std::nullopt), IsEmpty());
}

TEST(FiredTriggersTest, RejectionShareAboveTheThreshold) {
  NotifyTriggers t = *ParseNotifyOn({"rejections>5%"});
  // 5 of 100 is 5%: not above.
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS, 95, 5),
                            std::nullopt),
              IsEmpty());
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS, 94, 6),
                            std::nullopt),
              ElementsAre("rejections"));
  EXPECT_DOUBLE_EQ(RejectedPercent(Finished(v1::RUN_STATE_SUCCEEDED, 94, 6)), 6.0);
  EXPECT_DOUBLE_EQ(RejectedPercent(Finished(v1::RUN_STATE_SUCCEEDED, 0, 0)), 0.0);
  // Failed alone is not watched here.
  EXPECT_THAT(FiredTriggers(t, Finished(v1::RUN_STATE_FAILED, 0, 0), std::nullopt), IsEmpty());
}

}  // namespace
}  // namespace exportd::notify
