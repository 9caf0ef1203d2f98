// What only the SQLite store does: file modes, its own schema check. The
// tests of the Store interface are the conformance suite (store_test.cc).
#include "server/store/sqlite_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = std::filesystem::temp_directory_path() / "store_testXXXXXX";
    dir_ = mkdtemp(dir.data());
    path_ = dir_ + "/exportd.db";
    Reopen();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Reopen() {
    store_.reset();
    auto store = SqliteStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  std::string dir_, path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteStoreTest, ANewerSchemaIsRefused) {
  store_.reset();
  {
    auto db = Database::Open(path_, false);
    ASSERT_TRUE((*db)->Exec("UPDATE schema_version SET version = 999").ok());
  }
  auto store = SqliteStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 999"));
}

// Snapshots stored before schema 8 are in upload order; the migration
// records them, so that readers that need profile-id order know to sort.
TEST_F(SqliteStoreTest, ASnapshotStoredBeforeSchema8IsReportedAsNotInMemberOrder) {
  store_.reset();
  const std::string path = dir_ + "/old.db";
  {
    auto old = SqliteStore::OpenAtSchemaForTesting(path, 7);
    ASSERT_TRUE(old.ok()) << old.status();
    v1::Segment segment;
    segment.set_id("seg-1");
    segment.set_name("vip");
    segment.set_snapshot_version(1);
    segment.set_member_count(2);
    ASSERT_TRUE((*old)->CreateSegment(segment).ok());
  }
  {
    // As an exportd of schema 7 stored it: the chunk as uploaded.
    auto db = Database::Open(path, false);
    ASSERT_TRUE(db.ok());
    v1::UploadMembersRequest::Chunk chunk;
    chunk.add_rows()->set_profile_id("b");
    chunk.add_rows()->set_profile_id("a");
    auto insert = (*db)->Prepare(
        "INSERT INTO segment_chunks (segment_id, version, seq, data) VALUES ('seg-1', 1, 0, ?)");
    ASSERT_TRUE(insert.ok());
    ASSERT_TRUE(insert->BindBlob(1, chunk.SerializeAsString()).Run().ok());
  }
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto ordered = (*store)->SnapshotInMemberOrder("seg-1", 1);
  ASSERT_TRUE(ordered.ok()) << ordered.status();
  EXPECT_FALSE(*ordered);
  std::vector<std::string> ids;
  ASSERT_TRUE((*store)
                  ->ForEachChunk("seg-1", 1,
                                 [&](const v1::UploadMembersRequest::Chunk& c) {
                                   for (const auto& r : c.rows()) ids.push_back(r.profile_id());
                                   return absl::OkStatus();
                                 })
                  .ok());
  EXPECT_THAT(ids, ElementsAre("b", "a"));

  // A snapshot written now is sorted, and says so; the old one does not.
  for (int version = 2; version <= 3; ++version) {
    auto writer = (*store)->BeginSnapshot("seg-1", {});
    ASSERT_TRUE(writer.ok()) << writer.status();
    v1::UploadMembersRequest::Chunk chunk;
    chunk.add_rows()->set_profile_id("d");
    chunk.add_rows()->set_profile_id("c");
    ASSERT_TRUE((*writer)->Append(chunk).ok());
    auto committed = (*writer)->Commit();
    ASSERT_TRUE(committed.ok()) << committed.status();
    EXPECT_EQ(committed->snapshot_version(), version);
    EXPECT_TRUE(*(*store)->SnapshotInMemberOrder("seg-1", version));
    if (version == 2) {
      EXPECT_FALSE(*(*store)->SnapshotInMemberOrder("seg-1", 1));
    }
  }
  EXPECT_TRUE(*(*store)->SnapshotInMemberOrder("seg-1", 2));
}

