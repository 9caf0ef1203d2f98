// What only the PostgreSQL store does: several replicas on one database
// (migrations once, claims never doubled, uploads seen by every replica), a
// schema newer than the replica's, and connection strings with passwords.
#include "server/store/postgres_store.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/store_test_fixture.h"

namespace exportd::store {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class PostgresStoreTest : public StoreTest {};

TEST_P(PostgresStoreTest, ReplicasStartingTogetherMigrateOnce) {
  // A fresh database for the race (the fixture's is migrated already).
  auto server = testing::PostgresServer::Shared();
  ASSERT_TRUE(server.ok()) << server.status();
  auto conninfo = (*server)->CreateDatabase();
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();
  std::vector<std::thread> replicas;
  std::atomic<int> opened{0};
  for (int i = 0; i < 4; ++i) {
    replicas.emplace_back([&] {
      auto store = PostgresStore::Open(*conninfo);
      EXPECT_TRUE(store.ok()) << store.status();
      if (store.ok()) ++opened;
    });
  }
  for (auto& t : replicas) t.join();
  EXPECT_EQ(opened.load(), 4);
  auto store = PostgresStore::Open(*conninfo);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->PutMeta("k", "v").ok());
}

TEST_P(PostgresStoreTest, AReplicaOlderThanTheDatabaseSchemaRefusesToStart) {
  auto conn = PgConnection::Open(conninfo_, "test");
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE((*conn)->Exec("UPDATE exportd_schema SET version = 999").ok());
  auto store = PostgresStore::Open(conninfo_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("has schema version 999, newer than this exportd's"));
  EXPECT_THAT(store.status().message(), HasSubstr("upgrade this replica"));
}

TEST_P(PostgresStoreTest, AConnectionStringWithAPasswordIsRefusedWithoutShowingIt) {
  for (const std::string conninfo :
       {std::string("postgresql://exportd:Sw0rdfish-9@127.0.0.1:1/exportd"),
        std::string("host=127.0.0.1 port=1 dbname=exportd password=Sw0rdfish-9")}) {
    auto store = PostgresStore::Open(conninfo);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument) << conninfo;
    EXPECT_THAT(store.status().message(), HasSubstr("PGPASSWORD"));
    EXPECT_THAT(store.status().message(), Not(HasSubstr("Sw0rdfish")));
  }
  // A password from PGPASSWORD that the server refuses is not shown either.
  ::setenv("PGPASSWORD", "Sw0rdfish-9", 1);
  auto refused = PostgresStore::Open("host=127.0.0.1 port=1 dbname=exportd connect_timeout=2");
  ::unsetenv("PGPASSWORD");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.status().message(), HasSubstr("cannot connect to PostgreSQL database 'exportd' on 127.0.0.1:1"));
  EXPECT_THAT(refused.status().message(), Not(HasSubstr("Sw0rdfish")));
}

TEST_P(PostgresStoreTest, ReplicasClaimingAtOnceNeverTakeOneRunTwiceNorTwoRunsOfOneExport) {
  constexpr int kExports = 12;
  for (int i = 0; i < kExports * 2; ++i) {
    v1::Run run;
    run.set_id("run-" + std::to_string(i));
    run.set_export_id("exp-" + std::to_string(i % kExports));
    run.set_state(v1::RUN_STATE_QUEUED);
    ASSERT_TRUE(store_->CreateRun(run).ok());
  }
  std::vector<std::unique_ptr<Store>> replicas;
  for (int i = 0; i < 3; ++i) {
    auto store = OpenAnother();
    ASSERT_TRUE(store.ok()) << store.status();
    replicas.push_back(std::move(*store));
  }
  absl::Mutex mu;
  std::vector<std::string> runs, exports;
  std::vector<std::thread> threads;
  const std::int64_t now = absl::ToUnixMicros(absl::Now());
  for (int i = 0; i < 3; ++i) {
    for (int worker = 0; worker < 3; ++worker) {
      threads.emplace_back([&, i] {
        while (true) {
          auto claimed = replicas[i]->ClaimNextRun({"replica-" + std::to_string(i), now,
                                                    absl::Seconds(60)});
          ASSERT_TRUE(claimed.ok()) << claimed.status();
          if (!claimed->has_value()) return;
          absl::MutexLock lock(&mu);
          runs.push_back((*claimed)->run.id());
          exports.push_back((*claimed)->run.export_id());
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  // Every export once (its second run waits for the first), no run twice.
  EXPECT_EQ(runs.size(), static_cast<size_t>(kExports));
  EXPECT_EQ(std::set<std::string>(runs.begin(), runs.end()).size(), runs.size());
  EXPECT_EQ(std::set<std::string>(exports.begin(), exports.end()).size(), exports.size());
}

TEST_P(PostgresStoreTest, AnUploadThroughOneReplicaIsSeenByTheOthersAndEndsWithItsConnection) {
  v1::Segment segment;
  segment.set_id("seg-1");
  segment.set_name("vip");
  ASSERT_TRUE(store_->CreateSegment(segment).ok());
  auto other = OpenAnother();
  ASSERT_TRUE(other.ok()) << other.status();
  {
    auto upload = store_->BeginSnapshot("seg-1", {});
    ASSERT_TRUE(upload.ok()) << upload.status();
    EXPECT_TRUE((*other)->GetSegment("vip")->upload_in_progress());
    EXPECT_TRUE((*other)->ListSegments()->at(0).upload_in_progress());
    auto second = (*other)->BeginSnapshot("seg-1", {});
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(second.status().message(), HasSubstr("already being uploaded"));
    v1::UploadMembersRequest::Chunk chunk;
    chunk.add_rows()->set_profile_id("p1");
    ASSERT_TRUE((*upload)->Append(chunk).ok());
    auto committed = (*upload)->Commit();
    ASSERT_TRUE(committed.ok()) << committed.status();
  }
  auto seen = (*other)->GetSegment("vip");
  ASSERT_TRUE(seen.ok());
  EXPECT_FALSE(seen->upload_in_progress());
  EXPECT_EQ(seen->snapshot_version(), 1);
  EXPECT_EQ(seen->member_count(), 1);
}

TEST_P(PostgresStoreTest, ReplicasOnAConnectionCountTheirSharesUntilTheyEndOrExpire) {
  auto other = OpenAnother();
  ASSERT_TRUE(other.ok()) << other.status();
  constexpr std::int64_t kNow = 1'000'000'000;
  EXPECT_EQ(*store_->ShareConnection("conn-1", "a", kNow, kNow + 1000), 1);
  EXPECT_EQ(*(*other)->ShareConnection("conn-1", "b", kNow, kNow + 1000), 2);
  EXPECT_EQ(*(*other)->ShareConnection("conn-2", "b", kNow, kNow + 1000), 1);
  EXPECT_EQ(*store_->ShareConnection("conn-1", "a", kNow + 10, kNow + 1000), 2) << "renewed";
  ASSERT_TRUE((*other)->EndConnectionShare("conn-1", "b").ok());
  EXPECT_EQ(*store_->ShareConnection("conn-1", "a", kNow + 20, kNow + 1000), 1);
  // b dies without ending its share: it stops counting at its expiry.
  EXPECT_EQ(*(*other)->ShareConnection("conn-1", "b", kNow + 30, kNow + 500), 2);
  EXPECT_EQ(*store_->ShareConnection("conn-1", "a", kNow + 501, kNow + 1500), 1);
}

INSTANTIATE_TEST_SUITE_P(Stores, PostgresStoreTest, ::testing::Values(std::string("postgres")),
                         StoreName());

}  // namespace
}  // namespace exportd::store
