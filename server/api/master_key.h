// The master key that seals the store's secrets, opened at start-up and
// checked against the store, so that a mistyped --master-key-file is refused
// instead of silently creating a new key that opens nothing.
//
// The store keeps the key's check value (SecretBox::CheckValue, never the
// key) and the path of the key file last used with it. A store that has a
// check value gets no new key: the key file must exist and match. A store
// from before check values gets one once every connection's secrets open
// with the key in use.
//
//   EXPORTD_ASSIGN_OR_RETURN(auto box, OpenMasterKey(*store, "/etc/exportd/master.key",
//                                                    "/var/lib/exportd/exportd.db"));
#ifndef EXPORTD_SERVER_API_MASTER_KEY_H_
#define EXPORTD_SERVER_API_MASTER_KEY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/crypto/secret_box.h"
#include "server/store/store.h"

namespace exportd::api {

// The store's meta keys.
inline constexpr char kMasterKeyCheckMeta[] = "master_key_check";
inline constexpr char kMasterKeyPathMeta[] = "master_key_path";

// Loads the key in `key_path`, creating it only when the store holds no
// secrets and no check value yet, and checks it against `store` (described
// as `store_name` in messages). FAILED_PRECONDITION naming the key file when
// it is missing or is not the key the store's secrets were sealed with.
absl::StatusOr<std::unique_ptr<crypto::SecretBox>> OpenMasterKey(store::Store& store,
                                                                 const std::string& key_path,
                                                                 const std::string& store_name);

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_MASTER_KEY_H_
