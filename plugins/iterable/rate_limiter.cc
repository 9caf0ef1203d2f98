#include "rate_limiter.h"

#include <algorithm>

namespace exportd::iterable {

AdaptiveRateLimiter::AdaptiveRateLimiter(Options options, Clock clock)
    : options_(options),
      clock_(std::move(clock)),
      rate_(std::max(0.0, options.requests_per_second)),
      ceiling_(std::max(0.0, options.requests_per_second)) {}

absl::Duration AdaptiveRateLimiter::Reserve() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_();
  if (now - window_start_ >= absl::Seconds(1)) {
    previous_window_count_ = (now - window_start_ < absl::Seconds(2)) ? window_count_ : 0;
    window_start_ = now;
    window_count_ = 0;
  }
  ++window_count_;

  absl::Time send_at = std::max(now, paused_until_);
  if (rate_ > 0) {
    const absl::Duration interval = absl::Seconds(1.0 / rate_);
    const double burst = std::max(1.0, rate_);
    const absl::Duration tolerance = interval * (burst - 1);
    // GCRA: a request may go once the theoretical arrival time is within the
    // burst tolerance of its send time.
    const absl::Time tat = std::max(next_slot_, send_at);
    send_at = std::max(send_at, tat - tolerance);
    next_slot_ = tat + interval;
  }
  return send_at - now;
}

void AdaptiveRateLimiter::OnSuccess() {
  absl::MutexLock lock(&mu_);
  if (rate_ <= 0) return;  // Unlimited.
  const double target = ceiling_ > 0 ? ceiling_ : unlimited_target_;
  if (rate_ >= target) return;
  const absl::Time now = clock_();
  const double elapsed = absl::ToDoubleSeconds(now - std::max(last_increase_, last_decrease_));
  rate_ += target / options_.recovery_seconds * std::max(0.0, elapsed);
  last_increase_ = now;
  if (rate_ >= target) rate_ = ceiling_;  // 0 when unlimited: the limit is lifted again.
}

void AdaptiveRateLimiter::OnRateLimited(std::optional<absl::Duration> retry_after) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_();
  if (retry_after && *retry_after > absl::ZeroDuration()) {
    paused_until_ = std::max(paused_until_, now + *retry_after);
    next_slot_ = std::max(next_slot_, paused_until_);
  }
  if (now - last_decrease_ < absl::Seconds(1)) return;  // One burst of 429s counts once.
  last_decrease_ = now;
  if (rate_ <= 0) {
    unlimited_target_ = std::max(2 * options_.min_requests_per_second, ObservedRateLocked(now));
    rate_ = std::max(options_.min_requests_per_second, unlimited_target_ / 2);
  } else {
    rate_ = std::max(options_.min_requests_per_second, rate_ / 2);
  }
  // No burst right after slowing down.
  next_slot_ = std::max(next_slot_, now);
}

double AdaptiveRateLimiter::current_rate() const {
  absl::MutexLock lock(&mu_);
  return rate_;
}

double AdaptiveRateLimiter::ObservedRateLocked(absl::Time now) const {
  const double in_window = absl::ToDoubleSeconds(now - window_start_);
  const double current = window_count_ / std::max(in_window, 0.25);
  return std::max<double>(previous_window_count_, current);
}

}  // namespace exportd::iterable
