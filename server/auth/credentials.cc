#include "server/auth/credentials.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace exportd::auth {
namespace {

// Decodes the UTF-8 character at `text[*pos]` and advances `*pos`; -1 for a
// malformed, overlong or surrogate sequence.
int32_t NextCodePoint(absl::string_view text, size_t* pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(*pos);
  int length = lead < 0x80           ? 1
               : (lead >> 5) == 0x6  ? 2
               : (lead >> 4) == 0xe  ? 3
               : (lead >> 3) == 0x1e ? 4
                                     : 0;
  if (length == 0 || *pos + length > text.size()) return -1;
  int32_t code = length == 1 ? lead : lead & (0x7f >> length);
  for (int i = 1; i < length; ++i) {
    unsigned char next = byte(*pos + i);
    if ((next & 0xc0) != 0x80) return -1;
    code = (code << 6) | (next & 0x3f);
  }
  static constexpr int32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kSmallest[length] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
    return -1;
  }
  *pos += length;
  return code;
}

bool IsControl(int32_t c) { return c < 0x20 || (c >= 0x7f && c <= 0x9f); }

// Spaces other than U+0020 and characters that print as nothing or reorder
// text: a name holding one looks like another name.
bool IsInvisible(int32_t c) {
  return c == 0x00a0 || c == 0x00ad || c == 0x034f || c == 0x061c || c == 0x115f || c == 0x1160 ||
         c == 0x1680 || c == 0x180e || (c >= 0x2000 && c <= 0x200f) ||
         (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x206f) || c == 0x3000 ||
         c == 0x3164 || (c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff || c == 0xffa0 ||
         (c >= 0xfff0 && c <= 0xfffb) || c == 0xfffe || c == 0xffff ||
         (c >= 0xe0000 && c <= 0xe0fff);
}

}  // namespace

TokenDigest TokenSha256(absl::string_view token) {
  TokenDigest digest;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest.data());
  return digest;
}

std::string TokenSha256Hex(absl::string_view token) {
  TokenDigest digest = TokenSha256(token);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

absl::Status ValidateToken(absl::string_view token) {
  if (token.size() < kMinTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the token is ", token.size(), " characters long; tokens need at least ", kMinTokenLength,
        " (make one with 'exportctl token hash --new' or 'openssl rand -hex 32')"));
  }
  for (size_t i = 0; i < token.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(token[i]);
    if (c <= 0x20 || c >= 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the token holds whitespace or a character that is not printable ASCII at position ",
          i + 1, "; use letters, digits and punctuation"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePrincipalName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("the principal name is empty");
  const auto refuse = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("principal \"", absl::CHexEscape(name), "\" ",
                                                   why, "; use visible characters only"));
  };
  if (name.front() == '#') return refuse("starts with '#', which starts a comment");
  for (size_t pos = 0; pos < name.size();) {
    int32_t c = NextCodePoint(name, &pos);
    if (c < 0) return refuse("is not valid UTF-8");
    if (c == ' ') return refuse("contains a space");
    if (IsControl(c)) {
      return refuse(absl::StrFormat("contains the control character U+%04X", c));
    }
    if (IsInvisible(c)) {
      return refuse(absl::StrFormat("contains the invisible or non-printable character U+%04X", c));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NewToken() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    return absl::InternalError("cannot make a token: OpenSSL's random generator failed");
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(raw), sizeof raw));
}

}  // namespace exportd::auth
