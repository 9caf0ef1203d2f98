#include "server/store/queue_summary.h"

#include <algorithm>

namespace exportd::store {

QueueSummary SummarizeQueue(const std::vector<v1::Run>& unfinished, absl::Time now) {
  QueueSummary summary;
  absl::Time oldest = absl::InfiniteFuture();
  for (const v1::Run& run : unfinished) {
    if (run.state() != v1::RUN_STATE_QUEUED) {
      summary.in_progress.push_back(&run);
      continue;
    }
    ++summary.queued;
    oldest = std::min(oldest, absl::FromUnixMicros(run.created_at_micros()));
  }
  if (summary.queued > 0) summary.oldest_queued_age = std::max(absl::ZeroDuration(), now - oldest);
  return summary;
}

}  // namespace exportd::store
