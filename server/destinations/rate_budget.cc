#include "server/destinations/rate_budget.h"

#include <algorithm>
#include <cmath>
#include <utility>


namespace exportd::destinations {
namespace {

// Whether the rate moved from `saved` to `now` by enough to be worth a write:
// a limit installed or lifted, or a change of a quarter or more.
bool Significant(double saved, double now) {
  if (saved == now) return false;
  if (saved <= 0 || now <= 0) return true;
  return std::abs(saved - now) / std::max(saved, now) >= 0.25;
}

}  // namespace

absl::Time RateBudget::Bucket::EarliestFor(double units, absl::Time not_before) const {
  if (rate <= 0) return not_before;
  const double own = rate / share;  // This replica's part of the rate.
  const double interval = 1.0 / own;
  // The bucket holds max(1, rate) tokens, or one whole batch when a batch is
  // bigger (it then goes alone, at the rate).
  const double capacity = std::max({1.0, own, units});
  const absl::Time earliest = next_slot + absl::Seconds((units - capacity) * interval);
  return std::max(not_before, earliest);
}

void RateBudget::Bucket::Take(double units, absl::Time send_at, absl::Time now) {
  if (now - window_start >= absl::Seconds(1)) {
    previous_window_units = (now - window_start < absl::Seconds(2)) ? window_units : 0;
    window_start = now;
    window_units = 0;
  }
  window_units += units;
  if (rate <= 0) return;
  next_slot = std::max(next_slot, send_at) + absl::Seconds(units * share / rate);
}

double RateBudget::Bucket::Observed(absl::Time now) const {
  const double in_window = absl::ToDoubleSeconds(now - window_start);
  const double current = window_units / std::max(in_window, 0.25);
  return std::max(previous_window_units, current);
}

void RateBudget::Bucket::Halve(absl::Time now) {
  if (rate <= 0) {
    if (!adapts_when_unlimited) return;
    unlimited_target = std::max(2 * minimum, Observed(now));
    rate = std::max(minimum, unlimited_target / 2);
  } else {
    rate = std::max(minimum, rate / 2);
  }
  // No burst right after slowing down.
  next_slot = std::max(next_slot, now);
}

void RateBudget::Bucket::Recover(double elapsed_seconds, double recovery_seconds) {
  if (rate <= 0) return;  // Unlimited.
  const double target = ceiling > 0 ? ceiling : unlimited_target;
  if (target <= 0 || rate >= target) return;
  rate += target / recovery_seconds * std::max(0.0, elapsed_seconds);
  if (rate >= target) rate = ceiling;  // 0 when unlimited: the limit is lifted again.
}

RateBudget::RateBudget(const sdk::SyncSpeed& ceiling, std::optional<LearnedRate> learned,
                       RateBudgetOptions options, std::function<void(const LearnedRate&)> on_change)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      on_change_(std::move(on_change)) {
  absl::MutexLock lock(&mu_);
  auto init = [](Bucket& b, double ceiling_rate, double minimum, double learned_rate) {
    b.ceiling = std::max(0.0, ceiling_rate);
    b.minimum = minimum;
    b.rate = b.ceiling;
    if (learned_rate > 0 && (b.ceiling == 0 || learned_rate < b.ceiling)) {
      b.rate = std::max(minimum, learned_rate);
      if (b.ceiling == 0) b.unlimited_target = 2 * b.rate;
    }
  };
  requests_.adapts_when_unlimited = true;
  init(requests_, ceiling.requests_per_second, options_.min_requests_per_second,
       learned ? learned->requests_per_second : 0);
  init(records_, ceiling.records_per_second, options_.min_records_per_second,
       learned ? learned->records_per_second : 0);
  saved_ = learned ? *learned : CurrentLocked();
}

absl::Time RateBudget::Now() const { return clock_->Now(); }

absl::Time RateBudget::Reserve(std::int64_t records) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  const double units = static_cast<double>(std::max<std::int64_t>(0, records));
  absl::Time send_at = std::max(now, paused_until_);
  send_at = std::max(requests_.EarliestFor(1, send_at), records_.EarliestFor(units, send_at));
  requests_.Take(1, send_at, now);
  records_.Take(units, send_at, now);
  return send_at;
}

bool RateBudget::Acquire(std::int64_t records, sdk::RunContext& ctx) {
  absl::Time send_at = Reserve(records);
  // A throttle reported by another sender while this one waits pauses it too.
  for (int round = 0; round < 100; ++round) {
    const absl::Time until = std::max(send_at, paused_until());
    const absl::Duration wait = until - clock_->Now();
    if (wait <= absl::ZeroDuration()) return !ctx.cancelled();
    if (!ctx.SleepFor(wait)) return false;
  }
  return !ctx.cancelled();
}

