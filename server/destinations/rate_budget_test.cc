#include "server/destinations/rate_budget.h"

#include <deque>
#include <thread>
#include <vector>

#include "exportd/sdk/testing/test_run_context.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::destinations {
namespace {

// Where the tests' budgets start.
constexpr absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

// A budget that reads the time of a TestRunContext (which sleeps on it).
class ContextClock final : public Clock {
 public:
  explicit ContextClock(const sdk::RunContext& ctx) : ctx_(ctx) {}
  absl::Time Now() const override { return ctx_.Now(); }

 private:
  const sdk::RunContext& ctx_;
};

sdk::SyncSpeed Speed(double requests_per_second, double records_per_second = 0) {
  sdk::SyncSpeed speed;
  speed.requests_per_second = requests_per_second;
  speed.records_per_second = records_per_second;
  return speed;
}

RateBudgetOptions WithClock(FakeClock& clock) {
  RateBudgetOptions options;
  options.clock = &clock;
  return options;
}

// Sends `n` requests as fast as the budget allows (each at its reserved
// time) and returns the send times.
std::vector<absl::Time> SendAll(RateBudget& budget, FakeClock& clock, int n,
                                std::int64_t records = 1) {
  std::vector<absl::Time> times;
  for (int i = 0; i < n; ++i) {
    absl::Time at = budget.Reserve(records);
    if (at > clock.Now()) clock.Advance(at - clock.Now());
    times.push_back(at);
  }
  return times;
}

// The most send times in any window of length `window`.
int MaxInWindow(const std::vector<absl::Time>& times, absl::Duration window) {
  int best = 0;
  for (size_t i = 0; i < times.size(); ++i) {
    int n = 0;
    for (size_t j = i; j < times.size() && times[j] - times[i] < window; ++j) ++n;
    best = std::max(best, n);
  }
  return best;
}

TEST(RateBudget, UnlimitedNeverWaits) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(0), std::nullopt, WithClock(clock), nullptr);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(budget.Reserve(1000), clock.Now());
}

TEST(RateBudget, RequestBucketAllowsABurstThenHoldsTheRate) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(4), std::nullopt, WithClock(clock), nullptr);
  std::vector<absl::Time> times = SendAll(budget, clock, 40);
  // A full bucket (4) goes at once, then one every 250 ms.
  EXPECT_EQ(times[3], times[0]);
  EXPECT_EQ(times[4] - times[0], absl::Milliseconds(250));
  EXPECT_LE(MaxInWindow(times, absl::Seconds(3)), 4 + 12);
  EXPECT_EQ(times[39] - times[0], absl::Milliseconds(250) * 36);
}

// Two replicas on one connection: each sends its share, and together they
// stay within the rate; the whole rate is what the budget reports.
TEST(RateBudget, AReplicaSendsItsShareOfTheConnectionsRate) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(4, 1000), std::nullopt, WithClock(clock), nullptr);
  budget.SetShare(2);
  EXPECT_EQ(budget.share(), 2);
  std::vector<absl::Time> times = SendAll(budget, clock, 20, /*records=*/10);
  // A bucket of 2, then one every 500 ms.
  EXPECT_EQ(times[1], times[0]);
  EXPECT_EQ(times[2] - times[0], absl::Milliseconds(500));
  EXPECT_LE(MaxInWindow(times, absl::Seconds(3)), 2 + 6);
  EXPECT_EQ(budget.current().requests_per_second, 4);
  // Alone again: the whole rate.
  budget.SetShare(1);
  clock.Advance(absl::Seconds(10));
  std::vector<absl::Time> alone = SendAll(budget, clock, 8, /*records=*/10);
  EXPECT_EQ(alone[3], alone[0]);
  EXPECT_EQ(alone[4] - alone[0], absl::Milliseconds(250));
  budget.SetShare(0);  // Never below one.
  EXPECT_EQ(budget.share(), 1);
}

TEST(RateBudget, RecordsBucketSpacesBatchesByTheirSize) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(0, /*records_per_second=*/1000), std::nullopt, WithClock(clock), nullptr);
  std::vector<absl::Time> times = SendAll(budget, clock, 5, /*records=*/500);
  // 1000 records fit the bucket; then 500 records every half second.
  EXPECT_EQ(times[1], times[0]);
  EXPECT_EQ(times[2] - times[0], absl::Milliseconds(500));
  EXPECT_EQ(times[4] - times[0], absl::Milliseconds(1500));
  // A batch bigger than a second's worth still goes, alone, at the rate.
  FakeClock clock2(kStart);
  RateBudget big(Speed(0, 100), std::nullopt, WithClock(clock2), nullptr);
  std::vector<absl::Time> big_times = SendAll(big, clock2, 3, /*records=*/300);
  EXPECT_EQ(big_times[1] - big_times[0], absl::Seconds(3));
}

