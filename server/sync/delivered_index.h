// The delivered state of one (export, segment) in memory, as the diff of a
// run needs it.
//
// Per member: the hashes of the values and of the destination identifier
// last delivered and a few flags, keyed by the stable 64-bit hash of the
// profile id (a 1M-member audience takes about 45 MB). Identifiers are kept
// as hashes only; the differ reads the rare ones it must name from the store. The profile ids themselves are packed into one buffer (about their
// length plus one byte each), so the members who left can be named after the
// scan without reading the store a second time. Ids whose hashes collide are
// told apart by the id itself.
//
//   DeliveredIndex delivered;
//   store.ForEachDelivered(export_id, segment_id, [&](const DeliveredView& row) {
//     return delivered.Add(row, row.run_id == run_id);
//   });
//   delivered.Seal();
//   for (each snapshot member m) {
//     if (DeliveredEntry* d = delivered.Find(StableHash64(m.id), m.id)) d->seen = true;
//   }
//   std::vector<absl::string_view> leavers = delivered.Unseen();
#ifndef EXPORTD_SERVER_SYNC_DELIVERED_INDEX_H_
#define EXPORTD_SERVER_SYNC_DELIVERED_INDEX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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
  bool moved = false;            // Its profile now maps to another identifier.
  bool loser = false;            // Its identifier is now sent for another profile.
  // Set when the entry is added, never changed after (so the bit-fields are
  // never written by two threads).
  std::uint8_t this_run : 1;  // Delivered (or rejected) by this very run (a resumed attempt).
  std::uint8_t state : 2;     // A store::DeliveredState.
  DeliveredEntry() : this_run(0), state(0) {}

  bool delivered() const {
    return state != static_cast<std::uint8_t>(store::DeliveredState::kRejected);
  }
  // Its last attempt was rejected: retried apart from real changes.
  bool rejected() const {
    return state != static_cast<std::uint8_t>(store::DeliveredState::kDelivered);
  }
};

class DeliveredIndex {
 public:
  // Makes room for about `members` members (a little more: the delivered
  // state also holds members rejected before), so that adding them does not
  // grow and copy the array.
  void Reserve(std::int64_t members) {
    if (members > 0) members_.reserve(static_cast<size_t>(members + members / 16 + 1024));
  }

  // Adds a delivered member (each profile id once), before Seal().
  // RESOURCE_EXHAUSTED when the ids exceed 4 GiB.
  absl::Status Add(const store::DeliveredView& row, bool this_run);

  // Sorts what was added for Find. Call once, after the last Add.
  void Seal();

  // The entry of the member whose id hashes to `id_hash`, or null when it
  // was not delivered. Only after Seal(). Callers may set flags on different
  // entries from different threads; the index itself must not change
  // meanwhile.
  DeliveredEntry* Find(std::uint64_t id_hash, absl::string_view profile_id);

  size_t size() const { return members_.size(); }

  // The profile ids of the members not seen, sorted (views into the index).
  std::vector<absl::string_view> Unseen() const;

  // Calls `fn(profile_id, entry)` for every member, in no particular order.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const Member& m : members_) fn(IdAt(m.entry.id_offset), m.entry);
  }

 private:
  // 32 bytes a member, in one array sorted by id hash: no hash table's empty
  // slots and per-slot overhead (a 10M-member audience takes 320 MB plus its
  // ids, where a hash map took about 550 MB), and built by appending and
  // one sort instead of 10M scattered inserts.
  struct Member {
    std::uint64_t id_hash = 0;
    DeliveredEntry entry;
  };
  static_assert(sizeof(Member) == 32, "keep delivered members compact");

  absl::string_view IdAt(std::uint32_t offset) const;
  size_t Bucket(std::uint64_t id_hash) const {
    return shift_ >= 64 ? 0 : static_cast<size_t>(id_hash >> shift_);
  }

  std::vector<Member> members_;
  // After Seal: members_ index of the first member of each bucket of the top
  // `shift_` bits of the id hash (one more at the end), so that Find looks at
  // a few neighbours only.
  std::vector<std::uint32_t> buckets_;
  int shift_ = 64;
  // The profile ids, each as its length (a varint) and its bytes, in blocks
  // of 4 MiB that never move (a growing string would copy itself and hold
  // twice the ids at the moment it grows). An id's offset is its block's
  // index and its place in the block.
  static constexpr int kIdBlockBits = 22;
  static constexpr size_t kIdBlock = size_t{1} << kIdBlockBits;
  static constexpr size_t kMaxIdBlocks = size_t{1} << (32 - kIdBlockBits);
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t used_ = 0;  // In the last block.
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_DELIVERED_INDEX_H_
