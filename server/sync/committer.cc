#include "server/sync/committer.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace exportd::sync {

absl::Status Committer::Commit(PendingBatch& batch,
                               const std::vector<sdk::RecordOutcome>& outcomes) {
  if (outcomes.size() != batch.records.size()) {
    return absl::InternalError(absl::StrCat(
        "destination returned ", outcomes.size(), " outcomes for ", batch.records.size(),
        " records; a plugin must return exactly one per record"));
  }
  store::BatchCommit commit;
  commit.export_id = target_.export_id;
  commit.segment_id = target_.segment_id;
  std::int64_t added = 0, updated = 0, removed = 0, rejected = 0, retryable = 0;
  // The destination's message for the first retryable record.
  const std::string* retry_reason = nullptr;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const sdk::RecordOutcome& outcome = outcomes[i];
    std::string& id = batch.records.profile_ids[i];
    switch (outcome.kind) {
      case sdk::OutcomeKind::kDelivered:
        if (batch.removal) {
          commit.removed.push_back(std::move(id));
          ++removed;
        } else {
          store::DeliveredRow row;
          row.id_hash = batch.id_hashes[i];
          row.profile_id = std::move(id);
          row.value_hash = batch.hashes[i];
          row.run_id = target_.run_id;
          row.values = std::move(batch.encoded[i]);
          if (!batch.ident_hashes.empty()) row.ident_hash = batch.ident_hashes[i];
          if (i < batch.row_hashes.size()) row.row_hash = batch.row_hashes[i];
          commit.delivered.push_back(std::move(row));
          ++(batch.is_update[i] ? updated : added);
        }
        break;
      case sdk::OutcomeKind::kRejected: {
        v1::Rejection r;
        r.set_run_id(target_.run_id);
        r.set_segment_id(target_.segment_id);
        r.set_profile_id(id);
        r.set_field(outcome.field);
        r.set_reason_code(outcome.reason_code);
        r.set_message(outcome.message);
        if (!batch.notes.empty() && !batch.notes[i].empty()) {
          r.set_message(absl::StrCat(outcome.message, "; ", batch.notes[i]));
        }
        r.set_removal(batch.removal);
        commit.rejections.push_back(std::move(r));
        ++rejected;
        if (!batch.removal) {
          // Remembered in the delivered state: the next run retries it apart
          // from the real changes, whatever the rejections list keeps.
          const bool forgotten = outcome.reason_code == sdk::kReasonForgotten;
          if (!forgotten && i < batch.rejection_recorded.size() && batch.rejection_recorded[i]) {
            commit.rejected_again.push_back(std::move(id));  // Its row says so already.
            break;
          }
          store::DeliveredRow row;
          row.id_hash = batch.id_hashes[i];
          row.profile_id = std::move(id);
          row.value_hash = batch.hashes[i];
          row.run_id = target_.run_id;
          if (!batch.ident_hashes.empty()) row.ident_hash = batch.ident_hashes[i];
          row.state = forgotten              ? store::DeliveredState::kForgotten
                      : batch.is_update[i] ? store::DeliveredState::kUpdateRejected
                                           : store::DeliveredState::kRejected;
          commit.rejected.push_back(std::move(row));
        }
        break;
      }
      case sdk::OutcomeKind::kRetryable:
        ++retryable;
        if (retry_reason == nullptr && !outcome.message.empty()) retry_reason = &outcome.message;
        break;
    }
  }
  absl::Status committed = tracker_.Commit(
      target_.segment_index,
      [&](v1::SegmentProgress& p) {
        p.set_added(p.added() + added);
        p.set_updated(p.updated() + updated);
        p.set_removed(p.removed() + removed);
        p.set_rejected(p.rejected() + rejected);
        p.set_retryable(p.retryable() + retryable);
      },
      commit);
  if (committed.ok() && retry_reason != nullptr) tracker_.NoteRetryable(*retry_reason);
  return committed;
}

}  // namespace exportd::sync
