#include "server/common/private_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace exportd {

absl::Status CheckPrivateFile(const std::string& path, absl::string_view what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat(what, " '", path, "' does not exist"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(what, " '", path, "' cannot be read: ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " '", path, "' is not a regular file; give the path of a file"));
  }
  const mode_t open_bits = st.st_mode & (S_IRWXG | S_IRWXO);
  if (open_bits == 0) return absl::OkStatus();
  std::string access;
  if (open_bits & (S_IRGRP | S_IROTH)) access = "readable";
  if (open_bits & (S_IWGRP | S_IWOTH))
    absl::StrAppend(&access, access.empty() ? "" : " and ", "writable");
  if (access.empty()) access = "executable";
  return absl::FailedPreconditionError(
      absl::StrFormat("%s '%s' is %s by group or others (mode %04o); run 'chmod 600 %s'", what,
                      path, access, st.st_mode & 07777, path));
}

}  // namespace exportd
