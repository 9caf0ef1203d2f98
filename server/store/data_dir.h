// The data directory of the embedded store holds personal data (segment
// members) and the sealed secrets: it is created private, checked, and
// locked so that one exportd at a time uses it.
//
//   EXPORTD_ASSIGN_OR_RETURN(std::string warning, PrepareDataDir(dir));
//   if (!warning.empty()) std::cerr << "exportd: warning: " << warning << "\n";
//   EXPORTD_ASSIGN_OR_RETURN(auto lock, DataDirLock::Acquire(dir));
//   ... open the store; keep `lock` for as long as the store is in use ...
#ifndef EXPORTD_SERVER_STORE_DATA_DIR_H_
#define EXPORTD_SERVER_STORE_DATA_DIR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace exportd::store {

// Creates `dir` (and missing parents) when it does not exist, `dir` itself
// with mode 0700 whatever the umask. Returns a warning for the operator
// (empty when there is none): an existing `dir` that group or others may
// enter or read is used, and the warning names it and the chmod to run.
// FAILED_PRECONDITION when `dir` cannot be created or is not a directory.
absl::StatusOr<std::string> PrepareDataDir(const std::string& dir);

// An exclusive advisory lock (flock) on `<dir>/exportd.lock`, which holds
// the pid of the exportd that has it. Held until the object is destroyed
// (or the process ends, however it ends); the file itself stays.
class DataDirLock {
 public:
  // The lock file's name inside the data directory.
  static constexpr char kFileName[] = "exportd.lock";

  // Takes the lock, or FAILED_PRECONDITION naming `dir` and the pid of the
  // exportd holding it. flock locks belong to an open file, so a second
  // Acquire in the same process fails too.
  static absl::StatusOr<std::unique_ptr<DataDirLock>> Acquire(const std::string& dir);
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_DATA_DIR_H_
