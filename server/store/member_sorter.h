// Puts the rows of a segment snapshot in profile-id order, in bounded memory.
//
// A snapshot is stored in profile-id order (bytewise, as memcmp and
// std::string compare: the order of the delivered-state tables' keys in both
// stores), so that a run diffs it against the delivered state as a merge of
// two sorted streams, and the upload finds a repeated profile id as two equal
// neighbours. The rows arrive in any order; MemberSorter is the external sort
// in between:
//
//   store::MemberSorterOptions options;
//   options.memory_bytes = 64 << 20;
//   store::MemberSorter sorter(options);
//   for (const std::string& chunk : uploaded) {
//     EXPORTD_RETURN_IF_ERROR(sorter.AddChunk(chunk));   // validated chunks
//   }
//   EXPORTD_RETURN_IF_ERROR(sorter.Finish([&](std::string chunk, std::int64_t rows) {
//     return Write(std::move(chunk), rows);               // sorted chunks
//   }));
//
// Rows are held as their serialized `v1.MemberRow` bytes, verbatim, with an
// index of small fixed-size entries (an 8-byte prefix of the id, where the
// row is, its number) that is what gets sorted. When the rows held reach
// `memory_bytes`, they are sorted and written as one sorted run to a
// temporary file (unlinked at once, so nothing outlives the sorter); Finish
// merges the runs and the rows still held, reading each run through a small
// buffer. Memory stays near memory_bytes + runs x 64 KB.
#ifndef EXPORTD_SERVER_STORE_MEMBER_SORTER_H_
#define EXPORTD_SERVER_STORE_MEMBER_SORTER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace exportd::store {

struct MemberSorterOptions {
  // Rows (their bytes and index entries) held before a sorted run goes to
  // disk.
  size_t memory_bytes = 64 << 20;
  // About this many bytes per emitted chunk.
  size_t chunk_bytes = 1 << 20;
  // Where sorted runs are written: empty for $TMPDIR, else /tmp. The file is
  // unlinked as soon as it is created.
  std::string temp_dir;
};

class MemberSorter {
 public:
  explicit MemberSorter(MemberSorterOptions options = {});
  ~MemberSorter();
  MemberSorter(const MemberSorter&) = delete;
  MemberSorter& operator=(const MemberSorter&) = delete;

  // Adds the rows of one serialized `v1.UploadMembersRequest.Chunk` (already
  // validated: DATA_LOSS if it is malformed after all). Rows are numbered
  // from 1 over all AddChunk calls, for error messages. The profile id is
  // the one ChunkReader reads (the last, if a row has several).
  // UNAVAILABLE / RESOURCE_EXHAUSTED when a sorted run cannot be written to
  // the temporary directory (the message names it).
  absl::Status AddChunk(absl::string_view chunk_bytes);

  // After the last AddChunk: calls `emit` with serialized Chunks whose rows
  // are in profile-id order, each about `chunk_bytes` (never empty; a row
  // larger than that is a chunk of its own), and the number of rows in each.
  // Stops at the first error `emit` returns. A profile id present twice:
  // INVALID_ARGUMENT "profile id 'X' appears twice (rows 12 and 40017);
  // profile ids must be unique"; the chunks emitted before it are not to be
  // used. Call it once.
  absl::Status Finish(
      const std::function<absl::Status(std::string chunk_bytes, std::int64_t rows)>& emit);

  // Rows added so far.
  std::int64_t rows() const { return rows_; }
  // Sorted runs written to disk so far (0: every row fit in memory).
  std::int64_t spilled_runs() const { return static_cast<std::int64_t>(runs_.size()); }

 private:
  // One held row, as the sort sees it.
  struct Entry {
    std::uint64_t prefix;     // The id's first 8 bytes, big-endian, zero-padded.
    std::uint64_t offset;     // Of the row's bytes in arena_.
    std::uint32_t size;       // Of the row's bytes.
    std::uint32_t id_offset;  // Of the id in the row's bytes.
    std::uint32_t id_size;
    std::int64_t row;  // Its number, from 1.
  };
  // A sorted run in the temporary file.
  struct Run {
    std::uint64_t offset;
    std::uint64_t size;
  };
  class Source;
  class HeldSource;
  class RunSource;

  absl::Status OpenTempFile();
  absl::Status SpillRun();
  void SortHeld();
  absl::Status WriteAll(const char* data, size_t size);
  absl::Status TempFileError(absl::string_view what, int error) const;

  const MemberSorterOptions options_;
  // The held rows' bytes, back to back, and their index.
  std::string arena_;
  std::vector<Entry> held_;
  std::int64_t rows_ = 0;
  bool finished_ = false;
  // The temporary file of sorted runs (-1 before the first spill), where the
  // next run starts, and the runs.
  int fd_ = -1;
  std::string temp_dir_;
  std::uint64_t file_size_ = 0;
  std::vector<Run> runs_;
};

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_MEMBER_SORTER_H_
