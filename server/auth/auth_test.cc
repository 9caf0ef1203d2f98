#include "server/auth/auth.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "exportd/sdk/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAlice[] = "alice-token-00000000000000000000000";
constexpr char kBob[] = "bob-token-0000000000000000000000000";
constexpr char kCarol[] = "carol-token-00000000000000000000000";

// A fresh directory, removed when the test program ends.
std::string TempDir() {
  static std::vector<std::unique_ptr<sdk::testing::TempDir>> dirs;
  dirs.push_back(std::make_unique<sdk::testing::TempDir>());
  return dirs.back()->path().string();
}

// A tokens file with `text`, private to its owner unless `mode` says otherwise.
std::string WriteFile(const std::string& text, mode_t mode = 0600) {
  std::string path = TempDir() + "/tokens";
  std::ofstream(path) << text;
  EXPECT_EQ(::chmod(path.c_str(), mode), 0);
  return path;
}

absl::Status LoadError(const std::string& text) {
  return Authenticator::FromTokensFile(WriteFile(text)).status();
}

TEST(AuthTest, TokensFileMapsTokensToPrincipalsAndRoles) {
  auto auth = Authenticator::FromTokensFile(
      WriteFile(absl::StrCat("# comment\n", kAlice, " alice admin\n", "\n", kBob,
                             " bob contributor  # trailing comment\n", kCarol, " carol viewer\n")));
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto bob = (*auth)->Authenticate(absl::StrCat("Bearer ", kBob));
  ASSERT_TRUE(bob.ok());
  EXPECT_EQ(bob->name, "bob");
  EXPECT_EQ(bob->role, v1::ROLE_CONTRIBUTOR);
  EXPECT_EQ((*auth)->Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("Bearer nope").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate(absl::StrCat("Basic ", kAlice)).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthTest, Sha256LinesAcceptTheTokenTheyHash) {
  const std::string token = "rotated-token-0123456789abcdef0123456789";
  const std::string text =
      absl::StrCat("sha256:", TokenSha256Hex(token), " svc viewer\n",
                   // Upper-case hex works too.
                   "sha256:", absl::AsciiStrToUpper(TokenSha256Hex(kBob)), " bob contributor\n");
  ASSERT_THAT(text, Not(HasSubstr(token)));
  auto auth = Authenticator::FromTokensFile(WriteFile(text));
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto svc = (*auth)->Authenticate("Bearer " + token);
  ASSERT_TRUE(svc.ok()) << svc.status();
  EXPECT_EQ(svc->name, "svc");
  EXPECT_EQ(svc->role, v1::ROLE_VIEWER);
  EXPECT_TRUE((*auth)->Authenticate(absl::StrCat("Bearer ", kBob)).ok());
  // The digest itself is no token.
  EXPECT_EQ((*auth)->Authenticate("Bearer sha256:" + TokenSha256Hex(token)).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("Bearer " + TokenSha256Hex(token)).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthTest, APrincipalMayHaveSeveralTokensOfOneRole) {
  auto auth = Authenticator::FromTokensFile(WriteFile(
      absl::StrCat(kAlice, " alice admin\n", "sha256:", TokenSha256Hex(kBob), " alice admin\n")));
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ((*auth)->Authenticate(absl::StrCat("Bearer ", kAlice))->name, "alice");
  EXPECT_EQ((*auth)->Authenticate(absl::StrCat("Bearer ", kBob))->name, "alice");
}

TEST(AuthTest, MalformedTokensFileNamesTheLine) {
  absl::Status bad_role = LoadError(absl::StrCat(kAlice, " alice owner\n"));
  EXPECT_EQ(bad_role.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_role.message(), HasSubstr("line 1"));
  EXPECT_THAT(bad_role.message(), HasSubstr("unknown role 'owner'"));
  absl::Status fields = LoadError(absl::StrCat("\n", kAlice, " alice\n"));
  EXPECT_THAT(fields.message(), HasSubstr("line 2"));
  EXPECT_THAT(fields.message(), HasSubstr("found 2 fields"));
  absl::Status empty = LoadError("# nothing\n");
  EXPECT_THAT(empty.message(), HasSubstr("defines no token"));
  absl::Status missing = Authenticator::FromTokensFile("/nonexistent/tokens").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("--tokens-file '/nonexistent/tokens'"));
}

TEST(AuthTest, TokensShorterThan32CharactersAreRefused) {
  absl::Status status = LoadError("# header\nshort-but-not-secret-0123456789 alice admin\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("line 2: the token is 31 characters long"));
  EXPECT_THAT(status.message(), HasSubstr("exportctl token hash --new"));
  EXPECT_THAT(status.message(), Not(HasSubstr("short-but")));
  EXPECT_TRUE(
      Authenticator::FromTokensFile(WriteFile(std::string(32, 'x') + " alice admin\n")).ok());
}

TEST(AuthTest, MalformedSha256IsRefused) {
  absl::Status short_hex = LoadError("sha256:abc123 alice admin\n");
  EXPECT_EQ(short_hex.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(short_hex.message(), HasSubstr("line 1: sha256: takes the 64 hex digits"));
  EXPECT_THAT(short_hex.message(), HasSubstr("found 6 characters"));
  absl::Status not_hex = LoadError("sha256:" + std::string(63, 'a') + "g alice admin\n");
  EXPECT_THAT(not_hex.message(), HasSubstr("not a hex digit"));
}

TEST(AuthTest, ATokenListedTwiceIsRefusedWithoutShowingIt) {
  absl::Status status = LoadError(
      absl::StrCat(kAlice, " alice admin\n", "sha256:", TokenSha256Hex(kAlice), " bob viewer\n"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("line 2: this token is already listed on line 1 (principal 'alice')"));
  EXPECT_THAT(status.message(), Not(HasSubstr(kAlice)));
}

TEST(AuthTest, APrincipalWithTwoRolesIsRefused) {
  absl::Status status = LoadError(
      absl::StrCat(kAlice, " alice admin\n", kBob, " bob viewer\n", kCarol, " alice viewer\n"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("line 3: principal 'alice' has role viewer here but admin on line 1"));
  EXPECT_THAT(status.message(), HasSubstr("give the other role its own principal name"));
}

TEST(AuthTest, PrincipalNamesWithControlOrInvisibleCharactersAreRefused) {
  for (const std::string& name :
       {std::string("\x1b[2Jroot"), std::string("bob\x7f"), std::string("bob\xc2\x9b"),
        std::string("admin\xe2\x80\xae"), std::string("bob\xff")}) {
    absl::Status status = LoadError(absl::StrCat(kAlice, " ", name, " viewer\n"));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(name);
    EXPECT_THAT(status.message(), HasSubstr("line 1: principal \""));
    EXPECT_THAT(status.message(), HasSubstr("use visible characters only"));
  }
}

TEST(AuthTest, TokensFileReadableByOthersIsRefusedWithTheChmodToRun) {
  std::string path = WriteFile(absl::StrCat(kAlice, " alice admin\n"), 0644);
  auto auth = Authenticator::FromTokensFile(path);
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(auth.status().message(), HasSubstr("--tokens-file '" + path + "'"));
  EXPECT_THAT(auth.status().message(), HasSubstr("run 'chmod 600 " + path + "'"));
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  EXPECT_EQ(Authenticator::FromTokensFile(path).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  EXPECT_TRUE(Authenticator::FromTokensFile(path).ok());
}

TEST(AuthTest, CertLinesMapCertificateIdentities) {
  auto auth = Authenticator::FromTokensFile(WriteFile(absl::StrCat(
      kAlice, " alice admin\n", "cert:san=spiffe://team/exporter svc-exporter contributor\n",
      "cert:subject=CN=exporter,O=My Team  svc contributor  # subject with a space\n",
      "cert:subject=CN=a#1 hash viewer\n")));
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto by_san =
      (*auth)->AuthenticateCertificate({"subject=CN=unknown", "san=spiffe://team/exporter"});
  ASSERT_TRUE(by_san.ok()) << by_san.status();
  EXPECT_EQ(by_san->name, "svc-exporter");
  EXPECT_EQ(by_san->role, v1::ROLE_CONTRIBUTOR);
  auto by_subject = (*auth)->AuthenticateCertificate({"subject=CN=exporter,O=My Team"});
  ASSERT_TRUE(by_subject.ok()) << by_subject.status();
  EXPECT_EQ(by_subject->name, "svc");
  EXPECT_EQ((*auth)->AuthenticateCertificate({"subject=CN=a#1"})->name, "hash");
  // Who holds a credential, token or certificate, and with which role.
  EXPECT_EQ((*auth)->RoleOf("alice"), v1::ROLE_ADMIN);
  EXPECT_EQ((*auth)->RoleOf("svc-exporter"), v1::ROLE_CONTRIBUTOR);
  EXPECT_EQ((*auth)->RoleOf("hash"), v1::ROLE_VIEWER);
  EXPECT_EQ((*auth)->RoleOf("bob"), std::nullopt);
  EXPECT_EQ((*auth)->RoleOf(""), std::nullopt);

  auto unknown = (*auth)->AuthenticateCertificate({"subject=CN=other", "san=other.example"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unknown.status().message(), HasSubstr("maps to no principal"));
  EXPECT_EQ((*auth)->AuthenticateCertificate({}).status().code(),
            absl::StatusCode::kUnauthenticated);
  auto two = (*auth)->AuthenticateCertificate(
      {"subject=CN=exporter,O=My Team", "san=spiffe://team/exporter"});
  EXPECT_EQ(two.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(two.status().message(), HasSubstr("matches principals 'svc' and 'svc-exporter'"));
  // A certificate identity is no bearer token, and a token no identity.
  EXPECT_EQ((*auth)->Authenticate("Bearer cert:san=spiffe://team/exporter").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->AuthenticateCertificate({kAlice}).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthTest, MalformedCertLinesAreRefused) {
  absl::Status kind = LoadError("cert:issuer=CN=x svc viewer\n");
  EXPECT_EQ(kind.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(kind.message(), HasSubstr("line 1: cert:issuer=CN=x is no certificate identity"));
  EXPECT_THAT(LoadError("cert:san= svc viewer\n").message(), HasSubstr("no certificate identity"));
  EXPECT_THAT(LoadError("cert:subject=CN=J\xc3\xbcrgen svc viewer\n").message(),
              HasSubstr("not printable ASCII"));
  absl::Status twice = LoadError("cert:san=a.example svc viewer\ncert:san=a.example ops viewer\n");
  EXPECT_THAT(
      twice.message(),
      HasSubstr("line 2: certificate identity 'san=a.example' is already listed on line 1"));
}

TEST(AuthTest, FailedAuthenticationsAreCountedAndLoggedWithoutTheToken) {
  auto auth = Authenticator::FromMap({{kAlice, Principal{"alice", v1::ROLE_ADMIN}}});
  const std::string wrong = "wrong-token-that-must-not-be-logged-0123";
  ::testing::internal::CaptureStderr();
  auto refused = auth->Authenticate("Bearer " + wrong, "ipv4:127.0.0.1:4242");
  std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(logged,
            "exportd: authentication failed: unknown token (principal unknown) from "
            "ipv4:127.0.0.1:4242\n");
  EXPECT_THAT(logged, Not(HasSubstr(wrong.substr(0, 8))));
  EXPECT_EQ(auth->failed_authentications(), 1u);

  EXPECT_TRUE(auth->Authenticate(absl::StrCat("Bearer ", kAlice), "ipv4:127.0.0.1:1").ok());
  EXPECT_EQ(auth->failed_authentications(), 1u);
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(auth->Authenticate("").ok());
  EXPECT_FALSE(auth->Authenticate("Basic x").ok());
  // A short prefix of a real token is no token.
  EXPECT_FALSE(auth->Authenticate(absl::StrCat("Bearer ", std::string(kAlice).substr(0, 8))).ok());
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(auth->failed_authentications(), 4u);
}

TEST(AuthTest, AdminTokenFileIsCreatedOnceWithMode0600) {
  std::string path = TempDir() + "/admin.token";
  ASSERT_TRUE(Authenticator::FromAdminTokenFile(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  std::string token;
  std::ifstream(path) >> token;
  EXPECT_EQ(token.size(), 64u);
  auto again = Authenticator::FromAdminTokenFile(path);
  ASSERT_TRUE(again.ok());
  auto who = (*again)->Authenticate("Bearer " + token);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->role, v1::ROLE_ADMIN);
}

TEST(AuthTest, AdminTokenFileOpenToOthersOrDamagedIsRefused) {
  std::string path = TempDir() + "/admin.token";
  ASSERT_TRUE(Authenticator::FromAdminTokenFile(path).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto open = Authenticator::FromAdminTokenFile(path);
  EXPECT_EQ(open.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(open.status().message(), HasSubstr("admin token file '" + path + "'"));
  EXPECT_THAT(open.status().message(), HasSubstr("run 'chmod 600 " + path + "'"));

  std::ofstream(path, std::ios::trunc) << "too-short\n";
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto damaged = Authenticator::FromAdminTokenFile(path);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(damaged.status().message(), HasSubstr("holds no valid token"));
  EXPECT_THAT(damaged.status().message(), HasSubstr("delete it"));
}

TEST(AuthTest, PermissionMatrix) {
  Principal admin{"a", v1::ROLE_ADMIN}, contributor{"c", v1::ROLE_CONTRIBUTOR},
      viewer{"v", v1::ROLE_VIEWER};
  for (Action action : {Action::kRead, Action::kManageConnections, Action::kUseConnection,
                        Action::kManageExports, Action::kManageSegments, Action::kRunExports,
                        Action::kReadAudit}) {
    EXPECT_TRUE(Authorize(admin, action).ok());
    bool contributor_may =
        action != Action::kManageConnections && action != Action::kReadAudit;
    EXPECT_EQ(Authorize(contributor, action).ok(), contributor_may);
    EXPECT_EQ(Authorize(viewer, action).ok(), action == Action::kRead);
  }
  auto denied = Authorize(viewer, Action::kRunExports);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(), HasSubstr("'v' (role viewer) may not run exports"));
}

}  // namespace
}  // namespace exportd::auth
