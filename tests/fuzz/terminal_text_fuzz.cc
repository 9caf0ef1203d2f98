// Fuzzes EscapeForTerminal (server/common/terminal_text.h), which every log line, run message
// and exportctl table passes outside text through: for any bytes, the result is well-formed
// UTF-8 without a control, bidi or line-separator character; escaping it again changes nothing;
// for input without backslashes, reading its escapes back gives the input again (nothing is
// lost); and text that needs no escape is kept as it is.
#include <string>

#include "absl/strings/string_view.h"
#include "server/common/terminal_text.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

// The code points of `s` if it is well-formed UTF-8 (false if not); written independently of
// the escaper's own reader.
bool DecodeUtf8(absl::string_view s, std::u32string* out) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    int extra = b < 0x80           ? 0
                : (b >> 5) == 0x6  ? 1
                : (b >> 4) == 0xE  ? 2
                : (b >> 3) == 0x1E ? 3
                                   : -1;
    if (extra < 0 || s.size() - i <= static_cast<size_t>(extra)) return false;
    char32_t c = extra == 0 ? b : b & (0x3F >> extra);
    for (int k = 1; k <= extra; ++k) {
      const unsigned char next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      c = (c << 6) | (next & 0x3F);
    }
    static const char32_t kMinimum[] = {0, 0x80, 0x800, 0x10000};
    if (c < kMinimum[extra] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    out->push_back(c);
    i += 1 + extra;
  }
  return true;
}

bool MustBeEscaped(char32_t c) {
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2066 && c <= 0x2069) || c == 0x2028 || c == 0x2029;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The number written in `digits` lower-case hex digits at s[at], or -1.
long ReadHex(absl::string_view s, size_t at, size_t digits) {
  if (at + digits > s.size()) return -1;
  long value = 0;
  for (size_t k = 0; k < digits; ++k) {
    int digit = HexValue(s[at + k]);
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// Reads the escapes back as the header documents them.
std::string Unescape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out.push_back(s[i++]);
      continue;
    }
    const char next = s[i + 1];
    long value = -1;
    if (next == 'n' || next == 'r' || next == 't') {
      out.push_back(next == 'n' ? '\n' : next == 'r' ? '\r' : '\t');
      i += 2;
    } else if (next == 'x' && (value = ReadHex(s, i + 2, 2)) >= 0) {
      out.push_back(static_cast<char>(value));
      i += 4;
    } else if (next == 'u' && (value = ReadHex(s, i + 2, 4)) >= 0) {
      AppendUtf8(static_cast<char32_t>(value), &out);
      i += 6;
    } else {
      out.push_back('\\');
      i += 1;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string escaped = exportd::EscapeForTerminal(input);

  std::u32string shown;
  FUZZ_CHECK(DecodeUtf8(escaped, &shown)) << "not well-formed UTF-8: " << escaped;
  for (char32_t c : shown) {
    FUZZ_CHECK(!MustBeEscaped(c)) << "U+" << std::hex << static_cast<unsigned long>(c)
                                  << " left in: " << escaped;
  }
  FUZZ_CHECK(exportd::EscapeForTerminal(escaped) == escaped) << "not idempotent: " << escaped;
  if (input.find('\\') == absl::string_view::npos) {
    FUZZ_CHECK(Unescape(escaped) == input) << "does not read back: " << escaped;
  }

  std::u32string original;
  bool plain = DecodeUtf8(input, &original);
  for (char32_t c : original) plain = plain && !MustBeEscaped(c);
  if (plain) FUZZ_CHECK(escaped == input) << "changed text that needs no escape: " << escaped;
  return 0;
}
