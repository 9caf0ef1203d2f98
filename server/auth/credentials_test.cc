#include "server/auth/credentials.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(CredentialsTest, TokenSha256HexIsTheStandardDigest) {
  // FIPS 180-2's "abc" example.
  EXPECT_EQ(TokenSha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CredentialsTest, TokensNeedThirtyTwoPrintableCharacters) {
  EXPECT_TRUE(ValidateToken(std::string(32, 'a')).ok());
  const std::string short_token = "secret-part-" + std::string(19, 'x');  // 31
  absl::Status too_short = ValidateToken(short_token);
  EXPECT_EQ(too_short.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_short.message(), HasSubstr("31 characters long; tokens need at least 32"));
  EXPECT_THAT(too_short.message(), Not(HasSubstr("secret-part")));
  for (const std::string& bad :
       {std::string(20, 'a') + " " + std::string(20, 'b'), std::string(40, 'a') + "\x01",
        std::string(40, 'a') + "\xc3\xa9"}) {
    absl::Status status = ValidateToken(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("not printable ASCII"));
    EXPECT_THAT(status.message(), Not(HasSubstr("aaaa")));
  }
}

TEST(CredentialsTest, PrincipalNamesAreVisibleText) {
  for (const char* good :
       {"alice", "svc-exporter", "ops@team.example", "J\xc3\xbcrgen", "team/segment-sync"}) {
    EXPECT_TRUE(ValidatePrincipalName(good).ok()) << good;
  }
  struct Bad {
    std::string name;
    std::string why;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"", "empty"},
           {"\x1b[31mroot", "control character U+001B"},
           {"bob\x7f", "control character U+007F"},
           {"bob\xc2\x85", "control character U+0085"},  // C1: NEL
           {"bob\xe2\x80\xae"
            "evil",
            "non-printable character U+202E"},  // right-to-left override
           {"bo\xe2\x80\x8b"
            "b",
            "non-printable character U+200B"},  // zero-width space
           {"\xef\xbb\xbf"
            "bob",
            "non-printable character U+FEFF"},
           {"bob\xff", "not valid UTF-8"},
           {"bob\xc0\xa0", "not valid UTF-8"},  // overlong
           {"bob alice", "contains a space"},
           {"#bob", "starts with '#'"},
       }) {
    absl::Status status = ValidatePrincipalName(bad.name);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad.why;
    EXPECT_THAT(status.message(), HasSubstr(bad.why));
    for (char c : status.message()) {
      EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
          << "the message shows the name escaped: " << bad.why;
    }
  }
}

TEST(CredentialsTest, NewTokensAreRandomHexOf32Bytes) {
  absl::StatusOr<std::string> a = NewToken(), b = NewToken();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 64u);
  EXPECT_EQ(a->find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(ValidateToken(*a).ok());
}

}  // namespace
}  // namespace exportd::auth
