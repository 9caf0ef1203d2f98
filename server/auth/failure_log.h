// Counts failed authentications and logs them without letting a flood of bad
// calls fill the disk: at most one line per second, and before the next line
// how many were left out.
//
//   FailureLog failures;  // exportd's log (server/common/log.h), the system clock
//   failures.Record("unknown token", ctx.peer());
//   // exportd: authentication failed: unknown token (principal unknown) from ipv4:10.0.0.7:51234
//   // ... within the same second: counted, not logged; later:
//   // exportd: 41 more failed authentications suppressed
#ifndef EXPORTD_SERVER_AUTH_FAILURE_LOG_H_
#define EXPORTD_SERVER_AUTH_FAILURE_LOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <ostream>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace exportd::auth {

class FailureLog {
 public:
  // The time source; tests pass a fake one.
  using Clock = std::function<absl::Time()>;

  // Logs through exportd's log (component "auth"; text or JSON as
  // --log-format says) at most once a second.
  FailureLog() : FailureLog(nullptr, absl::Now, absl::Seconds(1)) {}
  // Logs to `out` (not owned, must outlive this) at most once per `interval`,
  // as the text log writes lines ("exportd: ..."); for tests.
  explicit FailureLog(std::ostream& out, Clock now = absl::Now,
                      absl::Duration interval = absl::Seconds(1))
      : FailureLog(&out, std::move(now), interval) {}
  // Prints the count of failures suppressed since the last line, if any.
  ~FailureLog();

  FailureLog(const FailureLog&) = delete;
  FailureLog& operator=(const FailureLog&) = delete;

  // Counts one failure. `reason` says what was wrong ("unknown token") and must
  // never hold the credential; `peer` is the caller's address ("" when unknown).
  void Record(absl::string_view reason, absl::string_view peer);

  // Failures recorded since start-up, logged or not.
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  FailureLog(std::ostream* out, Clock now, absl::Duration interval)
      : out_(out), now_(std::move(now)), interval_(interval) {}
  // Writes one line (without "exportd: " and newline).
  void Write(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::ostream* const out_;  // Null: exportd's log.
  const Clock now_;
  const absl::Duration interval_;
  std::atomic<std::uint64_t> count_{0};
  absl::Mutex mu_;
  absl::Time last_line_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::uint64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace exportd::auth

#endif  // EXPORTD_SERVER_AUTH_FAILURE_LOG_H_
