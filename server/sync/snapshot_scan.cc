#include "server/sync/snapshot_scan.h"

#include <cerrno>
#include <deque>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/status_macros.h"
#include "server/store/member_sorter.h"
#include "server/store/temp_file.h"
#include <unistd.h>

namespace exportd::sync {
namespace {

// A serialized snapshot chunk and its position in the snapshot.
struct QueuedChunk {
  size_t seq = 0;
  std::string bytes;
  DeliveredBundle delivered;
};

// A bounded queue of serialized chunks from the reader to the scan threads.
// Waits on condition variables rather than Mutex::Await: Abseil evaluates an
// Await condition on whichever thread releases the mutex, reading the
// waiter's stack, which ThreadSanitizer cannot order (Debian's Abseil is not
// instrumented; cmake/tsan_abseil_annotations.cc).
class ChunkQueue {
 public:
  explicit ChunkQueue(size_t capacity) : capacity_(capacity) {}
  // Blocks while full. False once aborted.
  bool Push(QueuedChunk bytes) {
    absl::MutexLock lock(&mu_);
    while (items_.size() >= capacity_ && !aborted_) not_full_.Wait(&mu_);
    if (aborted_) return false;
    items_.push_back(std::move(bytes));
    not_empty_.Signal();
    return true;
  }
  // Blocks while empty. False when closed and drained, or aborted.
  bool Pop(QueuedChunk& out) {
    absl::MutexLock lock(&mu_);
    while (items_.empty() && !closed_ && !aborted_) not_empty_.Wait(&mu_);
    if (aborted_ || items_.empty()) return false;
    out = std::move(items_.front());
    items_.pop_front();
    not_full_.Signal();
    return true;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    not_empty_.SignalAll();
  }
  void Abort() {
    absl::MutexLock lock(&mu_);
    aborted_ = true;
    not_empty_.SignalAll();
    not_full_.SignalAll();
  }

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  absl::CondVar not_empty_, not_full_;
  std::deque<QueuedChunk> items_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::Status ScanSnapshot(
    SnapshotSource& source, sdk::RunContext& ctx,
    const std::function<absl::Status(absl::string_view bytes, DeliveredBundle& delivered)>& attach,
    const std::function<absl::Status(size_t seq, absl::string_view bytes,
                                     DeliveredBundle& delivered)>& scan) {
  ChunkQueue queue(kScanQueueChunks);
  absl::Mutex error_mu;
  absl::Status scan_error;
  auto worker = [&] {
    QueuedChunk chunk;
    while (queue.Pop(chunk)) {
      absl::Status status = scan(chunk.seq, chunk.bytes, chunk.delivered);
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
  absl::Status read = source.ForEachChunk([&](absl::string_view bytes) -> absl::Status {
    if (ctx.cancelled()) return absl::CancelledError("the run was canceled");
    QueuedChunk chunk;
    chunk.seq = seq++;
    chunk.bytes.assign(bytes.data(), bytes.size());
    if (attach) EXPORTD_RETURN_IF_ERROR(attach(chunk.bytes, chunk.delivered));
    if (!queue.Push(std::move(chunk))) return absl::AbortedError("scan stopped");
    return absl::OkStatus();
  });
  if (!read.ok()) queue.Abort();
  queue.Close();
  for (auto& t : scanners) t.join();
  absl::MutexLock lock(&error_mu);
  if (!scan_error.ok()) return scan_error;
  return read;
}

absl::StatusOr<std::string> LastProfileId(const v1::Segment& segment, absl::string_view bytes,
                                          absl::string_view after) {
  store::ChunkReader reader(bytes);
  store::RowView row;
  absl::string_view last = after;
  bool any = false;
  // The ids only: no value is parsed.
  while (reader.Next(row, std::numeric_limits<int>::max())) {
    if ((any || !after.empty()) && !(last < row.profile_id)) {
      return absl::DataLossError(absl::StrCat(
          "segment '", segment.name(), "': its snapshot is not in profile-id order ('",
          row.profile_id, "' after '", last, "'); upload the segment again"));
    }
    last = row.profile_id;
    any = true;
  }
  if (!reader.status().ok()) return DamagedChunk(segment, reader);
  return any ? std::string(last) : std::string();
}

absl::StatusOr<std::unique_ptr<SnapshotSource>> SnapshotSource::Open(store::Store& store,
                                                                    const v1::Segment& segment,
                                                                    sdk::RunContext& ctx) {
  std::unique_ptr<SnapshotSource> source(new SnapshotSource(store, segment));
  EXPORTD_ASSIGN_OR_RETURN(bool ordered,
                           store.SnapshotInMemberOrder(segment.id(), segment.snapshot_version()));
  if (!ordered) {
    ctx.Log(sdk::LogLevel::kInfo,
            absl::StrCat("segment '", segment.name(),
                         "': its snapshot was stored in upload order (before exportd kept "
                         "snapshots in profile-id order); sorting a copy for this run. Upload "
                         "the segment again to skip this"));
    EXPORTD_RETURN_IF_ERROR(source->SortIntoCopy());
  }
  return source;
}

SnapshotSource::~SnapshotSource() {
  if (copy_ != nullptr) std::fclose(copy_);
}

absl::Status SnapshotSource::SortIntoCopy() {
  store::MemberSorter sorter;
  EXPORTD_RETURN_IF_ERROR(store_.ForEachChunkBytes(
      segment_.id(), segment_.snapshot_version(),
      [&](absl::string_view bytes) { return sorter.AddChunk(bytes); }));
  const std::string snapshot = absl::StrCat("sorting the snapshot of segment '", segment_.name(), "'");
  const store::TempFilePurpose purpose = {snapshot, "the segment's snapshot",
                                          "run the export again (or upload the segment again)"};
  const std::string dir = store::TempDirectory();
  auto failed = [&](const char* what) { return store::TempFileError(purpose, dir, what, errno); };
  EXPORTD_ASSIGN_OR_RETURN(const int fd,
                           store::OpenUnlinkedTempFile(dir, "exportd-run-snapshot", purpose));
  copy_ = fdopen(fd, "w+b");
  if (copy_ == nullptr) {
    const absl::Status opened = failed("open");
    close(fd);
    return opened;
  }
  EXPORTD_RETURN_IF_ERROR(sorter.Finish([&](std::string chunk, std::int64_t) -> absl::Status {
    const std::uint64_t size = chunk.size();
    if (std::fwrite(&size, sizeof(size), 1, copy_) != 1 ||
        std::fwrite(chunk.data(), 1, chunk.size(), copy_) != chunk.size()) {
      return failed("write");
    }
    return absl::OkStatus();
  }));
  if (std::fflush(copy_) != 0) return failed("write");
  return absl::OkStatus();
}

absl::Status SnapshotSource::ForEachChunk(
    const std::function<absl::Status(absl::string_view bytes)>& fn) {
  if (copy_ == nullptr) {
    return store_.ForEachChunkBytes(segment_.id(), segment_.snapshot_version(), fn);
  }
  std::rewind(copy_);
  std::string chunk;
  std::uint64_t size = 0;
  while (std::fread(&size, sizeof(size), 1, copy_) == 1) {
    chunk.resize(size);
    if (std::fread(chunk.data(), 1, size, copy_) != size) {
      return absl::DataLossError(absl::StrCat(
          "segment '", segment_.name(), "': the sorted copy of its snapshot ends early"));
    }
    EXPORTD_RETURN_IF_ERROR(fn(chunk));
  }
  if (std::ferror(copy_)) {
    return absl::DataLossError(absl::StrCat("segment '", segment_.name(),
                                            "': the sorted copy of its snapshot could not be read"));
  }
  return absl::OkStatus();
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
