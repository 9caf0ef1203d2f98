#include "server/common/terminal_text.h"

#include <cstddef>

namespace exportd {
namespace {

// One unit of the input: a well-formed UTF-8 character, or a single byte that does not start one.
struct Unit {
  size_t size;          // bytes it takes
  char32_t code_point;  // the character, or the byte when !valid
  bool valid;
};

// Well-formed UTF-8 as in Unicode's table 3-7: no overlong forms, no surrogates, at most
// U+10FFFF.
Unit ReadUnit(absl::string_view text, size_t i) {
  const unsigned char lead = static_cast<unsigned char>(text[i]);
  if (lead < 0x80) return {1, lead, true};
  const Unit invalid = {1, lead, false};
  size_t size = 0;
  char32_t code_point = 0;
  unsigned char low = 0x80, high = 0xBF;  // the second byte's range
  if (lead >= 0xC2 && lead <= 0xDF) {
    size = 2;
    code_point = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    size = 3;
    code_point = lead & 0x0F;
    if (lead == 0xE0) low = 0xA0;   // overlong below U+0800
    if (lead == 0xED) high = 0x9F;  // surrogates U+D800..U+DFFF
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    size = 4;
    code_point = lead & 0x07;
    if (lead == 0xF0) low = 0x90;   // overlong below U+10000
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return invalid;
  }
  for (size_t k = 1; k < size; ++k) {
    if (i + k >= text.size()) return invalid;
    const unsigned char next = static_cast<unsigned char>(text[i + k]);
    if (next < low || next > high) return invalid;
    low = 0x80;
    high = 0xBF;
    code_point = (code_point << 6) | (next & 0x3F);
  }
  return {size, code_point, true};
}

bool IsEscaped(const Unit& unit) {
  if (!unit.valid) return true;
  const char32_t c = unit.code_point;
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2066 && c <= 0x2069) || c == 0x2028 || c == 0x2029;
}

void AppendHex(char32_t value, int digits, std::string* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) {
    out->push_back(kDigits[(value >> shift) & 0xF]);
  }
}

void AppendEscape(const Unit& unit, std::string* out) {
  const char32_t c = unit.code_point;
  if (unit.valid && c == '\n') {
    out->append("\\n");
  } else if (unit.valid && c == '\r') {
    out->append("\\r");
  } else if (unit.valid && c == '\t') {
    out->append("\\t");
  } else if (!unit.valid || c < 0x80) {
    out->append("\\x");
    AppendHex(c, 2, out);
  } else {
    out->append("\\u");
    AppendHex(c, 4, out);
  }
}

bool IsPlainAscii(unsigned char c) { return c >= 0x20 && c < 0x7F; }

}  // namespace

std::string EscapeForTerminal(absl::string_view text) {
  // Most text is plain ASCII and comes back unchanged.
  size_t i = 0;
  while (i < text.size() && IsPlainAscii(static_cast<unsigned char>(text[i]))) ++i;
  std::string out(text.substr(0, i));
  if (i == text.size()) return out;
  out.reserve(text.size() + 16);
  while (i < text.size()) {
    // Runs of plain ASCII in one append.
    size_t plain = i;
    while (plain < text.size() && IsPlainAscii(static_cast<unsigned char>(text[plain]))) ++plain;
    out.append(text.data() + i, plain - i);
    i = plain;
    if (i == text.size()) break;
    const Unit unit = ReadUnit(text, i);
    if (IsEscaped(unit)) {
      AppendEscape(unit, &out);
    } else {
      out.append(text.data() + i, unit.size);
    }
    i += unit.size;
  }
  return out;
}

std::string ShellQuote(absl::string_view word) {
  auto plain = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           absl::string_view("_@%+=:,./-").find(c) != absl::string_view::npos;
  };
  bool as_is = !word.empty();
  for (char c : word) as_is = as_is && plain(c);
  if (as_is) return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

}  // namespace exportd
