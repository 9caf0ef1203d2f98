// What a Server keeps on disk, through real start-ups on 127.0.0.1 port 0:
// the data directory and its files are private, one exportd at a time uses
// a data directory, a master key other than the store's is refused at
// start-up, and sealed secrets only open in their own connection's row.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "exportd/sdk/testing/temp_dir.h"
#include "exportd/v1/connection.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/master_key.h"
#include "server/app/server.h"
#include "server/crypto/secret_map.h"
#include "server/destinations/test_util.h"
#include "server/store/sqlite_store.h"
#include "tests/fakes/fake_destination.h"

namespace exportd::api {

using ::exportd::app::Server;
using ::exportd::app::ServerOptions;
namespace {

using ::exportd::destinations::testing::StatusIs;
using ::exportd::sdk::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// The fake destination's secret, and the same map sealed by exportd before
// secrets were bound to their connection (format 1) under kTestKeyHex.
constexpr char kToken[] = "s3cr3t-value-xyz";
constexpr char kUnboundMap[] =
    "019ab21569ee0e5a535850f64e552049a7b1a3f996d35c4c7512db4cd787d442bce490380d89b8f4fa320b5fa4"
    "20240095330643811ce5099e29";
const std::string kTestKeyHex = absl::BytesToHexString(std::string(32, 'k'));

mode_t ModeOf(const std::filesystem::path& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path << " does not exist";
  return st.st_mode & 07777;
}

// Writes a key file as exportd would: 64 hex characters, mode 0600.
void WriteKeyFile(const std::string& path, const std::string& hex) {
  std::ofstream(path) << hex << "\n";
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
}

class ServerFilesTest : public ::testing::Test {
 protected:
  ServerFilesTest() : data_dir_((tmp_.path() / "data").string()) {}

  absl::StatusOr<std::unique_ptr<Server>> Start(const std::string& master_key_file = "") {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = data_dir_;
    options.master_key_file = master_key_file;
    options.extra_destinations.push_back(testing::MakeFakeDestination(state_));
    return Server::Start(std::move(options));
  }

  // A stub for `server` and the admin token it created.
  void Connect(const Server& server) {
    std::ifstream(server.admin_token_path()) >> token_;
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                   grpc::InsecureChannelCredentials());
    connections_ = v1::ConnectionService::NewStub(channel_);
  }
  std::unique_ptr<grpc::ClientContext> Admin() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + token_);
    return ctx;
  }
  v1::Connection CreateConnection(const std::string& name) {
    v1::CreateConnectionRequest req;
    req.set_display_name(name);
    req.set_destination_type("fake");
    (*req.mutable_secrets())["token"] = kToken;
    req.set_accept_privacy_terms(true);
    v1::Connection c;
    grpc::Status status = connections_->CreateConnection(Admin().get(), req, &c);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return c;
  }
  grpc::Status TestConnection(const std::string& name) {
    v1::TestConnectionRequest req;
    req.set_connection(name);
    v1::TestConnectionResponse resp;
    return connections_->TestConnection(Admin().get(), req, &resp);
  }
  std::string LastToken() {
    absl::MutexLock lock(&state_->mu);
    return state_->last_settings["token"];
  }
  // The store, opened directly while no server runs.
  std::unique_ptr<store::SqliteStore> OpenStore() {
    auto store = store::SqliteStore::Open(data_dir_ + "/exportd.db");
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  void SetSealedSecrets(const std::string& connection, const std::string& sealed) {
    auto store = OpenStore();
    auto stored = store->GetConnection(connection);
    ASSERT_TRUE(stored.ok()) << stored.status();
    stored->sealed_secrets = sealed;
    ASSERT_TRUE(store->UpdateConnection(*stored).ok());
  }

  TempDir tmp_;
  const std::string data_dir_;
  std::shared_ptr<testing::FakeState> state_ = std::make_shared<testing::FakeState>();
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ConnectionService::Stub> connections_;
};

TEST_F(ServerFilesTest, TheDataDirectoryAndTheStoreFilesArePrivateWhateverTheUmask) {
  const mode_t old_mask = ::umask(0);
  auto server = Start();
  ::umask(old_mask);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(ModeOf(data_dir_), 0700);
  for (const char* file :
       {"exportd.db", "exportd.db-wal", "exportd.db-shm", "exportd.lock", "master.key"}) {
    EXPECT_EQ(ModeOf(std::filesystem::path(data_dir_) / file), 0600) << file;
  }
}

