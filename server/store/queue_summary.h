// What the run queue holds now, from Store::ListUnfinishedRuns: the runs
// waiting (QUEUED), how long the oldest has waited, and the runs in progress
// (RUNNING, FAILED_RETRYING). The queue metrics and `exportctl status` both
// read it from here.
//
//   EXPORTD_ASSIGN_OR_RETURN(auto unfinished, store->ListUnfinishedRuns());
//   QueueSummary q = SummarizeQueue(unfinished, clock->Now());
//   metrics->Queue(q.queued, q.oldest_queued_age);
#ifndef EXPORTD_SERVER_STORE_QUEUE_SUMMARY_H_
#define EXPORTD_SERVER_STORE_QUEUE_SUMMARY_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "exportd/v1/run.pb.h"

namespace exportd::store {

struct QueueSummary {
  std::int64_t queued = 0;
  // From the oldest queued run's creation to `now`; zero when none is queued.
  absl::Duration oldest_queued_age = absl::ZeroDuration();
  // The unfinished runs that are not queued, in the order given (oldest first).
  std::vector<const v1::Run*> in_progress;
};

// `unfinished` as ListUnfinishedRuns returns it; the summary points into it.
QueueSummary SummarizeQueue(const std::vector<v1::Run>& unfinished, absl::Time now);

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_QUEUE_SUMMARY_H_
