// Rate and time left, with time from a FakeClock.
#include "server/engine/progress.h"

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"
#include "server/common/clock.h"

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
  FakeClock clock(kStart);
  RunProgress progress;
  v1::Run run = RunWith(1000, 100, 0, 0);
  progress.Estimate(run, clock.Now());
  EXPECT_EQ(run.rate(), 0);
  EXPECT_EQ(run.eta_seconds(), -1);
  clock.Advance(absl::Seconds(3));
  progress.Estimate(run, clock.Now());
  EXPECT_EQ(run.eta_seconds(), -1);
}

TEST(RunProgressTest, TheFirstRateIsTheAverageAndTimeLeftIncludesWhatIsNotScannedYet) {
  FakeClock clock(kStart);
  RunProgress progress;
  // 1,000 members, 200 scanned: 100 to add (half of them), 100 unchanged.
  v1::Run run = RunWith(1000, 100, 100, 0);
  progress.Estimate(run, clock.Now());
  clock.Advance(absl::Seconds(1));
  run.mutable_segments(0)->set_added(50);
  progress.Estimate(run, clock.Now());
  EXPECT_NEAR(run.rate(), 50, 1e-9);
  // Left: 50 planned + 800 unscanned at one in two = 450 records at 50/s.
  EXPECT_NEAR(run.eta_seconds(), 9, 1e-9);
}

// A slow destination: one batch of 500 in flight, each taking 6 s, while the
// diff reports its progress every half second. A rate measured over a few
// seconds falls to nothing before each batch ends and jumps after; the
// weighted one stays put, so the ETA is known from the first batch on and
// only ever goes down, by about the time that passed.
TEST(RunProgressTest, TheTimeLeftNeverJumpsBetweenSlowBatches) {
  FakeClock clock(kStart);
  RunProgress progress;
  v1::Run run = RunWith(10'000, 10'000, 0, 0);
  run.mutable_segments(0)->set_done(true);
  progress.Estimate(run, clock.Now());
  std::vector<double> etas;
  for (int tick = 1; tick <= 12 * 15; ++tick) {  // 90 s: 15 batches.
    clock.Advance(absl::Milliseconds(500));
    if (tick % 12 == 0) run.mutable_segments(0)->set_added(500 * (tick / 12));
    progress.Estimate(run, clock.Now());
    if (tick >= 12) etas.push_back(run.eta_seconds());
  }
  for (size_t i = 1; i < etas.size(); ++i) {
    ASSERT_GE(etas[i], 0) << "unknown again at " << i;
    ASSERT_LE(etas[i], etas[i - 1]) << "went up at " << i;
    ASSERT_GE(etas[i], etas[i - 1] - 6.01) << "fell by more than a batch's time at " << i;
  }
  EXPECT_NEAR(run.rate(), 500.0 / 6, 0.01);
  EXPECT_NEAR(run.eta_seconds(), (10'000 - 7'500) / (500.0 / 6), 0.01);
}

// Four batches in flight whose latency varies from 0.2 s to 6 s, as over a
// congested network: batches end in bursts and gaps, while the diff reports
// its progress every 100 ms. The rate shown stays within 8% of the true one
// (4 × 250 records per 1.2 s) once the first 15 seconds are measured; over a
// window of 5 s it swung by ±16%.
TEST(RunProgressTest, BurstsAndGapsBarelyMoveTheRate) {
  FakeClock clock(kStart);
  RunProgress progress;
  const std::int64_t kRecords = 1'000'000;
  v1::Run run = RunWith(kRecords, kRecords, 0, 0);
  run.mutable_segments(0)->set_done(true);
  progress.Estimate(run, clock.Now());
  // Each of 4 slots sends 250 records at a time; latencies cycle through
  // this list (mean 1.2 s).
  const std::vector<absl::Duration> latencies = {
      absl::Milliseconds(300), absl::Milliseconds(1700), absl::Milliseconds(500),
      absl::Seconds(6),        absl::Milliseconds(400),  absl::Milliseconds(600),
      absl::Milliseconds(1200), absl::Milliseconds(300), absl::Milliseconds(800),
      absl::Milliseconds(200)};
  std::vector<absl::Time> ends;
  for (size_t slot = 0; slot < 4; ++slot) ends.push_back(kStart + latencies[slot]);
  size_t next_latency = ends.size();
  std::int64_t added = 0;
  double low = 1e18, high = 0;
  while (clock.Now() < kStart + absl::Seconds(180)) {
    clock.Advance(absl::Milliseconds(100));
    for (absl::Time& end : ends) {
      if (end > clock.Now()) continue;
      added += 250;
      end = clock.Now() + latencies[next_latency++ % latencies.size()];
    }
    run.mutable_segments(0)->set_added(added);
    progress.Estimate(run, clock.Now());
    if (clock.Now() > kStart + absl::Seconds(15)) {
      low = std::min(low, run.rate());
      high = std::max(high, run.rate());
    }
  }
  const double truth = 1000 / 1.2;
  EXPECT_GT(low, 0.92 * truth) << "high " << high;
  EXPECT_LT(high, 1.08 * truth) << "low " << low;
}

TEST(RunProgressTest, AStalledRunsTimeLeftGrows) {
  FakeClock clock(kStart);
  RunProgress progress;
  v1::Run run = RunWith(10'000, 10'000, 0, 0);
  run.mutable_segments(0)->set_done(true);
  progress.Estimate(run, clock.Now());
  for (int second = 1; second <= 20; ++second) {
    clock.Advance(absl::Seconds(1));
    run.mutable_segments(0)->set_added(100 * second);
    progress.Estimate(run, clock.Now());
  }
  EXPECT_NEAR(run.rate(), 100, 0.01);
  const double before = run.eta_seconds();
  // Throttled: nothing finishes. Within the time constant the rate holds...
  clock.Advance(RunProgress::kTimeConstant);
  progress.Estimate(run, clock.Now());
  EXPECT_NEAR(run.eta_seconds(), before, 0.01);
  // ...then fades, and the time left grows.
  clock.Advance(absl::Seconds(20));
  progress.Estimate(run, clock.Now());
  EXPECT_LT(run.rate(), 50);
  EXPECT_GT(run.eta_seconds(), 2 * before);
  // The batch that ends the stall is credited over the whole gap of 30 s.
  clock.Advance(absl::Seconds(1));
  run.mutable_segments(0)->set_added(2000 + 3100);
  progress.Estimate(run, clock.Now());
  EXPECT_NEAR(run.rate(), 100, 1);
}

TEST(RunProgressTest, BatchesThatEndAtTheSameMomentCount) {
  FakeClock clock(kStart);
  RunProgress progress;
  v1::Run run = RunWith(1000, 1000, 0, 0);
  progress.Estimate(run, clock.Now());
  clock.Advance(absl::Seconds(2));
  run.mutable_segments(0)->set_added(100);
  progress.Estimate(run, clock.Now());
  run.mutable_segments(0)->set_added(200);
  progress.Estimate(run, clock.Now());  // Same moment: no division by zero.
  // About the average so far: 200 records in 2 s.
  EXPECT_GT(run.rate(), 90);
  EXPECT_LT(run.rate(), 110);
  EXPECT_GT(run.eta_seconds(), 0);
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
