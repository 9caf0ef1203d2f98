#include "audience_file.h"

#include <atomic>

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace exportd::jsonl {
namespace {

constexpr std::size_t kMaxFileName = 255;
constexpr std::string_view kSuffix = ".jsonl";

std::string ErrnoMessage(int err) { return std::strerror(err); }

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("cannot write '", path, "': ", ErrnoMessage(errno)));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open directory '", dir.string(), "': ", ErrnoMessage(errno)));
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot fsync directory '", dir.string(), "': ", ErrnoMessage(err)));
  }
  return absl::OkStatus();
}

absl::Status SymlinkRefused(const std::filesystem::path& path) {
  return absl::FailedPreconditionError(
      absl::StrCat("'", path.string(),
                   "' is a symbolic link; the jsonl destination never writes through links: "
                   "remove it (exportd then writes a regular file there)"));
}

absl::Status NotARegularFile(const std::filesystem::path& path) {
  return absl::FailedPreconditionError(absl::StrCat(
      "'", path.string(), "' is not a regular file; remove it or choose another directory"));
}

// Refuses a `path` that is a symbolic link or anything but a regular file;
// a missing `path` is fine.
absl::Status CheckWritableTarget(const std::filesystem::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot inspect '", path.string(), "': ", ErrnoMessage(errno)));
  }
  if (S_ISLNK(st.st_mode)) return SymlinkRefused(path);
  if (!S_ISREG(st.st_mode)) return NotARegularFile(path);
  return absl::OkStatus();
}

// Reads the lines of the open file `fd` (named `path` in messages) into
// `members`, a buffer at a time.
absl::Status ParseMembers(int fd, const std::filesystem::path& path, Members& members) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot inspect '", path.string(), "': ", ErrnoMessage(errno)));
  }
  if (!S_ISREG(st.st_mode)) return NotARegularFile(path);
  int number = 0;
  auto parse = [&](std::string_view line) -> absl::Status {
    ++number;
    if (line.empty()) return absl::OkStatus();
    nlohmann::json object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    auto id = object.is_object() ? object.find("id") : object.end();
    if (!object.is_object() || id == object.end() || !id->is_string()) {
      return absl::DataLossError(absl::StrCat("'", path.string(), "' line ", number,
                                              " is not a JSON object with a string \"id\"; "
                                              "fix or remove that line"));
    }
    members.Put(id->get<std::string>(), std::string(line));
    return absl::OkStatus();
  };
  std::string pending;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(
          absl::StrCat("cannot read '", path.string(), "': ", ErrnoMessage(errno)));
    }
    if (n == 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
      absl::Status parsed = parse(std::string_view(pending).substr(start, end - start));
      if (!parsed.ok()) return parsed;
    }
    pending.erase(0, start);
  }
  return pending.empty() ? absl::OkStatus() : parse(pending);
}

}  // namespace

namespace internal {

absl::StatusOr<std::filesystem::path> TemporaryPath(const std::filesystem::path& path) {
  unsigned char random[8];
  std::size_t got = 0;
  while (got < sizeof(random)) {
    ssize_t n = ::getrandom(random + got, sizeof(random) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(
          absl::StrCat("cannot draw random bytes for a temporary name: ", ErrnoMessage(errno)));
    }
    got += static_cast<std::size_t>(n);
  }
  std::string suffix;
  for (unsigned char c : random) suffix += absl::StrFormat("%02x", c);
  return path.parent_path() / absl::StrCat(".", path.filename().string(), ".tmp.", suffix);
}

absl::StatusOr<int> CreateExclusive(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create '", path.string(),
                       "': something already exists there (a file or link planted under a "
                       "temporary name); it is left alone, check who writes to that directory"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create '", path.string(), "': ", ErrnoMessage(err)));
  }
  return fd;
}

}  // namespace internal

