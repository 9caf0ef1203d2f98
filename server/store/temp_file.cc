#include "server/store/temp_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace exportd::store {

std::string TempDirectory(absl::string_view preferred) {
  if (!preferred.empty()) return std::string(preferred);
  const char* dir = std::getenv("TMPDIR");
  return dir != nullptr && *dir != '\0' ? dir : "/tmp";
}

absl::StatusOr<int> OpenUnlinkedTempFile(const std::string& dir, absl::string_view name,
                                         const TempFilePurpose& purpose) {
  std::string path = absl::StrCat(dir, "/", name, ".XXXXXX");
  const int fd = mkstemp(path.data());
  if (fd < 0) return TempFileError(purpose, dir, "create", errno);
  unlink(path.c_str());
  return fd;
}

absl::Status TempFileError(const TempFilePurpose& purpose, const std::string& dir,
                           absl::string_view what, int error) {
  const std::string message =
      absl::StrCat(purpose.doing, " could not ", what, " its temporary file in '", dir, "' (",
                   std::strerror(error), "); ");
  if (error == ENOSPC || error == EDQUOT) {
    return absl::ResourceExhaustedError(
        absl::StrCat(message, "free space there, or point TMPDIR at a directory with room for ",
                     purpose.room, ", and ", purpose.retry));
  }
  return absl::UnavailableError(absl::StrCat(
      message, "make sure it exists and is writable (or point TMPDIR elsewhere), and ",
      purpose.retry));
}

}  // namespace exportd::store
