#include "server/auth/auth.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::auth {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  std::string dir = std::filesystem::temp_directory_path() / "auth_testXXXXXX";
  return mkdtemp(dir.data());
}

std::string WriteFile(const std::string& text) {
  std::string path = TempDir() + "/tokens";
  std::ofstream(path) << text;
  return path;
}

TEST(AuthTest, TokensFileMapsTokensToPrincipalsAndRoles) {
  auto auth = Authenticator::FromTokensFile(WriteFile(
      "# comment\n"
      "aaaaaaaaaaaaaaaaaaaa alice admin\n"
      "\n"
      "bbbbbbbbbbbbbbbbbbbb bob contributor  # trailing comment\n"
      "cccccccccccccccccccc carol viewer\n"));
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto bob = (*auth)->Authenticate("Bearer bbbbbbbbbbbbbbbbbbbb");
  ASSERT_TRUE(bob.ok());
  EXPECT_EQ(bob->name, "bob");
  EXPECT_EQ(bob->role, v1::ROLE_CONTRIBUTOR);
  EXPECT_EQ((*auth)->Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("Bearer nope").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("Basic aaaaaaaaaaaaaaaaaaaa").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthTest, MalformedTokensFileNamesTheLine) {
  auto bad_role = Authenticator::FromTokensFile(WriteFile("aaaaaaaaaaaaaaaaaaaa alice owner\n"));
  EXPECT_EQ(bad_role.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_role.status().message(), HasSubstr("line 1"));
  EXPECT_THAT(bad_role.status().message(), HasSubstr("unknown role 'owner'"));
  auto fields = Authenticator::FromTokensFile(WriteFile("\naaaaaaaaaaaaaaaaaaaa alice\n"));
  EXPECT_THAT(fields.status().message(), HasSubstr("line 2"));
  auto short_token = Authenticator::FromTokensFile(WriteFile("abc alice admin\n"));
  EXPECT_THAT(short_token.status().message(), HasSubstr("shorter than"));
  auto dup = Authenticator::FromTokensFile(
      WriteFile("aaaaaaaaaaaaaaaaaaaa alice admin\naaaaaaaaaaaaaaaaaaaa bob viewer\n"));
  EXPECT_THAT(dup.status().message(), HasSubstr("line 2"));
  auto empty = Authenticator::FromTokensFile(WriteFile("# nothing\n"));
  EXPECT_THAT(empty.status().message(), HasSubstr("defines no token"));
  auto missing = Authenticator::FromTokensFile("/nonexistent/tokens");
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/tokens"));
}

TEST(AuthTest, AdminTokenFileIsCreatedOnceWithMode0600) {
  std::string path = TempDir() + "/admin.token";
  ASSERT_TRUE(Authenticator::FromAdminTokenFile(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  std::string token;
  std::ifstream(path) >> token;
  auto again = Authenticator::FromAdminTokenFile(path);
  ASSERT_TRUE(again.ok());
  auto who = (*again)->Authenticate("Bearer " + token);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->role, v1::ROLE_ADMIN);
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
