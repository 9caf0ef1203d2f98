// The store conformance suite's fixture: every test of the Store interface
// runs against each store ("sqlite" and "postgres", the test's parameter).
// PostgreSQL is the suite's own server (tests/support/postgres_server.h), one
// fresh database per test.
//
//   class RunQueueTest : public StoreTest {};
//   TEST_P(RunQueueTest, Something) { ASSERT_TRUE(store_->CreateRun(run).ok()); }
//   INSTANTIATE_TEST_SUITE_P(Stores, RunQueueTest, EveryStore(), StoreName());
#ifndef EXPORTD_SERVER_STORE_STORE_TEST_FIXTURE_H_
#define EXPORTD_SERVER_STORE_STORE_TEST_FIXTURE_H_

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "server/store/postgres_store.h"
#include "server/store/sqlite_store.h"
#include "tests/support/postgres_server.h"

namespace exportd::store {

inline ::testing::internal::ParamGenerator<std::string> EveryStore() {
  return ::testing::Values(std::string("sqlite"), std::string("postgres"));
}
inline auto StoreName() {
  return [](const ::testing::TestParamInfo<std::string>& info) { return info.param; };
}

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string dir = std::filesystem::temp_directory_path() / "store_testXXXXXX";
    dir_ = mkdtemp(dir.data());
    if (postgres()) {
      auto server = testing::PostgresServer::Shared();
      ASSERT_TRUE(server.ok()) << server.status();
      auto conninfo = (*server)->CreateDatabase();
      ASSERT_TRUE(conninfo.ok()) << conninfo.status();
      conninfo_ = *conninfo;
    }
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  bool postgres() const { return GetParam() == "postgres"; }

  // Another Store on the same data (another replica, or after a restart).
  absl::StatusOr<std::unique_ptr<Store>> OpenAnother() {
    if (postgres()) {
      auto store = PostgresStore::Open(conninfo_);
      if (!store.ok()) return store.status();
      return std::unique_ptr<Store>(std::move(*store));
    }
    auto store = SqliteStore::Open(dir_ + "/exportd.db");
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(std::move(*store));
  }
  void Reopen() {
    store_.reset();
    auto store = OpenAnother();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  std::string dir_;
  std::string conninfo_;  // postgres only
  std::unique_ptr<Store> store_;
};

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_STORE_TEST_FIXTURE_H_
