// The delivered state of one (export, segment) in memory, as the diff of a
// run needs it.
//
// Per member: the hashes of the values and of the destination identifier
// last delivered and a few flags, keyed by the stable 64-bit hash of the
// profile id (a 1M-member audience takes about 60 MB). Identifiers are kept
// as hashes only; the differ reads the rare ones it must name from the store. The profile ids themselves are packed into one buffer (about their
// length plus one byte each), so the members who left can be named after the
// scan without reading the store a second time. Ids whose hashes collide are
// told apart by the id itself.
//
//   DeliveredIndex delivered;
//   store.ForEachDelivered(export_id, segment_id, [&](const DeliveredView& row) {
//     return delivered.Add(row, row.run_id == run_id);
//   });
//   for (each snapshot member m) {
//     if (DeliveredEntry* d = delivered.Find(StableHash64(m.id), m.id)) d->seen = true;
//   }
//   std::vector<absl::string_view> leavers = delivered.Unseen();
#ifndef EXPORTD_SERVER_SYNC_DELIVERED_INDEX_H_
#define EXPORTD_SERVER_SYNC_DELIVERED_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/store/store.h"

namespace exportd::sync {

// What the diff knows about one delivered member.
struct DeliveredEntry {
  std::uint64_t value_hash = 0;
  std::uint64_t ident_hash = 0;  // 0: no identifier field, or unknown (older rows).
  std::uint32_t id_offset = 0;   // Of its profile id in DeliveredIndex's buffer.
  bool seen = false;             // In the current snapshot.
  bool this_run = false;         // Delivered by this very run (a resumed attempt).
  bool moved = false;            // Its profile now maps to another identifier.
  bool loser = false;            // Its identifier is now sent for another profile.
};

class DeliveredIndex {
 public:
  // Makes room for about `members` members: no rehashing (and no second
  // table beside the first) while the store is read.
  void Reserve(std::int64_t members) {
    if (members > 0) by_hash_.reserve(static_cast<size_t>(members));
  }

  // Adds a delivered member (each profile id once). RESOURCE_EXHAUSTED when
  // the ids exceed 4 GiB.
  absl::Status Add(const store::DeliveredView& row, bool this_run);

  // The entry of the member whose id hashes to `id_hash`, or null when it
  // was not delivered. Callers may set `seen` on different entries from
  // different threads; the index itself must not change meanwhile.
  DeliveredEntry* Find(std::uint64_t id_hash, absl::string_view profile_id);

  size_t size() const { return by_hash_.size() + collided_.size(); }

  // The profile ids of the members not seen, sorted (views into the index).
  std::vector<absl::string_view> Unseen() const;

  // Calls `fn(profile_id, entry)` for every member, in no particular order.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const auto& [hash, entry] : by_hash_) fn(IdAt(entry.id_offset), entry);
    for (const auto& [id, entry] : collided_) fn(IdAt(entry.id_offset), entry);
  }

 private:
  absl::string_view IdAt(std::uint32_t offset) const;

  absl::flat_hash_map<std::uint64_t, DeliveredEntry> by_hash_;
  // Members whose id hash another member has already; almost always empty.
  absl::flat_hash_map<std::string, DeliveredEntry> collided_;
  std::string ids_;  // Each id: its length as a varint, then its bytes.
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_DELIVERED_INDEX_H_
