// exportctl against the real exportd over TLS and mutual TLS: exportd runs as a
// subprocess on 127.0.0.1 port 0 with certificates made by openssl in a
// temporary directory; exportctl runs in-process through RunExportctl. Also
// covers SIGHUP rotation and the refusal of plaintext beyond loopback.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "client/exportctl.h"
#include "exportd/sdk/testing/temp_dir.h"
#include "exportd/v1/audit.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/test_certificates.h"

namespace exportd::client {
namespace {

using ::exportd::testing::ChildProcess;
using ::exportd::testing::ClientCertificate;
using ::exportd::testing::IssuedCertificate;
using ::exportd::testing::ServerCertificate;
using ::exportd::testing::TestCa;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kAdminToken[] = "tls-e2e-admin-token-0123456789abcdef";

struct Result {
  int code;
  std::string out;
  std::string err;
};

class ExportctlTlsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = TestCa::Create(dir_.path(), "team");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_.emplace(*std::move(ca));
    auto server = ca_->Issue("server", ServerCertificate());
    ASSERT_TRUE(server.ok()) << server.status();
    server_cert_ = *std::move(server);
    auto client = ca_->Issue(
        "reporting", ClientCertificate("/O=Data/CN=reporting", {"URI:spiffe://team/reporting"}));
    ASSERT_TRUE(client.ok()) << client.status();
    client_cert_ = *std::move(client);
    tokens_file_ = Path("tokens");
    std::ofstream(tokens_file_) << kAdminToken << " alice admin\n"
                                << "cert:san=spiffe://team/reporting reporting-svc contributor\n";
    ::chmod(tokens_file_.c_str(), 0600);
  }

  std::string Path(const std::string& name) const { return (dir_.path() / name).string(); }

  // Starts exportd with `flags` added; the port, or 0 (with a test failure).
  int StartExportd(std::vector<std::string> flags) {
    std::vector<std::string> argv = {EXPORTD_BINARY, "--listen",     "127.0.0.1:0",
                                     "--data-dir",   Path("data"),   "--tokens-file",
                                     tokens_file_,   "--plugin-dir", EXPORTD_PLUGIN_DIR};
    argv.insert(argv.end(), flags.begin(), flags.end());
    exportd_ = std::make_unique<ChildProcess>(argv, Path("exportd.log"));
    port_ = exportd_->WaitForPort();
    EXPECT_GT(port_, 0) << exportd_->Log();
    return port_;
  }
  std::vector<std::string> TlsFlags() const {
    return {"--tls-cert", server_cert_.cert_file, "--tls-key", server_cert_.key_file};
  }
  std::vector<std::string> MutualTlsFlags() const {
    std::vector<std::string> flags = TlsFlags();
    flags.insert(flags.end(), {"--tls-client-ca", ca_->cert_file()});
    return flags;
  }

