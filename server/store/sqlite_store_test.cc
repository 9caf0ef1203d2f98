// What only the SQLite store does: file modes, its own schema check. The
// tests of the Store interface are the conformance suite (store_test.cc).
#include "server/store/sqlite_store.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::store {
namespace {

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
  ASSERT_TRUE((*store)->PutMeta("written", "so that the WAL exists").ok());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st;
    ASSERT_EQ(::stat((path + suffix).c_str(), &st), 0) << path << suffix << " does not exist";
    EXPECT_EQ(st.st_mode & 0777, 0600) << path << suffix;
  }
}

}  // namespace
}  // namespace exportd::store
