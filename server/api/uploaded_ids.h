// The profile ids of one segment upload, so that an id sent twice is
// refused, in memory bounded whatever the upload's size.
//
// Keeps an 8-byte hash per id, not the ids. The first `in_memory` ids are
// checked at once against a hash set: a repeat is refused at the row that
// repeats it. Beyond that (uploads of millions of rows) the hashes are sorted
// in runs of `run_size` and spilled to an unlinked temporary file, and the
// rest of the check happens once, at the end of the upload (FindRepeated), by
// merging the sorted runs: memory stays near `in_memory` + `run_size` hashes
// (about 50 MB by default) instead of growing by 9 bytes or more per row.
//
// Equal hashes do not prove a repeat: two ids can hash alike. The rows
// themselves decide (`seen_before` at once, `for_each_id` at the end), so no
// valid upload is refused.
//
//   UploadedIds ids;
//   EXPORTD_ASSIGN_OR_RETURN(bool fresh, ids.Insert(id, [&](absl::string_view id) {
//     return AnyStagedRowHas(id);
//   }));
//   if (!fresh) return absl::InvalidArgumentError("... appears twice ...");
//   ...
//   EXPORTD_ASSIGN_OR_RETURN(std::optional<std::string> repeated,
//                            ids.FindRepeated(for_each_staged_id));
#ifndef EXPORTD_SERVER_API_UPLOADED_IDS_H_
#define EXPORTD_SERVER_API_UPLOADED_IDS_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace exportd::api {

class UploadedIds {
 public:
  using Hash = std::uint64_t (*)(absl::string_view);
  // Calls its argument with every profile id of the rows staged so far.
  using ForEachId =
      std::function<absl::Status(const std::function<void(absl::string_view)>&)>;

  static constexpr size_t kInMemoryIds = 2'000'000;
  static constexpr size_t kRunSize = 4'000'000;

  // `hash` and the sizes are replaceable for tests (to make collisions and
  // spilling happen with a few ids).
  explicit UploadedIds(Hash hash = &DefaultHash, size_t in_memory = kInMemoryIds,
                       size_t run_size = kRunSize);
  ~UploadedIds();
  UploadedIds(const UploadedIds&) = delete;
  UploadedIds& operator=(const UploadedIds&) = delete;

  // Records `id`: true when it is new or cannot be told yet (beyond
  // `in_memory` ids; FindRepeated tells), false when the upload had it
  // already. `seen_before(id)` (returning absl::StatusOr<bool>) is called only
  // when the id's hash was seen before, and only while the ids fit in memory.
  template <typename SeenBefore>
  absl::StatusOr<bool> Insert(absl::string_view id, SeenBefore&& seen_before) {
    const std::uint64_t hash = hash_(id);
    if (spill_ != nullptr) {
      pending_.push_back(hash);
      if (pending_.size() >= run_size_) {
        absl::Status spilled = SpillRun();
        if (!spilled.ok()) return spilled;
      }
      return true;
    }
    if (hashes_.insert(hash).second) {
      if (hashes_.size() > in_memory_) {
        absl::Status started = StartSpilling();
        if (!started.ok()) return started;
      }
      return true;
    }
    // A repeated id, or (about once in 10^8 uploads of a million rows) two
    // ids with one hash: only the rows themselves can tell.
    ++checked_;
    absl::StatusOr<bool> seen = seen_before(id);
    if (!seen.ok()) return seen.status();
    return !*seen;
  }

  // After the last Insert: a profile id the upload holds twice among those
  // Insert could not tell at once, or nullopt. `for_each_id` is called only
  // when some hashes repeat.
  absl::StatusOr<std::optional<std::string>> FindRepeated(const ForEachId& for_each_id);

  // How many times the rows were needed to tell ids apart (for tests and logs).
  std::int64_t hash_collisions_checked() const { return checked_; }
  // Whether the hashes went to sorted runs on disk.
  bool spilled() const { return spill_ != nullptr; }

  static std::uint64_t DefaultHash(absl::string_view id);

 private:
  absl::Status StartSpilling();
  absl::Status SpillRun();
  // The hashes that occur more than once across the runs, sorted.
  absl::StatusOr<std::vector<std::uint64_t>> RepeatedHashes();

  const Hash hash_;
  const size_t in_memory_;
  const size_t run_size_;
  absl::flat_hash_set<std::uint64_t> hashes_;
  std::int64_t checked_ = 0;
  // Once spilling: the hashes not yet in a run, the scratch buffer of the
  // sort, the file of sorted runs and each run's length.
  std::vector<std::uint64_t> pending_, scratch_;
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, FileCloser> spill_;
  std::vector<size_t> runs_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_UPLOADED_IDS_H_
