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
// Identifiers are held as 64-bit hashes only (8 bytes per member, in memory
// up to a bound and beyond it in a temporary file: identifier_set.h); profile
// ids are compared exactly. The differ holds no delivered state: the snapshot
// and the delivered state are both read in profile-id order and merged
// (segment_sync.cc), and each delivered member's entry is handed to Classify
// with its snapshot member. The snapshot is read once for its identifier
// hashes (to find duplicates before anything is sent), then once more for the
// diff itself.
//
//   Differ differ({.by_identifier = true, .mirror = true});
//   for (each snapshot member) differ.AddIdentifiers({ident_hash});   // pass 0
//   differ.SealIdentifiers();
//   merge snapshot members m and delivered entries e by profile id:       // pass 1
//     m and e: differ.Classify(m, &e)    m only: differ.Classify(m, nullptr)
//     then for each e: if (auto why = differ.RemovalReason(e)) candidate
//   for (each group of kDuplicate members with one exact identifier) {
//     size_t w = differ.ResolveDuplicates(group, entries);  // then Classify(group[w], .., true)
//   }
//   differ.PrefetchIdentifiers(the candidates' identifier hashes);
//   for (each candidate c) {
//     read c's delivered row, then differ.Decide(c, row's identifier hash)
//   }
//   differ.status();  // a temporary file that could not be read
#ifndef EXPORTD_SERVER_SYNC_DIFFER_H_
#define EXPORTD_SERVER_SYNC_DIFFER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "server/store/store.h"
#include "server/sync/identifier_set.h"

namespace exportd::sync {

// What one snapshot member is, against what was delivered.
enum class Change {
  // Delivered with the same identifier and values, or forgotten by the
  // destination under the same identifier: nothing to send.
  kUnchanged,
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
  // How many of the snapshot's identifier hashes stay in memory, and where
  // the others go.
  IdentifierSetOptions identifiers;
};

// What the diff knows about one delivered member (a row of the store's
// delivered state, without its values), and what this run found out about it.
struct DeliveredEntry {
  std::uint64_t value_hash = 0;
  std::uint64_t ident_hash = 0;  // 0: no identifier field, or unknown (older rows).
  // The digest of the snapshot row it was delivered from (0: unknown), see
  // store::DeliveredRow.
  std::uint64_t row_hash = 0;
  store::DeliveredState state = store::DeliveredState::kDelivered;
  bool this_run = false;  // Delivered (or rejected) by this very run (a resumed attempt).
  bool seen = false;      // In the current snapshot.
  bool moved = false;     // Its profile now maps to another identifier.
  bool loser = false;     // Its identifier is now sent for another profile.

  bool delivered() const {
    return state != store::DeliveredState::kRejected &&
           state != store::DeliveredState::kForgotten;
  }
  // Its last attempt was rejected: retried apart from real changes.
  bool rejected() const { return state != store::DeliveredState::kDelivered; }
};

// A delivered member whose delivered row may have to go (see Decide).
struct Candidate {
  enum class Why { kLeft, kMoved, kDuplicate };
  std::string profile_id;
  Why why = Why::kLeft;
  // False when the member was never at the destination (its attempts were
  // rejected): its row is forgotten, nothing is removed.
  bool delivered = true;
  // Its delivered identifier's hash (0: none, or not kept in older rows).
  std::uint64_t ident_hash = 0;
};

// What happens to a candidate's delivered identifier.
enum class Fate {
  kRemove,  // Send a removal of its old identifier and forget the row.
  kForget,  // A current member maps to the identifier: forget the row only.
  kKeep,    // Add-only mode: leave it.
};

class Differ {
 public:
  explicit Differ(DifferOptions options) : o_(options), identifiers_(o_.identifiers) {}

  const DifferOptions& options() const { return o_; }

  // --- Pass 0: the snapshot's identifiers ------------------------------------
  // Room for this many identifiers (the segment's size; at most the memory
  // bound), so that adding them does not grow and copy the buffer.
  void ReserveIdentifiers(std::int64_t members) { identifiers_.Reserve(members); }
  // Adds identifier hashes of snapshot members; thread-safe. Members without
  // an identifier (empty) are not added. Fails when the temporary file
  // cannot be written.
  absl::Status AddIdentifiers(absl::Span<const std::uint64_t> hashes) {
    return identifiers_.Add(hashes);
  }
  // Call once after the last AddIdentifiers, before Classify.
  absl::Status SealIdentifiers() { return identifiers_.Seal(); }
  // Whether some snapshot member has an identifier with this hash.
  bool InSnapshot(std::uint64_t ident_hash) const { return identifiers_.Contains(ident_hash); }
  // Whether more than one snapshot member has an identifier with this hash.
  bool IsDuplicate(std::uint64_t ident_hash) const { return identifiers_.IsDuplicate(ident_hash); }
  // How many snapshot members have an identifier with this hash, when more
  // than one does; else 0.
  std::int64_t DuplicateCount(std::uint64_t ident_hash) const {
    return identifiers_.DuplicateCount(ident_hash);
  }
  // Makes InSnapshot answer these hashes from memory (the removal
  // candidates'), in one pass over the temporary file if there is one.
  absl::Status PrefetchIdentifiers(std::vector<std::uint64_t> hashes) {
    return identifiers_.Prefetch(std::move(hashes));
  }
  // OK, or the first error InSnapshot met reading the temporary file.
  absl::Status status() const { return identifiers_.status(); }

  // --- Pass 1: the diff ----------------------------------------------------
  // Classifies a member against its delivered entry (null: not delivered)
  // and marks the entry. Thread-safe for distinct entries. `resolved`: the member won its duplicate group (or its
  // group turned out to hold one exact identifier only). `retry`, when given,
  // says whether the destination rejected the member's last attempt (it is
  // then sent in batches of its own, apart from real changes).
  Change Classify(const Member& m, DeliveredEntry* entry, bool resolved = false,
                  bool* retry = nullptr);

  // Picks the winner of one group of kDuplicate members whose canonical
  // identifiers are exactly equal: the greatest profile id. Marks the
  // others' delivered entries (`entries`, parallel to `group`, null where a
  // member was not delivered): their rows go, the identifier stays. Returns
  // the winner's index.
  size_t ResolveDuplicates(absl::Span<const Member> group,
                           absl::Span<DeliveredEntry* const> entries) const;

  // --- After the scan --------------------------------------------------------
  // Why a delivered entry's row may have to go, once its snapshot member (if
  // any) was classified: in mirror mode members who left, moved to another
  // identifier or lost their identifier to another profile; in add-only mode
  // only the latter. Nullopt: the row stays.
  std::optional<Candidate::Why> RemovalReason(const DeliveredEntry& e) const;
  // What to do with a candidate whose delivered identifier hashes to
  // `old_ident_hash` (0 when the destination has none).
  Fate Decide(const Candidate& candidate, std::uint64_t old_ident_hash) const;

 private:
  const DifferOptions o_;
  IdentifierSet identifiers_;
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_DIFFER_H_
