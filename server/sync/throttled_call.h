// One call to the destination within the connection's shared rate budget,
// made again while the destination throttles it. Every call a run makes to
// the destination goes through here: each batch's Upsert/Remove
// (dispatcher.h) and each segment's EnsureAudience (the engine).
//
// Before each call the budget must allow it (RateBudget::Acquire, which also
// waits out a pause a throttle started). A call that comes back
// RESOURCE_EXHAUSTED after RunContext::ReportThrottle tells the budget
// (OnThrottle: the connection's rate halves and every sender on it pauses
// until the destination's retry-after, however far away) and is made again,
// up to `max_throttle_resends` times: a throttle is not a failed run attempt.
// A pause of kShowWaitsFrom or more is shown as the run's message while it
// lasts (WaitMessage). A cancel ends every wait (CANCELLED).
//
//   absl::StatusOr<sdk::Audience> audience;
//   absl::Status status = CallWithinBudget(
//       options, "the call that finds or creates the segment's audience", 0, ctx,
//       [&](sdk::RunContext& call) {
//         audience = connection->EnsureAudience(name, remembered_id, call);
//         return audience.status();
//       });
#ifndef EXPORTD_SERVER_SYNC_THROTTLED_CALL_H_
#define EXPORTD_SERVER_SYNC_THROTTLED_CALL_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "exportd/sdk/destination.h"
#include "server/destinations/rate_budget.h"

namespace exportd::sync {

struct ThrottledCallOptions {
  // The connection's shared rate budget. Null: no shared limit (tests); a
  // throttled call then waits its retry-after (at least 100 ms) itself.
  destinations::RateBudget* budget = nullptr;
  // The destination's display name (e.g. "Iterable"), for the message shown
  // while the run waits for its rate limit.
  std::string destination_name;
  // Shows what the run waits for (RunTracker::ShowWait); may be empty.
  std::function<void(const std::string& message)> show_wait;
  // How often one call is made again after the destination throttled it,
  // before it fails (RESOURCE_EXHAUSTED, which fails the run attempt
  // retryably).
  int max_throttle_resends = 8;
  // Named in the message of a call throttled too often.
  std::string connection_name;
};

// Pauses at least this long are shown (ThrottledCallOptions::show_wait).
inline constexpr absl::Duration kShowWaitsFrom = absl::Seconds(5);

// "waiting for Iterable's rate limit until 14:05 UTC": a pause until `until`
// (UTC; with the date when not on `now`'s day).
std::string WaitMessage(const std::string& destination_name, absl::Time until, absl::Time now);

// Makes `call` (one call to the destination, on the context it is given)
// within the budget, again while it is throttled. `what` names the call in
// the log and in the failure message ("a batch of 500 records"); `records` is
// how many records it carries (the budget's records/s; 0 for a call without
// records). Returns the last call's status, CANCELLED when the run was
// cancelled while waiting, or RESOURCE_EXHAUSTED after too many throttles.
absl::Status CallWithinBudget(const ThrottledCallOptions& options, absl::string_view what,
                              std::int64_t records, sdk::RunContext& ctx,
                              const std::function<absl::Status(sdk::RunContext& call)>& call);

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_THROTTLED_CALL_H_
