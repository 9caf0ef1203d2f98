// The profile ids of one segment upload, so that an id sent twice is
// refused. Keeps an 8-byte hash per id, not the ids (a 1M-row upload takes
// 16 MB, not the ids' size); when a hash was seen before, `seen_before` --
// which reads the rows accepted so far -- tells a repeated id from two ids
// that merely hash alike, so no valid upload is refused.
//
//   UploadedIds ids;
//   EXPORTD_ASSIGN_OR_RETURN(bool fresh, ids.Insert(id, [&](absl::string_view id) {
//     return AnyStagedRowHas(id);
//   }));
//   if (!fresh) return absl::InvalidArgumentError("... appears twice ...");
#ifndef EXPORTD_SERVER_API_UPLOADED_IDS_H_
#define EXPORTD_SERVER_API_UPLOADED_IDS_H_

#include <cstdint>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace exportd::api {

class UploadedIds {
 public:
  using Hash = std::uint64_t (*)(absl::string_view);

  // `hash` is replaceable for tests (to make collisions happen).
  explicit UploadedIds(Hash hash = &DefaultHash) : hash_(hash) {}

  // Records `id`: true when it is new, false when the upload had it already.
  // `seen_before(id)` (returning absl::StatusOr<bool>) is called only when
  // the id's hash was seen before.
  template <typename SeenBefore>
  absl::StatusOr<bool> Insert(absl::string_view id, SeenBefore&& seen_before) {
    if (hashes_.insert(hash_(id)).second) return true;
    // A repeated id, or (about once in 10^8 uploads of a million rows) two
    // ids with one hash: only the rows themselves can tell.
    ++checked_;
    absl::StatusOr<bool> seen = seen_before(id);
    if (!seen.ok()) return seen.status();
    return !*seen;
  }

  // How many times `seen_before` was needed (for tests and logs).
  std::int64_t hash_collisions_checked() const { return checked_; }

  static std::uint64_t DefaultHash(absl::string_view id);

 private:
  Hash hash_;
  absl::flat_hash_set<std::uint64_t> hashes_;
  std::int64_t checked_ = 0;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_UPLOADED_IDS_H_