TEST_F(ServerFilesTest, ADataDirectoryOpenToOthersIsUsedWithAWarningNamingIt) {
  ASSERT_EQ(::mkdir(data_dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(data_dir_.c_str(), 0755), 0);
  ::testing::internal::CaptureStderr();
  auto server = Start();
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT(err, HasSubstr("exportd: warning: data directory '" + data_dir_ +
                             "' is open to group or others (mode 0755)"));
  EXPECT_THAT(err, HasSubstr("run 'chmod 700 " + data_dir_ + "'"));
}

TEST_F(ServerFilesTest, ASecondServerOnTheSameDataDirectoryFailsAtStartUp) {
  auto first = Start();
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = Start();
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kFailedPrecondition,
                               absl::StrCat("data directory '", data_dir_,
                                            "' is in use by another exportd (pid ", ::getpid(),
                                            "); stop it or use another --data-dir")));
  // The first one is not disturbed, and the lock goes with it.
  Connect(**first);
  CreateConnection("conn");
  EXPECT_TRUE(TestConnection("conn").ok());
  first->reset();
  auto third = Start();
  EXPECT_TRUE(third.ok()) << third.status();
}

TEST_F(ServerFilesTest, AMasterKeyFileOthersCanReadIsRefused) {
  const std::string key = (tmp_.path() / "master.key").string();
  ASSERT_TRUE(Start(key).ok());  // Creates the key, 0600.
  ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
  EXPECT_THAT(Start(key), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   AllOf(HasSubstr("--master-key-file '" + key + "'"),
                                         HasSubstr("run 'chmod 600 " + key + "'"))));
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  EXPECT_TRUE(Start(key).ok());
}

TEST_F(ServerFilesTest, AMissingMasterKeyFileIsRefusedOnceTheStoreHasSecrets) {
  const std::string key = (tmp_.path() / "master.key").string();
  {
    auto server = Start(key);
    ASSERT_TRUE(server.ok()) << server.status();
    Connect(**server);
    CreateConnection("conn");
  }
  const std::string typo = (tmp_.path() / "master.kye").string();
  auto refused = Start(typo);
  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("master key file '" + typo + "' does not exist"),
                             HasSubstr("database '" + data_dir_ + "/exportd.db'"),
                             HasSubstr("it was last started with '" + key + "'"),
                             HasSubstr("pass the --master-key-file it was created with"))));
  EXPECT_FALSE(std::filesystem::exists(typo)) << "a new key was created";
  auto server = Start(key);
  ASSERT_TRUE(server.ok()) << server.status();
  Connect(**server);
  EXPECT_TRUE(TestConnection("conn").ok());
  EXPECT_EQ(LastToken(), kToken);
}

TEST_F(ServerFilesTest, AnotherMasterKeyIsRefusedEvenBeforeAnySecretIsStored) {
  ASSERT_TRUE(Start().ok());  // Creates data/master.key and records its check value.
  const std::string other = (tmp_.path() / "other.key").string();
  WriteKeyFile(other, std::string(64, 'a'));
  auto refused = Start(other);
  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("master key file '" + other + "' does not match database '" +
                                       data_dir_ + "/exportd.db'"),
                             HasSubstr("sealed with another master key"),
                             HasSubstr("pass the --master-key-file it was created with"))));
  // The message must not leak the key.
  EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr(std::string(64, 'a'))));
  EXPECT_TRUE(Start().ok());
}

TEST_F(ServerFilesTest, AStoreFromBeforeCheckValuesGetsOneOnlyWhenItsSecretsOpen) {
  {
    auto server = Start();
    ASSERT_TRUE(server.ok()) << server.status();
    Connect(**server);
    CreateConnection("conn");
  }
  {
    // As an older exportd left it: no meta values.
    auto db = store::Database::Open(data_dir_ + "/exportd.db", /*read_only=*/false);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("DELETE FROM meta").ok());
  }
  const std::string other = (tmp_.path() / "other.key").string();
  WriteKeyFile(other, std::string(64, 'a'));
  EXPECT_THAT(Start(other), StatusIs(absl::StatusCode::kFailedPrecondition,
                                     AllOf(HasSubstr("master key file '" + other +
                                                     "' does not open the secrets of "
                                                     "connection 'conn'"),
                                           HasSubstr("sealed with another master key"))));
  EXPECT_THAT(OpenStore()->GetMeta(kMasterKeyCheckMeta),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(kMasterKeyCheckMeta)));
  ASSERT_TRUE(Start().ok());
  auto check = OpenStore()->GetMeta(kMasterKeyCheckMeta);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_THAT(*check, ::testing::StartsWith("hmac-sha256:"));
  EXPECT_THAT(Start(other), StatusIs(absl::StatusCode::kFailedPrecondition,
                                     HasSubstr("does not match database")));
}

