#include "server/sync/differ.h"

#include <algorithm>

namespace exportd::sync {

Change Differ::Classify(const Member& m, DeliveredEntry* entry, bool resolved, bool* retry) {
  if (retry != nullptr) *retry = false;
  if (o_.by_identifier && !resolved && IsDuplicate(m.ident_hash)) {
    // Seen, so that it does not count as a leaver; ResolveDuplicates decides.
    if (entry != nullptr) entry->seen = true;
    return Change::kDuplicate;
  }
  if (entry == nullptr) return Change::kAdd;
  entry->seen = true;
  if (retry != nullptr) *retry = entry->rejected();
  if (entry->this_run) return Change::kDone;
  // Erased at the destination on the person's request: not sent again until
  // the member maps to another identifier.
  if (entry->state == store::DeliveredState::kForgotten &&
      (!o_.by_identifier || entry->ident_hash == m.ident_hash)) {
    if (retry != nullptr) *retry = false;
    return Change::kUnchanged;
  }
  // Never at the destination (rejected before): sent as a new member.
  if (!entry->delivered()) return Change::kAdd;
  if (o_.by_identifier) {
    // Unknown (delivered before identifiers were kept): resent once, which
    // records the identifier.
    if (entry->ident_hash == 0) return Change::kUpdate;
    if (entry->ident_hash != m.ident_hash) {
      entry->moved = true;
      return Change::kMove;
    }
  }
  if (entry->value_hash == m.value_hash && !o_.full) return Change::kUnchanged;
  return Change::kUpdate;
}

size_t Differ::ResolveDuplicates(absl::Span<const Member> group,
                                 absl::Span<DeliveredEntry* const> entries) const {
  size_t winner = 0;
  for (size_t i = 1; i < group.size(); ++i) {
    if (group[i].profile_id > group[winner].profile_id) winner = i;
  }
  for (size_t i = 0; i < group.size() && i < entries.size(); ++i) {
    if (i == winner || entries[i] == nullptr) continue;
    entries[i]->seen = true;
    entries[i]->loser = true;
  }
  return winner;
}

std::optional<Candidate::Why> Differ::RemovalReason(const DeliveredEntry& e) const {
  if (e.loser) return Candidate::Why::kDuplicate;
  if (o_.mirror && !e.seen) return Candidate::Why::kLeft;
  if (o_.mirror && e.moved) return Candidate::Why::kMoved;
  return std::nullopt;
}

Fate Differ::Decide(const Candidate& candidate, std::uint64_t old_ident_hash) const {
  if (!candidate.delivered) return Fate::kForget;  // Nothing of it is at the destination.
  if (o_.by_identifier && InSnapshot(old_ident_hash)) return Fate::kForget;
  if (o_.mirror) return Fate::kRemove;
  // Add-only: the identifier stays at the destination; a duplicate's row
  // goes all the same, as another profile is sent for its identifier.
  return candidate.why == Candidate::Why::kDuplicate ? Fate::kForget : Fate::kKeep;
}

}  // namespace exportd::sync
