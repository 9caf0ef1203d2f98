// The parts of a tokens-file line that both exportd and exportctl check: how
// long and which characters a token has, its SHA-256 form, and which principal
// names are allowed. One owner, so `exportctl token hash` never prints a line
// that exportd would refuse.
//
//   EXPORTD_RETURN_IF_ERROR(ValidateToken(token));
//   std::string line = absl::StrCat(kSha256Prefix, TokenSha256Hex(token), " svc viewer");
#ifndef EXPORTD_SERVER_AUTH_CREDENTIALS_H_
#define EXPORTD_SERVER_AUTH_CREDENTIALS_H_

#include <array>
#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace exportd::auth {

// Tokens are at least this long: 32 characters of `openssl rand -hex 32` or
// of a generated token leave no room for guessing.
inline constexpr size_t kMinTokenLength = 32;

// The tokens-file prefixes of a hashed token and of a certificate identity.
inline constexpr absl::string_view kSha256Prefix = "sha256:";
inline constexpr absl::string_view kCertPrefix = "cert:";

using TokenDigest = std::array<unsigned char, 32>;

// SHA-256 of the token exactly as the client sends it (no trailing newline).
TokenDigest TokenSha256(absl::string_view token);
// The same as 64 lowercase hex digits, as written after `sha256:`.
std::string TokenSha256Hex(absl::string_view token);

// OK for a token of at least kMinTokenLength printable ASCII characters
// without whitespace (what gRPC metadata carries). INVALID_ARGUMENT otherwise;
// the message never contains the token or any part of it.
absl::Status ValidateToken(absl::string_view token);

// OK for a principal name that is valid UTF-8 of visible characters:
// INVALID_ARGUMENT for an empty name, whitespace, a leading '#', C0 and C1
// control characters, DEL, and invisible or direction-changing characters
// (zero-width, bidirectional controls, BOM), so that names in the audit trail
// and in logs look like what they are.
absl::Status ValidatePrincipalName(absl::string_view name);

// A new random token: 32 random bytes as 64 lowercase hex digits.
absl::StatusOr<std::string> NewToken();

}  // namespace exportd::auth

#endif  // EXPORTD_SERVER_AUTH_CREDENTIALS_H_
