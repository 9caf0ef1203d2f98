#include "rate_limiter.h"

#include "gtest/gtest.h"

namespace exportd::iterable {
namespace {

class FakeClock {
 public:
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  AdaptiveRateLimiter::Clock clock() {
    return [this] { return now; };
  }
};

TEST(AdaptiveRateLimiter, UnlimitedNeverWaits) {
  FakeClock clock;
  AdaptiveRateLimiter limiter({}, clock.clock());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(limiter.Reserve(), absl::ZeroDuration());
  EXPECT_EQ(limiter.current_rate(), 0);
}

TEST(AdaptiveRateLimiter, TokenBucketAllowsABurstThenSpacesRequests) {
  FakeClock clock;
  AdaptiveRateLimiter limiter({/*requests_per_second=*/5}, clock.clock());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.Reserve(), absl::ZeroDuration()) << i;
  EXPECT_EQ(limiter.Reserve(), absl::Milliseconds(200));
  EXPECT_EQ(limiter.Reserve(), absl::Milliseconds(400));
  clock.now += absl::Seconds(10);  // The bucket refills, but only up to the burst.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.Reserve(), absl::ZeroDuration()) << i;
  EXPECT_GT(limiter.Reserve(), absl::ZeroDuration());
}

TEST(AdaptiveRateLimiter, SustainedRateMatchesTheLimit) {
  FakeClock clock;
  AdaptiveRateLimiter limiter({/*requests_per_second=*/10}, clock.clock());
  // Each caller sleeps what it is told; 100 requests after the burst take ~10 s.
  absl::Time last_send;
  for (int i = 0; i < 110; ++i) {
    last_send = clock.now + limiter.Reserve();
  }
  EXPECT_NEAR(absl::ToDoubleSeconds(last_send - clock.now), 10.0, 0.2);
}

TEST(AdaptiveRateLimiter, HalvesOnRateLimitOncePerBurstAndRecoversAdditively) {
  FakeClock clock;
  AdaptiveRateLimiter limiter({/*requests_per_second=*/20, 0.5, /*recovery_seconds=*/40},
                              clock.clock());
  limiter.OnRateLimited(std::nullopt);
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 10);
  limiter.OnRateLimited(std::nullopt);  // Same burst of parallel 429s: counted once.
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 10);
  clock.now += absl::Seconds(2);
  limiter.OnRateLimited(std::nullopt);
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 5);
  // Recovery: ceiling / recovery_seconds per second of successes.
  clock.now += absl::Seconds(10);
  limiter.OnSuccess();
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 10);
  clock.now += absl::Seconds(100);
  limiter.OnSuccess();
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 20) << "never above the configured rate";
}

TEST(AdaptiveRateLimiter, NeverBelowTheMinimum) {
  FakeClock clock;
  AdaptiveRateLimiter limiter({/*requests_per_second=*/2, /*min=*/0.5}, clock.clock());
  for (int i = 0; i < 10; ++i) {
    limiter.OnRateLimited(std::nullopt);
    clock.now += absl::Seconds(2);
  }
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 0.5);
}

TEST(AdaptiveRateLimiter, RetryAfterPausesEveryone) {
  FakeClock clock;
  AdaptiveRateLimiter limiter({}, clock.clock());
  limiter.OnRateLimited(absl::Seconds(3));
  EXPECT_GE(limiter.Reserve(), absl::Seconds(3));
  clock.now += absl::Seconds(60);
  EXPECT_LT(limiter.Reserve(), absl::Seconds(1));
}

TEST(AdaptiveRateLimiter, UnlimitedSlowsToHalfTheObservedRateThenLiftsTheLimit) {
  FakeClock clock;
  AdaptiveRateLimiter limiter({}, clock.clock());
  // 40 requests over one second, then a 429.
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(limiter.Reserve(), absl::ZeroDuration());
    clock.now += absl::Milliseconds(25);
  }
  limiter.OnRateLimited(std::nullopt);
  EXPECT_NEAR(limiter.current_rate(), 20, 2);
  // The limit is enforced now.
  absl::Duration total;
  for (int i = 0; i < 40; ++i) total = limiter.Reserve();
  EXPECT_GE(total, absl::Milliseconds(900));
  // After enough successful time, the limit is lifted again.
  clock.now += absl::Seconds(120);
  limiter.OnSuccess();
  EXPECT_EQ(limiter.current_rate(), 0);
}

}  // namespace
}  // namespace exportd::iterable
