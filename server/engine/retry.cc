#include "server/engine/retry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/backoff.h"

namespace exportd::engine {

bool IsRetryable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted || code == absl::StatusCode::kAborted;
}

RetryDecision DecideRetry(const RetryPolicy& policy, int attempt, absl::string_view why,
                          double jitter) {
  RetryDecision d;
  if (attempt >= policy.max_attempts) {
    d.give_up = true;
    d.message = absl::StrCat(why, "; gave up after run attempt ", attempt, " of ",
                             policy.max_attempts);
    return d;
  }
  d.delay = ExponentialBackoff(policy.base, attempt, jitter);
  absl::Duration shown = d.delay < absl::Seconds(1) ? absl::Trunc(d.delay, absl::Milliseconds(1))
                                                    : absl::Trunc(d.delay, absl::Seconds(1));
  d.message = absl::StrCat(why, "; the run will be tried again (run attempt ", attempt + 1, " of ",
                           policy.max_attempts, ") in ", absl::FormatDuration(shown));
  return d;
}

}  // namespace exportd::engine