// Schema 13 moves the snapshot chunks out of a WITHOUT ROWID table (a chunk
// was a B-tree key there, its megabyte copied into every divider cell it
// became): what was stored before is read back the same after the upgrade.
TEST_F(SqliteStoreTest, SnapshotsStoredBeforeSchema13AreKeptWhenTheirTableChanges) {
  store_.reset();
  const std::string path = dir_ + "/old.db";
  v1::UploadMembersRequest::Chunk chunk;
  for (int i = 0; i < 3; ++i) chunk.add_rows()->set_profile_id(absl::StrCat("p", i));
  {
    auto old = SqliteStore::OpenAtSchemaForTesting(path, 12);
    ASSERT_TRUE(old.ok()) << old.status();
    v1::Segment segment;
    segment.set_id("seg-1");
    segment.set_name("vip");
    ASSERT_TRUE((*old)->CreateSegment(segment).ok());
    for (int version = 1; version <= 2; ++version) {
      auto writer = (*old)->BeginSnapshot("seg-1", {});
      ASSERT_TRUE(writer.ok()) << writer.status();
      v1::UploadMembersRequest::Chunk more;
      more.add_rows()->set_profile_id(absl::StrCat("q", version));
      ASSERT_TRUE((*writer)->Append(chunk).ok());
      ASSERT_TRUE((*writer)->Append(more).ok());
      ASSERT_TRUE((*writer)->Commit().ok());
    }
  }
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int version = 1; version <= 2; ++version) {
    std::vector<std::string> ids;
    ASSERT_TRUE((*store)
                    ->ForEachChunk("seg-1", version,
                                   [&](const v1::UploadMembersRequest::Chunk& c) {
                                     for (const auto& r : c.rows()) ids.push_back(r.profile_id());
                                     return absl::OkStatus();
                                   })
                    .ok());
    EXPECT_THAT(ids, ElementsAre("p0", "p1", "p2", absl::StrCat("q", version)));
    EXPECT_TRUE(*(*store)->SnapshotInMemberOrder("seg-1", version));
  }
  store->reset();
  auto db = Database::Open(path, true);
  ASSERT_TRUE(db.ok());
  auto sql = (*db)->Prepare("SELECT sql FROM sqlite_master WHERE name = 'segment_chunks'");
  ASSERT_TRUE(sql.ok());
  ASSERT_TRUE(*sql->Step());
  EXPECT_THAT(std::string(sql->Text(0)), Not(HasSubstr("WITHOUT ROWID")));
}

// A snapshot is read a few chunks per read transaction (so that a long run
// does not keep SQLite from checkpointing what it commits): a snapshot of many
// chunks is read whole and in order, and one pruned between two slices (two
// newer uploads committed while a run read it) is refused with ABORTED, never
// read in part.
TEST_F(SqliteStoreTest, ASnapshotIsReadWholeAcrossSlicesOrRefusedWhenPrunedMeanwhile) {
  v1::Segment segment;
  segment.set_id("seg-1");
  segment.set_name("vip");
  ASSERT_TRUE(store_->CreateSegment(segment).ok());
  constexpr int kRows = 30;
  auto upload = [&](const std::string& prefix) {
    MemberSorterOptions sort;
    sort.chunk_bytes = 16;  // A chunk per two rows.
    auto writer = store_->BeginSnapshot("seg-1", {}, sort);
    ASSERT_TRUE(writer.ok()) << writer.status();
    v1::UploadMembersRequest::Chunk chunk;
    for (int i = kRows - 1; i >= 0; --i) {
      chunk.add_rows()->set_profile_id(prefix + (i < 10 ? "0" : "") + std::to_string(i));
    }
    ASSERT_TRUE((*writer)->Append(chunk).ok());
    auto committed = (*writer)->Commit();
    ASSERT_TRUE(committed.ok()) << committed.status();
  };
  upload("a");
  std::vector<std::string> ids;
  int chunks = 0;
  ASSERT_TRUE(store_
                  ->ForEachChunk("seg-1", 1,
                                 [&](const v1::UploadMembersRequest::Chunk& c) {
                                   ++chunks;
                                   for (const auto& r : c.rows()) ids.push_back(r.profile_id());
                                   return absl::OkStatus();
                                 })
                  .ok());
  EXPECT_GT(chunks, 8);  // Several slices of 4 chunks.
  ASSERT_EQ(ids.size(), static_cast<size_t>(kRows));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(ids.front(), "a00");
  EXPECT_EQ(ids.back(), "a29");

  chunks = 0;
  absl::Status read = store_->ForEachChunkBytes("seg-1", 1, [&](absl::string_view) {
    if (++chunks == 1) {
      upload("b");  // Version 2: version 1 stays, for runs reading it.
      upload("c");  // Version 3: version 1 goes.
    }
    return absl::OkStatus();
  });
  EXPECT_EQ(read.code(), absl::StatusCode::kAborted) << read;
  EXPECT_THAT(read.message(),
              HasSubstr("snapshot version 1 of segment 'seg-1' was replaced by two newer uploads"));
  EXPECT_LT(chunks, kRows);
}

TEST_F(SqliteStoreTest, DatabaseWalAndShmFilesAreCreated0600WhateverTheUmask) {
  const std::string path = dir_ + "/private.db";
  const mode_t old_mask = ::umask(0);
  auto store = SqliteStore::Open(path);
  ::umask(old_mask);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->PutMeta("written", "so that the WAL exists").ok());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st;
    ASSERT_EQ(::stat((path + suffix).c_str(), &st), 0) << path << suffix << " does not exist";
    EXPECT_EQ(st.st_mode & 0777, 0600) << path << suffix;
  }
}

}  // namespace
}  // namespace exportd::store
