// The per-connection rate budget: one limiter per connection that every run
// on the connection shares, so that two exports on one connection together
// stay within the connection's speed (SyncSpeed::requests_per_second and
// records_per_second).
//
// A budget is two token buckets (requests per second and records per second,
// each holding max(1, rate) tokens, or one batch when a batch is bigger) that
// adapt to the destination: a throttle report (RunContext::ReportThrottle,
// a RESOURCE_EXHAUSTED answer) halves the request rate, at most once a
// second so that a burst of parallel 429s counts once, and pauses every
// sender until the destination's retry-after, however far away (a sender
// waits with RunContext::SleepFor, which a cancel ends); successes raise the rate again,
// additively, back to the ceiling (about recovery_seconds / 2 from half the
// ceiling). Without a ceiling the first throttle installs a limit at half the
// rate observed, which is lifted again once recovered. A records/s ceiling
// adapts the same way; an unlimited one stays unlimited.
//
// Several replicas on one store share a connection's rate: each enforces
// its share, the rate divided by the number of replicas running on the
// connection (SetShare; engine/rate_share.h keeps that number in the store).
// What is learned and saved is the connection's whole rate.
//
// The rate a budget learned outlives the process: the registry loads it when
// a connection's budget is first used, and saves it when it changes (a
// throttle, a recovery step of a quarter or more, the limit lifted), never
// per batch.
//
//   RateBudgetRegistry budgets(RateBudgetRegistry::Hooks{load, save});
//   std::shared_ptr<RateBudget> budget = budgets.ForConnection("conn-1", speed);
//   if (!budget->Acquire(batch.size(), ctx)) return absl::CancelledError(...);
//   ... send; on success:
//   budget->OnSuccess();
//   ... on a throttle:
//   budget->OnThrottle(retry_after);
//
// Thread-safe. The clock is injected so tests need no sleeps.
#ifndef EXPORTD_SERVER_DESTINATIONS_RATE_BUDGET_H_
#define EXPORTD_SERVER_DESTINATIONS_RATE_BUDGET_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "exportd/sdk/destination.h"
#include "server/common/clock.h"

namespace exportd::destinations {

// What a budget learned, as it is kept across restarts. 0 means unlimited.
struct LearnedRate {
  double requests_per_second = 0;
  double records_per_second = 0;
  bool operator==(const LearnedRate& o) const {
    return requests_per_second == o.requests_per_second &&
           records_per_second == o.records_per_second;
  }
  bool operator!=(const LearnedRate& o) const { return !(*this == o); }
};

struct RateBudgetOptions {
  // The request rate never drops below this (requests per second).
  double min_requests_per_second = 0.5;
  // The records rate never drops below this (records per second).
  double min_records_per_second = 1;
  // Climbing from half the ceiling back to it takes about half of this.
  double recovery_seconds = 40;
  // A throttle without a retry-after pauses the connection too: for
  // first_backoff, doubling with every further throttle (one burst of
  // parallel ones counts once) up to max_backoff, plus up to 20% jitter; a
  // success starts over. Without it, a throttled batch would be resent at
  // once, into the same refusal.
  absl::Duration first_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(30);
  // Where the budget reads the time (tests: a FakeClock).
  const Clock* clock = Clock::Real();
};

class RateBudget {
 public:
  // `ceiling` is the connection's effective speed (Connection::speed());
  // `learned`, when given, the rate learned before (a restart starts there,
  // not at the ceiling). `on_change` is called, outside the budget's lock,
  // when the learned rate changed enough to be saved; may be null.
  RateBudget(const sdk::SyncSpeed& ceiling, std::optional<LearnedRate> learned,
             RateBudgetOptions options, std::function<void(const LearnedRate&)> on_change);

  RateBudget(const RateBudget&) = delete;
  RateBudget& operator=(const RateBudget&) = delete;

  // Reserves a slot for one request carrying `records` records and returns
  // when it may be sent (now or later). A reservation is not given back: a
  // caller that gives up leaves a gap.
  absl::Time Reserve(std::int64_t records);

