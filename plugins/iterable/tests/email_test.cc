#include "email.h"

#include "gtest/gtest.h"

namespace exportd::iterable {
namespace {

TEST(NormalizeEmail, TrimsAndLowercases) {
  EXPECT_EQ(NormalizeEmail("  Ann.Lee@Example.COM \t\n"), "ann.lee@example.com");
  EXPECT_EQ(NormalizeEmail(""), "");
  EXPECT_EQ(NormalizeEmail("   "), "");
  // Only ASCII letters change.
  EXPECT_EQ(NormalizeEmail("\xC3\x89lise@X.fr"), "\xC3\x89lise@x.fr");
}

TEST(IsValidEmail, AcceptsOrdinaryAddresses) {
  for (const char* email : {"a@b.co", "ann.lee+tag@example.com", "x_y-z@sub.domain.example.org",
                            "o'neil@example.ie", "1234@123.example.museum"}) {
    EXPECT_TRUE(IsValidEmail(email)) << email;
  }
}

TEST(IsValidEmail, RejectsMalformedAddresses) {
  for (const char* email : {"",
                            "plain",
                            "@example.com",
                            "ann@",
                            "ann@example",
                            "ann@example.c",
                            "ann@example.c0m",
                            "ann lee@example.com",
                            "ann@exa mple.com",
                            "ann@@example.com",
                            "ann@b@example.com",
                            ".ann@example.com",
                            "ann.@example.com",
                            "an..n@example.com",
                            "ann@.example.com",
                            "ann@example..com",
                            "ann@-example.com",
                            "ann@example-.com",
                            "ann@exam_ple.com",
                            "\"ann\"@example.com",
                            "ann(x)@example.com",
                            "ann@example.com.",
                            "ann\x01@example.com",
                            "Ann@Example.com" /* not normalized */,
                            "\xC3\xA9@example.com"}) {
    EXPECT_FALSE(IsValidEmail(email)) << email;
  }
}

TEST(IsValidEmail, EnforcesLengths) {
  const std::string local64(64, 'a');
  EXPECT_TRUE(IsValidEmail(local64 + "@example.com"));
  EXPECT_FALSE(IsValidEmail(local64 + "a@example.com"));
  const std::string label63(63, 'b');
  EXPECT_TRUE(IsValidEmail("a@" + label63 + ".com"));
  EXPECT_FALSE(IsValidEmail("a@" + label63 + "b.com"));
  std::string long_domain;
  while (long_domain.size() < 250) long_domain += label63.substr(0, 20) + ".";
  EXPECT_FALSE(IsValidEmail("a@" + long_domain + "com"));
}

}  // namespace
}  // namespace exportd::iterable
