// The first stage of a segment's sync: the snapshot's chunks in profile-id
// order, read on the calling thread and parsed by a few threads (parsing is
// the cost).
//
//   EXPORTD_ASSIGN_OR_RETURN(auto source, SnapshotSource::Open(store, segment, ctx));
//   EXPORTD_RETURN_IF_ERROR(ScanSnapshot(*source, ctx, /*attach=*/nullptr,
//       [&](size_t seq, absl::string_view bytes, DeliveredBundle&) -> absl::Status {
//         store::ChunkReader reader(bytes);
//         ...
//       }));
#ifndef EXPORTD_SERVER_SYNC_SNAPSHOT_SCAN_H_
#define EXPORTD_SERVER_SYNC_SNAPSHOT_SCAN_H_

#include <cstddef>
#include <cstdio>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "exportd/sdk/destination.h"
#include "exportd/v1/segment.pb.h"
#include "server/store/member_chunk.h"
#include "server/store/store.h"
#include "server/sync/delivered_stream.h"

namespace exportd::sync {

// Threads that parse and diff snapshot chunks, and chunks read ahead.
inline constexpr int kScanThreads = 2;
inline constexpr size_t kScanQueueChunks = 8;

// Where a run reads a snapshot's chunks from, in profile-id order: the
// store, where uploads keep snapshots in that order, or, for a snapshot
// stored before they did, a copy sorted for this run in a temporary file
// (store::MemberSorter, bounded memory), read as often as the run needs.
class SnapshotSource {
 public:
  static absl::StatusOr<std::unique_ptr<SnapshotSource>> Open(store::Store& store,
                                                             const v1::Segment& segment,
                                                             sdk::RunContext& ctx);
  ~SnapshotSource();
  SnapshotSource(const SnapshotSource&) = delete;
  SnapshotSource& operator=(const SnapshotSource&) = delete;

  // Calls `fn` with every chunk (a serialized Chunk), in order.
  absl::Status ForEachChunk(const std::function<absl::Status(absl::string_view bytes)>& fn);
  // True when the chunks come from a sorted copy.
  bool sorted_for_this_run() const { return copy_ != nullptr; }

 private:
  SnapshotSource(store::Store& store, const v1::Segment& segment)
      : store_(store), segment_(segment) {}
  absl::Status SortIntoCopy();

  store::Store& store_;
  const v1::Segment& segment_;
  std::FILE* copy_ = nullptr;  // Unlinked: length-prefixed chunks.
};

// Reads the source's chunks on this thread and hands each to one of
// kScanThreads threads, which call `scan(seq, bytes, delivered)` (seq: the
// chunk's position, from 0). `attach`, when given, runs on the reading
// thread in chunk order before a chunk is handed on, and fills the bundle
// the scan receives with it (the delivered members of the chunk's range).
// The first error of `attach` or `scan` stops the reading and is returned;
// so is a reading error, and CANCELLED once `ctx` is cancelled.
absl::Status ScanSnapshot(
    SnapshotSource& source, sdk::RunContext& ctx,
    const std::function<absl::Status(absl::string_view bytes, DeliveredBundle& delivered)>& attach,
    const std::function<absl::Status(size_t seq, absl::string_view bytes,
                                     DeliveredBundle& delivered)>& scan);

// The last profile id of a chunk (empty for a chunk without rows), checking
// on the way that its rows are in profile-id order and come after `after`.
// DATA_LOSS naming the segment otherwise.
absl::StatusOr<std::string> LastProfileId(const v1::Segment& segment, absl::string_view bytes,
                                          absl::string_view after);

// DATA_LOSS naming the segment, for a chunk `reader` could not read.
absl::Status DamagedChunk(const v1::Segment& segment, const store::ChunkReader& reader);

// DATA_LOSS naming the segment and member, for a row with fewer values than
// the schema has fields.
absl::Status CheckRowWidth(const v1::Segment& segment, const store::RowView& row);

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_SNAPSHOT_SCAN_H_
