#include "server/engine/progress.h"

#include <algorithm>
#include <cmath>

namespace exportd::engine {
namespace {

const double kTau = absl::ToDoubleSeconds(RunProgress::kTimeConstant);

}  // namespace

void RunProgress::AddInterval(absl::Time now, std::int64_t records) {
  const double seconds = std::max(0.0, absl::ToDoubleSeconds(now - last_event_));
  const double decay = std::exp(-seconds / kTau);
  // (1 - decay) * records / seconds, which tends to records / kTau for
  // batches that finish at the same moment.
  const double per_record = seconds * 1e6 >= 1 ? -std::expm1(-seconds / kTau) / seconds : 1 / kTau;
  weighted_rate_ = weighted_rate_ * decay + per_record * static_cast<double>(records);
  weight_ = weight_ * decay + (1 - decay);
  last_event_ = now;
}

double RunProgress::RateAt(absl::Time now) const {
  if (weight_ <= 0) return 0;
  const double stalled = absl::ToDoubleSeconds(now - last_event_) - kTau;
  if (stalled <= 0) return weighted_rate_ / weight_;
  const double decay = std::exp(-stalled / kTau);
  return weighted_rate_ * decay / (weight_ * decay + (1 - decay));
}

void RunProgress::Estimate(v1::Run& run, absl::Time now) {
  std::int64_t done = 0;
  std::int64_t planned_total = 0;
  double remaining = 0;
  for (const auto& p : run.segments()) {
    std::int64_t finished = p.added() + p.updated() + p.removed() + p.rejected() + p.retryable();
    std::int64_t planned = p.to_add() + p.to_update() + p.to_remove();
    std::int64_t scanned = p.to_add() + p.to_update() + p.unchanged();
    std::int64_t unscanned = p.done() ? 0 : std::max<std::int64_t>(0, p.total_members() - scanned);
    double sent_per_member =
        scanned > 0 ? static_cast<double>(p.to_add() + p.to_update()) / scanned : 1.0;
    done += finished;
    planned_total += planned;
    remaining += std::max<std::int64_t>(0, planned - finished) + unscanned * sent_per_member;
  }
  if (!measuring_) {
    // Measuring begins once the diff found something to send: the time a
    // run spends before (reading the snapshot for identifiers) is no rate.
    if (planned_total > 0) {
      measuring_ = true;
      last_event_ = now;
    }
  } else if (done > last_done_) {
    AddInterval(now, done - last_done_);
  }
  last_done_ = done;
  const double rate = measuring_ ? RateAt(now) : 0;
  run.set_rate(rate);
  run.set_eta_seconds(remaining == 0 ? 0 : rate > 0 ? remaining / rate : -1);
}

}  // namespace exportd::engine
