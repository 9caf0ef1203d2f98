#include "server/api/master_key.h"

#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/destinations/connection_resolver.h"
#include "server/common/private_file.h"
#include "server/common/status_macros.h"

namespace exportd::api {
namespace {

constexpr char kPassTheRightKey[] = "pass the --master-key-file it was created with";

std::string Absolute(const std::string& path) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  return ec ? path : absolute.lexically_normal().string();
}

// A meta value, or empty when it was never put.
absl::StatusOr<std::string> GetMetaOrEmpty(store::Store& store, absl::string_view key) {
  auto value = store.GetMeta(key);
  if (absl::IsNotFound(value.status())) return std::string();
  return value;
}

// The connections whose secrets are sealed, each with its sealed blob.
absl::StatusOr<std::vector<store::StoredConnection>> SealedConnections(store::Store& store) {
  EXPORTD_ASSIGN_OR_RETURN(std::vector<store::StoredConnection> listed, store.ListConnections());
  std::vector<store::StoredConnection> sealed;
  for (const store::StoredConnection& c : listed) {
    EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection full, store.GetConnection(c.connection.id()));
    if (!full.sealed_secrets.empty()) sealed.push_back(std::move(full));
  }
  return sealed;
}

// " (it was last started with 'X')" when the store remembers another key file.
std::string LastStartedWith(const std::string& remembered, const std::string& key_path) {
  if (remembered.empty() || remembered == Absolute(key_path)) return "";
  return absl::StrCat(" (it was last started with '", remembered, "')");
}

}  // namespace

absl::StatusOr<std::unique_ptr<crypto::SecretBox>> OpenMasterKey(store::Store& store,
                                                                 const std::string& key_path,
                                                                 const std::string& store_name) {
  EXPORTD_ASSIGN_OR_RETURN(std::string check, GetMetaOrEmpty(store, kMasterKeyCheckMeta));
  EXPORTD_ASSIGN_OR_RETURN(std::string remembered, GetMetaOrEmpty(store, kMasterKeyPathMeta));
  // Only a store from before check values needs its secrets opened here.
  std::vector<store::StoredConnection> sealed;
  if (check.empty()) {
    EXPORTD_ASSIGN_OR_RETURN(sealed, SealedConnections(store));
  }

  // A key others can read opens every secret in the store: refuse it.
  absl::Status is_private = CheckPrivateFile(key_path, "--master-key-file");
  if (!is_private.ok() && !absl::IsNotFound(is_private)) return is_private;
  auto box = crypto::SecretBox::Load(key_path);
  if (absl::IsNotFound(box.status())) {
    if (!check.empty() || !sealed.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "master key file '", key_path, "' does not exist, but database '", store_name,
          "' was sealed with a master key", LastStartedWith(remembered, key_path), "; ",
          kPassTheRightKey, " (a new key would open none of its secrets)"));
    }
    box = crypto::SecretBox::Create(key_path);
  }
  if (!box.ok()) return box.status();

  if (!check.empty()) {
    if (!(*box)->MatchesCheckValue(check)) {
      return absl::FailedPreconditionError(
          absl::StrCat("master key file '", key_path, "' does not match database '", store_name,
                       "': the database was sealed with another master key",
                       LastStartedWith(remembered, key_path), "; ", kPassTheRightKey));
    }
  } else {
    for (const store::StoredConnection& c : sealed) {
      if (!destinations::OpenSecrets(c, **box).ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "master key file '", key_path, "' does not open the secrets of connection '",
            c.connection.display_name(), "' in database '", store_name,
            "': they were sealed with another master key; ", kPassTheRightKey));
      }
    }
    EXPORTD_RETURN_IF_ERROR(store.PutMeta(kMasterKeyCheckMeta, (*box)->CheckValue()));
  }
  // Key files move; the message above names the last one that worked.
  const std::string absolute = Absolute(key_path);
  if (remembered != absolute) {
    EXPORTD_RETURN_IF_ERROR(store.PutMeta(kMasterKeyPathMeta, absolute));
  }
  return std::move(*box);
}

}  // namespace exportd::api
