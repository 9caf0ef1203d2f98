// TLS and mutual TLS on the listener, through real gRPC on 127.0.0.1 port 0,
// with certificates made by openssl in a temporary directory.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include "exportd/sdk/testing/temp_dir.h"
#include "exportd/v1/audit.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/app/server.h"
#include "server/api/tls_credentials.h"
#include "server/destinations/test_util.h"
#include "tests/support/test_certificates.h"

namespace exportd::api {

using ::exportd::app::Server;
using ::exportd::app::ServerOptions;
namespace {

using ::exportd::destinations::testing::StatusIs;
using ::exportd::testing::ClientCertificate;
using ::exportd::testing::IssuedCertificate;
using ::exportd::testing::ServerCertificate;
using ::exportd::testing::TestCa;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAdminToken[] = "tls-test-admin-token-0123456789abcdef";

// A client's view of the server: which CA it trusts, which certificate it shows.
struct ClientTls {
  std::string ca_pem;
  const IssuedCertificate* identity = nullptr;
};

std::shared_ptr<grpc::Channel> Channel(int port, const std::optional<ClientTls>& tls) {
  grpc::ChannelArguments args;
  // A connection of its own, not one shared with an earlier channel.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (tls.has_value()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = tls->ca_pem;
    if (tls->identity != nullptr) {
      ssl.pem_private_key = tls->identity->key_pem;
      ssl.pem_cert_chain = tls->identity->cert_pem;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), credentials, args);
}

// WhoAmI with `token` (none when empty), with a deadline so that nothing hangs.
grpc::Status WhoAmI(const std::shared_ptr<grpc::Channel>& channel, const std::string& token,
                    v1::WhoAmIResponse* response = nullptr) {
  v1::WhoAmIResponse ignored;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  return v1::AuditService::NewStub(channel)->WhoAmI(&context, v1::WhoAmIRequest(),
                                                    response != nullptr ? response : &ignored);
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = TestCa::Create(dir_.path(), "team");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_.emplace(*std::move(ca));
    auto server = ca_->Issue("server", ServerCertificate("/CN=exportd"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_cert_ = *std::move(server);
    tokens_file_ = (dir_.path() / "tokens").string();
    WriteFile(tokens_file_, std::string(kAdminToken) +
                                " alice admin\n"
                                "cert:san=spiffe://team/reporting reporting-svc contributor\n"
                                "cert:subject=CN=dashboards,O=Data dashboards viewer\n");
    ::chmod(tokens_file_.c_str(), 0600);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  ServerOptions Options() {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = (dir_.path() / "data").string();
    options.tokens_file = tokens_file_;
    options.tls_cert_file = server_cert_.cert_file;
    options.tls_key_file = server_cert_.key_file;
    return options;
  }
  void Start(ServerOptions options) {
    auto server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  std::string Path(const std::string& name) const { return (dir_.path() / name).string(); }

  sdk::testing::TempDir dir_;
  std::optional<TestCa> ca_;
  IssuedCertificate server_cert_;
  std::string tokens_file_;
  std::unique_ptr<Server> server_;
};

TEST_F(TlsTest, ClientThatTrustsTheCaIsServed) {
  Start(Options());
  v1::WhoAmIResponse me;
  grpc::Status status =
      WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem()}), kAdminToken, &me);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(me.principal(), "alice");
  EXPECT_THAT(server_->Describe(), HasSubstr("TLS: certificate " + server_cert_.cert_file));
}

TEST_F(TlsTest, PlaintextClientFailsCleanly) {
  Start(Options());
  const auto started = std::chrono::steady_clock::now();
  grpc::Status status = WhoAmI(Channel(server_->port(), std::nullopt), kAdminToken);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // Refused at the handshake, well before the call's deadline.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(9));
}

TEST_F(TlsTest, ClientThatTrustsAnotherCaRefusesTheServer) {
  Start(Options());
  auto other = TestCa::Create(dir_.path(), "other");
  ASSERT_TRUE(other.ok()) << other.status();
  grpc::Status status = WhoAmI(Channel(server_->port(), ClientTls{other->cert_pem()}), kAdminToken);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(TlsTest, MutualTlsServesAClientWithACertificateOfItsCa) {
  ServerOptions options = Options();
  options.tls_client_ca_file = ca_->cert_file();
  Start(std::move(options));
  auto client = ca_->Issue("client", ClientCertificate("/CN=reporting/O=Data"));
  ASSERT_TRUE(client.ok()) << client.status();
  v1::WhoAmIResponse me;
  grpc::Status status =
      WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem(), &*client}), kAdminToken, &me);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(me.principal(), "alice");
  EXPECT_THAT(server_->Describe(),
              HasSubstr("client certificates signed by " + ca_->cert_file() + " required"));
}

