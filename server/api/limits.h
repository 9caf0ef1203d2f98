// The limits exportd puts on what a request may ask for, in one place. Each
// is enforced where the request is validated, with an INVALID_ARGUMENT (or,
// for uploads, DEADLINE_EXCEEDED) that names the limit and the value that
// broke it. docs/install.md ("Limits") lists them for operators.
//
// They keep the work one request can cause bounded: validating an export is
// linear in its mappings and the sizes of its segments' schemas, and no
// upload holds a segment (and the runs waiting for it) forever.
#ifndef EXPORTD_SERVER_API_LIMITS_H_
#define EXPORTD_SERVER_API_LIMITS_H_

#include <cstddef>

#include "absl/time/time.h"
#include "server/api/grpc_status.h"

namespace exportd::api {

// Names of connections, segments, exports, schema fields and mapping fields,
// in characters (Unicode code points of the UTF-8 name), not bytes.
inline constexpr std::size_t kMaxNameCharacters = 256;

// Fields in one segment's schema (Iterable allows 1,000 fields per project).
inline constexpr int kMaxSchemaFields = 1000;

// Mappings (destination field <- profile field) in one export.
inline constexpr int kMaxMappingsPerExport = 1000;

// Segments one export sends.
inline constexpr int kMaxSegmentsPerExport = 100;

// How many names an error message lists (e.g. a segment's fields when a
// mapping names one it does not have) before "… and N more"; the same as the
// mapping resolver's sync::kMaxFieldsListed (checked in export_validation.cc).
inline constexpr int kMaxNamesListed = 20;

// An error message's size as it travels in the gRPC trailer; longer ones are
// cut (server/api/grpc_status.h).
inline constexpr std::size_t kMaxErrorMessageBytes = kMaxStatusMessageBytes;

// An upload that sends nothing for this long is aborted (--upload-idle-timeout).
inline constexpr absl::Duration kDefaultUploadIdleTimeout = absl::Seconds(60);

// An upload that lasts longer than this is aborted (--upload-max-duration).
inline constexpr absl::Duration kDefaultUploadMaxDuration = absl::Hours(1);

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_LIMITS_H_
