#include "server/engine/progress.h"

#include <algorithm>

namespace exportd::engine {

void RunProgress::Estimate(v1::Run& run, absl::Time now) {
  std::int64_t done = 0;
  double remaining = 0;
  for (const auto& p : run.segments()) {
    std::int64_t finished = p.added() + p.updated() + p.removed() + p.rejected() + p.retryable();
    std::int64_t planned = p.to_add() + p.to_update() + p.to_remove();
    std::int64_t scanned = p.to_add() + p.to_update() + p.unchanged();
    std::int64_t unscanned = p.done() ? 0 : std::max<std::int64_t>(0, p.total_members() - scanned);
    double sent_per_member =
        scanned > 0 ? static_cast<double>(p.to_add() + p.to_update()) / scanned : 1.0;
    done += finished;
    remaining += std::max<std::int64_t>(0, planned - finished) + unscanned * sent_per_member;
  }
  samples_.emplace_back(now, done);
  while (samples_.size() > 2 && now - samples_.front().first > kWindow) samples_.pop_front();
  double seconds = absl::ToDoubleSeconds(now - samples_.front().first);
  double rate = seconds > 0.05 ? (done - samples_.front().second) / seconds : 0;
  run.set_rate(rate);
  run.set_eta_seconds(rate > 0 ? remaining / rate : (remaining == 0 ? 0 : -1));
}

}  // namespace exportd::engine
