// Time helpers shared by the server components, and the clock they read.
//
// Components that decide by time (leases, retries) take a `const Clock*` so
// that tests can move time by hand instead of sleeping:
//
//   FakeClock clock(absl::FromUnixSeconds(1'700'000'000));
//   options.clock = &clock;
//   ...
//   clock.Advance(absl::Seconds(20));  // every lease of 15 s has expired
#ifndef EXPORTD_SERVER_COMMON_CLOCK_H_
#define EXPORTD_SERVER_COMMON_CLOCK_H_

#include <cstdint>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace exportd {

inline std::int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

// Where a component reads the time. Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  std::int64_t NowMicros() const { return absl::ToUnixMicros(Now()); }
  // The wall clock (absl::Now()); never null, lives forever.
  static const Clock* Real();
};

// A clock that moves only when told to (tests).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

namespace clock_internal {
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};
}  // namespace clock_internal

inline const Clock* Clock::Real() {
  static const clock_internal::RealClock* const real = new clock_internal::RealClock();
  return real;
}

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_CLOCK_H_