TEST(RateBudget, ThrottleHalvesOncePerBurstPausesAndRecoversAdditively) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(20), std::nullopt, WithClock(clock), nullptr);
  budget.OnThrottle(absl::Seconds(2));
  budget.OnThrottle(absl::Seconds(2));  // Same burst: counts once.
  EXPECT_DOUBLE_EQ(budget.current().requests_per_second, 10);
  EXPECT_EQ(budget.paused_until(), clock.Now() + absl::Seconds(2));
  EXPECT_EQ(budget.Reserve(1), clock.Now() + absl::Seconds(2)) << "nothing goes during the pause";
  clock.Advance(absl::Seconds(1));
  budget.OnThrottle(absl::ZeroDuration());
  EXPECT_DOUBLE_EQ(budget.current().requests_per_second, 5);
  // Successes climb back: 20 / 40 s = 0.5 per second of elapsed time.
  clock.Advance(absl::Seconds(10));
  budget.OnSuccess();
  EXPECT_DOUBLE_EQ(budget.current().requests_per_second, 10);
  clock.Advance(absl::Seconds(100));
  budget.OnSuccess();
  EXPECT_DOUBLE_EQ(budget.current().requests_per_second, 20) << "never above the ceiling";
}

// Without a retry-after a throttled connection still pauses, longer with every
// further throttle (a burst counts once), until a success.
TEST(RateBudget, ThrottlesWithoutRetryAfterBackOffExponentially) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(0), std::nullopt, WithClock(clock), nullptr);
  auto pause = [&] { return budget.paused_until() - clock.Now(); };
  budget.OnThrottle(absl::ZeroDuration());
  EXPECT_GE(pause(), absl::Milliseconds(250));
  EXPECT_LE(pause(), absl::Milliseconds(300));
  budget.OnThrottle(absl::ZeroDuration());  // The same burst: no longer.
  EXPECT_LE(pause(), absl::Milliseconds(300));
  clock.Advance(absl::Milliseconds(400));
  budget.OnThrottle(absl::ZeroDuration());
  EXPECT_GE(pause(), absl::Milliseconds(500));
  EXPECT_LE(pause(), absl::Milliseconds(600));
  clock.Advance(absl::Seconds(1));
  budget.OnThrottle(absl::ZeroDuration());
  EXPECT_GE(pause(), absl::Seconds(1));
  for (int i = 0; i < 20; ++i) {
    clock.Advance(absl::Minutes(1));
    budget.OnThrottle(absl::ZeroDuration());
  }
  EXPECT_LE(pause(), absl::Seconds(36)) << "at most 30 s plus jitter";
  clock.Advance(absl::Minutes(1));
  budget.OnSuccess();
  budget.OnThrottle(absl::ZeroDuration());
  EXPECT_LE(pause(), absl::Milliseconds(300)) << "a success starts over";
}

// A reset far ahead is the destination's word: every sender waits for it
// (a run's cancel ends its wait), not a shorter cap of exportd's.
TEST(RateBudget, APauseAsLongAsTheDestinationAsksIsHonouredInFull) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(4), std::nullopt, WithClock(clock), nullptr);
  budget.OnThrottle(absl::Hours(3));
  EXPECT_EQ(budget.paused_until(), clock.Now() + absl::Hours(3));
  EXPECT_EQ(budget.Reserve(1), clock.Now() + absl::Hours(3));
}

TEST(RateBudget, NeverBelowTheMinimum) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(2), std::nullopt, WithClock(clock), nullptr);
  for (int i = 0; i < 10; ++i) {
    budget.OnThrottle(absl::ZeroDuration());
    clock.Advance(absl::Seconds(1));
  }
  EXPECT_DOUBLE_EQ(budget.current().requests_per_second, 0.5);
}

TEST(RateBudget, UnlimitedSlowsToHalfTheObservedRateThenLiftsTheLimit) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(0), std::nullopt, WithClock(clock), nullptr);
  for (int i = 0; i < 40; ++i) {
    budget.Reserve(1);
    clock.Advance(absl::Milliseconds(25));  // 40 per second.
  }
  budget.OnThrottle(absl::ZeroDuration());
  EXPECT_NEAR(budget.current().requests_per_second, 20, 1);
  clock.Advance(absl::Seconds(100));
  budget.OnSuccess();
  EXPECT_EQ(budget.current().requests_per_second, 0) << "recovered: unlimited again";
}

TEST(RateBudget, StartsFromTheLearnedRateAndKeepsItUntilSuccessesRaiseIt) {
  FakeClock clock(kStart);
  RateBudget budget(Speed(8), LearnedRate{2, 0}, WithClock(clock), nullptr);
  EXPECT_DOUBLE_EQ(budget.current().requests_per_second, 2);
  std::vector<absl::Time> times = SendAll(budget, clock, 10);
  EXPECT_LE(MaxInWindow(times, absl::Seconds(1)), 2 + 2);
  budget.OnSuccess();  // The first success alone does not jump to the ceiling.
  EXPECT_DOUBLE_EQ(budget.current().requests_per_second, 2);
  // A learned rate above the ceiling (the settings were lowered) is capped.
  RateBudget capped(Speed(3), LearnedRate{6, 0}, WithClock(clock), nullptr);
  EXPECT_DOUBLE_EQ(capped.current().requests_per_second, 3);
}

