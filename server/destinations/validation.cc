#include "validation.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace exportd::destinations {
namespace {

const sdk::SettingSpec* FindSetting(const sdk::Manifest& m, const std::string& name) {
  for (const sdk::SettingSpec& s : m.settings) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string KnownSettings(const sdk::Manifest& m, bool secret) {
  std::vector<std::string> names;
  for (const sdk::SettingSpec& s : m.settings) {
    if (s.secret == secret) names.push_back(s.name);
  }
  return names.empty() ? std::string("none") : absl::StrJoin(names, ", ");
}

std::string MapName(bool secret) { return secret ? "secrets" : "settings"; }

std::string TypeName(sdk::SettingType type) {
  switch (type) {
    case sdk::SettingType::kString:
      return "a string";
    case sdk::SettingType::kInt:
      return "an integer";
    case sdk::SettingType::kDouble:
      return "a number";
    case sdk::SettingType::kBool:
      return "true or false";
    case sdk::SettingType::kEnum:
      return "one of the allowed values";
  }
  return "a value";
}

}  // namespace

absl::Status CheckSettingValue(const sdk::SettingSpec& spec, const std::string& value) {
  bool ok = true;
  switch (spec.type) {
    case sdk::SettingType::kString:
      break;
    case sdk::SettingType::kInt: {
      std::int64_t unused;
      ok = absl::SimpleAtoi(value, &unused);
      break;
    }
    case sdk::SettingType::kDouble: {
      double unused;
      ok = absl::SimpleAtod(value, &unused);
      break;
    }
    case sdk::SettingType::kBool:
      ok = value == "true" || value == "false";
      break;
    case sdk::SettingType::kEnum:
      ok = std::find(spec.allowed_values.begin(), spec.allowed_values.end(), value) !=
           spec.allowed_values.end();
      break;
  }
  if (ok) return absl::OkStatus();
  const std::string shown = spec.secret ? std::string("(secret value not shown)")
                                        : absl::StrCat("'", value, "'");
  if (spec.type == sdk::SettingType::kEnum) {
    return absl::InvalidArgumentError(absl::StrCat("setting '", spec.name, "': value ", shown,
                                                   " is not allowed; allowed values: ",
                                                   absl::StrJoin(spec.allowed_values, ", ")));
  }
  return absl::InvalidArgumentError(absl::StrCat("setting '", spec.name, "': value ", shown,
                                                 " is not ", TypeName(spec.type)));
}

absl::StatusOr<sdk::Settings> ResolveSettings(const sdk::Manifest& manifest,
                                              const std::map<std::string, std::string>& settings,
                                              const std::map<std::string, std::string>& secrets) {
  sdk::Settings resolved;
  for (bool secret : {false, true}) {
    for (const auto& [name, value] : secret ? secrets : settings) {
      const sdk::SettingSpec* spec = FindSetting(manifest, name);
      if (spec == nullptr && secret) {
        // Not quoted: a secret's value typed where its name belongs (`--secret
        // s3cr3t=`) would otherwise end up in the answer and the audit trail.
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown secret for destination '", manifest.name,
            "' (known secrets: ", KnownSettings(manifest, true),
            "); its name is not shown, in case a secret value was given in its place"));
      }
      if (spec == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown setting '", name, "' for destination '", manifest.name,
                         "' (known ", MapName(false), ": ", KnownSettings(manifest, false), ")"));
      }
      if (spec->secret != secret) {
        return absl::InvalidArgumentError(absl::StrCat(
            "setting '", name, "' is ", spec->secret ? "secret" : "not secret", ": pass it in ",
            MapName(spec->secret), ", not in ", MapName(secret)));
      }
      absl::Status valid = CheckSettingValue(*spec, value);
      if (!valid.ok()) return valid;
      resolved[name] = value;
    }
  }
  for (const sdk::SettingSpec& spec : manifest.settings) {
    auto it = resolved.find(spec.name);
    if (it == resolved.end() && !spec.default_value.empty()) {
      resolved[spec.name] = spec.default_value;
      continue;
    }
    if (spec.required && (it == resolved.end() || it->second.empty())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "required setting '", spec.name, "' is ", it == resolved.end() ? "missing" : "empty",
          ": pass it in ", MapName(spec.secret)));
    }
  }
  return resolved;
}

