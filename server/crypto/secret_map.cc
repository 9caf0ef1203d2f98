#include "server/crypto/secret_map.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace exportd::crypto {
namespace {

// Encoding: for each entry, 4-byte little-endian lengths then bytes, key then value.
void PutString(std::string& out, const std::string& s) {
  std::uint32_t n = static_cast<std::uint32_t>(s.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += s;
}

bool GetString(const std::string& in, size_t& pos, std::string& out) {
  if (in.size() - pos < 4) return false;
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[pos + i])) << (8 * i);
  pos += 4;
  if (in.size() - pos < n) return false;
  out.assign(in, pos, n);
  pos += n;
  return true;
}

// The additional data a connection's secrets are sealed with.
std::string ConnectionAad(absl::string_view connection_id) {
  return absl::StrCat("connection:", connection_id);
}

}  // namespace

absl::StatusOr<std::string> SealMap(const SecretBox& box, absl::string_view connection_id,
                                    const SecretMap& secrets) {
  std::string plain;
  for (const auto& [key, value] : secrets) {
    PutString(plain, key);
    PutString(plain, value);
  }
  return box.Seal(plain, ConnectionAad(connection_id));
}

absl::StatusOr<SecretMap> OpenMap(const SecretBox& box, absl::string_view connection_id,
                                  const std::string& sealed) {
  if (sealed.empty()) return SecretMap();
  auto plain = box.Open(sealed, ConnectionAad(connection_id));
  if (!plain.ok()) {
    return absl::DataLossError(absl::StrCat(
        "the secrets stored for connection '", connection_id,
        "' do not open: they were sealed with another master key or for another connection, "
        "or were changed"));
  }
  SecretMap out;
  size_t pos = 0;
  while (pos < plain->size()) {
    std::string key, value;
    if (!GetString(*plain, pos, key) || !GetString(*plain, pos, value)) {
      return absl::DataLossError(
          absl::StrCat("the secrets stored for connection '", connection_id, "' are malformed"));
    }
    out.emplace(std::move(key), std::move(value));
  }
  return out;
}

}  // namespace exportd::crypto
