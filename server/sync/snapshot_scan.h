// The first stage of a segment's sync: the snapshot's chunks, read in order
// on the calling thread and parsed by a few threads (parsing is the cost).
//
//   EXPORTD_RETURN_IF_ERROR(ScanSnapshot(store, segment, ctx,
//       [&](size_t seq, absl::string_view bytes) -> absl::Status {
//         store::ChunkReader reader(bytes);
//         ...
//       }));
#ifndef EXPORTD_SERVER_SYNC_SNAPSHOT_SCAN_H_
#define EXPORTD_SERVER_SYNC_SNAPSHOT_SCAN_H_

#include <cstddef>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "exportd/sdk/destination.h"
#include "exportd/v1/segment.pb.h"
#include "server/store/member_chunk.h"
#include "server/store/store.h"

namespace exportd::sync {

// Threads that parse and diff snapshot chunks, and chunks read ahead.
inline constexpr int kScanThreads = 2;
inline constexpr size_t kScanQueueChunks = 8;

// Reads the snapshot's chunks on this thread and hands each to one of
// kScanThreads threads, which call `scan(seq, bytes)` (seq: the chunk's
// position, from 0). The first error of `scan` stops the reading and is
// returned; so is a reading error, and CANCELLED once `ctx` is cancelled.
absl::Status ScanSnapshot(
    store::Store& store, const v1::Segment& segment, sdk::RunContext& ctx,
    const std::function<absl::Status(size_t seq, absl::string_view bytes)>& scan);

// DATA_LOSS naming the segment, for a chunk `reader` could not read.
absl::Status DamagedChunk(const v1::Segment& segment, const store::ChunkReader& reader);

// DATA_LOSS naming the segment and member, for a row with fewer values than
// the schema has fields.
absl::Status CheckRowWidth(const v1::Segment& segment, const store::RowView& row);

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_SNAPSHOT_SCAN_H_
