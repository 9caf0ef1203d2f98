// One audience of the JSON Lines destination: the file
// `<directory>/<escaped segment name>.jsonl`, one JSON object per member:
//
//   {"id":"p1","email":"a@example.com","age":42}
//
// The file is the state. Changes are written to a temporary file in the same
// directory and renamed over the old one, so readers see either the old or the
// new content, and a crash never leaves a half-written file. Writes to one
// file are serialized within the process. Files are private (mode 0600): they
// hold personal data. Links are never followed.
#ifndef EXPORTD_PLUGINS_JSONL_AUDIENCE_FILE_H_
#define EXPORTD_PLUGINS_JSONL_AUDIENCE_FILE_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace exportd::jsonl {

// The file name for a segment: the name with '/', '\\', '%' and control
// characters percent-encoded (a leading '.' too, so "." and ".." and hidden
// files cannot happen), plus ".jsonl". "VIP/EU" -> "VIP%2FEU.jsonl".
// INVALID_ARGUMENT for an empty name or one too long for a file name.
absl::StatusOr<std::string> AudienceFileName(std::string_view segment_name);

// Whether `id` (a remembered audience id) is a plain file name this
// destination could have produced: no separator, not "." or "..", ".jsonl".
bool IsAudienceFileName(std::string_view id);

// The members of one file, in file order, keyed by profile id. Each value is
// the member's serialized JSON line (without the newline).
class Members {
 public:
  // Adds or replaces the member `id`, keeping its position when it exists.
  void Put(const std::string& id, std::string line);
  // Removes the member `id`; false when it was absent.
  bool Erase(const std::string& id);
  std::size_t size() const { return index_.size(); }
  const std::string* Find(const std::string& id) const;
  // The lines in file order.
  std::vector<const std::string*> Lines() const;

 private:
  std::vector<std::pair<std::string, std::string>> entries_;  // Erased: id empty.
  std::map<std::string, std::size_t> index_;
};

// Reads `path` (a missing file is an empty audience). DATA_LOSS naming the
// file and line for a line that is not a JSON object with a string "id";
// FAILED_PRECONDITION naming it when it is a symbolic link (never followed)
// or not a regular file.
absl::StatusOr<Members> ReadMembers(const std::filesystem::path& path);

// Replaces `path` atomically with `members`: a new temporary file (mode
// 0600, an unpredictable name in the same directory, created with O_EXCL |
// O_NOFOLLOW so that nothing planted there is opened) renamed over `path`.
// With `fsync`, flushes the file and the directory before returning.
// FAILED_PRECONDITION naming the path when `path` is a symbolic link or not
// a regular file, or something exists at the temporary name.
absl::Status WriteMembers(const std::filesystem::path& path, const Members& members, bool fsync);

// How many times this process started writing an audience file (WriteMembers
// past its checks): the jsonl destination's "requests", one per Upsert or
// Remove call. For tests and diagnostics.
std::int64_t AudienceFileWrites();

namespace internal {
// The temporary file WriteMembers writes for `path`: in the same directory,
// ".<file name>.tmp." and 16 hex digits from the kernel's random source.
absl::StatusOr<std::filesystem::path> TemporaryPath(const std::filesystem::path& path);
// Opens a new file at `path` for writing (mode 0600); refuses to open
// anything that exists there, a symbolic link included.
absl::StatusOr<int> CreateExclusive(const std::filesystem::path& path);
}  // namespace internal

// A process-wide lock for one file path, so that connections writing the same
// file do not lose each other's changes.
absl::Mutex& FileLock(const std::filesystem::path& path);

}  // namespace exportd::jsonl

#endif  // EXPORTD_PLUGINS_JSONL_AUDIENCE_FILE_H_
