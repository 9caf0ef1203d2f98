// The checks of an export's segments and mappings that need no store, in
// time linear in the number of mappings and the sizes of the segments'
// schemas. ExportService::Validate calls them in this order:
//
//   EXPORTD_RETURN_IF_ERROR(CheckExportShape(e));            // before any lookup
//   ... resolve e.segments() to `segments` ...
//   EXPORTD_RETURN_IF_ERROR(CheckMappedProfileFields(e, segments));
//
// Every error is INVALID_ARGUMENT and starts with "export '<name>': ".
#ifndef EXPORTD_SERVER_API_EXPORT_VALIDATION_H_
#define EXPORTD_SERVER_API_EXPORT_VALIDATION_H_

#include <vector>

#include "absl/status/status.h"
#include "exportd/v1/export.pb.h"
#include "exportd/v1/segment.pb.h"

namespace exportd::api {

// At most kMaxSegmentsPerExport segments and kMaxMappingsPerExport mappings;
// every non-empty mapping field a valid name (ValidateName); no destination
// field mapped twice.
absl::Status CheckExportShape(const v1::Export& e);

// Every mapping's profile field is a field of every one of `segments`. The
// error names the mapping, the profile field and the segment, and lists the
// segment's fields (the first kMaxNamesListed, then "… and N more").
absl::Status CheckMappedProfileFields(const v1::Export& e,
                                      const std::vector<v1::Segment>& segments);

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_EXPORT_VALIDATION_H_
