// Seals a connection's map of secret settings into one opaque blob and back.
//
// The blob is bound to its connection: the connection id is the AES-GCM
// additional authenticated data, and the setting names travel inside the
// authenticated plaintext, so a blob copied to another connection's row does
// not open, and a value cannot be moved from one setting to another.
//
//   EXPORTD_ASSIGN_OR_RETURN(std::string sealed, SealMap(box, "conn-1", {{"api_key", "k"}}));
//   EXPORTD_ASSIGN_OR_RETURN(SecretMap secrets, OpenMap(box, "conn-1", sealed));
#ifndef EXPORTD_SERVER_CRYPTO_SECRET_MAP_H_
#define EXPORTD_SERVER_CRYPTO_SECRET_MAP_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/crypto/secret_box.h"

namespace exportd::crypto {

using SecretMap = std::map<std::string, std::string>;

// Seals `secrets` for the connection `connection_id` (always in the bound
// format).
absl::StatusOr<std::string> SealMap(const SecretBox& box, absl::string_view connection_id,
                                    const SecretMap& secrets);
// Opens what SealMap sealed for `connection_id`; an empty blob is an empty
// map. Blobs sealed before secrets were bound (SecretBox::kUnboundFormat)
// still open; SealMap writes them bound the next time they are saved.
// DATA_LOSS naming the connection id when the blob does not open.
absl::StatusOr<SecretMap> OpenMap(const SecretBox& box, absl::string_view connection_id,
                                  const std::string& sealed);

}  // namespace exportd::crypto

#endif  // EXPORTD_SERVER_CRYPTO_SECRET_MAP_H_
