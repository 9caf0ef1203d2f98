// Encryption of secrets at rest: AES-256-GCM with a master key kept in a file.
//
//   EXPORTD_ASSIGN_OR_RETURN(auto box, SecretBox::Load(data_dir + "/master.key"));
//   EXPORTD_ASSIGN_OR_RETURN(std::string sealed, box->Seal("api key", "connection:c1"));
//   EXPORTD_ASSIGN_OR_RETURN(std::string plain, box->Open(sealed, "connection:c1"));
#ifndef EXPORTD_SERVER_CRYPTO_SECRET_BOX_H_
#define EXPORTD_SERVER_CRYPTO_SECRET_BOX_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace exportd::crypto {

class SecretBox {
 public:
  static constexpr size_t kKeyBytes = 32;
  // The first byte of a sealed value. Format 1 (before exportd bound
  // secrets to their row) has no additional authenticated data; format 2
  // authenticates the `aad` given to Seal.
  static constexpr unsigned char kUnboundFormat = 1;
  static constexpr unsigned char kBoundFormat = 2;

  // Reads the 32-byte key (64 hex characters) from `path`. NOT_FOUND when
  // the file does not exist, FAILED_PRECONDITION when it cannot be read or
  // does not hold a key.
  static absl::StatusOr<std::unique_ptr<SecretBox>> Load(const std::string& path);
  // Creates `path` (which must not exist) with mode 0600 and a new key from a
  // cryptographic random source.
  static absl::StatusOr<std::unique_ptr<SecretBox>> Create(const std::string& path);
  // For tests: a box over a given key.
  static absl::StatusOr<std::unique_ptr<SecretBox>> FromKey(absl::string_view key);

  // Encrypts and authenticates `plaintext`, bound to `aad` (additional
  // authenticated data: not stored, must be given again to Open). The
  // result is binary: format byte (kBoundFormat), 12-byte nonce,
  // ciphertext, 16-byte tag.
  absl::StatusOr<std::string> Seal(absl::string_view plaintext, absl::string_view aad) const;
  // Reverses Seal. DATA_LOSS when the data was tampered with, the key
  // differs or `aad` is not the one it was sealed with. A value in the
  // unbound format opens whatever `aad` is: seal it again to bind it.
  absl::StatusOr<std::string> Open(absl::string_view sealed, absl::string_view aad) const;
  // The format byte of a sealed value (0 when empty).
  static unsigned char Format(absl::string_view sealed);

  // A value that identifies the key without revealing it (an HMAC-SHA256
  // of a fixed label under the key, as "hmac-sha256:<hex>"), stored next to
  // the secrets so that a different key is recognised before it is used.
  std::string CheckValue() const;
  // Whether `check_value` is this key's CheckValue(), in constant time.
  bool MatchesCheckValue(absl::string_view check_value) const;

 private:
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

}  // namespace exportd::crypto

#endif  // EXPORTD_SERVER_CRYPTO_SECRET_BOX_H_
