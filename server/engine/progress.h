// A run's rate and time left, from its segments' counts.
//
// The rate is records finished per second over the last few seconds; the time
// left counts the records still to send plus those the diff will likely find
// in the members it has not read yet (in the proportion found so far).
//
//   RunProgress progress;
//   progress.Estimate(run, now);   // after each change of run.segments()
//   run.rate(), run.eta_seconds()  // -1: unknown yet
#ifndef EXPORTD_SERVER_ENGINE_PROGRESS_H_
#define EXPORTD_SERVER_ENGINE_PROGRESS_H_

#include <cstdint>
#include <deque>
#include <utility>

#include "absl/time/time.h"
#include "exportd/v1/run.pb.h"

namespace exportd::engine {

class RunProgress {
 public:
  // The rate is measured over about this window.
  static constexpr absl::Duration kWindow = absl::Seconds(5);

  // Sets run.rate and run.eta_seconds for time `now`. Not thread-safe: call
  // it under the lock that guards `run`.
  void Estimate(v1::Run& run, absl::Time now);

 private:
  // (time, records finished)
  std::deque<std::pair<absl::Time, std::int64_t>> samples_;
};

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_PROGRESS_H_
