// Temporary files of exportd's external sorts (an upload being sorted, a
// snapshot sorted for a run): where they go, how they are created, and what
// a failure says. Each file is unlinked as soon as it is created, so nothing
// outlives the process that made it, whatever happens to it.
//
//   const std::string dir = TempDirectory(options.temp_dir);
//   EXPORTD_ASSIGN_OR_RETURN(int fd, OpenUnlinkedTempFile(dir, "exportd-upload-sort", what));
#ifndef EXPORTD_SERVER_STORE_TEMP_FILE_H_
#define EXPORTD_SERVER_STORE_TEMP_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace exportd::store {

// What a temporary file is for, for error messages, e.g. {"sorting the
// upload's rows", "the upload", "upload again"}.
struct TempFilePurpose {
  absl::string_view doing;  // "sorting the upload's rows"
  absl::string_view room;   // what needs room there: "the upload"
  absl::string_view retry;  // what the user does after fixing it: "upload again"
};

// `preferred` when set, else $TMPDIR when set, else /tmp.
std::string TempDirectory(absl::string_view preferred = {});

// Creates a file named `name`.XXXXXX in `dir` and unlinks it at once;
// returns its descriptor (the caller closes it).
absl::StatusOr<int> OpenUnlinkedTempFile(const std::string& dir, absl::string_view name,
                                         const TempFilePurpose& purpose);

// The error for a temporary file in `dir` that could not be `what` ("create",
// "write", "read") with errno `error`: RESOURCE_EXHAUSTED when the disk is
// full (free space or point TMPDIR elsewhere), UNAVAILABLE otherwise.
absl::Status TempFileError(const TempFilePurpose& purpose, const std::string& dir,
                           absl::string_view what, int error);

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_TEMP_FILE_H_
