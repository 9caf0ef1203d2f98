// Servers on a PostgreSQL store (--store): several replicas share one
// database and need not lock a data directory; a replica with another master
// key refuses to start; no password shows in what a Server says.
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "exportd/sdk/testing/temp_dir.h"
#include "exportd/v1/connection.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/app/server.h"
#include "server/destinations/test_util.h"
#include "tests/fakes/fake_destination.h"
#include "tests/support/postgres_server.h"

namespace exportd::api {
namespace {

using ::exportd::app::Server;
using ::exportd::app::ServerOptions;
using ::exportd::destinations::testing::StatusIs;
using ::exportd::sdk::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class ServerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = exportd::testing::PostgresServer::Shared();
    ASSERT_TRUE(server.ok()) << server.status();
    auto conninfo = (*server)->CreateDatabase();
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    conninfo_ = *conninfo;
    port_ = (*server)->port();
  }
  absl::StatusOr<std::unique_ptr<Server>> Start(const std::string& data_dir,
                                                const std::string& store,
                                                const std::string& key_file = "") {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = data_dir;
    options.store = store;
    options.master_key_file = key_file;
    options.extra_destinations.push_back(testing::MakeFakeDestination(state_));
    return Server::Start(std::move(options));
  }
  std::string Token(const Server& server) {
    std::string token;
    std::ifstream(server.admin_token_path()) >> token;
    return token;
  }
  grpc::Status CreateConnection(const Server& server, const std::string& token,
                                const std::string& name) {
    auto stub = v1::ConnectionService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server.port()), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    v1::CreateConnectionRequest req;
    req.set_display_name(name);
    req.set_destination_type("fake");
    (*req.mutable_secrets())["token"] = "s3cr3t-value-xyz";
    req.set_accept_privacy_terms(true);
    v1::Connection c;
    return stub->CreateConnection(&ctx, req, &c);
  }
  grpc::Status GetConnection(const Server& server, const std::string& token,
                             const std::string& name) {
    auto stub = v1::ConnectionService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server.port()), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    v1::GetConnectionRequest req;
    req.set_connection(name);
    v1::Connection c;
    return stub->GetConnection(&ctx, req, &c);
  }

  TempDir tmp_;
  std::string conninfo_;
  int port_ = 0;
  std::shared_ptr<testing::FakeState> state_ =
      std::make_shared<testing::FakeState>();
};

TEST_F(ServerStoreTest, ReplicasShareOneDatabaseAndTheDataDirectoryIsNotLocked) {
  const std::string data = (tmp_.path() / "data").string();
  auto a = Start(data, conninfo_);
  ASSERT_TRUE(a.ok()) << a.status();
  // The same data directory (key, admin token) and store: a second replica.
  auto b = Start(data, conninfo_);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT((*b)->Describe(),
              AllOf(HasSubstr("store: PostgreSQL database 't"),
                    HasSubstr(absl::StrCat("' on 127.0.0.1:", port_, " as user 'exportd'"))));
  const std::string token = Token(**a);
  ASSERT_TRUE(CreateConnection(**a, token, "shared").ok());
  EXPECT_TRUE(GetConnection(**b, token, "shared").ok()) << "B reads what A wrote";
  // SQLite keeps its lock.
  const std::string sqlite = (tmp_.path() / "sqlite").string();
  auto c = Start(sqlite, "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT((*c)->Describe(), HasSubstr("store: SQLite database " + sqlite + "/exportd.db"));
  EXPECT_EQ(Start(sqlite, "sqlite:" + sqlite + "/exportd.db").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ServerStoreTest, AReplicaWithAnotherMasterKeyRefusesToStart) {
  auto a = Start((tmp_.path() / "a").string(), conninfo_);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(CreateConnection(**a, Token(**a), "sealed").ok());
  // Replica B on another machine, given a key of its own by mistake.
  auto b = Start((tmp_.path() / "b").string(), conninfo_);
  EXPECT_THAT(b, StatusIs(absl::StatusCode::kFailedPrecondition,
                          AllOf(HasSubstr("does not exist, but database '"),
                                HasSubstr(absl::StrCat(" on 127.0.0.1:", port_)),
                                HasSubstr("pass the --master-key-file it was created with"))));
  const std::string other = (tmp_.path() / "other.key").string();
  std::ofstream(other) << std::string(64, 'a') << "\n";
  ASSERT_EQ(::chmod(other.c_str(), 0600), 0);
  auto c = Start((tmp_.path() / "c").string(), conninfo_, other);
  EXPECT_THAT(c, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("sealed with another master key")));
  // The shared key file works.
  auto d = Start((tmp_.path() / "d").string(), conninfo_,
                 (tmp_.path() / "a" / "master.key").string());
  EXPECT_TRUE(d.ok()) << d.status();
}

TEST_F(ServerStoreTest, NoPasswordShowsInErrorsOrTheStartUpSummary) {
  const std::string data = (tmp_.path() / "data").string();
  auto refused =
      Start(data, absl::StrCat("postgresql://exportd:Pa55-in-url@127.0.0.1:", port_, "/x"));
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument,
                                AllOf(HasSubstr("carries a password"), HasSubstr("PGPASSWORD"),
                                      Not(HasSubstr("Pa55-in-url")))));
  auto garbled = Start(data, "postgresql://exportd:Pa55-in-url@[bad");
  EXPECT_THAT(garbled, StatusIs(absl::StatusCode::kInvalidArgument, Not(HasSubstr("Pa55"))));
  // From the environment, as libpq reads it (the test server trusts loopback).
  ::setenv("PGPASSWORD", "Pa55-from-env", 1);
  auto started = Start(data, conninfo_);
  ::unsetenv("PGPASSWORD");
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_THAT((*started)->Describe(), Not(HasSubstr("Pa55")));
}

}  // namespace
}  // namespace exportd::api
