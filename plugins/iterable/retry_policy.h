// When and how long to wait before retrying a request to Iterable.
//
// Retried: 429, 408, 5xx except 501, and transport failures. Waits use
// exponential backoff with full jitter (a uniform draw in
// [0, min(max_backoff, initial_backoff * 2^(n-1))]) unless the answer carried
// Retry-After, which is honoured as given. Attempts and total time are bounded.
//
//   RetryState retry(policy, ctx.Now());
//   while (true) {
//     ... send; on a retryable failure:
//     std::optional<absl::Duration> wait = retry.NextDelay(ctx.Now(), retry_after, Uniform01());
//     if (!wait) break;  // Exhausted: report the records as retryable.
//     if (!ctx.SleepFor(*wait)) return absl::CancelledError(...);
//   }
#ifndef EXPORTD_PLUGINS_ITERABLE_RETRY_POLICY_H_
#define EXPORTD_PLUGINS_ITERABLE_RETRY_POLICY_H_

#include <optional>
#include <string_view>

#include "absl/time/time.h"

namespace exportd::iterable {

struct RetryPolicy {
  // Attempts in total, the first included.
  int max_attempts = 6;
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
  // No retry starts later than this after the first attempt.
  absl::Duration max_total = absl::Seconds(60);
};

// True for statuses worth retrying: 408, 429 and 5xx except 501.
bool IsRetryableHttpStatus(int http_status);

// Parses a Retry-After header value: delta-seconds ("3") or an HTTP-date
// ("Wed, 21 Oct 2015 07:28:00 GMT", relative to `now`). Negative waits become
// zero; garbage gives nullopt.
std::optional<absl::Duration> ParseRetryAfter(std::string_view value, absl::Time now);

// The full-jitter backoff before retry number `retry` (1 for the first retry)
// given a uniform draw in [0, 1).
absl::Duration JitteredBackoff(const RetryPolicy& policy, int retry, double uniform01);

// The retry budget of one request.
class RetryState {
 public:
  RetryState(const RetryPolicy& policy, absl::Time start) : policy_(policy), start_(start) {}

  // Records a failed attempt and returns the wait before the next one, or
  // nullopt when the attempts or the total time are used up (including when
  // Retry-After asks for a wait past the time budget).
  std::optional<absl::Duration> NextDelay(absl::Time now, std::optional<absl::Duration> retry_after,
                                          double uniform01);

  // Attempts made so far.
  int attempts() const { return attempts_; }

 private:
  RetryPolicy policy_;
  absl::Time start_;
  int attempts_ = 0;
};

}  // namespace exportd::iterable

#endif  // EXPORTD_PLUGINS_ITERABLE_RETRY_POLICY_H_
