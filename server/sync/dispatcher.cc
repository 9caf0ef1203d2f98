#include "server/sync/dispatcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace exportd::sync {
namespace {

// The run's context for one Upsert/Remove call: everything goes to the run's
// context, and a throttle report is kept for the Dispatcher that made the call.
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

Dispatcher::Dispatcher(const DispatchOptions& o, Committer& committer, sdk::RunContext& ctx)
    : o_(o), committer_(committer), ctx_(ctx) {
  int workers = std::max(1, o_.max_parallel_batches);
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
}

Dispatcher::~Dispatcher() { Close().IgnoreError(); }

bool Dispatcher::Submit(PendingBatch batch) {
  absl::MutexLock lock(&mu_);
  while (queue_.size() >= threads_.size() && error_.ok()) space_.Wait(&mu_);
  if (!error_.ok()) return false;
  queue_.push_back(std::move(batch));
  work_.Signal();
  return true;
}

absl::Status Dispatcher::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  work_.SignalAll();
  for (auto& t : threads_) t.join();
  threads_.clear();
  absl::MutexLock lock(&mu_);
  return error_;
}

void Dispatcher::Work() {
  while (true) {
    PendingBatch batch;
    {
      absl::MutexLock lock(&mu_);
      while (queue_.empty() && !closed_) work_.Wait(&mu_);
      if (queue_.empty()) return;
      batch = std::move(queue_.front());
      queue_.pop_front();
      space_.Signal();
    }
    absl::Status status = Send(batch);
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      if (error_.ok()) error_ = status;
      queue_.clear();
      space_.SignalAll();
    }
  }
}

absl::StatusOr<std::vector<sdk::RecordOutcome>> Dispatcher::Deliver(const PendingBatch& batch) {
  const auto records = static_cast<std::int64_t>(batch.records.size());
  absl::Duration waited;
  for (int resend = 0;; ++resend) {
    if (ctx_.cancelled()) return absl::CancelledError("the run was canceled");
    absl::Time start = ctx_.Now();
    if (!AcquireBudget(records)) return absl::CancelledError("the run was canceled");
    waited += ctx_.Now() - start;
    CallContext call(ctx_);
    auto outcomes = batch.removal ? o_.connection->Remove(o_.audience, batch.records, call)
                                  : o_.connection->Upsert(o_.audience, batch.records, call);
    if (!absl::IsResourceExhausted(outcomes.status())) {
      if (outcomes.ok() && o_.budget != nullptr) o_.budget->OnSuccess();
      return outcomes;
    }
    const absl::Duration retry_after = call.retry_after();
    if (o_.budget != nullptr) o_.budget->OnThrottle(retry_after);
    if (resend >= o_.max_throttle_resends) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the destination throttled a batch of ", records, " records ", resend + 1,
          " times in a row (", absl::FormatDuration(absl::Trunc(waited, absl::Seconds(1))),
          " waited; last answer: ", outcomes.status().message(),
          "); the run is retried later. If this keeps happening, lower the speed settings of "
          "connection '", o_.connection_name, "' (e.g. requests_per_second)"));
    }
    ctx_.Log(sdk::LogLevel::kInfo,
             absl::StrCat("the destination throttled a batch of ", records, " records (",
                          outcomes.status().message(), "); the connection slows down",
                          retry_after > absl::ZeroDuration()
                              ? absl::StrCat(" and pauses for ", absl::FormatDuration(retry_after))
                              : std::string(),
                          "; sending it again (", resend + 1, " of ", o_.max_throttle_resends,
                          " resends)"));
    // Without a budget to wait on, wait here.
    if (o_.budget == nullptr &&
        !ctx_.SleepFor(std::max(retry_after, absl::Milliseconds(100)))) {
      return absl::CancelledError("the run was canceled");
    }
  }
}

bool Dispatcher::AcquireBudget(std::int64_t records) {
  if (o_.budget == nullptr) return true;
  const absl::Time now = o_.budget->Now();
  const absl::Time paused = o_.budget->paused_until();
  const bool shown = o_.show_wait && paused - now >= kShowWaitsFrom;
  if (shown) o_.show_wait(WaitMessage(o_.destination_name, paused, now));
  const bool acquired = o_.budget->Acquire(records, ctx_);
  if (shown) o_.show_wait(std::string());
  return acquired;
}

absl::Status Dispatcher::Send(PendingBatch& batch) {
  if (ctx_.cancelled()) return absl::CancelledError("the run was canceled");
  auto outcomes = Deliver(batch);
  if (!outcomes.ok()) return outcomes.status();
  return committer_.Commit(batch, *outcomes);
}

}  // namespace exportd::sync
