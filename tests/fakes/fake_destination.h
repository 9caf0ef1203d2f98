// An in-process destination for tests of the core: it keeps audiences in
// memory, and can be told to reject records or fail calls. It reports a
// "request" (RunContext::RequestDone) per Check (/fake/check: 200, or 503
// for a failed one) and per Upsert/Remove that gets past the failures
// (/fake/upsert, /fake/remove: 200, or 429 when throttled). Registered through
// the same DestinationRegistry interface as the plugins.
#ifndef EXPORTD_TESTS_FAKES_FAKE_DESTINATION_H_
#define EXPORTD_TESTS_FAKES_FAKE_DESTINATION_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "exportd/sdk/destination.h"

namespace exportd::testing {

// State shared by a FakeDestination and the test that made it.
struct FakeState {
  absl::Mutex mu;
  // audience name -> profile id -> the record's first value, or "" if none.
  std::map<std::string, std::map<std::string, std::string>> audiences ABSL_GUARDED_BY(mu);
  // Settings every Connect() received, last one wins.
  std::map<std::string, std::string, std::less<>> last_settings ABSL_GUARDED_BY(mu);
  // Profile ids to reject with reason "fake_reject".
  std::set<std::string> reject ABSL_GUARDED_BY(mu);
  // Profile ids whose records come back retryable (reason "fake_busy",
  // message `retryable_message`) instead of delivered.
  std::set<std::string> retryable ABSL_GUARDED_BY(mu);
  std::string retryable_message ABSL_GUARDED_BY(mu) = "the fake is busy";
  // How many more times a record in `retryable` comes back retryable before
  // it is delivered; -1: every time.
  int retryable_times ABSL_GUARDED_BY(mu) = -1;
  // Records that came back retryable, by profile id.
  std::map<std::string, int> retryable_answers ABSL_GUARDED_BY(mu);
  // Keys (key_by_identifier) the destination erased on request: records and
  // removals for them are rejected with reason sdk::kReasonForgotten.
  std::set<std::string> forgotten ABSL_GUARDED_BY(mu);
  // Records (not removals) that reached a key in `forgotten`.
  int forgotten_attempts ABSL_GUARDED_BY(mu) = 0;
  // Calls to fail (UNAVAILABLE) before the next one succeeds, and the
  // message they fail with.
  int fail_calls ABSL_GUARDED_BY(mu) = 0;
  std::string fail_message ABSL_GUARDED_BY(mu) = "fake destination is unavailable";
  // A line every Check, Upsert and Remove logs through RunContext::Log; none
  // if empty.
  std::string log_line ABSL_GUARDED_BY(mu);
  // Upsert/Remove calls to throttle (RunContext::ReportThrottle with
  // `throttle_retry_after`, then RESOURCE_EXHAUSTED) before one goes through.
  int throttle_calls ABSL_GUARDED_BY(mu) = 0;
  absl::Duration throttle_retry_after ABSL_GUARDED_BY(mu) = absl::ZeroDuration();
  // EnsureAudience calls to throttle the same way (`throttle_retry_after`)
  // before one goes through.
  int ensure_throttle_calls ABSL_GUARDED_BY(mu) = 0;
  // Throttled calls so far (Upsert, Remove and EnsureAudience).
  int throttled ABSL_GUARDED_BY(mu) = 0;
  // When each EnsureAudience call arrived (RunContext::Now; throttled ones
  // included).
  std::vector<absl::Time> ensure_times ABSL_GUARDED_BY(mu);
  // Upsert/Remove calls that answer NOT_FOUND (the audience was deleted at
  // the destination) before one goes through, and how many EnsureAudience
  // calls there were.
  int gone_calls ABSL_GUARDED_BY(mu) = 0;
  int ensure_calls ABSL_GUARDED_BY(mu) = 0;
  // When set, Connection::speed() of new connections (else the manifest's).
  std::optional<sdk::SyncSpeed> connection_speed ABSL_GUARDED_BY(mu);
  // When each Upsert/Remove call arrived (throttled ones included).
  std::vector<absl::Time> call_times ABSL_GUARDED_BY(mu);
  int upsert_calls ABSL_GUARDED_BY(mu) = 0;
  int remove_calls ABSL_GUARDED_BY(mu) = 0;
  // Records received by Upsert and Remove, over all calls.
  int upserted_records ABSL_GUARDED_BY(mu) = 0;
  int removed_records ABSL_GUARDED_BY(mu) = 0;
  // Set before MakeFakeDestination: `key` is the destination's identifier
  // (canonical form: trimmed and lowercased) and `audiences` maps the
  // canonical key -> the profile id sent for it. Keys without '@' are
  // rejected with reason "invalid_key".
  bool key_by_identifier = false;
};

// Manifest: name `fake`; settings `token` (secret, required), `mode` enum
// fast|slow (default fast), `limit` int optional; mapping `key` required,
// extra fields allowed, `reserved` reserved; supports removal; a privacy
// statement of two paragraphs, version kFakePrivacyStatementVersion.
inline constexpr char kFakePrivacyStatementVersion[] = "2026-01-01";
std::unique_ptr<sdk::Destination> MakeFakeDestination(std::shared_ptr<FakeState> state);

}  // namespace exportd::testing

#endif  // EXPORTD_TESTS_FAKES_FAKE_DESTINATION_H_
