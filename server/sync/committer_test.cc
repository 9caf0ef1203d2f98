// The committer on its own: outcomes become one store commit with the counts.
#include "server/sync/committer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::sync {
namespace {

using ::testing::HasSubstr;

class RecordingTracker : public RunTracker {
 public:
  void Update(int, const std::function<void(v1::SegmentProgress&)>& fn) override { fn(progress); }
  absl::Status Commit(int index, const std::function<void(v1::SegmentProgress&)>& fn,
                      store::BatchCommit& commit) override {
    EXPECT_EQ(index, 2);
    fn(progress);
    commits.push_back(commit);
    return absl::OkStatus();
  }
  void NoteRetryable(const std::string& message) override { retry_reasons.push_back(message); }
  v1::SegmentProgress progress;
  std::vector<std::string> retry_reasons;
  std::vector<store::BatchCommit> commits;
};

PendingBatch Batch(bool removal, std::vector<std::string> ids) {
  PendingBatch b;
  b.removal = removal;
  for (const auto& id : ids) {
    b.records.profile_ids.push_back(id);
    b.encoded.push_back("enc-" + id);
    b.id_hashes.push_back(id.size());
    b.hashes.push_back(7);
    b.is_update.push_back(id == "updated");
  }
  return b;
}

TEST(CommitterTest, DeliveredRejectedAndRetryableRecordsAreCountedAndCommittedOnce) {
  RecordingTracker tracker;
  Committer committer({"run-1", "exp-1", "seg-1", 2}, tracker);
  PendingBatch batch = Batch(false, {"new", "updated", "bad", "later"});
  batch.notes = {"", "", "its previous email was removed", ""};
  std::vector<sdk::RecordOutcome> outcomes = {
      sdk::RecordOutcome::Delivered(), sdk::RecordOutcome::Delivered(),
      sdk::RecordOutcome::Rejected("invalid_email", "email", "not an email"),
      sdk::RecordOutcome::Retryable("timeout", "Iterable request failed after 6 tries: x")};
  ASSERT_TRUE(committer.Commit(batch, outcomes).ok());
  // Why records are retryable, once per batch, for the run's message.
  EXPECT_THAT(tracker.retry_reasons,
              ::testing::ElementsAre("Iterable request failed after 6 tries: x"));
  ASSERT_EQ(tracker.commits.size(), 1u);
  const store::BatchCommit& c = tracker.commits[0];
  EXPECT_EQ(c.export_id, "exp-1");
  EXPECT_EQ(c.segment_id, "seg-1");
  ASSERT_EQ(c.delivered.size(), 2u);
  EXPECT_EQ(c.delivered[0].profile_id, "new");
  EXPECT_EQ(c.delivered[0].run_id, "run-1");
  EXPECT_EQ(c.delivered[0].values, "enc-new");
  ASSERT_EQ(c.rejections.size(), 1u);
  EXPECT_EQ(c.rejections[0].profile_id(), "bad");
  EXPECT_EQ(c.rejections[0].reason_code(), "invalid_email");
  EXPECT_THAT(c.rejections[0].message(), HasSubstr("not an email; its previous email was removed"));
  EXPECT_EQ(tracker.progress.added(), 1);
  EXPECT_EQ(tracker.progress.updated(), 1);
  EXPECT_EQ(tracker.progress.rejected(), 1);
  EXPECT_EQ(tracker.progress.retryable(), 1);
}

TEST(CommitterTest, DeliveredRemovalsRemoveTheRows) {
  RecordingTracker tracker;
  Committer committer({"run-1", "exp-1", "seg-1", 2}, tracker);
  PendingBatch batch = Batch(true, {"left"});
  ASSERT_TRUE(committer.Commit(batch, {sdk::RecordOutcome::Delivered()}).ok());
  ASSERT_EQ(tracker.commits.size(), 1u);
  EXPECT_THAT(tracker.commits[0].removed, ::testing::ElementsAre("left"));
  EXPECT_TRUE(tracker.commits[0].delivered.empty());
  EXPECT_EQ(tracker.progress.removed(), 1);
}

TEST(CommitterTest, AnOutcomeCountThatDiffersFromTheBatchIsAPluginBug) {
  RecordingTracker tracker;
  Committer committer({"run-1", "exp-1", "seg-1", 2}, tracker);
  PendingBatch batch = Batch(false, {"a", "b"});
  absl::Status status = committer.Commit(batch, {sdk::RecordOutcome::Delivered()});
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("1 outcomes for 2 records"));
  EXPECT_TRUE(tracker.commits.empty());
}

}  // namespace
}  // namespace exportd::sync