TEST_F(TlsTest, MutualTlsRefusesAClientWithoutACertificate) {
  ServerOptions options = Options();
  options.tls_client_ca_file = ca_->cert_file();
  Start(std::move(options));
  grpc::Status status = WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem()}), kAdminToken);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(TlsTest, MutualTlsRefusesACertificateOfAnotherCa) {
  ServerOptions options = Options();
  options.tls_client_ca_file = ca_->cert_file();
  Start(std::move(options));
  auto other = TestCa::Create(dir_.path(), "other");
  ASSERT_TRUE(other.ok()) << other.status();
  auto stranger = other->Issue("stranger", ClientCertificate("/CN=reporting/O=Data"));
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  grpc::Status status =
      WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem(), &*stranger}), kAdminToken);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(TlsTest, MutualTlsCertificateAloneAuthenticatesBySanOrSubject) {
  ServerOptions options = Options();
  options.tls_client_ca_file = ca_->cert_file();
  Start(std::move(options));
  auto reporting = ca_->Issue(
      "reporting", ClientCertificate("/O=Data/CN=reporting", {"URI:spiffe://team/reporting"}));
  ASSERT_TRUE(reporting.ok()) << reporting.status();
  auto dashboards = ca_->Issue("dashboards", ClientCertificate("/O=Data/CN=dashboards"));
  ASSERT_TRUE(dashboards.ok()) << dashboards.status();

  v1::WhoAmIResponse me;
  grpc::Status status =
      WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem(), &*reporting}), "", &me);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(me.principal(), "reporting-svc");
  EXPECT_EQ(me.role(), v1::ROLE_CONTRIBUTOR);

  status = WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem(), &*dashboards}), "", &me);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(me.principal(), "dashboards");
  EXPECT_EQ(me.role(), v1::ROLE_VIEWER);
}

TEST_F(TlsTest, BearerTokenWinsOverTheCertificate) {
  ServerOptions options = Options();
  options.tls_client_ca_file = ca_->cert_file();
  Start(std::move(options));
  auto reporting = ca_->Issue(
      "reporting", ClientCertificate("/O=Data/CN=reporting", {"URI:spiffe://team/reporting"}));
  ASSERT_TRUE(reporting.ok()) << reporting.status();
  std::shared_ptr<grpc::Channel> channel =
      Channel(server_->port(), ClientTls{ca_->cert_pem(), &*reporting});

  v1::WhoAmIResponse me;
  grpc::Status status = WhoAmI(channel, kAdminToken, &me);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(me.principal(), "alice");
  // A wrong token is not rescued by the certificate.
  status = WhoAmI(channel, "not-a-token-of-this-server-0123456789abcdef");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("unknown token"));
}

TEST_F(TlsTest, UnmappedCertificateWithoutATokenIsUnauthenticated) {
  ServerOptions options = Options();
  options.tls_client_ca_file = ca_->cert_file();
  Start(std::move(options));
  auto stranger = ca_->Issue("stranger", ClientCertificate("/CN=stranger"));
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  grpc::Status status =
      WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem(), &*stranger}), "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("missing 'authorization: Bearer <token>'"));
  EXPECT_THAT(status.error_message(), HasSubstr("subject=CN=stranger"));
  EXPECT_THAT(status.error_message(), HasSubstr("maps to no principal"));
}

TEST_F(TlsTest, WithoutClientCaNoCertificateAuthenticates) {
  Start(Options());  // TLS, but no client certificates asked for
  auto reporting = ca_->Issue(
      "reporting", ClientCertificate("/O=Data/CN=reporting", {"URI:spiffe://team/reporting"}));
  ASSERT_TRUE(reporting.ok()) << reporting.status();
  grpc::Status status =
      WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem(), &*reporting}), "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), Not(HasSubstr("client certificate")));
}

