#include "server/auth/certificate.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth/auth.h"
#include "tests/support/child_process.h"

namespace exportd::auth {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The openssl command-line tool, from $PATH.
std::string OpensslBinary() {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    std::string candidate = std::string(dir) + "/openssl";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

class CertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = std::filesystem::temp_directory_path() / "certificate_testXXXXXX";
    dir_ = mkdtemp(dir.data());
    openssl_ = OpensslBinary();
    ASSERT_FALSE(openssl_.empty()) << "these tests need the openssl tool on $PATH";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs openssl with `args`; its output (stdout and stderr).
  std::string Openssl(std::vector<std::string> args) {
    args.insert(args.begin(), openssl_);
    const std::string log = dir_ + "/openssl-" + std::to_string(runs_++) + ".log";
    testing::ChildProcess openssl(args, log);
    int code = openssl.Wait();
    EXPECT_EQ(code, 0) << openssl.Log();
    return openssl.Log();
  }

  // A self-signed certificate made by `openssl req -x509`; its PEM text.
  std::string MakeCertificate(const std::string& subject, const std::string& san) {
    const std::string cert = dir_ + "/cert.pem";
    std::vector<std::string> args = {"req",      "-x509",
                                     "-batch",   "-nodes",
                                     "-newkey",  "ec",
                                     "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                     "-keyout",  dir_ + "/key.pem",
                                     "-out",     cert,
                                     "-days",    "1",
                                     "-subj",    subject};
    if (!san.empty()) {
      args.push_back("-addext");
      args.push_back("subjectAltName=" + san);
    }
    Openssl(args);
    std::ifstream in(cert);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::string dir_;
  std::string openssl_;
  int runs_ = 0;
};

TEST_F(CertificateTest, SubjectThenDnsUriAndEmailSans) {
  std::string pem = MakeCertificate(
      "/O=Team/CN=exporter",
      "DNS:exporter.team.example,IP:127.0.0.1,URI:spiffe://team/exporter,email:svc@team.example");
  EXPECT_THAT(CertificateIdentities(pem),
              ElementsAre("subject=CN=exporter,O=Team", "san=exporter.team.example",
                          "san=spiffe://team/exporter", "san=svc@team.example"));
}

TEST_F(CertificateTest, SubjectIsWhatOpensslPrintsWithRfc2253) {
  std::string pem = MakeCertificate("/C=DE/O=Team, Inc./OU=Data Team/CN=exporter", "");
  std::vector<std::string> identities = CertificateIdentities(pem);
  ASSERT_EQ(identities.size(), 1u);
  EXPECT_EQ(identities[0], "subject=CN=exporter,OU=Data Team,O=Team\\, Inc.,C=DE");
  std::string printed =
      Openssl({"x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", dir_ + "/cert.pem"});
  EXPECT_EQ(identities[0], absl::StripTrailingAsciiWhitespace(printed));
}

TEST_F(CertificateTest, TokensFileCertLinesMapAGeneratedCertificate) {
  std::string pem = MakeCertificate("/O=My Team/CN=exporter", "URI:spiffe://team/exporter");
  const std::string tokens = dir_ + "/tokens";
  std::ofstream(tokens) << "cert:subject=CN=exporter,O=My Team svc contributor\n"
                        << "cert:san=spiffe://team/other other viewer\n";
  std::filesystem::permissions(
      tokens, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
      std::filesystem::perm_options::replace);
  auto auth = Authenticator::FromTokensFile(tokens);
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto who = (*auth)->AuthenticateCertificate(CertificateIdentities(pem));
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->name, "svc");
  EXPECT_EQ(who->role, v1::ROLE_CONTRIBUTOR);

  std::string stranger = MakeCertificate("/CN=stranger", "DNS:stranger.example");
  auto refused = (*auth)->AuthenticateCertificate(CertificateIdentities(stranger));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(refused.status().message(), HasSubstr("subject=CN=stranger"));
  EXPECT_THAT(refused.status().message(), HasSubstr("maps to no principal"));
}

TEST_F(CertificateTest, SansWithANulOrAControlCharacterAreLeftOut) {
  std::string pem = MakeCertificate("/CN=exporter", "");
  BIO* in = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  ASSERT_NE(cert, nullptr);
  GENERAL_NAMES* names = GENERAL_NAMES_new();
  for (absl::string_view dns :
       {absl::string_view("good.example\0.evil.example", 26),
        absl::string_view("line\nbreak.example"), absl::string_view("ok.example")}) {
    ASN1_IA5STRING* text = ASN1_IA5STRING_new();
    ASN1_STRING_set(text, dns.data(), static_cast<int>(dns.size()));
    GENERAL_NAME* name = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(name, GEN_DNS, text);
    sk_GENERAL_NAME_push(names, name);
  }
  ASSERT_EQ(X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT), 1);
  GENERAL_NAMES_free(names);
  // Signing encodes the changed certificate anew.
  BIO* key_in = BIO_new_file((dir_ + "/key.pem").c_str(), "r");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_in, nullptr, nullptr, nullptr);
  BIO_free(key_in);
  ASSERT_NE(key, nullptr);
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  EVP_PKEY_free(key);
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(out, cert);
  char* data = nullptr;
  long size = BIO_get_mem_data(out, &data);
  std::string changed(data, static_cast<size_t>(size));
  BIO_free(out);
  X509_free(cert);
  EXPECT_THAT(CertificateIdentities(changed), ElementsAre("subject=CN=exporter", "san=ok.example"));
}

TEST(CertificateIdentitiesTest, NoCertificateGivesNoIdentities) {
  EXPECT_THAT(CertificateIdentities(""), IsEmpty());
  EXPECT_THAT(
      CertificateIdentities("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
      IsEmpty());
}

}  // namespace
}  // namespace exportd::auth
