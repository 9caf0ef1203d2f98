// The last stage of a batch: the destination's per-record outcomes become
// one store commit (delivered rows, removed rows, rejections) with the run's
// checkpoint and the updated counts, atomically (RunTracker::Commit).
#ifndef EXPORTD_SERVER_SYNC_COMMITTER_H_
#define EXPORTD_SERVER_SYNC_COMMITTER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "exportd/sdk/record.h"
#include "exportd/v1/run.pb.h"
#include "server/store/store.h"
#include "server/sync/pending_batch.h"

namespace exportd::sync {

// Receives progress and commits batches with the run's checkpoint (the
// engine's run, fenced by its lease).
class RunTracker {
 public:
  virtual ~RunTracker() = default;
  // Changes segment `index`'s progress (no commit).
  virtual void Update(int index, const std::function<void(v1::SegmentProgress&)>& fn) = 0;
  // Changes the progress and commits `commit` with the updated run as its
  // checkpoint, atomically.
  virtual absl::Status Commit(int index, const std::function<void(v1::SegmentProgress&)>& fn,
                              store::BatchCommit& commit) = 0;
  // What the run is waiting for now, shown as the running run's message
  // ("waiting for Iterable's rate limit until 14:05 UTC"); empty: it no
  // longer waits. The default shows nothing.
  virtual void ShowWait(const std::string& message) { (void)message; }
  // After a commit that counted records as retryable: the destination's
  // message for one of them (e.g. "Iterable request failed after 6 tries:
  // ..."), so that the run can say why it is tried again. Optional.
  virtual void NoteRetryable(const std::string& /*message*/) {}
};

// Where a segment's batches are committed.
struct CommitTarget {
  std::string run_id;
  std::string export_id;
  std::string segment_id;
  int segment_index = 0;
};

class Committer {
 public:
  Committer(CommitTarget target, RunTracker& tracker)
      : target_(std::move(target)), tracker_(tracker) {}

  // Commits `outcomes` (one per record of `batch`, in order; INTERNAL when
  // the count differs). Moves the batch's strings into the commit.
  // Thread-safe as far as the tracker is (batches commit in parallel).
  absl::Status Commit(PendingBatch& batch, const std::vector<sdk::RecordOutcome>& outcomes);

 private:
  const CommitTarget target_;
  RunTracker& tracker_;
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_COMMITTER_H_
