// Seals a map of secret settings into one opaque blob and back.
#ifndef EXPORTD_SERVER_CRYPTO_SECRET_MAP_H_
#define EXPORTD_SERVER_CRYPTO_SECRET_MAP_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "server/crypto/secret_box.h"

namespace exportd::crypto {

using SecretMap = std::map<std::string, std::string>;

absl::StatusOr<std::string> SealMap(const SecretBox& box, const SecretMap& secrets);
absl::StatusOr<SecretMap> OpenMap(const SecretBox& box, const std::string& sealed);

}  // namespace exportd::crypto

#endif  // EXPORTD_SERVER_CRYPTO_SECRET_MAP_H_
