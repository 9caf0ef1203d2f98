#include "server/store/sqlite_store.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

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
  StoredConnection Connection(std::string id, std::string name) {
    StoredConnection c;
    c.connection.set_id(std::move(id));
    c.connection.set_display_name(std::move(name));
    c.connection.set_destination_type("iterable");
    c.sealed_secrets = "sealed";
    return c;
  }
  v1::Export Export(std::string id, std::string name, std::string connection_id,
                    std::string segment_id) {
    v1::Export e;
    e.set_id(std::move(id));
    e.set_name(std::move(name));
    e.set_connection_id(std::move(connection_id));
    e.add_segments(std::move(segment_id));
    e.set_active(true);
    return e;
  }
  void CreateSegment(const std::string& id, const std::string& name) {
    v1::Segment segment;
    segment.set_id(id);
    segment.set_name(name);
    ASSERT_TRUE(store_->CreateSegment(segment).ok());
  }
  v1::UploadMembersRequest::Chunk Chunk(std::vector<std::string> ids) {
    v1::UploadMembersRequest::Chunk chunk;
    for (auto& id : ids) chunk.add_rows()->set_profile_id(id);
    return chunk;
  }
  std::vector<std::string> Members(const std::string& segment, std::int64_t version) {
    std::vector<std::string> ids;
    EXPECT_TRUE(store_
                    ->ForEachChunk(segment, version,
                                   [&](const v1::UploadMembersRequest::Chunk& c) {
                                     for (const auto& r : c.rows()) ids.push_back(r.profile_id());
                                     return absl::OkStatus();
                                   })
                    .ok());
    return ids;
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

TEST_F(SqliteStoreTest, DatabaseWalAndShmFilesAreCreated0600WhateverTheUmask) {
  const std::string path = dir_ + "/private.db";
  const mode_t old_mask = ::umask(0);
  auto store = SqliteStore::Open(path);
  ::umask(old_mask);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateConnection(Connection("c1", "conn")).ok());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st;
    ASSERT_EQ(::stat((path + suffix).c_str(), &st), 0) << path << suffix << " does not exist";
    EXPECT_EQ(st.st_mode & 0777, 0600) << path << suffix;
  }
}

}  // namespace
}  // namespace exportd::store
