#include "audience_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

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

}  // namespace

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
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return members;
    return absl::InternalError(absl::StrCat("cannot read '", path.string(), "'"));
  }
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    nlohmann::json object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    auto id = object.is_object() ? object.find("id") : object.end();
    if (!object.is_object() || id == object.end() || !id->is_string()) {
      return absl::DataLossError(absl::StrCat("'", path.string(), "' line ", number,
                                              " is not a JSON object with a string \"id\"; "
                                              "fix or remove that line"));
    }
    members.Put(id->get<std::string>(), line);
  }
  return members;
}

absl::Status WriteMembers(const std::filesystem::path& path, const Members& members, bool fsync) {
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path tmp =
      path.parent_path() /
      absl::StrCat(".", path.filename().string(), ".tmp.", ::getpid(), ".", counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create '", tmp.string(), "': ", ErrnoMessage(errno)));
  }
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