TEST(RateBudget, SavesOnChangeNotPerRequest) {
  FakeClock clock(kStart);
  std::vector<LearnedRate> saved;
  RateBudget budget(Speed(16), std::nullopt, WithClock(clock),
                    [&](const LearnedRate& rate) { saved.push_back(rate); });
  for (int i = 0; i < 50; ++i) {
    budget.Reserve(1);
    budget.OnSuccess();
  }
  EXPECT_TRUE(saved.empty()) << "successes at the ceiling change nothing";
  budget.OnThrottle(absl::Seconds(1));
  ASSERT_EQ(saved.size(), 1u);
  EXPECT_DOUBLE_EQ(saved[0].requests_per_second, 8);
  // Small recovery steps are not saved; a quarter or more is.
  clock.Advance(absl::Milliseconds(500));
  budget.OnSuccess();  // 8.2
  EXPECT_EQ(saved.size(), 1u);
  clock.Advance(absl::Seconds(8));
  budget.OnSuccess();  // 11.4: +30%.
  ASSERT_EQ(saved.size(), 2u);
  clock.Advance(absl::Seconds(60));
  budget.OnSuccess();  // Back at the ceiling.
  ASSERT_EQ(saved.size(), 3u);
  EXPECT_DOUBLE_EQ(saved[2].requests_per_second, 16);
}

TEST(RateBudget, AcquireWaitsOnTheContextAndHonoursCancellation) {
  auto ctx = sdk::testing::TestRunContext::WithFakeClock();
  ContextClock clock(*ctx);
  RateBudgetOptions options;
  options.clock = &clock;
  RateBudget budget(Speed(1), std::nullopt, options, nullptr);
  EXPECT_TRUE(budget.Acquire(1, *ctx));
  EXPECT_TRUE(budget.Acquire(1, *ctx));
  ASSERT_EQ(ctx->sleeps().size(), 1u);
  EXPECT_EQ(ctx->sleeps()[0], absl::Seconds(1));
  budget.OnThrottle(absl::Seconds(30));
  ctx->Cancel();
  EXPECT_FALSE(budget.Acquire(1, *ctx));
}

TEST(RateBudgetRegistry, OneBudgetPerConnectionSharedByEveryCaller) {
  FakeClock clock(kStart);
  std::vector<std::string> loaded;
  RateBudgetRegistry::Hooks hooks;
  hooks.load = [&](const std::string& id) -> std::optional<LearnedRate> {
    loaded.push_back(id);
    if (id == "slow") return LearnedRate{1, 0};
    return std::nullopt;
  };
  RateBudgetRegistry registry(hooks, WithClock(clock));
  auto a = registry.ForConnection("conn", Speed(4));
  auto b = registry.ForConnection("conn", Speed(4));
  EXPECT_EQ(a, b);
  EXPECT_NE(registry.ForConnection("other", Speed(4)), a);
  EXPECT_DOUBLE_EQ(registry.ForConnection("slow", Speed(4))->current().requests_per_second, 1);
  EXPECT_THAT(loaded, ::testing::ElementsAre("conn", "other", "slow"));
  // Two runs drawing from one budget together stay within the rate.
  std::vector<absl::Time> times;
  for (int i = 0; i < 20; ++i) {
    RateBudget& budget = i % 2 == 0 ? *a : *b;
    absl::Time at = budget.Reserve(1);
    if (at > clock.Now()) clock.Advance(at - clock.Now());
    times.push_back(at);
  }
  EXPECT_LE(MaxInWindow(times, absl::Seconds(3)), 4 + 12);
  // Edited settings change the ceiling of the shared budget.
  registry.ForConnection("conn", Speed(2));
  EXPECT_DOUBLE_EQ(a->current().requests_per_second, 2);
}

TEST(RateBudgetRegistry, SavesUnderTheConnectionId) {
  FakeClock clock(kStart);
  std::vector<std::pair<std::string, LearnedRate>> saved;
  RateBudgetRegistry::Hooks hooks;
  hooks.save = [&](const std::string& id, const LearnedRate& rate) {
    saved.emplace_back(id, rate);
  };
  RateBudgetRegistry registry(hooks, WithClock(clock));
  registry.ForConnection("conn", Speed(10))->OnThrottle(absl::ZeroDuration());
  ASSERT_EQ(saved.size(), 1u);
  EXPECT_EQ(saved[0].first, "conn");
  EXPECT_DOUBLE_EQ(saved[0].second.requests_per_second, 5);
}

TEST(RateBudget, ThreadSafeUnderConcurrentSenders) {
  RateBudget budget(Speed(1000), std::nullopt, {}, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        budget.Reserve(10);
        if (i % 50 == 0) budget.OnThrottle(absl::ZeroDuration());
        budget.OnSuccess();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(budget.current().requests_per_second, 0.5);
}

}  // namespace
}  // namespace exportd::destinations
