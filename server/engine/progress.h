// A run's rate and time left, from its segments' counts: the one owner of the
// rate and the ETA that exportctl, the console and WatchRun show.
//
// The rate is an exponentially weighted average of records finished per
// second over the run: each interval between two moments the count grew
// weighs by how long it lasted, and older intervals fade with a time constant
// of kTimeConstant. Batches finish in bursts (several in flight, each taking
// the destination's latency), so a rate measured over a short window jumps
// with every burst and gap; the weighted one moves by a little per batch.
// Between two bursts the rate holds; when a run finishes nothing for longer
// than kTimeConstant, the time beyond counts as zero records in what is shown
// (so a stalled run's ETA grows instead of standing still), and the records
// that end the stall are credited over the whole gap.
//
// The time left counts the records still to send plus those the diff will
// likely find in the members it has not read yet (in the proportion found so
// far).
//
//   RunProgress progress;
//   progress.Estimate(run, clock->Now());   // after each change of run.segments()
//   run.rate(), run.eta_seconds()           // -1: unknown yet
#ifndef EXPORTD_SERVER_ENGINE_PROGRESS_H_
#define EXPORTD_SERVER_ENGINE_PROGRESS_H_

#include <cstdint>

#include "absl/time/time.h"
#include "exportd/v1/run.pb.h"

namespace exportd::engine {

class RunProgress {
 public:
  // How fast old intervals fade: one that ended this long ago weighs 1/e of
  // one that ended now.
  static constexpr absl::Duration kTimeConstant = absl::Seconds(10);

  // Sets run.rate and run.eta_seconds for time `now` (the engine's clock).
  // Times must not go back. Not thread-safe: call it under the lock that
  // guards `run`.
  void Estimate(v1::Run& run, absl::Time now);

 private:
  // Folds the interval since last_event_, in which `records` finished.
  void AddInterval(absl::Time now, std::int64_t records);
  // The rate to show at `now`: the weighted rate, faded for the part of the
  // time since the last interval that is beyond kTimeConstant.
  double RateAt(absl::Time now) const;

  // Measuring began: an estimate had records to send.
  bool measuring_ = false;
  // The end of the last interval folded in, and the records finished by then.
  absl::Time last_event_;
  std::int64_t last_done_ = 0;
  // The weighted records per second, and the weight of the time measured so
  // far (1 - e^(-elapsed / kTimeConstant)); their quotient is the rate.
  double weighted_rate_ = 0;
  double weight_ = 0;
};

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_PROGRESS_H_
