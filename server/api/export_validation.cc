#include "server/api/export_validation.h"

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "server/api/limits.h"
#include "server/api/rpc_support.h"
#include "server/common/status_macros.h"

namespace exportd::api {
namespace {

absl::Status Invalid(const v1::Export& e, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("export '", e.name(), "': ", problem));
}

// "a, b, c" or "a, b, … and 980 more", at most kMaxNamesListed names.
std::string ListNames(const v1::Segment& segment) {
  const auto& schema = segment.schema();
  if (schema.empty()) return "none";
  std::string list;
  const int shown = std::min(schema.size(), kMaxNamesListed);
  for (int i = 0; i < shown; ++i) {
    absl::StrAppend(&list, i == 0 ? "" : ", ", schema[i].name());
  }
  if (schema.size() > shown)
    absl::StrAppend(&list, ", \u2026 and ", schema.size() - shown, " more");
  return list;
}

}  // namespace

absl::Status CheckExportShape(const v1::Export& e) {
  if (e.segments_size() > kMaxSegmentsPerExport) {
    return Invalid(e, absl::StrCat("it lists ", e.segments_size(), " segments; the limit is ",
                                   kMaxSegmentsPerExport,
                                   " segments per export. Split it into several exports"));
  }
  if (e.mappings_size() > kMaxMappingsPerExport) {
    return Invalid(e, absl::StrCat("it has ", e.mappings_size(), " mappings; the limit is ",
                                   kMaxMappingsPerExport, " mappings per export"));
  }
  // Destination field -> the 1-based number of the mapping that fills it.
  absl::flat_hash_map<absl::string_view, int> mapped;
  mapped.reserve(e.mappings_size());
  for (int i = 0; i < e.mappings_size(); ++i) {
    const v1::FieldMapping& m = e.mappings(i);
    // Empty ones get the destination's own message (destinations::ValidateMappings).
    auto check = [&](absl::string_view what, const std::string& value) -> absl::Status {
      if (value.empty()) return absl::OkStatus();
      absl::Status valid = ValidateName(absl::StrCat("mapping ", i + 1, " ", what), value);
      return valid.ok() ? valid : Invalid(e, valid.message());
    };
    EXPORTD_RETURN_IF_ERROR(check("destination_field", m.destination_field()));
    EXPORTD_RETURN_IF_ERROR(check("profile_field", m.profile_field()));
    if (m.destination_field().empty()) continue;
    auto [it, inserted] = mapped.emplace(m.destination_field(), i + 1);
    if (!inserted) {
      return Invalid(e, absl::StrCat("destination field '", m.destination_field(),
                                     "' is mapped twice (mappings ", it->second, " and ", i + 1,
                                     "); keep one of them"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckMappedProfileFields(const v1::Export& e,
                                      const std::vector<v1::Segment>& segments) {
  for (const v1::Segment& segment : segments) {
    absl::flat_hash_set<absl::string_view> fields;
    fields.reserve(segment.schema_size());
    for (const auto& f : segment.schema()) fields.insert(f.name());
    for (const v1::FieldMapping& m : e.mappings()) {
      if (fields.contains(m.profile_field())) continue;
      return Invalid(e, absl::StrCat("mapping '", m.destination_field(), "' names profile field '",
                                     m.profile_field(), "', which segment '", segment.name(),
                                     "' does not have (fields: ", ListNames(segment), ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace exportd::api
