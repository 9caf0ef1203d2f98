#include "server/store/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace exportd::store {
namespace {

absl::Status CannotCreate(const std::string& dir, const std::string& why) {
  return absl::FailedPreconditionError(
      absl::StrCat("--data-dir '", dir, "' cannot be created: ", why));
}

// Creates `dir` itself with mode 0700: mkdir applies the umask, which may
// take the owner's bits too, so the mode is set again.
absl::Status CreatePrivateDirectory(const std::string& dir) {
  // "a/b/" names "a/b": its parent is "a".
  std::string target = dir;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  std::filesystem::path parent = std::filesystem::path(target).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return CannotCreate(dir, ec.message());
  if (::mkdir(target.c_str(), 0700) != 0) {
    if (errno == EEXIST) return absl::OkStatus();  // Created meanwhile; checked by the caller.
    return CannotCreate(dir, std::strerror(errno));
  }
  if (::chmod(target.c_str(), 0700) != 0) return CannotCreate(dir, std::strerror(errno));
  return absl::OkStatus();
}

// The pid written in a lock file, or "unknown".
std::string HolderPid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  std::int64_t pid = 0;
  if (n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buf, n)), &pid) &&
      pid > 0) {
    return absl::StrCat(pid);
  }
  return "unknown";
}

}  // namespace

absl::StatusOr<std::string> PrepareDataDir(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return absl::FailedPreconditionError(
          absl::StrCat("--data-dir '", dir, "' cannot be used: ", std::strerror(errno)));
    }
    absl::Status created = CreatePrivateDirectory(dir);
    if (!created.ok()) return created;
    if (::stat(dir.c_str(), &st) != 0) return CannotCreate(dir, std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data-dir '", dir, "' is not a directory; pass a directory"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::StrFormat(
        "data directory '%s' is open to group or others (mode %04o), and it holds personal "
        "data and secrets; run 'chmod 700 %s'",
        dir, st.st_mode & 07777, dir);
  }
  return std::string();
}

absl::StatusOr<std::unique_ptr<DataDirLock>> DataDirLock::Acquire(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kFileName);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open lock file '", path, "' in --data-dir: ", std::strerror(errno)));
  }
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    std::string holder = err == EWOULDBLOCK ? HolderPid(fd) : "";
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("data directory '", dir, "' is in use by another exportd (pid ", holder,
                       "); stop it or use another --data-dir"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot lock '", path, "': ", std::strerror(err)));
  }
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    int err = errno;
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write lock file '", path, "': ", std::strerror(err)));
  }
  return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
}

DataDirLock::~DataDirLock() { ::close(fd_); }

}  // namespace exportd::store
