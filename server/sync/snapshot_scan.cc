#include "server/sync/snapshot_scan.h"

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace exportd::sync {
namespace {

// A serialized snapshot chunk and its position in the snapshot.
struct QueuedChunk {
  size_t seq = 0;
  std::string bytes;
};

// A bounded queue of serialized chunks from the reader to the scan threads.
class ChunkQueue {
 public:
  explicit ChunkQueue(size_t capacity) : capacity_(capacity) {}
  // Blocks while full. False once aborted.
  bool Push(QueuedChunk bytes) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ChunkQueue* q) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return q->items_.size() < q->capacity_ || q->aborted_;
        },
        this));
    if (aborted_) return false;
    items_.push_back(std::move(bytes));
    return true;
  }
  // Blocks while empty. False when closed and drained, or aborted.
  bool Pop(QueuedChunk& out) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ChunkQueue* q) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return !q->items_.empty() || q->closed_ || q->aborted_;
        },
        this));
    if (aborted_ || items_.empty()) return false;
    out = std::move(items_.front());
    items_.pop_front();
    return true;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  void Abort() {
    absl::MutexLock lock(&mu_);
    aborted_ = true;
  }

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<QueuedChunk> items_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::Status ScanSnapshot(
    store::Store& store, const v1::Segment& segment, sdk::RunContext& ctx,
    const std::function<absl::Status(size_t seq, absl::string_view bytes)>& scan) {
  ChunkQueue queue(kScanQueueChunks);
  absl::Mutex error_mu;
  absl::Status scan_error;
  auto worker = [&] {
    QueuedChunk chunk;
    while (queue.Pop(chunk)) {
      absl::Status status = scan(chunk.seq, chunk.bytes);
      if (!status.ok()) {
        absl::MutexLock lock(&error_mu);
        if (scan_error.ok()) scan_error = std::move(status);
        queue.Abort();
        return;
      }
    }
  };
  std::vector<std::thread> scanners;
  for (int i = 0; i < kScanThreads; ++i) scanners.emplace_back(worker);
  size_t seq = 0;
  absl::Status read = store.ForEachChunkBytes(
      segment.id(), segment.snapshot_version(), [&](absl::string_view bytes) -> absl::Status {
        if (ctx.cancelled()) return absl::CancelledError("the run was canceled");
        if (!queue.Push({seq++, std::string(bytes.data(), bytes.size())})) {
          return absl::AbortedError("scan stopped");
        }
        return absl::OkStatus();
      });
  queue.Close();
  for (auto& t : scanners) t.join();
  absl::MutexLock lock(&error_mu);
  if (!scan_error.ok()) return scan_error;
  return read;
}

absl::Status DamagedChunk(const v1::Segment& segment, const store::ChunkReader& reader) {
  return absl::DataLossError(absl::StrCat("segment '", segment.name(),
                                          "' has a damaged snapshot chunk: ",
                                          reader.status().message()));
}

absl::Status CheckRowWidth(const v1::Segment& segment, const store::RowView& row) {
  if (row.values.size() < static_cast<size_t>(segment.schema_size())) {
    return absl::DataLossError(absl::StrCat(
        "segment '", segment.name(), "': member '", row.profile_id, "' has ", row.values.size(),
        " values in the snapshot; its schema has ", segment.schema_size()));
  }
  return absl::OkStatus();
}

}  // namespace exportd::sync
