// iterable-sandbox: an in-process (or standalone, see main.cc) stand-in for Iterable's REST
// API, covering what a list-export plugin uses, with fault injection and an admin API for
// tests. README.md beside this file documents the HTTP surface.
//
// Example (a test embedding the sandbox):
//   exportd::sandbox::Options options;                 // 127.0.0.1, free port
//   options.api_keys = {"0123456789abcdef0123456789abcdef"};
//   options.faults.rate_limits["subscribe"] = 10;      // 10 requests/s
//   auto sandbox = exportd::sandbox::Sandbox::Create(options);
//   ASSERT_TRUE(sandbox.ok()) << sandbox.status();
//   std::string url = (*sandbox)->base_url();          // "http://127.0.0.1:PORT"
//   ... point the plugin at url + "/api" ...
//   nlohmann::json stats = (*sandbox)->StatsJson();    // same as GET /_sandbox/stats
//   (*sandbox)->Shutdown();                            // also done by the destructor

#ifndef EXPORTD_TESTS_SANDBOX_SANDBOX_H_
#define EXPORTD_TESTS_SANDBOX_SANDBOX_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "tests/sandbox/faults.h"
#include "tests/sandbox/http_server.h"
#include "tests/sandbox/state.h"

namespace exportd::sandbox {

// The key accepted when Options::api_keys is empty (32 characters, like a real key).
inline constexpr char kDefaultApiKey[] = "sandbox-key-0123456789abcdef0123";

struct Options {
  // IPv4 address and port to listen on; port 0 picks a free one.
  std::string host = "127.0.0.1";
  int port = 0;
  // Accepted `Api-Key` values; empty accepts kDefaultApiKey only.
  std::vector<std::string> api_keys;
  // Connections served at once (one thread each).
  int max_connections = 256;
  // First list id handed out; above 2^32 by default to catch 32-bit truncation.
  int64_t first_list_id = 10'000'000'001;
  // Fault injection and limits (max_batch, max_body_bytes); changeable later with SetFaults()
  // or POST /_sandbox/faults.
  FaultOptions faults;
  // How the project identifies users (--project-type); see ProjectType in state.h.
  ProjectType project_type = ProjectType::kHybrid;
  // Keep users as digests only (--lean); see State.
  bool lean = false;
  // Time source for createdAt, token buckets and the invalid-list window; null means
  // absl::Now. Tests inject a fake clock to make time windows deterministic. Added latency
  // always uses real time.
  std::function<absl::Time()> clock;
};

class Sandbox {
 public:
  // Starts serving. Fails when the address cannot be bound or the options are invalid.
  static absl::StatusOr<std::unique_ptr<Sandbox>> Create(Options options);

  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  int port() const;
  // "http://127.0.0.1:PORT".
  std::string base_url() const;

  // Stops serving: wakes requests sleeping on injected latency, closes connections, joins
  // threads. Idempotent.
  void Shutdown();

  // Runtime fault settings (same as POST /_sandbox/faults with a full object). Setting them
  // refills the rate-limit buckets and re-seeds the random generator.
  void SetFaults(FaultOptions faults);
  FaultOptions faults() const;

  // Clears lists, users, field types and statistics, and restores the fault settings given
  // at Create() (same as POST /_sandbox/reset).
  void Reset();

  // GET /_sandbox/stats as JSON.
  nlohmann::json StatsJson() const;

  // When each /api request of `route` (a stats key, e.g. "POST /api/lists/subscribe")
  // arrived, in arrival order, since start or the last reset; only those answered
  // `outcome` (e.g. "200", "429") when it is not empty. GET /_sandbox/requests gives the
  // same for every route.
  std::vector<absl::Time> RequestTimes(absl::string_view route,
                                       absl::string_view outcome = "") const;

  // Direct access to the project state (lists, members) for assertions.
  const State& state() const { return state_; }

 private:
  explicit Sandbox(Options options);

  // Which API route a request is, for statistics and fault scoping.
  struct Route {
    std::string stats_key;  // "POST /api/lists/subscribe", "DELETE /api/lists/{id}", ...
    std::string endpoint;   // Fault endpoint name; empty for unknown paths.
  };

  void Handle(const HttpRequest& request, HttpResponse* response);
  void HandleApi(const HttpRequest& request, const Route& route, HttpResponse* response);
  // Answers a known /api route once auth and faults have passed.
  void Dispatch(const HttpRequest& request, const Route& route, const FaultOptions& faults,
                HttpResponse* response);
  ApiReply SubscribeOrUnsubscribe(const HttpRequest& request, const Route& route,
                                  const FaultOptions& faults);
  void HandleAdmin(const HttpRequest& request, HttpResponse* response);
  void Record(const std::string& route, const std::string& outcome, absl::Time arrived);
  nlohmann::json RequestsJson() const;

  const Options options_;
  const std::function<absl::Time()> clock_;
  const std::vector<std::string> api_keys_;
  State state_;
  FaultInjector faults_;
  absl::Notification stopping_;
  absl::Mutex shutdown_mu_;  // Serialises Shutdown().
  std::unique_ptr<HttpServer> server_;

  mutable absl::Mutex stats_mu_;
  // "METHOD route" -> status (or "dropped") -> count.
  std::map<std::string, std::map<std::string, int64_t>> requests_ ABSL_GUARDED_BY(stats_mu_);
  int64_t channel_unsubscribe_true_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t channel_unsubscribe_false_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t channel_unsubscribe_missing_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t update_existing_users_only_true_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t max_subscribers_seen_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t subscribe_records_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t unsubscribe_records_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t max_body_bytes_seen_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t connections_at_reset_ ABSL_GUARDED_BY(stats_mu_) = 0;
  // Every /api request: arrival time, route, outcome (at most kMaxRequestLog, the oldest
  // dropped first).
  struct LoggedRequest {
    absl::Time arrived;
    std::string route;
    std::string outcome;
  };
  std::deque<LoggedRequest> request_log_ ABSL_GUARDED_BY(stats_mu_);
};

// The most of `times` (in any order) that fall in one window of length `window`: what a
// rate limit of N per `window` must keep at or below N plus its burst.
int MaxInSlidingWindow(std::vector<absl::Time> times, absl::Duration window);

}  // namespace exportd::sandbox

#endif  // EXPORTD_TESTS_SANDBOX_SANDBOX_H_
