#include "server/common/terminal_text.h"

#include <string>

#include "gtest/gtest.h"

namespace exportd {
namespace {

using namespace std::string_literals;

TEST(EscapeForTerminalTest, PlainTextIsKept) {
  EXPECT_EQ(EscapeForTerminal(""), "");
  EXPECT_EQ(EscapeForTerminal("VIP customers (EU), 50% off!"), "VIP customers (EU), 50% off!");
  EXPECT_EQ(EscapeForTerminal("Zoë Ångström"), "Zoë Ångström");
  EXPECT_EQ(EscapeForTerminal("顧客セグメント"), "顧客セグメント");
  EXPECT_EQ(EscapeForTerminal("launch 🚀 day"), "launch 🚀 day");
  // The last code point, a private-use character and U+00A0 are printable for this purpose.
  EXPECT_EQ(EscapeForTerminal("\U0010FFFF\uE000\u00A0"), "\U0010FFFF\uE000\u00A0");
}

TEST(EscapeForTerminalTest, LineBreaksAndTabsByName) {
  EXPECT_EQ(EscapeForTerminal("bad\nexportd: run x: forged"), "bad\\nexportd: run x: forged");
  EXPECT_EQ(EscapeForTerminal("a\r\nb\tc"), "a\\r\\nb\\tc");
}

TEST(EscapeForTerminalTest, OtherC0ControlsAndDelInHex) {
  EXPECT_EQ(EscapeForTerminal("\x1b[2J\x1b[1;1H"), "\\x1b[2J\\x1b[1;1H");
  EXPECT_EQ(EscapeForTerminal("\a\b\f\v\x7f"), "\\x07\\x08\\x0c\\x0b\\x7f");
  EXPECT_EQ(EscapeForTerminal("a\0b"s), "a\\x00b");
  EXPECT_EQ(EscapeForTerminal("\x1f"), "\\x1f");
}

TEST(EscapeForTerminalTest, C1ControlsAsCodePoints) {
  EXPECT_EQ(EscapeForTerminal("\u0080"), "\\u0080");
  EXPECT_EQ(EscapeForTerminal("\u0085next line"), "\\u0085next line");  // NEL
  EXPECT_EQ(EscapeForTerminal("\u009b2J"), "\\u009b2J");                // CSI
  EXPECT_EQ(EscapeForTerminal("\u009f\u00a0"), "\\u009f\u00a0");
}

TEST(EscapeForTerminalTest, BidiControlsAndLineSeparators) {
  // "Trojan source": an override that makes the rest read backwards.
  EXPECT_EQ(EscapeForTerminal("invoice\u202Efdp.exe"), "invoice\\u202efdp.exe");
  EXPECT_EQ(EscapeForTerminal("\u202A\u202B\u202C\u202D"), "\\u202a\\u202b\\u202c\\u202d");
  EXPECT_EQ(EscapeForTerminal("\u2066\u2067\u2068\u2069"), "\\u2066\\u2067\\u2068\\u2069");
  EXPECT_EQ(EscapeForTerminal("a\u2028b\u2029c"), "a\\u2028b\\u2029c");
  // Their neighbours stay.
  EXPECT_EQ(EscapeForTerminal("\u2029\u202F\u2065\u206A"), "\\u2029\u202F\u2065\u206A");
}

TEST(EscapeForTerminalTest, EachByteOutsideWellFormedUtf8InHex) {
  EXPECT_EQ(EscapeForTerminal("\xff"), "\\xff");
  EXPECT_EQ(EscapeForTerminal("a\x80z"), "a\\x80z");                         // stray continuation
  EXPECT_EQ(EscapeForTerminal("\xc3"), "\\xc3");                             // cut off at the end
  EXPECT_EQ(EscapeForTerminal("\xc3("), "\\xc3(");                           // cut off by ASCII
  EXPECT_EQ(EscapeForTerminal("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(EscapeForTerminal("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");           // overlong '/'
  EXPECT_EQ(EscapeForTerminal("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // surrogate U+D800
  EXPECT_EQ(EscapeForTerminal("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(EscapeForTerminal("\xe2\x82"), "\\xe2\\x82");
  // A C1 control written overlong is invalid, not a C1 control.
  EXPECT_EQ(EscapeForTerminal("\xe0\x82\x9b"), "\\xe0\\x82\\x9b");
  // Well-formed characters around a broken one survive.
  EXPECT_EQ(EscapeForTerminal("é\xe9é"), "é\\xe9é");
}

TEST(EscapeForTerminalTest, BackslashesAreKept) {
  EXPECT_EQ(EscapeForTerminal("C:\\data\\Exports"), "C:\\data\\Exports");
  EXPECT_EQ(EscapeForTerminal("trailing\\"), "trailing\\");
  EXPECT_EQ(EscapeForTerminal("a\\nb \\\\"), "a\\nb \\\\");
  EXPECT_EQ(EscapeForTerminal("\\\n"), "\\\\n");
}

// Text escaped once (a run message exportd stored, an error quoting an
// escaped name) is not escaped a second time when printed again.
TEST(EscapeForTerminalTest, EscapingTwiceChangesNothing) {
  for (const std::string& text : {"down\nexportd: run x: forged\x1b[2J"s, "\xff\xc0 \u009b \u202e"s,
                                  "a\0b"s, "principal \"ops\\x1b[2J\" contains U+001B"s}) {
    const std::string once = EscapeForTerminal(text);
    EXPECT_EQ(EscapeForTerminal(once), once) << once;
  }
  EXPECT_EQ(EscapeForTerminal(EscapeForTerminal("a\nb")), "a\\nb");
}

TEST(EscapeForTerminalTest, ResultHasNoControlCharacter) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string escaped = EscapeForTerminal(all);
  for (unsigned char c : escaped) {
    EXPECT_TRUE(c >= 0x20 && c != 0x7f && c < 0x80) << static_cast<int>(c);
  }
}

}  // namespace
}  // namespace exportd
