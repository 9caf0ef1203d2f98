#include "retry_policy.h"

#include "gtest/gtest.h"

namespace exportd::iterable {
namespace {

TEST(IsRetryableHttpStatus, RetriesThrottlingTimeoutsAndServerErrorsButNot501) {
  for (int status : {408, 429, 500, 502, 503, 504, 599}) EXPECT_TRUE(IsRetryableHttpStatus(status));
  for (int status : {200, 400, 401, 403, 404, 409, 413, 422, 501}) {
    EXPECT_FALSE(IsRetryableHttpStatus(status)) << status;
  }
}

TEST(ParseRetryAfter, SecondsAndHttpDates) {
  const absl::Time now = absl::FromUnixSeconds(1'445'412'470);  // 2015-10-21 07:27:50 UTC.
  EXPECT_EQ(ParseRetryAfter("3", now), absl::Seconds(3));
  EXPECT_EQ(ParseRetryAfter(" 0\r\n", now), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now), absl::Seconds(10));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:00:00 GMT", now), absl::ZeroDuration());
  EXPECT_FALSE(ParseRetryAfter("", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("soon", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("-1", now).has_value());
}

TEST(JitteredBackoff, FullJitterWithinTheExponentialCeiling) {
  RetryPolicy policy;
  policy.initial_backoff = absl::Milliseconds(500);
  policy.max_backoff = absl::Seconds(4);
  EXPECT_EQ(JitteredBackoff(policy, 1, 0.0), absl::ZeroDuration());
  EXPECT_EQ(JitteredBackoff(policy, 1, 1.0), absl::Milliseconds(500));
  EXPECT_EQ(JitteredBackoff(policy, 2, 1.0), absl::Seconds(1));
  EXPECT_EQ(JitteredBackoff(policy, 3, 0.5), absl::Seconds(1));
  EXPECT_EQ(JitteredBackoff(policy, 10, 1.0), absl::Seconds(4));
  EXPECT_EQ(JitteredBackoff(policy, 1000, 1.0), absl::Seconds(4));
  for (int retry = 1; retry < 8; ++retry) {
    for (double u : {0.0, 0.1, 0.5, 0.999}) {
      const absl::Duration d = JitteredBackoff(policy, retry, u);
      EXPECT_GE(d, absl::ZeroDuration());
      EXPECT_LE(d, policy.max_backoff);
    }
  }
}

TEST(RetryState, BoundsAttempts) {
  RetryPolicy policy;
  policy.max_attempts = 3;
  const absl::Time start = absl::FromUnixSeconds(1000);
  RetryState retry(policy, start);
  EXPECT_TRUE(retry.NextDelay(start, std::nullopt, 0.5).has_value());
  EXPECT_TRUE(retry.NextDelay(start, std::nullopt, 0.5).has_value());
  EXPECT_FALSE(retry.NextDelay(start, std::nullopt, 0.5).has_value());
  EXPECT_EQ(retry.attempts(), 3);
}

TEST(RetryState, HonoursRetryAfterAndTheTimeBudget) {
  RetryPolicy policy;
  policy.max_attempts = 100;
  policy.max_total = absl::Seconds(60);
  const absl::Time start = absl::FromUnixSeconds(1000);
  RetryState retry(policy, start);
  EXPECT_EQ(retry.NextDelay(start, absl::Seconds(7), 0.0), absl::Seconds(7));
  // A Retry-After beyond the budget ends the retries rather than waiting.
  EXPECT_FALSE(retry.NextDelay(start + absl::Seconds(10), absl::Seconds(51), 0.0).has_value());
  RetryState late(policy, start);
  EXPECT_FALSE(late.NextDelay(start + absl::Seconds(61), std::nullopt, 0.0).has_value());
}

}  // namespace
}  // namespace exportd::iterable
