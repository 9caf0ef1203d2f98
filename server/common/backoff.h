// Exponential backoff with jitter: the one formula for "how long until
// attempt n+1", used by the engine's run retries and by webhook deliveries.
//
//   absl::Duration wait = ExponentialBackoff(absl::Seconds(30), attempt, jitter);
#ifndef EXPORTD_SERVER_COMMON_BACKOFF_H_
#define EXPORTD_SERVER_COMMON_BACKOFF_H_

#include <algorithm>

#include "absl/time/time.h"

namespace exportd {

// After attempt `attempt` (1-based) failed: base * 2^(attempt-1), the
// exponent capped at 10, plus up to 20% for `jitter` in [0, 1), at most
// `cap` (when positive).
inline absl::Duration ExponentialBackoff(absl::Duration base, int attempt, double jitter,
                                         absl::Duration cap = absl::ZeroDuration()) {
  absl::Duration delay = base * (1 << std::min(std::max(attempt, 1) - 1, 10));
  delay += delay * (std::clamp(jitter, 0.0, 1.0) * 0.2);
  if (cap > absl::ZeroDuration()) delay = std::min(delay, cap);
  return delay;
}

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_BACKOFF_H_
