// Generic checks the core runs against a destination's manifest, so that it
// validates connections and exports without knowing any plugin by name.
//
//   absl::StatusOr<exportd::sdk::Settings> resolved =
//       ResolveSettings(manifest, {{"region", "eu"}}, {{"api_key", key}});
//   absl::Status mapped = ValidateMappings(manifest, {{"email", "Mail"}});
//
// Every error is INVALID_ARGUMENT and says which input is wrong and how to fix
// it. A secret's value never appears in a message.
#ifndef EXPORTD_SERVER_DESTINATIONS_VALIDATION_H_
#define EXPORTD_SERVER_DESTINATIONS_VALIDATION_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "exportd/sdk/destination.h"

namespace exportd::destinations {

// Checks that `value` is a valid value for `spec`: ints and doubles parse,
// bools are "true" or "false", enum values are allowed. The message names the
// setting, the value (unless the setting is secret) and what is expected.
absl::Status CheckSettingValue(const sdk::SettingSpec& spec, const std::string& value);

// Resolves a connection's settings: plain settings come in `settings`, secret
// ones in `secrets`. Refuses unknown names (listing the known ones), a setting
// passed in the wrong map, a missing or empty required setting and values of
// the wrong type; fills in defaults. Returns every setting in one map, as
// plugins receive them.
absl::StatusOr<sdk::Settings> ResolveSettings(const sdk::Manifest& manifest,
                                              const std::map<std::string, std::string>& settings,
                                              const std::map<std::string, std::string>& secrets);

// Checks an export's mappings, given as (destination field, profile field)
// pairs: names non-empty, every required mapping field mapped, no destination
// field mapped twice or reserved, and no field beyond the manifest's unless it
// allows extra fields. Whether the profile fields exist is checked elsewhere.
absl::Status ValidateMappings(const sdk::Manifest& manifest,
                              const std::vector<std::pair<std::string, std::string>>& mappings);

// A connection's non-secret settings with the manifest's defaults filled in,
// as Destination::ValidateMapping gets them when an export is saved.
sdk::Settings SettingsWithDefaults(const sdk::Manifest& manifest,
                                   const std::map<std::string, std::string>& settings);

// Checks an export's mappings against its connection's settings: the generic
// checks (ValidateMappings) first, then the destination's own
// (Destination::ValidateMapping). Returns the destination field that keys
// members (empty: none) and how members are keyed (`keyed_by`, the
// identifier field when the destination leaves it empty). INTERNAL when the
// destination names a field that is not a mapped identifier field of its
// manifest.
absl::StatusOr<sdk::MappingCheck> ValidateMappingsFor(
    const sdk::Destination& destination, const sdk::Settings& settings,
    const std::vector<std::pair<std::string, std::string>>& mappings);

}  // namespace exportd::destinations

#endif  // EXPORTD_SERVER_DESTINATIONS_VALIDATION_H_
