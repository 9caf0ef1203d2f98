// The merge's two inputs on their own: the delivered state streamed in
// profile-id order in bounded pages, and a snapshot's chunks (sorted for the
// run when it was stored in upload order), with the order checked.
#include "server/sync/delivered_stream.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "exportd/sdk/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "exportd/sdk/testing/test_run_context.h"
#include "server/store/sqlite_store.h"
#include "server/store/sqlite_util.h"
#include "server/sync/snapshot_scan.h"

namespace exportd::sync {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class DeliveredStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::SqliteStore::Open((dir_.path() / "exportd.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Commits `ids` (in the order given) as delivered by `run_id`.
  void Deliver(const std::vector<std::string>& ids, const std::string& run_id) {
    ASSERT_TRUE(store_->PutAudienceState("exp-1", "seg-1", {"aud-1", 7}).ok());
    v1::Run run;
    run.set_id(run_id);
    run.set_export_id("exp-1");
    run.set_state(v1::RUN_STATE_QUEUED);
    ASSERT_TRUE(store_->CreateRun(run).ok());
    auto claimed = store_->ClaimNextRun(
        {"replica-a", absl::ToUnixMicros(absl::Now()), absl::Seconds(15)});
    ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
    store::BatchCommit commit;
    commit.export_id = "exp-1";
    commit.segment_id = "seg-1";
    commit.lease = (*claimed)->lease;
    commit.checkpoint = (*claimed)->run;
    for (const auto& id : ids) {
      commit.delivered.push_back({id.size(), id, 21, run_id, "v", 31});
    }
    ASSERT_TRUE(store_->CommitBatch(commit).ok());
    commit.checkpoint.set_state(v1::RUN_STATE_SUCCEEDED);
    ASSERT_TRUE(store_->UpdateRun(commit.checkpoint).ok());
  }

  static std::vector<std::string> Ids(const DeliveredBundle& b) {
    std::vector<std::string> out;
    for (size_t i = 0; i < b.size(); ++i) out.emplace_back(b.id(i));
    return out;
  }

  sdk::testing::TempDir dir_;
  std::unique_ptr<store::SqliteStore> store_;
};

TEST_F(DeliveredStreamTest, MembersComeInProfileIdOrderUpToEachBound) {
  // Bytewise order: "B" < "a" < "aa" < "b" < "é".
  Deliver({"b", "é", "aa", "B", "a"}, "run-1");
  DeliveredStream stream(*store_, "exp-1", "seg-1", "run-2");
  DeliveredBundle bundle;
  ASSERT_TRUE(stream.TakeThrough("a", bundle).ok());
  EXPECT_THAT(Ids(bundle), ElementsAre("B", "a"));
  ASSERT_TRUE(stream.TakeThrough("ab", bundle).ok());
  EXPECT_THAT(Ids(bundle), ElementsAre("aa"));
  ASSERT_TRUE(stream.TakeThrough("ab", bundle).ok());
  EXPECT_TRUE(bundle.empty());
  ASSERT_TRUE(stream.TakeThrough(std::nullopt, bundle).ok());
  EXPECT_THAT(Ids(bundle), ElementsAre("b", "é"));
  EXPECT_EQ(bundle.entry(0).value_hash, 21u);
  EXPECT_EQ(bundle.entry(0).ident_hash, 31u);
  EXPECT_FALSE(bundle.entry(0).this_run);
  EXPECT_EQ(stream.taken(), 5);
}

TEST_F(DeliveredStreamTest, ManyPagesAreStreamedAndThisRunsMembersMarked) {
  std::vector<std::string> ids;
  for (int i = 0; i < 30000; ++i) ids.push_back("p" + std::to_string(i));
  std::shuffle(ids.begin(), ids.end(), std::mt19937(7));
  Deliver(ids, "run-1");
  std::sort(ids.begin(), ids.end());
  DeliveredStream stream(*store_, "exp-1", "seg-1", "run-1");
  DeliveredBundle bundle;
  std::vector<std::string> seen;
  // Bounds that fall between members and on them.
  for (size_t at = 999; at < ids.size(); at += 7001) {
    ASSERT_TRUE(stream.TakeThrough(ids[at], bundle).ok());
    ASSERT_FALSE(bundle.empty());
    EXPECT_EQ(bundle.id(bundle.size() - 1), ids[at]);
    for (size_t i = 0; i < bundle.size(); ++i) {
      EXPECT_TRUE(bundle.entry(i).this_run);
      seen.emplace_back(bundle.id(i));
    }
  }
  ASSERT_TRUE(stream.TakeThrough(std::nullopt, bundle).ok());
  for (size_t i = 0; i < bundle.size(); ++i) seen.emplace_back(bundle.id(i));
  EXPECT_EQ(seen, ids);
}

TEST_F(DeliveredStreamTest, StoppingEarlyEndsTheReader) {
  std::vector<std::string> ids;
  for (int i = 0; i < 50000; ++i) ids.push_back("p" + std::to_string(i));
  Deliver(ids, "run-1");
  DeliveredBundle bundle;
  {
    DeliveredStream stream(*store_, "exp-1", "seg-1", "run-2");
    ASSERT_TRUE(stream.TakeThrough("p1", bundle).ok());
  }  // Destroyed with most pages unread: must not hang.
  EXPECT_THAT(Ids(bundle), ElementsAre("p0", "p1"));
}

// A chunk of rows with these ids.
std::string Chunk(const std::vector<std::string>& ids) {
  v1::UploadMembersRequest::Chunk chunk;
  for (const auto& id : ids) {
    auto* row = chunk.add_rows();
    row->set_profile_id(id);
    row->add_values()->set_string_value(id + "@example.com");
  }
  return chunk.SerializeAsString();
}

TEST(LastProfileIdTest, ChecksTheOrderWithinAndAcrossChunks) {
  v1::Segment segment;
  segment.set_name("VIP");
  auto last = LastProfileId(segment, Chunk({"a", "b", "c"}), "");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, "c");
  EXPECT_EQ(*LastProfileId(segment, Chunk({}), "c"), "");
  auto inside = LastProfileId(segment, Chunk({"a", "c", "b"}), "");
  EXPECT_EQ(inside.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(inside.status().message(), HasSubstr("segment 'VIP'"));
  EXPECT_THAT(inside.status().message(), HasSubstr("'b' after 'c'"));
  auto across = LastProfileId(segment, Chunk({"b", "d"}), "c");
  EXPECT_EQ(across.status().code(), absl::StatusCode::kDataLoss);
  auto repeated = LastProfileId(segment, Chunk({"d"}), "d");
  EXPECT_EQ(repeated.status().code(), absl::StatusCode::kDataLoss) << "ids are unique";
}

std::vector<std::string> ChunkIds(SnapshotSource& source) {
  std::vector<std::string> ids;
  absl::Status read = source.ForEachChunk([&](absl::string_view bytes) {
    v1::UploadMembersRequest::Chunk chunk;
    EXPECT_TRUE(chunk.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
    for (const auto& row : chunk.rows()) ids.push_back(row.profile_id());
    return absl::OkStatus();
  });
  EXPECT_TRUE(read.ok()) << read;
  return ids;
}

// A snapshot an older exportd stored in upload order is sorted for the run,
// and the sorted copy can be read once per pass.
TEST(SnapshotSourceTest, ASnapshotStoredInUploadOrderIsSortedForTheRun) {
  sdk::testing::TempDir dir;
  const std::string path = (dir.path() / "old.db").string();
  v1::Segment segment;
  segment.set_id("seg-1");
  segment.set_name("vip");
  segment.set_snapshot_version(1);
  segment.set_member_count(5);
  {
    auto old = store::SqliteStore::OpenAtSchemaForTesting(path, 7);
    ASSERT_TRUE(old.ok()) << old.status();
    ASSERT_TRUE((*old)->CreateSegment(segment).ok());
  }
  {
    auto db = store::Database::Open(path, false);
    ASSERT_TRUE(db.ok());
    for (int seq = 0; seq < 2; ++seq) {
      auto insert = (*db)->Prepare(
          "INSERT INTO segment_chunks (segment_id, version, seq, data) VALUES ('seg-1', 1, ?, ?)");
      ASSERT_TRUE(insert.ok());
      std::string chunk = seq == 0 ? Chunk({"d", "b", "e"}) : Chunk({"a", "c"});
      ASSERT_TRUE(insert->Bind(1, std::int64_t{seq}).BindBlob(2, chunk).Run().ok());
    }
  }
  auto store = store::SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  sdk::testing::TestRunContext ctx;
  auto source = SnapshotSource::Open(**store, segment, ctx);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_TRUE((*source)->sorted_for_this_run());
  EXPECT_THAT(ChunkIds(**source), ElementsAre("a", "b", "c", "d", "e"));
  EXPECT_THAT(ChunkIds(**source), ElementsAre("a", "b", "c", "d", "e")) << "a second pass";
}

}  // namespace
}  // namespace exportd::sync