TEST_F(TlsTest, ReloadServesTheNewCertificateAndKeepsOpenConnections) {
  Start(Options());
  std::shared_ptr<grpc::Channel> open = Channel(server_->port(), ClientTls{ca_->cert_pem()});
  ASSERT_TRUE(WhoAmI(open, kAdminToken).ok());
  auto before = exportd::testing::ServedCertificate(server_->port(), dir_.path());
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_THAT(*before, HasSubstr("CN = exportd\n"));
  EXPECT_THAT(*before, HasSubstr("serial=" + server_cert_.serial));

  // The new certificate comes from another CA, so a client that trusts only
  // that CA can tell which certificate its connection got.
  auto next_ca = TestCa::Create(dir_.path(), "next");
  ASSERT_TRUE(next_ca.ok()) << next_ca.status();
  auto rotated = next_ca->Issue("server", ServerCertificate("/CN=exportd-rotated"));
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  ASSERT_EQ(rotated->cert_file, server_cert_.cert_file);  // written over the served files
  ASSERT_NE(rotated->serial, server_cert_.serial);

  // Until the reload, new connections still get the old certificate.
  EXPECT_EQ(
      WhoAmI(Channel(server_->port(), ClientTls{next_ca->cert_pem()}), kAdminToken).error_code(),
      grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(server_->ReloadCertificates().ok());

  grpc::Status fresh =
      WhoAmI(Channel(server_->port(), ClientTls{next_ca->cert_pem()}), kAdminToken);
  EXPECT_TRUE(fresh.ok()) << fresh.error_message();
  EXPECT_EQ(WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem()}), kAdminToken).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  auto after = exportd::testing::ServedCertificate(server_->port(), dir_.path());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(*after, HasSubstr("CN = exportd-rotated\n"));
  EXPECT_THAT(*after, HasSubstr("serial=" + rotated->serial));

  // The connection opened before the reload still works: a reconnect would
  // have failed, as this channel trusts only the old CA.
  grpc::Status kept = WhoAmI(open, kAdminToken);
  EXPECT_TRUE(kept.ok()) << kept.error_message();
  EXPECT_EQ(open->GetState(false), GRPC_CHANNEL_READY);
}

TEST_F(TlsTest, FailedReloadKeepsTheOldCertificate) {
  Start(Options());
  // A new key that does not belong to the certificate still in the cert file.
  auto unrelated = ca_->Issue("unrelated", ServerCertificate("/CN=unrelated"));
  ASSERT_TRUE(unrelated.ok()) << unrelated.status();
  WriteFile(server_cert_.key_file, unrelated->key_pem);

  EXPECT_THAT(server_->ReloadCertificates(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--tls-key '" + server_cert_.key_file +
                                 "' does not match the certificate in --tls-cert '" +
                                 server_cert_.cert_file + "'")));
  EXPECT_THAT(server_->ReloadCertificates(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("keeps serving the previous certificate")));
  grpc::Status status = WhoAmI(Channel(server_->port(), ClientTls{ca_->cert_pem()}), kAdminToken);
  EXPECT_TRUE(status.ok()) << status.error_message();
  auto served = exportd::testing::ServedCertificate(server_->port(), dir_.path());
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_THAT(*served, HasSubstr("serial=" + server_cert_.serial));
}

