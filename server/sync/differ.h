// The diff of one segment of one run: what was delivered (the delivered
// state) against the current snapshot, keyed by what the destination keys its
// members by.
//
// Destinations with an identifier mapping field (Iterable: `email`) key
// members by the canonical identifier (Destination::CanonicalIdentifier);
// the differ then keys by that identifier, not only by profile id:
//   - a profile whose identifier changed is a move: its new identifier is
//     added and, in mirror mode, its old one removed;
//   - an identifier is removed only when no current member maps to it;
//   - several profiles with one identifier are one member: it is sent once,
//     with the data of the profile with the greatest profile id (the winner);
//     the others are duplicates (not sent, not errors).
// Destinations without one (jsonl) key by profile id only, as before.
//
// Identifiers are held as 64-bit hashes only (8 bytes per member); profile
// ids are compared exactly. The differ streams: the snapshot is read once for
// its identifier hashes (to find duplicates before anything is sent), then
// once more for the diff itself.
//
//   Differ differ({.by_identifier = true, .mirror = true});
//   store.ForEachDelivered(..., [&](const DeliveredView& row) {
//     return differ.AddDelivered(row, row.run_id == run_id);
//   });
//   for (each snapshot member) differ.AddIdentifier(ident_hash);   // pass 0
//   differ.SealIdentifiers();
//   for (each snapshot member m) switch (differ.Classify(m)) { ... }  // pass 1
//   for (each group of kDuplicate members with one exact identifier) {
//     size_t w = differ.ResolveDuplicates(group);  // then Classify(group[w], true)
//   }
//   for (const Candidate& c : differ.RemovalCandidates()) {
//     read c's delivered row, then differ.Decide(c, row's identifier hash)
//   }
#ifndef EXPORTD_SERVER_SYNC_DIFFER_H_
#define EXPORTD_SERVER_SYNC_DIFFER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "server/store/store.h"
#include "server/sync/delivered_index.h"

namespace exportd::sync {

// What one snapshot member is, against what was delivered.
enum class Change {
  kUnchanged,  // Delivered with the same identifier and values: nothing to send.
  kAdd,        // Not delivered: send it.
  kUpdate,     // Delivered with the same identifier (or an unknown one), other values.
  kDone,       // Delivered by this very run before an interruption.
  // Delivered under another identifier: send it after its old identifier's
  // removal (see RemovalCandidates), so that the delivered row still holds
  // the old values when the removal is sent.
  kMove,
  // Shares its identifier hash with another snapshot member: hold it until
  // the scan is over, then group exactly and ResolveDuplicates.
  kDuplicate,
};

// One snapshot member as the differ sees it.
struct Member {
  absl::string_view profile_id;
  std::uint64_t id_hash = 0;     // The stable hash of the profile id.
  std::uint64_t ident_hash = 0;  // Stable hash of the canonical identifier (never 0); 0: none.
  std::uint64_t value_hash = 0;  // Of the encoded mapped values.
};

struct DifferOptions {
  bool by_identifier = false;  // The destination has an identifier field.
  bool full = false;           // Resend every member (kUnchanged becomes kUpdate).
  bool mirror = true;          // Remove what no current member maps to.
};

// A delivered member whose delivered row may have to go (see Decide).
struct Candidate {
  enum class Why { kLeft, kMoved, kDuplicate };
  absl::string_view profile_id;  // A view into the differ.
  Why why = Why::kLeft;
  // False when the member was never at the destination (its attempts were
  // rejected): its row is forgotten, nothing is removed.
  bool delivered = true;
};

// What happens to a candidate's delivered identifier.
enum class Fate {
  kRemove,  // Send a removal of its old identifier and forget the row.
  kForget,  // A current member maps to the identifier: forget the row only.
  kKeep,    // Add-only mode: leave it.
};

class Differ {
 public:
  explicit Differ(DifferOptions options) : o_(options) {}

  const DifferOptions& options() const { return o_; }

  // --- The delivered state -------------------------------------------------
  void Reserve(std::int64_t members) { delivered_.Reserve(members); }
  absl::Status AddDelivered(const store::DeliveredView& row, bool this_run) {
    return delivered_.Add(row, this_run);
  }
  size_t delivered_size() const { return delivered_.size(); }

  // --- Pass 0: the snapshot's identifiers ------------------------------------
  // Room for this many identifiers (the segment's size), so that adding them
  // does not grow and copy the buffer.
  void ReserveIdentifiers(std::int64_t members);
  // Adds identifier hashes of snapshot members; thread-safe. Members without
  // an identifier (empty) are not added.
  void AddIdentifiers(absl::Span<const std::uint64_t> hashes);
  // Call once after the last AddIdentifiers and AddDelivered, before Classify.
  void SealIdentifiers();
  // Whether some snapshot member has an identifier with this hash.
  bool InSnapshot(std::uint64_t ident_hash) const;
  // Whether more than one snapshot member has an identifier with this hash.
  bool IsDuplicate(std::uint64_t ident_hash) const;

  // --- Pass 1: the diff ----------------------------------------------------
  // Classifies a member and marks its delivered entry. Thread-safe for
  // distinct members. `resolved`: the member won its duplicate group (or its
  // group turned out to hold one exact identifier only). `retry`, when given,
  // says whether the destination rejected the member's last attempt (it is
  // then sent in batches of its own, apart from real changes).
  Change Classify(const Member& m, bool resolved = false, bool* retry = nullptr);

  // Picks the winner of one group of kDuplicate members whose canonical
  // identifiers are exactly equal: the greatest profile id. Marks the
  // others' delivered entries (their rows go; the identifier stays). Returns
  // the winner's index. Not thread-safe.
  size_t ResolveDuplicates(absl::Span<const Member> group);

  // --- After the scan --------------------------------------------------------
  // Delivered members whose rows may go, sorted by profile id: in mirror mode
  // those who left, moved to another identifier or lost their identifier to
  // another profile; in add-only mode only the latter.
  std::vector<Candidate> RemovalCandidates() const;
  // What to do with a candidate whose delivered identifier hashes to
  // `old_ident_hash` (0 when the destination has none).
  Fate Decide(const Candidate& candidate, std::uint64_t old_ident_hash) const;

 private:
  const DifferOptions o_;
  DeliveredIndex delivered_;
  absl::Mutex mu_;
  std::vector<std::uint64_t> pending_ ABSL_GUARDED_BY(mu_);
  // After SealIdentifiers: sorted, one per distinct hash; and the hashes
  // that occur more than once (sorted).
  std::vector<std::uint64_t> identifiers_;
  std::vector<std::uint64_t> duplicates_;
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_DIFFER_H_