  // `--token T` in `args` is passed as $EXPORTD_TOKEN instead, as users are told to
  // (a token on the command line makes exportctl print a warning first).
  Result Run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    for (auto it = args.begin(); it != args.end() && it + 1 != args.end(); ++it) {
      if (*it == "--token") {
        env["EXPORTD_TOKEN"] = *(it + 1);
        args.erase(it, it + 2);
        break;
      }
    }
    args.insert(args.begin(), {"exportctl", "--server", "127.0.0.1:" + std::to_string(port_)});
    env["EXPORTD_DATA_DIR"] = Path("data");  // holds no admin.token: a tokens file is used
    std::ostringstream out, err;
    std::istringstream in;
    int code = RunExportctl(args, out, err, in, [env](const std::string& name) {
      auto it = env.find(name);
      return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    return {code, out.str(), err.str()};
  }

  sdk::testing::TempDir dir_;
  std::optional<TestCa> ca_;
  IssuedCertificate server_cert_;
  IssuedCertificate client_cert_;
  std::string tokens_file_;
  std::unique_ptr<ChildProcess> exportd_;
  int port_ = 0;
};

TEST_F(ExportctlTlsE2eTest, TlsCaFromTheFlagOrTheEnvironment) {
  ASSERT_GT(StartExportd(TlsFlags()), 0);
  EXPECT_THAT(exportd_->Log(), HasSubstr("TLS: certificate " + server_cert_.cert_file));

  Result flag = Run({"--tls-ca", ca_->cert_file(), "--token", kAdminToken, "whoami"});
  ASSERT_EQ(flag.code, 0) << flag.err;
  EXPECT_THAT(flag.out, HasSubstr("alice"));

  Result env =
      Run({"whoami"}, {{"EXPORTD_TLS_CA", ca_->cert_file()}, {"EXPORTD_TOKEN", kAdminToken}});
  ASSERT_EQ(env.code, 0) << env.err;
  EXPECT_THAT(env.out, HasSubstr("alice"));

  // Global flags are accepted after the verb too.
  Result after = Run({"whoami", "--tls-ca", ca_->cert_file(), "--token", kAdminToken});
  ASSERT_EQ(after.code, 0) << after.err;
}

TEST_F(ExportctlTlsE2eTest, PlaintextExportctlAgainstTlsIsUnavailableWithAHint) {
  ASSERT_GT(StartExportd(TlsFlags()), 0);
  Result plain = Run({"--token", kAdminToken, "whoami"});
  EXPECT_EQ(plain.code, 1);
  EXPECT_THAT(plain.err, StartsWith("error: UNAVAILABLE: "));
  EXPECT_THAT(plain.err, HasSubstr("hint: if exportd serves TLS, pass --tls-ca FILE"));
}

TEST_F(ExportctlTlsE2eTest, WrongCaIsUnavailableWithAHint) {
  ASSERT_GT(StartExportd(TlsFlags()), 0);
  auto other = TestCa::Create(dir_.path(), "other");
  ASSERT_TRUE(other.ok()) << other.status();
  Result wrong = Run({"--tls-ca", other->cert_file(), "--token", kAdminToken, "whoami"});
  EXPECT_EQ(wrong.code, 1);
  EXPECT_THAT(wrong.err, StartsWith("error: UNAVAILABLE: "));
  EXPECT_THAT(wrong.err, HasSubstr("--tls-ca must hold the CA that signed exportd's certificate"));
}

TEST_F(ExportctlTlsE2eTest, MutualTlsWithTheClientCertificate) {
  ASSERT_GT(StartExportd(MutualTlsFlags()), 0);
  Result flags = Run({"--tls-ca", ca_->cert_file(), "--tls-cert", client_cert_.cert_file,
                      "--tls-key", client_cert_.key_file, "--token", kAdminToken, "whoami"});
  ASSERT_EQ(flags.code, 0) << flags.err;
  EXPECT_THAT(flags.out, HasSubstr("alice"));

  Result env = Run({"whoami"}, {{"EXPORTD_TLS_CA", ca_->cert_file()},
                                {"EXPORTD_TLS_CERT", client_cert_.cert_file},
                                {"EXPORTD_TLS_KEY", client_cert_.key_file},
                                {"EXPORTD_TOKEN", kAdminToken}});
  ASSERT_EQ(env.code, 0) << env.err;
  EXPECT_THAT(env.out, HasSubstr("alice"));
}

TEST_F(ExportctlTlsE2eTest, MutualTlsCertificateStandsInForTheToken) {
  ASSERT_GT(StartExportd(MutualTlsFlags()), 0);
  Result by_certificate = Run({"--tls-ca", ca_->cert_file(), "--tls-cert", client_cert_.cert_file,
                               "--tls-key", client_cert_.key_file, "whoami"});
  ASSERT_EQ(by_certificate.code, 0) << by_certificate.err;
  EXPECT_THAT(by_certificate.out, HasSubstr("reporting-svc"));
  EXPECT_THAT(by_certificate.out, HasSubstr("CONTRIBUTOR"));

  // A certificate of the right CA that no tokens-file line maps.
  auto stranger = ca_->Issue("stranger", ClientCertificate("/CN=stranger"));
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  Result refused = Run({"--tls-ca", ca_->cert_file(), "--tls-cert", stranger->cert_file,
                        "--tls-key", stranger->key_file, "whoami"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, StartsWith("error: UNAUTHENTICATED: "));
  EXPECT_THAT(refused.err, HasSubstr("maps to no principal"));
  EXPECT_THAT(refused.err, HasSubstr("map this client certificate with a 'cert:' line"));
}

TEST_F(ExportctlTlsE2eTest, MutualTlsRefusesExportctlWithoutACertificate) {
  ASSERT_GT(StartExportd(MutualTlsFlags()), 0);
  Result refused = Run({"--tls-ca", ca_->cert_file(), "--token", kAdminToken, "whoami"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, StartsWith("error: UNAVAILABLE: "));
  EXPECT_THAT(refused.err, HasSubstr("needs --tls-cert and --tls-key"));
}

TEST_F(ExportctlTlsE2eTest, TlsServerNameOverridesTheNameChecked) {
  // A certificate that names neither 127.0.0.1 nor localhost.
  exportd::testing::CertificateSpec spec = ServerCertificate("/CN=exportd.internal");
  spec.alt_names = {"DNS:exportd.internal"};
  auto named = ca_->Issue("named", spec);
  ASSERT_TRUE(named.ok()) << named.status();
  ASSERT_GT(StartExportd({"--tls-cert", named->cert_file, "--tls-key", named->key_file}), 0);

  Result mismatch = Run({"--tls-ca", ca_->cert_file(), "--token", kAdminToken, "whoami"});
  EXPECT_EQ(mismatch.code, 1);
  EXPECT_THAT(mismatch.err, StartsWith("error: UNAVAILABLE: "));
  Result named_ok = Run({"--tls-ca", ca_->cert_file(), "--tls-server-name", "exportd.internal",
                         "--token", kAdminToken, "whoami"});
  ASSERT_EQ(named_ok.code, 0) << named_ok.err;
  Result env = Run({"--tls-ca", ca_->cert_file(), "--token", kAdminToken, "whoami"},
                   {{"EXPORTD_TLS_SERVER_NAME", "exportd.internal"}});
  ASSERT_EQ(env.code, 0) << env.err;
}

TEST_F(ExportctlTlsE2eTest, UnreadableTlsFileIsAUsageError) {
  ASSERT_GT(StartExportd(TlsFlags()), 0);
  Result missing = Run({"--tls-ca", Path("missing.pem"), "whoami"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("cannot read --tls-ca (or $EXPORTD_TLS_CA) file '" +
                                     Path("missing.pem") + "'"));
  Result half = Run({"--tls-ca", ca_->cert_file(), "--tls-cert", client_cert_.cert_file, "whoami"});
  EXPECT_EQ(half.code, 2);
  EXPECT_THAT(half.err, HasSubstr("--tls-cert (or $EXPORTD_TLS_CERT) needs --tls-key"));
}

TEST_F(ExportctlTlsE2eTest, SighupServesARotatedCertificateAndKeepsOpenConnections) {
  ASSERT_GT(StartExportd(TlsFlags()), 0);
  auto before = exportd::testing::ServedCertificate(port_, dir_.path());
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_THAT(*before, HasSubstr("serial=" + server_cert_.serial));

  // A connection opened before the rotation, trusting only the old CA.
  grpc::SslCredentialsOptions old_ca;
  old_ca.pem_root_certs = ca_->cert_pem();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto open = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_),
                                        grpc::SslCredentials(old_ca), args);
  auto who_am_i = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    context.AddMetadata("authorization", std::string("Bearer ") + kAdminToken);
    v1::WhoAmIResponse response;
    return v1::AuditService::NewStub(open)->WhoAmI(&context, v1::WhoAmIRequest(), &response);
  };
  ASSERT_TRUE(who_am_i().ok());

  // A broken rotation (a key of another certificate) is refused; the old
  // certificate stays.
  auto unrelated = ca_->Issue("unrelated", ServerCertificate());
  ASSERT_TRUE(unrelated.ok()) << unrelated.status();
  std::filesystem::copy_file(unrelated->key_file, server_cert_.key_file,
                             std::filesystem::copy_options::overwrite_existing);
  exportd_->Signal(SIGHUP);
  ASSERT_TRUE(exportd_->WaitForLog("exportd: cannot reload TLS certificate: --tls-key '" +
                                   server_cert_.key_file + "' does not match"))
      << exportd_->Log();
  Result still = Run({"--tls-ca", ca_->cert_file(), "--token", kAdminToken, "whoami"});
  EXPECT_EQ(still.code, 0) << still.err;

  // The new certificate, from another CA, written over the served files.
  auto next_ca = TestCa::Create(dir_.path(), "next");
  ASSERT_TRUE(next_ca.ok()) << next_ca.status();
  auto rotated = next_ca->Issue("server", ServerCertificate("/CN=exportd-rotated"));
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  exportd_->Signal(SIGHUP);
  ASSERT_TRUE(exportd_->WaitForLog("exportd: reloaded TLS certificate " + server_cert_.cert_file))
      << exportd_->Log();

  auto after = exportd::testing::ServedCertificate(port_, dir_.path());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(*after, HasSubstr("CN = exportd-rotated"));
  EXPECT_THAT(*after, HasSubstr("serial=" + rotated->serial));
  Result fresh = Run({"--tls-ca", next_ca->cert_file(), "--token", kAdminToken, "whoami"});
  EXPECT_EQ(fresh.code, 0) << fresh.err;
  Result stale = Run({"--tls-ca", ca_->cert_file(), "--token", kAdminToken, "whoami"});
  EXPECT_EQ(stale.code, 1);

  grpc::Status kept = who_am_i();
  EXPECT_TRUE(kept.ok()) << kept.error_message();
  EXPECT_THAT(exportd_->Log(), Not(HasSubstr("shutting down")));
}

TEST_F(ExportctlTlsE2eTest, PlaintextBeyondLoopbackIsRefusedUnlessAllowed) {
  {
    ChildProcess refused({EXPORTD_BINARY, "--listen", "0.0.0.0:0", "--data-dir", Path("data"),
                          "--tokens-file", tokens_file_, "--plugin-dir", EXPORTD_PLUGIN_DIR},
                         Path("refused.log"));
    EXPECT_EQ(refused.Wait(), 1);
    EXPECT_THAT(refused.Log(), HasSubstr("exportd: --listen '0.0.0.0:0' is reachable from other "
                                         "machines and exportd has no TLS certificate"));
    EXPECT_THAT(refused.Log(), HasSubstr("--allow-insecure-listen"));
  }
  ChildProcess allowed(
      {EXPORTD_BINARY, "--listen", "0.0.0.0:0", "--allow-insecure-listen", "--data-dir",
       Path("data"), "--tokens-file", tokens_file_, "--plugin-dir", EXPORTD_PLUGIN_DIR},
      Path("allowed.log"));
  ASSERT_TRUE(allowed.WaitForLog("bearer tokens travel in clear")) << allowed.Log();
  allowed.Stop(SIGTERM);
}

}  // namespace
}  // namespace exportd::client