TEST_F(TlsTest, ReloadWithoutTlsIsAFailedPrecondition) {
  ServerOptions options = Options();
  options.tls_cert_file.clear();
  options.tls_key_file.clear();
  Start(std::move(options));
  EXPECT_THAT(server_->ReloadCertificates(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--tls-cert")));
}

TEST_F(TlsTest, StartUpErrorsNameTheFlagAndTheFile) {
  struct Case {
    std::string what;
    std::function<void(ServerOptions&)> change;
    std::string message;
  };
  const std::string missing = Path("missing.pem");
  const std::string garbage = Path("garbage.pem");
  WriteFile(garbage, "not a certificate\n");
  auto other = ca_->Issue("other", ServerCertificate("/CN=other"));
  ASSERT_TRUE(other.ok()) << other.status();
  const std::vector<Case> cases = {
      {"missing certificate", [&](ServerOptions& o) { o.tls_cert_file = missing; },
       "--tls-cert '" + missing + "': cannot read it: No such file or directory"},
      {"missing key", [&](ServerOptions& o) { o.tls_key_file = missing; },
       "--tls-key '" + missing + "': cannot read it: No such file or directory"},
      {"certificate not PEM", [&](ServerOptions& o) { o.tls_cert_file = garbage; },
       "--tls-cert '" + garbage + "': not a PEM certificate"},
      {"key not PEM", [&](ServerOptions& o) { o.tls_key_file = garbage; },
       "--tls-key '" + garbage + "': not a PEM private key"},
      {"flags swapped", [&](ServerOptions& o) { std::swap(o.tls_cert_file, o.tls_key_file); },
       "are --tls-cert and --tls-key swapped?"},
      {"key of another certificate", [&](ServerOptions& o) { o.tls_key_file = other->key_file; },
       "--tls-key '" + other->key_file + "' does not match the certificate in --tls-cert '" +
           server_cert_.cert_file + "'"},
      {"client CA not PEM", [&](ServerOptions& o) { o.tls_client_ca_file = garbage; },
       "--tls-client-ca '" + garbage + "': not a PEM certificate"},
      {"client CA missing", [&](ServerOptions& o) { o.tls_client_ca_file = missing; },
       "--tls-client-ca '" + missing + "': cannot read it"},
      {"certificate without key", [&](ServerOptions& o) { o.tls_key_file.clear(); },
       "--tls-cert needs --tls-key"},
      {"key without certificate", [&](ServerOptions& o) { o.tls_cert_file.clear(); },
       "--tls-key needs --tls-cert"},
      {"client CA without TLS",
       [&](ServerOptions& o) {
         o.tls_cert_file.clear();
         o.tls_key_file.clear();
         o.tls_client_ca_file = ca_->cert_file();
       },
       "--tls-client-ca '" + ca_->cert_file() + "' needs --tls-cert and --tls-key"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ServerOptions options = Options();
    c.change(options);
    EXPECT_THAT(Server::Start(std::move(options)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

TEST_F(TlsTest, PlaintextBeyondLoopbackNeedsAllowInsecureListen) {
  auto plaintext_anywhere = [&] {
    ServerOptions options = Options();
    options.tls_cert_file.clear();
    options.tls_key_file.clear();
    options.listen = "0.0.0.0:0";
    return options;
  };
  EXPECT_THAT(Server::Start(plaintext_anywhere()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--listen '0.0.0.0:0'"), HasSubstr("in clear"),
                             HasSubstr("--allow-insecure-listen"))));

  ServerOptions allowed = plaintext_anywhere();
  allowed.allow_insecure_listen = true;
  Start(std::move(allowed));
  EXPECT_THAT(server_->Describe(),
              HasSubstr("warning: --listen 0.0.0.0:0 serves plaintext beyond this machine "
                        "(--allow-insecure-listen): bearer tokens travel in clear"));
}

TEST_F(TlsTest, TlsBeyondLoopbackNeedsNoFlag) {
  ServerOptions options = Options();
  options.listen = "0.0.0.0:0";
  Start(std::move(options));
  EXPECT_THAT(server_->Describe(), Not(HasSubstr("warning")));
}

TEST_F(TlsTest, PlaintextOnLoopbackNeedsNoFlag) {
  ServerOptions options = Options();
  options.tls_cert_file.clear();
  options.tls_key_file.clear();
  Start(std::move(options));
  EXPECT_THAT(server_->Describe(), Not(HasSubstr("warning")));
  EXPECT_THAT(server_->Describe(), Not(HasSubstr("TLS:")));
}

TEST(IsLoopbackListenAddressTest, OnlyAddressesOfThisMachine) {
  for (const char* local :
       {"127.0.0.1:50051", "127.1.2.3:0", "localhost:50051", "LocalHost:1", "[::1]:50051",
        "[::ffff:127.0.0.1]:1", "unix:/run/exportd.sock", "unix-abstract:exportd"}) {
    EXPECT_TRUE(IsLoopbackListenAddress(local)) << local;
  }
  for (const char* remote :
       {"0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.5:50051", "128.0.0.1:1",
        "exportd.example.com:443", "[::2]:1", "localhost.example.com:1", "[::1:50051"}) {
    EXPECT_FALSE(IsLoopbackListenAddress(remote)) << remote;
  }
}

}  // namespace
}  // namespace exportd::api
