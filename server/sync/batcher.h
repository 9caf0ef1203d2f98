#ifndef EXPORTD_SERVER_SYNC_BATCHER_H_
#define EXPORTD_SERVER_SYNC_BATCHER_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "exportd/sdk/record.h"
#include "server/sync/pending_batch.h"

namespace exportd::sync {

// Accumulates records into batches within the record and byte limits (the
// connection's speed) and hands each full batch on (to Dispatcher::Submit).
// Not thread-safe: the caller serializes additions.
//
//   PendingBatch& batch = batcher.current();
//   batch.records.profile_ids.push_back(...); ... (one entry per column)
//   if (!batcher.RecordAdded(bytes)) ...;   // false: the sync stopped
//   batcher.Flush();
class Batcher {
 public:
  // Takes a full batch; false once the sync stopped (a batch failed).
  using Submit = std::function<bool(PendingBatch)>;

  Batcher(int max_records, std::int64_t max_bytes, std::vector<sdk::BatchField> fields,
          Submit submit)
      : max_records_(std::max(1, max_records)),
        max_bytes_(std::max<std::int64_t>(1, max_bytes)),
        fields_(std::move(fields)),
        submit_(std::move(submit)) {
    Reset(false);
  }

  PendingBatch& current() { return batch_; }

  // Call after adding a record; sends the batch when full.
  bool RecordAdded(std::int64_t bytes) {
    batch_.bytes += bytes;
    if (static_cast<int>(batch_.records.size()) >= max_records_ || batch_.bytes >= max_bytes_) {
      return Flush();
    }
    return true;
  }

  bool Flush() {
    if (batch_.records.size() == 0) return true;
    bool removal = batch_.removal;
    bool ok = submit_(std::move(batch_));
    Reset(removal);
    return ok;
  }

  void Reset(bool removal) {
    batch_ = PendingBatch();
    batch_.removal = removal;
    batch_.records.fields = fields_;
    size_t n = static_cast<size_t>(max_records_);
    batch_.records.profile_ids.reserve(n);
    batch_.records.values.reserve(n * fields_.size());
  }

 private:
  const int max_records_;
  const std::int64_t max_bytes_;
  const std::vector<sdk::BatchField> fields_;
  const Submit submit_;
  PendingBatch batch_;
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_BATCHER_H_
