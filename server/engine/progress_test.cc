// Rate and time left, with times handed in.
#include "server/engine/progress.h"

#include "gtest/gtest.h"

namespace exportd::engine {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

v1::Run RunWith(std::int64_t total, std::int64_t to_add, std::int64_t unchanged,
                std::int64_t added) {
  v1::Run run;
  auto* p = run.add_segments();
  p->set_total_members(total);
  p->set_to_add(to_add);
  p->set_unchanged(unchanged);
  p->set_added(added);
  return run;
}

TEST(RunProgressTest, UnknownUntilSomethingWasSent) {
  RunProgress progress;
  v1::Run run = RunWith(1000, 100, 0, 0);
  progress.Estimate(run, kStart);
  EXPECT_EQ(run.rate(), 0);
  EXPECT_EQ(run.eta_seconds(), -1);
}

TEST(RunProgressTest, RateOverTheWindowAndTimeLeftIncludingWhatIsNotScannedYet) {
  RunProgress progress;
  // 1,000 members, 200 scanned: 100 to add (half of them), 100 unchanged.
  v1::Run run = RunWith(1000, 100, 100, 0);
  progress.Estimate(run, kStart);
  run.mutable_segments(0)->set_added(50);
  progress.Estimate(run, kStart + absl::Seconds(1));
  EXPECT_DOUBLE_EQ(run.rate(), 50);
  // Left: 50 planned + 800 unscanned at one in two = 450 records at 50/s.
  EXPECT_DOUBLE_EQ(run.eta_seconds(), 9);
}

TEST(RunProgressTest, OldSamplesLeaveTheWindow) {
  RunProgress progress;
  v1::Run run = RunWith(100, 100, 0, 0);
  progress.Estimate(run, kStart);
  run.mutable_segments(0)->set_added(90);  // A burst, long ago.
  progress.Estimate(run, kStart + absl::Seconds(1));
  run.mutable_segments(0)->set_added(91);
  progress.Estimate(run, kStart + absl::Seconds(10));
  run.mutable_segments(0)->set_added(92);
  progress.Estimate(run, kStart + absl::Seconds(11));
  EXPECT_DOUBLE_EQ(run.rate(), 1);  // (92 - 91) / (11 - 10): the burst is out of the window.
}

TEST(RunProgressTest, NothingLeftIsZeroSecondsLeft) {
  RunProgress progress;
  v1::Run run = RunWith(10, 0, 10, 0);
  run.mutable_segments(0)->set_done(true);
  progress.Estimate(run, kStart);
  EXPECT_EQ(run.eta_seconds(), 0);
}

}  // namespace
}  // namespace exportd::engine
