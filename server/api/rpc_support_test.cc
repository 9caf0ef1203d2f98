// ValidateName and EscapeName: what a name may hold and how a refused one is
// shown.
#include "server/api/rpc_support.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/limits.h"

namespace exportd::api {
namespace {

using ::testing::HasSubstr;

// The message ValidateName gives, or "OK".
std::string NameError(absl::string_view name, absl::string_view field = "display_name") {
  absl::Status status = ValidateName(field, name);
  if (status.ok()) return "OK";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

TEST(ValidateNameTest, AcceptsOrdinaryNamesInAnyScript) {
  for (const char* name : {"VIP Customers", "Iterable EU", "Kunden (München)", "顧客",
                           "\xd8\xb9\xd9\x85\xd9\x84\xd8\xa7\xd8\xa1" /* Arabic */,
                           "emoji \xf0\x9f\x8e\x89", "tab-free_name.v2"}) {
    EXPECT_EQ(NameError(name), "OK") << name;
  }
}

TEST(ValidateNameTest, LengthIsCountedInCharacters) {
  // 256 two-byte characters: 512 bytes, but 256 characters.
  std::string umlauts;
  for (int i = 0; i < 256; ++i) umlauts += "\xc3\xbc";
  EXPECT_EQ(NameError(umlauts), "OK");
  EXPECT_EQ(NameError(umlauts + "x"),
            "display_name is 257 characters long; at most 256 are allowed");
  EXPECT_EQ(NameError(std::string(kMaxNameCharacters, 'a')), "OK");
  EXPECT_EQ(NameError(""), "display_name is required");
}

TEST(ValidateNameTest, RefusesControlBidiAndZeroWidthCharacters) {
  struct Case {
    std::string name;
    std::string expected;
  };
  const Case cases[] = {
      {"a\nb", "'a\\nb' contains U+000A (a control character) at character 2"},
      {std::string("a\0b", 3), "'a\\000b' contains U+0000 (a control character) at character 2"},
      {"\x1b[2Jx", "contains U+001B (a control character) at character 1"},
      {"del\x7f", "contains U+007F (a control character) at character 4"},
      {"c1\xc2\x85", "'c1\\u0085' contains U+0085 (a control character) at character 3"},
      {"c1\xc2\x9f", "contains U+009F (a control character)"},
      {"Iterable\xe2\x80\xaeUE",
       "'Iterable\\u202eUE' contains U+202E (a bidirectional control character) at character 9"},
      {"x\xe2\x80\xaa", "contains U+202A (a bidirectional control character)"},
      {"x\xe2\x81\xa6", "contains U+2066 (a bidirectional control character)"},
      {"x\xe2\x81\xa9", "contains U+2069 (a bidirectional control character)"},
      {"x\xe2\x80\x8e", "contains U+200E (a bidirectional control character)"},
      {"x\xe2\x80\x8f", "contains U+200F (a bidirectional control character)"},
      {"x\xd8\x9c", "contains U+061C (a bidirectional control character)"},
      {"Em\xe2\x80\x8b"
       "ail",
       "'Em\\u200bail' contains U+200B (a zero-width character) at "
       "character 3"},
      {"x\xe2\x80\x8d", "contains U+200D (a zero-width character)"},
      {"x\xe2\x81\xa0", "contains U+2060 (a zero-width character)"},
      {"\xef\xbb\xbfname", "contains U+FEFF (a zero-width character) at character 1"},
  };
  for (const Case& c : cases) {
    const std::string message = NameError(c.name);
    EXPECT_THAT(message, HasSubstr(c.expected)) << message;
    EXPECT_THAT(message, HasSubstr("display_name '")) << message;
    EXPECT_THAT(message, HasSubstr("names may not contain control, bidirectional-control or "
                                   "zero-width characters"))
        << message;
  }
  // The character is counted in characters, not bytes.
  EXPECT_THAT(NameError("\xc3\xbc\xc3\xbc\n"), HasSubstr("at character 3"));
}

TEST(ValidateNameTest, RefusesInvalidUtf8) {
  struct Case {
    std::string name;
    std::string expected;
  };
  const Case cases[] = {
      {"caf\xe9", "'caf\\xe9' is not valid UTF-8 (byte 0xe9 at byte 4)"},
      {"\x80x", "(byte 0x80 at byte 1)"},             // a stray continuation byte
      {"ab\xe2\x80", "(byte 0xe2 at byte 3)"},        // truncated
      {"\xc0\xaf", "(byte 0xc0 at byte 1)"},          // overlong '/'
      {"\xe0\x80\xaf", "(byte 0xe0 at byte 1)"},      // overlong, three bytes
      {"\xed\xa0\x80", "(byte 0xed at byte 1)"},      // a surrogate
      {"\xf4\x90\x80\x80", "(byte 0xf4 at byte 1)"},  // above U+10FFFF
      {"\xff", "(byte 0xff at byte 1)"},
  };
  for (const Case& c : cases) {
    const std::string message = NameError(c.name, "name");
    EXPECT_THAT(message, HasSubstr(c.expected)) << message;
    EXPECT_THAT(message, HasSubstr("send names as UTF-8")) << message;
  }
}

TEST(EscapeNameTest, ShowsRefusedCharactersAndCutsLongNames) {
  EXPECT_EQ(EscapeName("it's a \\ \"name\""), "it\\'s a \\\\ \\\"name\\\"");
  EXPECT_EQ(EscapeName("M\xc3\xbcnchen\t\xe2\x80\x8f\xff"), "M\xc3\xbcnchen\\t\\u200f\\xff");
  EXPECT_EQ(EscapeName(std::string(300, 'a')), std::string(256, 'a') + "\xe2\x80\xa6");
}

}  // namespace
}  // namespace exportd::api
