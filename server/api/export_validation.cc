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
#include "server/sync/mapping.h"

namespace exportd::api {
namespace {

absl::Status Invalid(const v1::Export& e, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("export '", e.name(), "': ", problem));
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

static_assert(kMaxNamesListed == sync::kMaxFieldsListed,
              "the mapping resolver lists a segment's fields in its errors");

absl::Status CheckMappedProfileFields(const v1::Export& e,
                                      const std::vector<v1::Segment>& segments) {
  for (const v1::Segment& segment : segments) {
    // The sync resolves the mapping the same way when the export runs.
    auto resolved = sync::ResolveMapping(e, segment, /*identifier_field=*/"");
    if (!resolved.ok()) return Invalid(e, resolved.status().message());
  }
  return absl::OkStatus();
}

}  // namespace exportd::api
