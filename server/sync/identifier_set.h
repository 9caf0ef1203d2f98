// The set of a snapshot's identifier hashes (pass 0 of a sync), in bounded
// memory: which hashes occur more than once (duplicates, held in memory: they
// are few), and whether a given hash occurs at all (asked for the removal
// candidates only).
//
// Up to `memory_hashes` hashes are kept in memory and sorted there, as a
// segment of up to a few million members needs. Beyond that, each full
// buffer is sorted and written as a run to an unlinked temporary file, and
// Seal merges the runs into one sorted file of the distinct hashes; a 100M
// member segment then holds 16 MB of hashes at a time instead of 800 MB.
//
//   IdentifierSet set(options);
//   set.Add(hashes);  ...                 // any order, from several threads
//   EXPORTD_RETURN_IF_ERROR(set.Seal());
//   set.IsDuplicate(h);                   // in memory
//   EXPORTD_RETURN_IF_ERROR(set.Prefetch(candidate_hashes));
//   set.Contains(h);                      // a prefetched hash: in memory
#ifndef EXPORTD_SERVER_SYNC_IDENTIFIER_SET_H_
#define EXPORTD_SERVER_SYNC_IDENTIFIER_SET_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace exportd::sync {

struct IdentifierSetOptions {
  // Hashes held in memory before they go to disk (8 bytes each): 16 MB.
  // They are held beside the run's other buffers (an incremental run's held
  // changes, its pages and batches), so that a 10M-member run stays within
  // 256 MB; beyond 2M members the spill costs a sequential write and read of
  // 16 bytes a member.
  size_t memory_hashes = size_t{2} << 20;
  // Where the temporary file goes; empty: $TMPDIR, else /tmp.
  std::string temp_dir;
};

class IdentifierSet {
 public:
  explicit IdentifierSet(IdentifierSetOptions options = {});
  ~IdentifierSet();
  IdentifierSet(const IdentifierSet&) = delete;
  IdentifierSet& operator=(const IdentifierSet&) = delete;

  // Room for this many hashes (at most the memory bound), so that adding
  // them does not grow and copy the buffer.
  void Reserve(std::int64_t hashes);
  // Adds hashes (0 is never a hash and is not added). Thread-safe. An error
  // writing the temporary file is returned here or by Seal.
  absl::Status Add(absl::Span<const std::uint64_t> hashes);
  // Call once after the last Add, before the questions below.
  absl::Status Seal();

  // Whether more than one added hash equals `hash`.
  bool IsDuplicate(std::uint64_t hash) const { return DuplicateCount(hash) > 0; }
  // How often `hash` was added when that is more than once; else 0.
  std::int64_t DuplicateCount(std::uint64_t hash) const;
  // Reads the answers for these hashes (any order, repeats allowed) in one
  // pass over the file, so that Contains answers them from memory. Nothing
  // to do when the hashes never left memory.
  absl::Status Prefetch(std::vector<std::uint64_t> hashes);
  // Whether `hash` was added. A hash that was not prefetched is looked up in
  // the file (a binary search); an error reading it is kept for status().
  bool Contains(std::uint64_t hash) const;
  // OK, or the first error a Contains met reading the file.
  absl::Status status() const;

  // Whether hashes went to the temporary file (for tests and logs).
  bool spilled() const { return fd_ >= 0; }

 private:
  absl::Status SpillLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Merge();
  bool ReadAt(std::uint64_t index, std::uint64_t& hash) const;

  const IdentifierSetOptions o_;
  const std::string dir_;
  mutable absl::Mutex mu_;
  std::vector<std::uint64_t> buffer_ ABSL_GUARDED_BY(mu_);
  absl::Status spill_status_ ABSL_GUARDED_BY(mu_);
  // The temporary file (-1: none): the sorted runs, then after Seal the
  // distinct hashes, sorted, from `set_begin_` on.
  int fd_ = -1;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> runs_;  // [begin, end) in hashes.
  std::uint64_t set_begin_ = 0, set_size_ = 0;
  // After Seal: the distinct hashes when they stayed in memory; else the
  // prefetched hashes that are in the set.
  std::vector<std::uint64_t> in_memory_;
  std::vector<std::uint64_t> prefetched_;  // Every prefetched hash (sorted, distinct).
  // The repeated hashes and how often each was added, sorted by hash.
  std::vector<std::pair<std::uint64_t, std::int64_t>> duplicates_;
  mutable absl::Status read_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_IDENTIFIER_SET_H_
