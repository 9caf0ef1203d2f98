#include "server/sync/mapping.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/sync/record_codec.h"

namespace exportd::sync {
namespace {

std::string ListFields(const v1::Segment& segment) {
  const auto& schema = segment.schema();
  if (schema.empty()) return "none";
  std::string list;
  const int shown = std::min(schema.size(), kMaxFieldsListed);
  for (int i = 0; i < shown; ++i) absl::StrAppend(&list, i == 0 ? "" : ", ", schema[i].name());
  if (schema.size() > shown) absl::StrAppend(&list, ", \u2026 and ", schema.size() - shown, " more");
  return list;
}

}  // namespace

absl::StatusOr<Mapping> ResolveMapping(const v1::Export& e, const v1::Segment& segment,
                                       absl::string_view identifier_field) {
  absl::flat_hash_map<absl::string_view, int> column_of;
  column_of.reserve(segment.schema_size());
  for (int i = 0; i < segment.schema_size(); ++i) {
    column_of[segment.schema(i).name()] = i;  // The last of a name, as the schema has it.
  }
  Mapping out;
  for (const v1::FieldMapping& m : e.mappings()) {
    auto it = column_of.find(m.profile_field());
    if (it == column_of.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "mapping '", m.destination_field(), "' names profile field '", m.profile_field(),
          "', which segment '", segment.name(), "' does not have (fields: ", ListFields(segment),
          ")"));
    }
    if (out.identifier < 0 && !identifier_field.empty() &&
        m.destination_field() == identifier_field) {
      out.identifier = static_cast<int>(out.columns.size());
    }
    out.columns.push_back(it->second);
    out.fields.push_back({m.destination_field(), ToSdkType(segment.schema(it->second).type())});
  }
  return out;
}

std::uint64_t MappingFingerprint(const v1::Export& e, const v1::Segment& segment) {
  std::string text;
  for (const auto& m : e.mappings()) {
    absl::StrAppend(&text, m.destination_field(), "\x1f", m.profile_field(), "\x1e");
    for (const auto& f : segment.schema()) {
      if (f.name() == m.profile_field()) absl::StrAppend(&text, f.type(), "\x1d");
    }
  }
  return HashValues(text);
}

std::uint64_t DeliveryFingerprint(const v1::Export& e, const v1::Segment& segment,
                                  absl::string_view keyed_by) {
  const std::uint64_t mapping = MappingFingerprint(e, segment) >> 32;
  const std::uint64_t keying = StableHash64(keyed_by) & 0xffffffffu;
  return (mapping << 32) | keying;
}

DeliveryChange CompareDelivery(std::uint64_t stored, const v1::Export& e,
                               const v1::Segment& segment, absl::string_view keyed_by) {
  DeliveryChange change;
  if (stored == MappingFingerprint(e, segment)) return change;  // Kept by an older exportd.
  const std::uint64_t now = DeliveryFingerprint(e, segment, keyed_by);
  change.mapping = (stored >> 32) != (now >> 32);
  change.keying = (stored & 0xffffffffu) != (now & 0xffffffffu);
  return change;
}

std::uint64_t IdentHash(absl::string_view canonical) {
  std::uint64_t h = StableHash64(canonical);
  return h == 0 ? 1 : h;
}

std::string IdentifierText(const store::ValueView& v) {
  switch (v.kind) {
    case v1::Value::kStringValue: return std::string(v.string_value);
    case v1::Value::kIntValue: return absl::StrCat(v.int_value);
    default: return std::string();
  }
}

std::string IdentifierText(const sdk::Value& v) {
  if (v.is_null) return std::string();
  switch (v.type) {
    case sdk::FieldType::kString: return v.s;
    case sdk::FieldType::kInt: return absl::StrCat(v.i);
    default: return std::string();
  }
}

}  // namespace exportd::sync