void RateBudget::OnSuccess() {
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    backoffs_ = 0;
    const double elapsed = absl::ToDoubleSeconds(now - std::max(last_increase_, last_decrease_));
    if (last_increase_ == absl::InfinitePast() && last_decrease_ == absl::InfinitePast()) {
      last_increase_ = now;
      return;
    }
    requests_.Recover(elapsed, options_.recovery_seconds);
    records_.Recover(elapsed, options_.recovery_seconds);
    last_increase_ = now;
  }
  MaybeSave();
}

void RateBudget::OnThrottle(absl::Duration retry_after) {
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    if (retry_after <= absl::ZeroDuration() && now >= paused_until_) {
      // The destination did not say how long: back off exponentially.
      const int doublings = std::min(backoffs_++, 20);
      absl::Duration backoff =
          std::min(options_.max_backoff, options_.first_backoff * (1 << doublings));
      jitter_state_ = jitter_state_ * 6364136223846793005ull + 1442695040888963407ull;
      backoff += backoff * (static_cast<double>(jitter_state_ >> 11) / 9007199254740992.0 * 0.2);
      retry_after = backoff;
    }
    if (retry_after > absl::ZeroDuration()) {
      paused_until_ = std::max(paused_until_, now + retry_after);
      requests_.next_slot = std::max(requests_.next_slot, paused_until_);
      records_.next_slot = std::max(records_.next_slot, paused_until_);
    }
    // One burst of throttles (parallel requests) counts once.
    if (now - last_decrease_ >= absl::Seconds(1)) {
      last_decrease_ = now;
      requests_.Halve(now);
      records_.Halve(now);
    }
  }
  MaybeSave();
}

void RateBudget::SetCeiling(const sdk::SyncSpeed& ceiling) {
  absl::MutexLock lock(&mu_);
  auto update = [](Bucket& b, double new_ceiling) {
    new_ceiling = std::max(0.0, new_ceiling);
    if (new_ceiling == b.ceiling) return;
    const bool at_ceiling = b.rate == b.ceiling;
    b.ceiling = new_ceiling;
    if (at_ceiling) {
      b.rate = new_ceiling;
    } else if (new_ceiling > 0) {
      b.rate = std::min(b.rate, new_ceiling);
    } else if (b.unlimited_target <= 0) {
      b.unlimited_target = 2 * b.rate;
    }
  };
  update(requests_, ceiling.requests_per_second);
  update(records_, ceiling.records_per_second);
}

void RateBudget::SetShare(int replicas) {
  absl::MutexLock lock(&mu_);
  const double share = std::max(1, replicas);
  requests_.share = share;
  records_.share = share;
}

int RateBudget::share() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(requests_.share);
}

LearnedRate RateBudget::CurrentLocked() const { return LearnedRate{requests_.rate, records_.rate}; }

LearnedRate RateBudget::current() const {
  absl::MutexLock lock(&mu_);
  return CurrentLocked();
}

absl::Time RateBudget::paused_until() const {
  absl::MutexLock lock(&mu_);
  return paused_until_;
}

void RateBudget::MaybeSave() {
  if (!on_change_) return;
  absl::MutexLock save_lock(&save_mu_);
  LearnedRate now;
  {
    absl::MutexLock lock(&mu_);
    now = CurrentLocked();
    const bool at_ceiling =
        now.requests_per_second == requests_.ceiling && now.records_per_second == records_.ceiling;
    if (now == saved_) return;
    if (!at_ceiling && !Significant(saved_.requests_per_second, now.requests_per_second) &&
        !Significant(saved_.records_per_second, now.records_per_second)) {
      return;
    }
    saved_ = now;
  }
  // Outside the budget's lock: senders are not held up by the write.
  on_change_(now);
}

RateBudgetRegistry::RateBudgetRegistry(Hooks hooks, RateBudgetOptions options)
    : hooks_(std::move(hooks)), options_(std::move(options)) {}

std::shared_ptr<RateBudget> RateBudgetRegistry::ForConnection(const std::string& connection_id,
                                                              const sdk::SyncSpeed& speed) {
  {
    absl::MutexLock lock(&mu_);
    auto it = budgets_.find(connection_id);
    if (it != budgets_.end()) {
      it->second->SetCeiling(speed);
      return it->second;
    }
  }
  // Loaded outside the lock: other connections' runs need not wait for it.
  std::optional<LearnedRate> learned;
  if (hooks_.load) learned = hooks_.load(connection_id);
  std::function<void(const LearnedRate&)> on_change;
  if (hooks_.save) {
    on_change = [save = hooks_.save, connection_id](const LearnedRate& rate) {
      save(connection_id, rate);
    };
  }
  auto budget = std::make_shared<RateBudget>(speed, learned, options_, std::move(on_change));
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = budgets_.emplace(connection_id, budget);
  if (!inserted) it->second->SetCeiling(speed);
  return it->second;
}

}  // namespace exportd::destinations