absl::StatusOr<std::string> AudienceFileName(std::string_view segment_name) {
  if (segment_name.empty()) {
    return absl::InvalidArgumentError("the segment name is empty; a segment needs a name");
  }
  std::string out;
  for (std::size_t i = 0; i < segment_name.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(segment_name[i]);
    const bool escape = c == '/' || c == '\\' || c == '%' || c < 0x20 || c == 0x7f ||
                        (i == 0 && c == '.');
    if (escape) {
      out += absl::StrFormat("%%%02X", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += kSuffix;
  if (out.size() > kMaxFileName) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment name '", std::string(segment_name), "' is too long for a file name (", out.size(),
                     " bytes once escaped, at most ", kMaxFileName, ")"));
  }
  return out;
}

bool IsAudienceFileName(std::string_view id) {
  if (id.size() <= kSuffix.size() || id.size() > kMaxFileName) return false;
  if (id.substr(id.size() - kSuffix.size()) != kSuffix) return false;
  if (id.front() == '.') return false;
  for (char c : id) {
    if (c == '/' || c == '\\' || c == '\0') return false;
  }
  return true;
}

void Members::Put(const std::string& id, std::string line) {
  auto it = index_.find(id);
  if (it != index_.end()) {
    entries_[it->second].second = std::move(line);
    return;
  }
  index_.emplace(id, entries_.size());
  entries_.emplace_back(id, std::move(line));
}

bool Members::Erase(const std::string& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  entries_[it->second].first.clear();
  entries_[it->second].second.clear();
  index_.erase(it);
  return true;
}

const std::string* Members::Find(const std::string& id) const {
  auto it = index_.find(id);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

std::vector<const std::string*> Members::Lines() const {
  std::vector<const std::string*> lines;
  lines.reserve(index_.size());
  for (const auto& [id, line] : entries_) {
    if (!id.empty()) lines.push_back(&line);
  }
  return lines;
}

absl::StatusOr<Members> ReadMembers(const std::filesystem::path& path) {
  Members members;
  // O_NONBLOCK: a FIFO planted at `path` must not block the open.
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return members;
    if (errno == ELOOP) return SymlinkRefused(path);
    return absl::InternalError(
        absl::StrCat("cannot read '", path.string(), "': ", ErrnoMessage(errno)));
  }
  absl::Status status = ParseMembers(fd, path, members);
  ::close(fd);
  if (!status.ok()) return status;
  return members;
}

namespace {
std::atomic<std::int64_t> audience_file_writes{0};
}  // namespace

std::int64_t AudienceFileWrites() { return audience_file_writes.load(std::memory_order_relaxed); }

absl::Status WriteMembers(const std::filesystem::path& path, const Members& members, bool fsync) {
  // rename() would replace a link rather than follow it, but a link here
  // was not made by this destination: refuse it instead of removing it.
  absl::Status target = CheckWritableTarget(path);
  if (!target.ok()) return target;
  audience_file_writes.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<std::filesystem::path> tmp_path = internal::TemporaryPath(path);
  if (!tmp_path.ok()) return tmp_path.status();
  const std::filesystem::path& tmp = *tmp_path;
  absl::StatusOr<int> created = internal::CreateExclusive(tmp);
  if (!created.ok()) return created.status();
  const int fd = *created;
  std::string data;
  for (const std::string* line : members.Lines()) {
    data += *line;
    data += '\n';
  }
  absl::Status status = WriteAll(fd, data, tmp.string());
  if (status.ok() && fsync && ::fsync(fd) != 0) {
    status = absl::InternalError(absl::StrCat("cannot fsync '", tmp.string(), "': ",
                                              ErrnoMessage(errno)));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = absl::InternalError(absl::StrCat("cannot close '", tmp.string(), "': ",
                                              ErrnoMessage(errno)));
  }
  std::error_code ec;
  if (status.ok()) {
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
      status = absl::InternalError(absl::StrCat("cannot rename '", tmp.string(), "' to '",
                                                path.string(), "': ", ec.message()));
    }
  }
  if (!status.ok()) {
    std::filesystem::remove(tmp, ec);
    return status;
  }
  if (fsync) return SyncDirectory(path.parent_path());
  return absl::OkStatus();
}

absl::Mutex& FileLock(const std::filesystem::path& path) {
  static absl::Mutex registry_mu;
  // An object, not a leaked `new`: the host unloads the plugin at shutdown,
  // and its destructor then frees the map (a leaked pointer would vanish
  // with the library's memory, and the map with it stay allocated).
  static std::map<std::string, std::unique_ptr<absl::Mutex>> locks;
  absl::MutexLock lock(&registry_mu);
  std::unique_ptr<absl::Mutex>& mu = locks[path.lexically_normal().string()];
  if (mu == nullptr) mu = std::make_unique<absl::Mutex>();
  return *mu;
}

}  // namespace exportd::jsonl
