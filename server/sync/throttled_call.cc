#include "server/sync/throttled_call.h"

#include <algorithm>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace exportd::sync {
namespace {

// The run's context for one call: everything goes to the run's context, and
// a throttle report is kept for the caller that made the call.
class CallContext final : public sdk::RunContext {
 public:
  explicit CallContext(sdk::RunContext& run) : run_(run) {}
  bool cancelled() const override { return run_.cancelled(); }
  bool SleepFor(absl::Duration d) override { return run_.SleepFor(d); }
  absl::Time Now() const override { return run_.Now(); }
  void Log(sdk::LogLevel level, std::string_view message) override { run_.Log(level, message); }
  void ReportThrottle(absl::Duration retry_after) override {
    absl::MutexLock lock(&mu_);
    retry_after_ = std::max(retry_after_, retry_after);
  }
  void RequestDone(std::string_view endpoint, int http_status, absl::Duration latency) override {
    run_.RequestDone(endpoint, http_status, latency);
  }
  // The longest retry-after the plugin reported (zero if none).
  absl::Duration retry_after() const {
    absl::MutexLock lock(&mu_);
    return retry_after_;
  }

 private:
  sdk::RunContext& run_;
  mutable absl::Mutex mu_;
  absl::Duration retry_after_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

// Waits for the budget (and any pause in it), showing a long pause. False
// when the run was cancelled meanwhile.
bool AcquireBudget(const ThrottledCallOptions& o, std::int64_t records, sdk::RunContext& ctx) {
  if (o.budget == nullptr) return true;
  const absl::Time now = o.budget->Now();
  const absl::Time paused = o.budget->paused_until();
  const bool shown = o.show_wait && paused - now >= kShowWaitsFrom;
  if (shown) o.show_wait(WaitMessage(o.destination_name, paused, now));
  const bool acquired = o.budget->Acquire(records, ctx);
  if (shown) o.show_wait(std::string());
  return acquired;
}

}  // namespace

std::string WaitMessage(const std::string& destination_name, absl::Time until, absl::Time now) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const bool same_day =
      absl::FormatTime("%Y-%m-%d", until, utc) == absl::FormatTime("%Y-%m-%d", now, utc);
  return absl::StrCat("waiting for ",
                      destination_name.empty() ? "the destination" : destination_name,
                      "'s rate limit until ",
                      absl::FormatTime(same_day ? "%H:%M UTC" : "%Y-%m-%d %H:%M UTC", until, utc));
}

absl::Status CallWithinBudget(const ThrottledCallOptions& o, absl::string_view what,
                              std::int64_t records, sdk::RunContext& ctx,
                              const std::function<absl::Status(sdk::RunContext& call)>& call) {
  absl::Duration waited;
  for (int resend = 0;; ++resend) {
    if (ctx.cancelled()) return absl::CancelledError("the run was canceled");
    const absl::Time start = ctx.Now();
    if (!AcquireBudget(o, records, ctx)) return absl::CancelledError("the run was canceled");
    waited += ctx.Now() - start;
    CallContext call_ctx(ctx);
    const absl::Status status = call(call_ctx);
    if (!absl::IsResourceExhausted(status)) {
      if (status.ok() && o.budget != nullptr) o.budget->OnSuccess();
      return status;
    }
    const absl::Duration retry_after = call_ctx.retry_after();
    if (o.budget != nullptr) o.budget->OnThrottle(retry_after);
    if (resend >= o.max_throttle_resends) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the destination throttled ", what, " ", resend + 1, " times in a row (",
          absl::FormatDuration(absl::Trunc(waited, absl::Seconds(1))),
          " waited; last answer: ", status.message(),
          "); the run is retried later. If this keeps happening, lower the speed settings of "
          "connection '",
          o.connection_name, "' (e.g. requests_per_second)"));
    }
    ctx.Log(sdk::LogLevel::kInfo,
            absl::StrCat("the destination throttled ", what, " (", status.message(),
                         "); the connection slows down",
                         retry_after > absl::ZeroDuration()
                             ? absl::StrCat(" and pauses for ", absl::FormatDuration(retry_after))
                             : std::string(),
                         "; sending it again (", resend + 1, " of ", o.max_throttle_resends,
                         " resends)"));
    // Without a budget to wait on, wait here.
    if (o.budget == nullptr && !ctx.SleepFor(std::max(retry_after, absl::Milliseconds(100)))) {
      return absl::CancelledError("the run was canceled");
    }
  }
}

}  // namespace exportd::sync
