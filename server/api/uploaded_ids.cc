#include "server/api/uploaded_ids.h"

#include <algorithm>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <queue>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/sort_hashes.h"
#include "server/common/status_macros.h"

namespace exportd::api {
namespace {

absl::Status SpillError(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(
      "the upload's profile-id check could not ", what, " its temporary file (",
      std::strerror(errno), "); free space in the temporary directory (TMPDIR) and upload again"));
}

// Reads one sorted run back through a small buffer.
class RunCursor {
 public:
  RunCursor(std::FILE* file, long offset, size_t count)
      : file_(file), next_offset_(offset), left_(count) {}

  // False at the end of the run (or on a read error: see status()).
  bool Next(std::uint64_t* out) {
    if (pos_ == buffer_.size()) {
      if (left_ == 0) return false;
      buffer_.resize(std::min<size_t>(left_, 8192));
      if (std::fseek(file_, next_offset_, SEEK_SET) != 0 ||
          std::fread(buffer_.data(), sizeof(std::uint64_t), buffer_.size(), file_) !=
              buffer_.size()) {
        status_ = SpillError("read");
        return false;
      }
      next_offset_ += static_cast<long>(buffer_.size() * sizeof(std::uint64_t));
      left_ -= buffer_.size();
      pos_ = 0;
    }
    *out = buffer_[pos_++];
    return true;
  }
  const absl::Status& status() const { return status_; }

 private:
  std::FILE* file_;
  long next_offset_;
  size_t left_;
  std::vector<std::uint64_t> buffer_;
  size_t pos_ = 0;
  absl::Status status_;
};

}  // namespace

UploadedIds::UploadedIds(Hash hash, size_t in_memory, size_t run_size)
    : hash_(hash), in_memory_(in_memory), run_size_(std::max<size_t>(1, run_size)) {}

UploadedIds::~UploadedIds() = default;

std::uint64_t UploadedIds::DefaultHash(absl::string_view id) {
  return std::hash<std::string_view>()(std::string_view(id.data(), id.size()));
}

absl::Status UploadedIds::StartSpilling() {
  // In TMPDIR (or /tmp), 0600 and unlinked at once: the hashes never outlive
  // the upload, whatever happens to the process.
  const char* dir = std::getenv("TMPDIR");
  std::string path = absl::StrCat(dir != nullptr && *dir != '\0' ? dir : "/tmp",
                                  "/exportd-upload-ids.XXXXXX");
  int fd = mkstemp(path.data());
  if (fd < 0) return SpillError("create");
  unlink(path.c_str());
  spill_.reset(fdopen(fd, "w+b"));
  if (spill_ == nullptr) {
    close(fd);
    return SpillError("open");
  }
  pending_.reserve(run_size_);
  for (std::uint64_t hash : hashes_) {
    pending_.push_back(hash);
    if (pending_.size() >= run_size_) EXPORTD_RETURN_IF_ERROR(SpillRun());
  }
  hashes_ = {};  // Its memory goes back.
  return absl::OkStatus();
}

absl::Status UploadedIds::SpillRun() {
  if (pending_.empty()) return absl::OkStatus();
  SortHashes(pending_, scratch_);
  if (std::fwrite(pending_.data(), sizeof(std::uint64_t), pending_.size(), spill_.get()) !=
      pending_.size()) {
    return SpillError("write");
  }
  runs_.push_back(pending_.size());
  pending_.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::uint64_t>> UploadedIds::RepeatedHashes() {
  EXPORTD_RETURN_IF_ERROR(SpillRun());
  scratch_ = {};
  if (std::fflush(spill_.get()) != 0) return SpillError("write");
  std::vector<RunCursor> cursors;
  long offset = 0;
  for (size_t count : runs_) {
    cursors.emplace_back(spill_.get(), offset, count);
    offset += static_cast<long>(count * sizeof(std::uint64_t));
  }
  // A k-way merge of the sorted runs: equal neighbours are repeated hashes.
  using Head = std::pair<std::uint64_t, size_t>;  // (hash, cursor)
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heads;
  auto advance = [&](size_t i) -> absl::Status {
    std::uint64_t hash;
    if (cursors[i].Next(&hash)) heads.emplace(hash, i);
    return cursors[i].status();
  };
  for (size_t i = 0; i < cursors.size(); ++i) EXPORTD_RETURN_IF_ERROR(advance(i));
  std::vector<std::uint64_t> repeated;
  bool have_previous = false;
  std::uint64_t previous = 0;
  while (!heads.empty()) {
    auto [hash, i] = heads.top();
    heads.pop();
    if (have_previous && hash == previous && (repeated.empty() || repeated.back() != hash)) {
      repeated.push_back(hash);
    }
    have_previous = true;
    previous = hash;
    EXPORTD_RETURN_IF_ERROR(advance(i));
  }
  return repeated;
}

absl::StatusOr<std::optional<std::string>> UploadedIds::FindRepeated(
    const ForEachId& for_each_id) {
  if (spill_ == nullptr) return std::nullopt;  // Every id was told at once.
  EXPORTD_ASSIGN_OR_RETURN(std::vector<std::uint64_t> repeated, RepeatedHashes());
  spill_.reset();
  runs_.clear();
  if (repeated.empty()) return std::nullopt;
  // Only the rows tell a repeated id from ids that hash alike: collect the
  // ids behind the repeated hashes (a handful) and compare them.
  checked_ += static_cast<std::int64_t>(repeated.size());
  absl::flat_hash_map<std::uint64_t, std::vector<std::string>> ids;
  for (std::uint64_t hash : repeated) ids[hash];
  EXPORTD_RETURN_IF_ERROR(for_each_id([&](absl::string_view id) {
    auto it = ids.find(hash_(id));
    if (it != ids.end()) it->second.emplace_back(id);
  }));
  std::optional<std::string> first;
  for (auto& [hash, same] : ids) {
    std::sort(same.begin(), same.end());
    auto twice = std::adjacent_find(same.begin(), same.end());
    if (twice != same.end() && (!first || *twice < *first)) first = *twice;
  }
  return first;
}

}  // namespace exportd::api
