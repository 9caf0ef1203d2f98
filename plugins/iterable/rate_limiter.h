// A client-side request throttle shared by every thread of a Connection.
//
// A token bucket (burst = max(1, rate)) on requests per second when a rate is
// configured; unlimited otherwise. It adapts to Iterable's answers: a 429
// halves the current rate (from the observed request rate when unlimited), at
// most once per second so a burst of parallel 429s counts once, and pauses
// everyone until Retry-After; successes then raise the rate again additively
// (back to the ceiling in about 20 s).
//
// The clock is injected so tests need no sleeps:
//   AdaptiveRateLimiter limiter({.requests_per_second = 10}, [&] { return fake_now; });
//   absl::Duration wait = limiter.Reserve();  // Sleep this long, then send.
#ifndef EXPORTD_PLUGINS_ITERABLE_RATE_LIMITER_H_
#define EXPORTD_PLUGINS_ITERABLE_RATE_LIMITER_H_

#include <functional>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace exportd::iterable {

class AdaptiveRateLimiter {
 public:
  using Clock = std::function<absl::Time()>;

  struct Options {
    // The ceiling; 0 means no client-side limit until a 429 arrives.
    double requests_per_second = 0;
    // The rate never drops below this.
    double min_requests_per_second = 0.5;
    // Time to climb from half the ceiling back to the ceiling is about
    // recovery_seconds / 2.
    double recovery_seconds = 40;
  };

  AdaptiveRateLimiter(Options options, Clock clock);

  // Reserves the next request slot and returns how long the caller must wait
  // before sending (zero when it may send now). A reservation is not given
  // back: a caller that gives up simply leaves a gap.
  absl::Duration Reserve();

  // Reports a request that Iterable accepted (any non-429 answer).
  void OnSuccess();

  // Reports a 429. `retry_after` pauses every caller until then.
  void OnRateLimited(std::optional<absl::Duration> retry_after);

  // The rate currently enforced; 0 means unlimited.
  double current_rate() const;

 private:
  double ObservedRateLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Clock clock_;
  mutable absl::Mutex mu_;
  // 0 = unlimited.
  double rate_ ABSL_GUARDED_BY(mu_);
  // The rate successes climb back to; 0 = unlimited.
  double ceiling_ ABSL_GUARDED_BY(mu_);
  // When unlimited and slowed down: the observed rate at the 429, the rate at
  // which the limit is lifted again.
  double unlimited_target_ ABSL_GUARDED_BY(mu_) = 0;
  // GCRA: the theoretical arrival time of the next request.
  absl::Time next_slot_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time paused_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_decrease_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_increase_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Requests per one-second window, to estimate the rate when unlimited.
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int window_count_ ABSL_GUARDED_BY(mu_) = 0;
  int previous_window_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace exportd::iterable

#endif  // EXPORTD_PLUGINS_ITERABLE_RATE_LIMITER_H_