// The recovery docs/install.md gives for a lost master key.
TEST_F(ServerFilesTest, ALostKeyIsReplacedByForgettingTheSecretsAndEnteringThemAgain) {
  {
    auto server = Start();
    ASSERT_TRUE(server.ok()) << server.status();
    Connect(**server);
    CreateConnection("conn");
  }
  ASSERT_TRUE(std::filesystem::remove(data_dir_ + "/master.key"));
  EXPECT_THAT(Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("does not exist")));
  {
    auto db = store::Database::Open(data_dir_ + "/exportd.db", /*read_only=*/false);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec("UPDATE connections SET secrets = X''; "
                           "DELETE FROM meta WHERE key LIKE 'master_key_%';")
                    .ok());
  }
  auto server = Start();
  ASSERT_TRUE(server.ok()) << server.status();
  Connect(**server);
  v1::UpdateConnectionRequest update;
  update.set_connection("conn");
  (*update.mutable_secrets())["token"] = "entered-again";
  v1::Connection updated;
  grpc::Status status = connections_->UpdateConnection(Admin().get(), update, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(TestConnection("conn").ok());
  EXPECT_EQ(LastToken(), "entered-again");
}

TEST_F(ServerFilesTest, SecretsCopiedToAnotherConnectionDoNotOpen) {
  std::string sealed_a;
  {
    auto server = Start();
    ASSERT_TRUE(server.ok()) << server.status();
    Connect(**server);
    CreateConnection("A");
    CreateConnection("B");
  }
  SetSealedSecrets("B", OpenStore()->GetConnection("A")->sealed_secrets);
  auto server = Start();
  ASSERT_TRUE(server.ok()) << server.status();
  Connect(**server);
  grpc::Status status = TestConnection("B");
  EXPECT_EQ(status.error_code(), grpc::DATA_LOSS);
  EXPECT_THAT(status.error_message(), HasSubstr("connection 'B'"));
  EXPECT_THAT(status.error_message(), HasSubstr("do not open"));
  EXPECT_TRUE(TestConnection("A").ok());
}

TEST_F(ServerFilesTest, SecretsSealedBeforeBindingStillOpenAndAreBoundOnTheNextSave) {
  ASSERT_EQ(::mkdir(data_dir_.c_str(), 0700), 0);
  WriteKeyFile(data_dir_ + "/master.key", kTestKeyHex);
  v1::Connection c;
  {
    auto server = Start();
    ASSERT_TRUE(server.ok()) << server.status();
    Connect(**server);
    c = CreateConnection("conn");
  }
  SetSealedSecrets("conn", absl::HexStringToBytes(kUnboundMap));
  {
    auto server = Start();
    ASSERT_TRUE(server.ok()) << server.status();
    Connect(**server);
    ASSERT_TRUE(TestConnection("conn").ok());
    EXPECT_EQ(LastToken(), kToken);
    v1::UpdateConnectionRequest update;
    update.set_connection("conn");
    update.set_shared_with_contributors(true);
    v1::Connection updated;
    ASSERT_TRUE(connections_->UpdateConnection(Admin().get(), update, &updated).ok());
  }
  const std::string sealed = OpenStore()->GetConnection("conn")->sealed_secrets;
  EXPECT_EQ(crypto::SecretBox::Format(sealed), crypto::SecretBox::kBoundFormat);
  auto box = *crypto::SecretBox::FromKey(std::string(32, 'k'));
  EXPECT_EQ(*crypto::OpenMap(*box, c.id(), sealed), (crypto::SecretMap{{"token", kToken}}));
}

}  // namespace
}  // namespace exportd::api
