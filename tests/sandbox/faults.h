// Fault injection for the Iterable sandbox: rate limits (token buckets), injected 5xx answers,
// dropped connections, added latency, "fail the next N", and the invalid-list window.
//
// Endpoint names used by rate limits and fail-next:
//   "lists"        GET    /api/lists
//   "create_list"  POST   /api/lists
//   "delete_list"  DELETE /api/lists/{id}
//   "subscribe"    POST   /api/lists/subscribe
//   "unsubscribe"  POST   /api/lists/unsubscribe
//   "all"          every /api request (a rate limit on "all" is one shared bucket, checked in
//                  addition to the endpoint's own bucket)
//
// Example:
//   FaultOptions faults;
//   faults.rate_limits["subscribe"] = 5;  // 5 requests/s, burst 5
//   faults.retry_after_seconds = 1;
//   sandbox->SetFaults(faults);

#ifndef EXPORTD_TESTS_SANDBOX_FAULTS_H_
#define EXPORTD_TESTS_SANDBOX_FAULTS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace exportd::sandbox {

// The body of a 429 answer.
enum class RateLimitBody {
  kJson,  // {"msg":"Rate limit exceeded...","code":"RateLimitExceeded","params":null}
  kText,  // text/plain "Rate limit exceeded. Please try again later."
};

// Every setting that can change at run time (flags, Options, POST /_sandbox/faults).
struct FaultOptions {
  // Endpoint name (see above) -> allowed requests per second. A token bucket holding
  // max(1, rate) tokens, full at start. Absent or <= 0 means unlimited.
  std::map<std::string, double> rate_limits;
  RateLimitBody rate_limit_body = RateLimitBody::kJson;
  // Sent as `Retry-After` on 429 answers when > 0.
  int retry_after_seconds = 0;
  // JSON 429 answers carry params {"rateLimitLimit", "rateLimitRemaining": 0,
  // "rateLimitReset": epoch ms when the refusing bucket has a token again}, as
  // Iterable's token-bucket answers do.
  bool rate_limit_reset = false;

  // Share (0..1) of /api requests answered with an injected 5xx.
  double fail_5xx_ratio = 0;
  // Status of injected failures; 0 picks 500, 502 or 503 at random.
  int fail_status = 0;
  // Seeds the generator behind fail_5xx_ratio and drop_ratio. Setting faults re-seeds it, so
  // the same settings and the same request sequence give the same outcomes.
  uint64_t seed = 1;

  // Added to every /api request before it is answered (does not block other connections).
  int latency_ms = 0;
  // For this long after a list is created, subscribe/unsubscribe naming it get
  // 400 {"msg":"error.lists.invalidListId(ID)","code":"Success"}.
  int invalid_list_window_ms = 0;
  // Share (0..1) of /api requests whose connection is closed without any answer.
  double drop_ratio = 0;
  // The next N /api requests (of `fail_next_endpoint` only, when not empty) get 503.
  int fail_next = 0;
  std::string fail_next_endpoint;

  // Subscribers per subscribe/unsubscribe call; more -> 400 BatchTooLarge.
  int max_batch = 10000;
  // Request body limit in bytes; more -> 413 BatchTooLarge.
  int64_t max_body_bytes = 4'000'000;
};

// The endpoint names rate limits accept.
bool IsKnownEndpoint(absl::string_view endpoint);

// Parses a `--rate-limit` value "ENDPOINT=N/s" (or "ENDPOINT=N") into *faults.
absl::Status ParseRateLimitFlag(absl::string_view text, FaultOptions* faults);

// JSON form used by GET/POST /_sandbox/faults (camelCase keys, e.g. "fail5xxRatio",
// "rateLimits":{"subscribe":5}, "rateLimitBody":"text").
nlohmann::json FaultsToJson(const FaultOptions& faults);

// Applies the keys present in `patch` on top of `base`; unknown keys or bad values are an
// InvalidArgument error naming the key. "rateLimits" is merged per endpoint: a rate of 0 or
// null removes that endpoint's limit, e.g. {"rateLimits":{"subscribe":null,"lists":100}}.
absl::StatusOr<FaultOptions> ApplyFaultsJson(const FaultOptions& base, const nlohmann::json& patch);

// What to do with a request before it reaches the API logic.
struct FaultDecision {
  enum class Kind { kNone, kDrop, kFail };
  Kind kind = Kind::kNone;
  int status = 0;         // For kFail.
  bool json_body = true;  // For kFail: JSON envelope or an HTML page.
};

// Thread-safe holder of the current FaultOptions, token buckets and random generator.
class FaultInjector {
 public:
  // `clock` drives the token buckets (tests inject a fake one).
  FaultInjector(FaultOptions faults, std::function<absl::Time()> clock);

  // Replaces the settings, refills every bucket and re-seeds the generator.
  void Set(FaultOptions faults);
  FaultOptions Get() const;

  // Decides drop / fail-next / 5xx for one /api request of `endpoint`.
  FaultDecision Decide(absl::string_view endpoint);

  // Takes a token from the buckets of `endpoint` and "all"; false means answer 429. On
  // false, `*next_token` (when given) is when the refusing bucket has a token again and
  // `*limit` its rate.
  bool TakeRateToken(absl::string_view endpoint, absl::Time* next_token = nullptr,
                     double* limit = nullptr);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time last;
  };

  void ResetLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool TakeFromBucketLocked(const std::string& endpoint, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<absl::Time()> clock_;
  mutable absl::Mutex mu_;
  FaultOptions faults_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 random_ ABSL_GUARDED_BY(mu_);
};

}  // namespace exportd::sandbox

#endif  // EXPORTD_TESTS_SANDBOX_FAULTS_H_
