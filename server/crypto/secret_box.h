// Encryption of secrets at rest: AES-256-GCM with a master key kept in a file.
//
//   EXPORTD_ASSIGN_OR_RETURN(auto box, SecretBox::LoadOrCreate(data_dir + "/master.key"));
//   EXPORTD_ASSIGN_OR_RETURN(std::string sealed, box->Seal("api key"));
//   EXPORTD_ASSIGN_OR_RETURN(std::string plain, box->Open(sealed));
#ifndef EXPORTD_SERVER_CRYPTO_SECRET_BOX_H_
#define EXPORTD_SERVER_CRYPTO_SECRET_BOX_H_

#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace exportd::crypto {

class SecretBox {
 public:
  static constexpr size_t kKeyBytes = 32;

  // Reads the 32-byte key (64 hex characters) from `path`; when the file does
  // not exist, creates it with mode 0600 from a cryptographic random source.
  static absl::StatusOr<std::unique_ptr<SecretBox>> LoadOrCreate(const std::string& path);
  // For tests: a box over a given key.
  static absl::StatusOr<std::unique_ptr<SecretBox>> FromKey(absl::string_view key);

  // Encrypts and authenticates `plaintext`. The result is binary:
  // version byte, 12-byte nonce, ciphertext, 16-byte tag.
  absl::StatusOr<std::string> Seal(absl::string_view plaintext) const;
  // Reverses Seal. DATA_LOSS when the data was tampered with or the key differs.
  absl::StatusOr<std::string> Open(absl::string_view sealed) const;

 private:
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

}  // namespace exportd::crypto

#endif  // EXPORTD_SERVER_CRYPTO_SECRET_BOX_H_
