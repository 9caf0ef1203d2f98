// A RunContext for plugin tests: cancellable from any thread, with a real or
// a fake clock, that collects the log lines a plugin writes.
//
// Usage:
//
//   exportd::sdk::testing::TestRunContext ctx;  // real clock
//   auto outcomes = connection->Upsert(audience, batch, ctx);
//   EXPECT_FALSE(ctx.LogsContain("my-api-key"));
//
//   // Backoff without waiting: SleepFor advances the fake clock at once.
//   auto ctx = exportd::sdk::testing::TestRunContext::WithFakeClock();
//   ... plugin retries after a 429 ...
//   EXPECT_EQ(ctx->sleeps().size(), 2);
//
//   // Throttling: what the plugin reported with ReportThrottle.
//   EXPECT_EQ(ctx.throttles(), std::vector<absl::Duration>{absl::Seconds(1)});
//
//   // Requests: what the plugin reported with RequestDone.
//   EXPECT_EQ(ctx.requests()[0].endpoint, "/api/lists/subscribe");
//
//   // Cancellation: before a call, from another thread, or after the plugin
//   // has polled cancelled() n times (deterministic "mid-call" cancellation).
//   ctx.Cancel();
//   ctx.CancelAfterPolls(3);
//
// Header-only; needs Abseil (status, time, synchronization) and the SDK.
#ifndef EXPORTD_SDK_TESTING_TEST_RUN_CONTEXT_H_
#define EXPORTD_SDK_TESTING_TEST_RUN_CONTEXT_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "exportd/sdk/destination.h"

namespace exportd::sdk::testing {

// One line a plugin logged through RunContext::Log.
struct LogLine {
  LogLevel level = LogLevel::kInfo;
  std::string message;
};

// One request a plugin reported through RunContext::RequestDone.
struct ReportedRequest {
  std::string endpoint;
  int http_status = 0;
  absl::Duration latency;
};

class TestRunContext final : public RunContext {
 public:
  // A context on the real clock: SleepFor waits (at most `d`), returning early
  // when Cancel() is called from another thread.
  TestRunContext() = default;

  // A context on a fake clock that starts at `start`: SleepFor never blocks;
  // it records the duration, advances Now() by it and returns !cancelled().
  static std::unique_ptr<TestRunContext> WithFakeClock(
      absl::Time start = absl::FromUnixSeconds(1'700'000'000)) {
    auto ctx = std::make_unique<TestRunContext>();
    {
      absl::MutexLock lock(&ctx->mu_);
      ctx->fake_clock_ = true;
      ctx->fake_now_ = start;
    }
    return ctx;
  }

  TestRunContext(const TestRunContext&) = delete;
  TestRunContext& operator=(const TestRunContext&) = delete;

  // Cancels the context: cancelled() becomes true and sleepers wake up.
  // Thread-safe.
  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

  // Cancels the context once the plugin has called cancelled() `polls` times
  // (the `polls`-th call and later return true). Lets a test cancel "in the
  // middle" of a call without timing assumptions.
  void CancelAfterPolls(int polls) {
    absl::MutexLock lock(&mu_);
    cancel_after_polls_ = polls;
  }

  // RunContext.
  bool cancelled() const override {
    absl::MutexLock lock(&mu_);
    ++polls_;
    if (cancel_after_polls_ > 0 && polls_ >= cancel_after_polls_) cancelled_ = true;
    return cancelled_;
  }

  bool SleepFor(absl::Duration d) override {
    absl::MutexLock lock(&mu_);
    sleeps_.push_back(d);
    if (fake_clock_) {
      if (!cancelled_) fake_now_ += d;
      return !cancelled_;
    }
    // Returns as soon as Cancel() is called, or after `d`.
    mu_.AwaitWithTimeout(absl::Condition(&cancelled_), d);
    return !cancelled_;
  }

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return fake_clock_ ? fake_now_ : absl::Now();
  }

  void Log(LogLevel level, std::string_view message) override {
    absl::MutexLock lock(&mu_);
    logs_.push_back(LogLine{level, std::string(message)});
  }

  void ReportThrottle(absl::Duration retry_after) override {
    absl::MutexLock lock(&mu_);
    throttles_.push_back(retry_after);
  }

  void RequestDone(std::string_view endpoint, int http_status, absl::Duration latency) override {
    absl::MutexLock lock(&mu_);
    requests_.push_back(ReportedRequest{std::string(endpoint), http_status, latency});
  }

  // Inspection.

  // Every line logged so far, in order.
  std::vector<LogLine> logs() const {
    absl::MutexLock lock(&mu_);
    return logs_;
  }
  // True when any logged line contains `needle`.
  bool LogsContain(std::string_view needle) const {
    absl::MutexLock lock(&mu_);
    for (const LogLine& line : logs_) {
      if (line.message.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  // Every duration passed to SleepFor, in order.
  std::vector<absl::Duration> sleeps() const {
    absl::MutexLock lock(&mu_);
    return sleeps_;
  }
  // Every retry_after passed to ReportThrottle, in order.
  std::vector<absl::Duration> throttles() const {
    absl::MutexLock lock(&mu_);
    return throttles_;
  }
  // Every request reported through RequestDone, in order.
  std::vector<ReportedRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  // How many times the plugin called cancelled().
  int polls() const {
    absl::MutexLock lock(&mu_);
    return polls_;
  }
  // Fake clock only: moves Now() forward without a SleepFor.
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    fake_now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  mutable bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  mutable int polls_ ABSL_GUARDED_BY(mu_) = 0;
  int cancel_after_polls_ ABSL_GUARDED_BY(mu_) = 0;
  bool fake_clock_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time fake_now_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> sleeps_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> throttles_ ABSL_GUARDED_BY(mu_);
  std::vector<ReportedRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<LogLine> logs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace exportd::sdk::testing

#endif  // EXPORTD_SDK_TESTING_TEST_RUN_CONTEXT_H_
