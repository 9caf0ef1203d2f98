// Engine-level retries of a run (--run-attempts, --run-retry-backoff): the one
// owner of "is this failure worth another attempt, and when", and of how the
// run's message says so. A plugin's retries of single requests are its own
// and are counted as "tries" ("Iterable request failed after 6 tries: ...");
// these are "run attempts".
//
//   RetryDecision next = DecideRetry(policy, attempt, why, jitter);
//   if (next.give_up) ... FAILED with next.message
//   else ... FAILED_RETRYING until now + next.delay, with next.message
#ifndef EXPORTD_SERVER_ENGINE_RETRY_H_
#define EXPORTD_SERVER_ENGINE_RETRY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace exportd::engine {

struct RetryPolicy {
  // Attempts of a run, the first included.
  int max_attempts = 3;
  // Backoff before attempt n+1: base * 2^(n-1) (n capped at 11), plus jitter.
  absl::Duration base = absl::Seconds(30);
};

// Whole-call failures worth another run attempt: the destination or the
// store was unavailable, slow, throttling, or a lease or transaction was lost.
bool IsRetryable(absl::StatusCode code);

struct RetryDecision {
  bool give_up = false;
  absl::Duration delay;  // Until the next attempt (when !give_up).
  // "<why>; the run will be tried again (run attempt 2 of 3) in 1m" or
  // "<why>; gave up after run attempt 3 of 3".
  std::string message;
};

// After run attempt `attempt` (1-based) failed retryably because of `why`.
// `jitter` in [0, 1) adds up to 20% to the delay (the engine draws it).
RetryDecision DecideRetry(const RetryPolicy& policy, int attempt, absl::string_view why,
                          double jitter);

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_RETRY_H_