  // Reserves a slot and waits for it (and for any pause a throttle started
  // meanwhile) with ctx.SleepFor. False when the context was cancelled.
  bool Acquire(std::int64_t records, sdk::RunContext& ctx);

  // A request the destination accepted (whatever the records' outcomes).
  void OnSuccess();

  // The destination throttled a request; nothing is sent before
  // now + `retry_after` (zero: it did not say), however far away that is:
  // the destination said so (a rate-limit reset an hour ahead is honoured).
  void OnThrottle(absl::Duration retry_after);

  // Updates the ceilings when the connection's speed changed (settings
  // edited). The learned rate stays when below the new ceiling.
  void SetCeiling(const sdk::SyncSpeed& ceiling);

  // This replica is one of `replicas` (at least 1) sending on the
  // connection: it sends at 1/replicas of the rate (and bursts as much).
  void SetShare(int replicas);
  int share() const;

  // The connection's rates now (0: unlimited); this replica sends at
  // 1/share() of them.
  LearnedRate current() const;
  // Until when every sender pauses (InfinitePast: no pause).
  absl::Time paused_until() const;
  absl::Time Now() const;

 private:
  // One adaptive token bucket (GCRA: the theoretical arrival time).
  struct Bucket {
    double ceiling = 0;  // 0: unlimited.
    double rate = 0;     // 0: unlimited.
    double minimum = 0;
    // The replicas sharing the rate (this one included).
    double share = 1;
    // When unlimited and slowed down: the rate at which the limit is lifted.
    double unlimited_target = 0;
    bool adapts_when_unlimited = false;
    absl::Time next_slot = absl::InfinitePast();
    // Units sent in the current and the previous one-second window, to
    // estimate the rate when unlimited.
    absl::Time window_start = absl::InfinitePast();
    double window_units = 0;
    double previous_window_units = 0;

    // The earliest time `units` may go, not before `not_before`.
    absl::Time EarliestFor(double units, absl::Time not_before) const;
    void Take(double units, absl::Time send_at, absl::Time now);
    void Halve(absl::Time now);
    void Recover(double elapsed_seconds, double recovery_seconds);
    double Observed(absl::Time now) const;
  };

  LearnedRate CurrentLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls on_change_ with the current rate when it moved enough.
  void MaybeSave();

  const RateBudgetOptions options_;
  const Clock* const clock_;
  const std::function<void(const LearnedRate&)> on_change_;

  mutable absl::Mutex mu_;
  Bucket requests_ ABSL_GUARDED_BY(mu_);
  Bucket records_ ABSL_GUARDED_BY(mu_);
  absl::Time paused_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_decrease_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Throttles without a retry-after since the last success (bursts once).
  int backoffs_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t jitter_state_ ABSL_GUARDED_BY(mu_) = 0x9e3779b97f4a7c15ull;
  absl::Time last_increase_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // What on_change_ was last given (or what was loaded).
  LearnedRate saved_ ABSL_GUARDED_BY(mu_);

  // Serialises on_change_ calls, so that saves arrive in order.
  absl::Mutex save_mu_;
};

// The budgets of every connection, by connection id: the one place runs get
// their limiter from.
class RateBudgetRegistry {
 public:
  struct Hooks {
    // The rate learned before for a connection, if any.
    std::function<std::optional<LearnedRate>(const std::string& connection_id)> load;
    // Keeps a connection's learned rate (errors are the hook's to report).
    std::function<void(const std::string& connection_id, const LearnedRate& rate)> save;
  };

  explicit RateBudgetRegistry(Hooks hooks, RateBudgetOptions options = {});

  // The shared budget of `connection_id`, created on first use (from the
  // learned rate `hooks.load` gives), its ceilings set to `speed`.
  std::shared_ptr<RateBudget> ForConnection(const std::string& connection_id,
                                            const sdk::SyncSpeed& speed);

 private:
  const Hooks hooks_;
  const RateBudgetOptions options_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<RateBudget>> budgets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace exportd::destinations

#endif  // EXPORTD_SERVER_DESTINATIONS_RATE_BUDGET_H_