absl::Status ValidateMappings(const sdk::Manifest& manifest,
                              const std::vector<std::pair<std::string, std::string>>& mappings) {
  std::map<std::string, std::string> mapped;  // destination field -> profile field
  std::vector<std::string> declared;
  for (const sdk::MappingFieldSpec& f : manifest.mapping_fields) declared.push_back(f.name);
  for (std::size_t i = 0; i < mappings.size(); ++i) {
    const auto& [field, profile_field] = mappings[i];
    if (field.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mapping #", i + 1, " (from profile field '", profile_field,
          "') has an empty destination field; name the destination field it fills"));
    }
    if (profile_field.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("mapping for field '", field,
                       "' names no profile field; pick the profile field that holds it"));
    }
    if (std::find(manifest.reserved_fields.begin(), manifest.reserved_fields.end(), field) !=
        manifest.reserved_fields.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("field '", field, "' is reserved by destination '", manifest.name,
                       "' and cannot be mapped; remove this mapping"));
    }
    if (!manifest.allows_extra_fields &&
        std::find(declared.begin(), declared.end(), field) == declared.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "destination '", manifest.name, "' has no field '", field, "' (fields: ",
          declared.empty() ? std::string("none") : absl::StrJoin(declared, ", "),
          "); map one of those instead"));
    }
    auto [it, inserted] = mapped.emplace(field, profile_field);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "field '", field, "' is mapped twice (from profile fields '", it->second, "' and '",
          profile_field, "'); keep one mapping"));
    }
  }
  for (const sdk::MappingFieldSpec& f : manifest.mapping_fields) {
    if (f.required && mapped.count(f.name) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("mapping for required field '", f.name,
                       "' is missing; map it to the profile field that holds it"));
    }
  }
  return absl::OkStatus();
}

sdk::Settings SettingsWithDefaults(const sdk::Manifest& manifest,
                                   const std::map<std::string, std::string>& settings) {
  sdk::Settings out(settings.begin(), settings.end());
  for (const sdk::SettingSpec& spec : manifest.settings) {
    if (!spec.default_value.empty()) out.emplace(spec.name, spec.default_value);
  }
  return out;
}

absl::StatusOr<sdk::MappingCheck> ValidateMappingsFor(
    const sdk::Destination& destination, const sdk::Settings& settings,
    const std::vector<std::pair<std::string, std::string>>& mappings) {
  const sdk::Manifest& manifest = destination.manifest();
  if (absl::Status generic = ValidateMappings(manifest, mappings); !generic.ok()) return generic;
  std::vector<std::string> fields;
  fields.reserve(mappings.size());
  for (const auto& mapping : mappings) fields.push_back(mapping.first);
  absl::StatusOr<sdk::MappingCheck> check = destination.ValidateMapping(settings, fields);
  if (!check.ok()) return check.status();
  if (check->keyed_by.empty()) check->keyed_by = check->identifier_field;
  const std::string& identifier = check->identifier_field;
  if (identifier.empty()) return *check;
  const bool mapped = std::find(fields.begin(), fields.end(), identifier) != fields.end();
  const bool declared = std::any_of(
      manifest.mapping_fields.begin(), manifest.mapping_fields.end(),
      [&](const sdk::MappingFieldSpec& f) { return f.identifier && f.name == identifier; });
  if (!mapped || !declared) {
    return absl::InternalError(absl::StrCat(
        "destination '", manifest.name, "' named '", identifier,
        "' as the identifier of the mapping, which is not a mapped identifier field of its "
        "manifest; this is a bug in the plugin"));
  }
  return *check;
}

}  // namespace exportd::destinations
