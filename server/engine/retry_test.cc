#include "server/engine/retry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::engine {
namespace {

using ::testing::HasSubstr;

TEST(RetryTest, BackoffDoublesPerAttemptWithUpToAFifthOfJitter) {
  RetryPolicy policy{5, absl::Seconds(30)};
  EXPECT_EQ(DecideRetry(policy, 1, "x", 0).delay, absl::Seconds(30));
  EXPECT_EQ(DecideRetry(policy, 2, "x", 0).delay, absl::Seconds(60));
  EXPECT_EQ(DecideRetry(policy, 3, "x", 0).delay, absl::Seconds(120));
  EXPECT_EQ(DecideRetry(policy, 1, "x", 0.5).delay, absl::Seconds(33));
  EXPECT_EQ(DecideRetry(policy, 1, "x", 7).delay, absl::Seconds(36));  // Jitter is capped.
}

// The plugin's tries of one request and the engine's run attempts read as
// two different things, the cause first.
TEST(RetryTest, MessagesSayWhyThenWhichRunAttemptComesWhen) {
  RetryPolicy policy{3, absl::Seconds(30)};
  RetryDecision next = DecideRetry(
      policy, 1, "Iterable request failed after 2 tries: GET /api/lists: HTTP 503", 0);
  EXPECT_FALSE(next.give_up);
  EXPECT_EQ(next.message,
            "Iterable request failed after 2 tries: GET /api/lists: HTTP 503; the run will be "
            "tried again (run attempt 2 of 3) in 30s");
  RetryDecision last = DecideRetry(policy, 3, "unavailable", 0);
  EXPECT_TRUE(last.give_up);
  EXPECT_EQ(last.message, "unavailable; gave up after run attempt 3 of 3");
}

TEST(RetryTest, OneAttemptNeverRetries) {
  EXPECT_TRUE(DecideRetry({1, absl::Seconds(1)}, 1, "x", 0).give_up);
}

TEST(RetryTest, OnlyTransientFailuresAreRetryable) {
  EXPECT_TRUE(IsRetryable(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(IsRetryable(absl::StatusCode::kResourceExhausted));
  EXPECT_TRUE(IsRetryable(absl::StatusCode::kAborted));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kUnauthenticated));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace exportd::engine
