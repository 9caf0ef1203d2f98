#include "retry_policy.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace exportd::iterable {

bool IsRetryableHttpStatus(int http_status) {
  if (http_status == 408 || http_status == 429) return true;
  return http_status >= 500 && http_status <= 599 && http_status != 501;
}

std::optional<absl::Duration> ParseRetryAfter(std::string_view value, absl::Time now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r' ||
                            value.back() == '\n')) {
    value.remove_suffix(1);
  }
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return absl::Hours(24 * 365);  // Absurd; the budget check refuses it.
    return absl::Seconds(std::stoll(std::string(value)));
  }
  absl::Time when;
  std::string error;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S", std::string(value.substr(0, value.rfind(' '))),
                      absl::UTCTimeZone(), &when, &error)) {
    return std::max(absl::ZeroDuration(), when - now);
  }
  return std::nullopt;
}

absl::Duration JitteredBackoff(const RetryPolicy& policy, int retry, double uniform01) {
  uniform01 = std::clamp(uniform01, 0.0, 1.0);
  const int exponent = std::clamp(retry - 1, 0, 30);
  absl::Duration ceiling = policy.initial_backoff * std::ldexp(1.0, exponent);
  ceiling = std::min(ceiling, policy.max_backoff);
  return ceiling * uniform01;
}

std::optional<absl::Duration> RetryState::NextDelay(absl::Time now,
                                                    std::optional<absl::Duration> retry_after,
                                                    double uniform01) {
  ++attempts_;
  if (attempts_ >= policy_.max_attempts) return std::nullopt;
  const absl::Duration delay =
      retry_after ? *retry_after : JitteredBackoff(policy_, attempts_, uniform01);
  if (now + delay - start_ > policy_.max_total) return std::nullopt;
  return delay;
}

}  // namespace exportd::iterable
