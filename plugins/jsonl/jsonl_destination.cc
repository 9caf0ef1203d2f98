#include "jsonl_destination.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "jsonl_connection.h"
#include "record_json.h"

namespace exportd::jsonl {
namespace {

class JsonlDestination final : public sdk::Destination {
 public:
  const sdk::Manifest& manifest() const override { return manifest_; }

  absl::Status ValidateSettings(const sdk::Settings& settings) const override {
    auto it = settings.find("directory");
    if (it == settings.end() || it->second.empty()) {
      return absl::InvalidArgumentError("setting 'directory' is required");
    }
    if (!std::filesystem::path(it->second).is_absolute()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "setting 'directory': '", it->second, "' is not an absolute path; use a full path"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<sdk::Connection>> Connect(
      const sdk::Settings& settings) override {
    absl::Status valid = ValidateSettings(settings);
    if (!valid.ok()) return valid;
    auto fsync = settings.find("fsync");
    return std::make_unique<JsonlConnection>(settings.at("directory"),
                                             fsync != settings.end() && fsync->second == "true",
                                             manifest_.speed);
  }

 private:
  const sdk::Manifest manifest_ = JsonlManifest();
};

}  // namespace

sdk::Manifest JsonlManifest() {
  sdk::Manifest m;
  m.name = "jsonl";
  m.display_name = "JSON Lines files";
  m.version = "1.0.0";
  m.description =
      "Writes each segment to <directory>/<segment>.jsonl, one JSON object per member "
      "with the profile id under \"id\" and the mapped fields.";
  sdk::SettingSpec directory;
  directory.name = "directory";
  directory.display_name = "Directory";
  directory.description = "Absolute path of an existing directory that exportd can write.";
  directory.required = true;
  sdk::SettingSpec fsync;
  fsync.name = "fsync";
  fsync.display_name = "Flush to disk";
  fsync.description = "Flush every write to disk before reporting it delivered.";
  fsync.type = sdk::SettingType::kBool;
  fsync.default_value = "false";
  m.settings = {directory, fsync};
  m.allows_extra_fields = true;  // Any field name becomes a JSON key.
  m.reserved_fields = {kIdField};
  m.supports_removal = true;
  // Change the version with any change in substance: connections record the
  // version they accepted.
  m.privacy_statement =
      "This connection writes the profile data of the segments you export over it (the "
      "profile id and the profile fields each export maps, such as email addresses and names) "
      "as plain, unencrypted text to files named <segment>.jsonl in the connection's directory, "
      "on the host that runs exportd. The data does not leave that host unless something else "
      "copies it.\n\n"
      "Anyone who can read that directory can read the data: other users and programs on the "
      "host, its backups, and whoever the directory is shared with (a network file system, a "
      "synchronised folder). Choose a directory that only the people and programs entitled to "
      "this data can read. Deleting the connection or an export stops further writes but does "
      "not delete the files; delete them when they are no longer needed.\n\n"
      "You confirm that you are authorised to store this data there, and that doing so complies "
      "with your organisation's data protection and compliance rules (for example the GDPR).";
  m.privacy_statement_version = "2026-12-01";
  m.speed.max_records_per_batch = 10000;
  m.speed.max_bytes_per_batch = 64'000'000;
  m.speed.max_parallel_batches = 1;  // One file per segment, rewritten per batch.
  return m;
}

absl::StatusOr<std::unique_ptr<sdk::Destination>> CreateJsonlDestination() {
  return std::make_unique<JsonlDestination>();
}

}  // namespace exportd::jsonl
