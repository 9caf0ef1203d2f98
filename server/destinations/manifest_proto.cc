#include "manifest_proto.h"

namespace exportd::destinations {
namespace {

exportd::v1::SettingSpec::Type ToProto(sdk::SettingType type) {
  switch (type) {
    case sdk::SettingType::kString:
      return exportd::v1::SettingSpec::TYPE_STRING;
    case sdk::SettingType::kInt:
      return exportd::v1::SettingSpec::TYPE_INT;
    case sdk::SettingType::kDouble:
      return exportd::v1::SettingSpec::TYPE_DOUBLE;
    case sdk::SettingType::kBool:
      return exportd::v1::SettingSpec::TYPE_BOOL;
    case sdk::SettingType::kEnum:
      return exportd::v1::SettingSpec::TYPE_ENUM;
  }
  return exportd::v1::SettingSpec::TYPE_UNSPECIFIED;
}

}  // namespace

void ManifestToProto(const sdk::Manifest& m, const std::string& library_path,
                     exportd::v1::Destination* out) {
  out->Clear();
  out->set_name(m.name);
  out->set_display_name(m.display_name);
  out->set_version(m.version);
  out->set_description(m.description);
  for (const sdk::SettingSpec& s : m.settings) {
    exportd::v1::SettingSpec* spec = out->add_settings();
    spec->set_name(s.name);
    spec->set_display_name(s.display_name);
    spec->set_description(s.description);
    spec->set_type(ToProto(s.type));
    spec->set_required(s.required);
    spec->set_secret(s.secret);
    for (const std::string& v : s.allowed_values) spec->add_allowed_values(v);
    spec->set_default_value(s.default_value);
  }
  for (const sdk::MappingFieldSpec& f : m.mapping_fields) {
    exportd::v1::MappingFieldSpec* field = out->add_mapping_fields();
    field->set_name(f.name);
    field->set_description(f.description);
    field->set_required(f.required);
    field->set_identifier(f.identifier);
  }
  out->set_allows_extra_fields(m.allows_extra_fields);
  for (const std::string& r : m.reserved_fields) out->add_reserved_fields(r);
  out->set_supports_removal(m.supports_removal);
  exportd::v1::SyncSpeed* speed = out->mutable_speed();
  speed->set_max_records_per_batch(m.speed.max_records_per_batch);
  speed->set_max_bytes_per_batch(m.speed.max_bytes_per_batch);
  speed->set_max_parallel_batches(m.speed.max_parallel_batches);
  speed->set_records_per_second(m.speed.records_per_second);
  speed->set_requests_per_second(m.speed.requests_per_second);
  out->set_library_path(library_path);
  out->set_privacy_statement(m.privacy_statement);
  out->set_privacy_statement_version(m.privacy_statement_version);
}

}  // namespace exportd::destinations
