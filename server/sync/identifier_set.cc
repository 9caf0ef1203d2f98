#include "server/sync/identifier_set.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <queue>
#include <utility>

#include "server/common/sort_hashes.h"
#include "server/common/status_macros.h"
#include "server/store/temp_file.h"

namespace exportd::sync {
namespace {

constexpr store::TempFilePurpose kPurpose = {
    "keeping the segment's identifiers for the run",
    "8 bytes per member of the segment, twice", "run the export again"};

// errno after a failed read or write; EIO for a file that ended early.
int LastError() { return errno != 0 ? errno : EIO; }

// Hashes read or written at a time.
constexpr size_t kBlock = 8192;

bool WriteAll(int fd, const std::uint64_t* data, size_t count, std::uint64_t at_hash) {
  const char* p = reinterpret_cast<const char*>(data);
  size_t left = count * sizeof(std::uint64_t);
  off_t offset = static_cast<off_t>(at_hash * sizeof(std::uint64_t));
  while (left > 0) {
    ssize_t n = pwrite(fd, p, left, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

// Reads up to `count` hashes from hash index `at`; how many, or -1.
std::int64_t ReadSome(int fd, std::uint64_t* data, size_t count, std::uint64_t at) {
  char* p = reinterpret_cast<char*>(data);
  size_t want = count * sizeof(std::uint64_t), got = 0;
  while (got < want) {
    ssize_t n = pread(fd, p + got, want - got, static_cast<off_t>(at * sizeof(std::uint64_t) + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<std::int64_t>(got / sizeof(std::uint64_t));
}

// Reads hashes [begin, end) of the file in blocks.
class BlockReader {
 public:
  BlockReader(int fd, std::uint64_t begin, std::uint64_t end) : fd_(fd), next_(begin), end_(end) {}
  // The next hash, or false at the end (or on an error: ok() says).
  bool Next(std::uint64_t& hash) {
    if (pos_ == block_.size()) {
      if (next_ >= end_) return false;
      block_.resize(std::min<std::uint64_t>(kBlock, end_ - next_));
      std::int64_t n = ReadSome(fd_, block_.data(), block_.size(), next_);
      if (n != static_cast<std::int64_t>(block_.size())) {
        ok_ = false;
        next_ = end_;
        block_.clear();
        pos_ = 0;
        return false;
      }
      next_ += block_.size();
      pos_ = 0;
    }
    hash = block_[pos_++];
    return true;
  }
  bool ok() const { return ok_; }

 private:
  int fd_;
  std::uint64_t next_, end_;
  std::vector<std::uint64_t> block_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

IdentifierSet::IdentifierSet(IdentifierSetOptions options)
    : o_(std::move(options)), dir_(store::TempDirectory(o_.temp_dir)) {}

IdentifierSet::~IdentifierSet() {
  if (fd_ >= 0) close(fd_);
}

void IdentifierSet::Reserve(std::int64_t hashes) {
  absl::MutexLock lock(&mu_);
  if (hashes > 0) {
    buffer_.reserve(std::min(static_cast<size_t>(hashes), std::max<size_t>(o_.memory_hashes, 1)));
  }
}

absl::Status IdentifierSet::Add(absl::Span<const std::uint64_t> hashes) {
  absl::MutexLock lock(&mu_);
  EXPORTD_RETURN_IF_ERROR(spill_status_);
  for (std::uint64_t h : hashes) {
    if (h == 0) continue;
    if (buffer_.size() >= std::max<size_t>(o_.memory_hashes, 1)) {
      spill_status_ = SpillLocked();
      EXPORTD_RETURN_IF_ERROR(spill_status_);
    }
    buffer_.push_back(h);
  }
  return absl::OkStatus();
}

absl::Status IdentifierSet::SpillLocked() {
  if (fd_ < 0) {
    EXPORTD_ASSIGN_OR_RETURN(fd_, store::OpenUnlinkedTempFile(dir_, "exportd-identifiers", kPurpose));
  }
  SortHashesInPlace(buffer_);
  const std::uint64_t begin = runs_.empty() ? 0 : runs_.back().second;
  if (!WriteAll(fd_, buffer_.data(), buffer_.size(), begin)) {
    return store::TempFileError(kPurpose, dir_, "write", LastError());
  }
  runs_.emplace_back(begin, begin + buffer_.size());
  buffer_.clear();
  return absl::OkStatus();
}

absl::Status IdentifierSet::Seal() {
  std::vector<std::uint64_t> hashes;
  {
    absl::MutexLock lock(&mu_);
    EXPORTD_RETURN_IF_ERROR(spill_status_);
    if (fd_ >= 0) {
      if (!buffer_.empty()) EXPORTD_RETURN_IF_ERROR(SpillLocked());
      buffer_ = {};
    } else {
      hashes = std::move(buffer_);
      buffer_ = {};
    }
  }
  if (fd_ >= 0) return Merge();
  // In memory: one sort, then the distinct hashes and the repeated ones.
  SortHashesInPlace(hashes);  // A second buffer would be as large as the segment.
  size_t out = 0;
  for (size_t i = 0; i < hashes.size();) {
    size_t j = i + 1;
    while (j < hashes.size() && hashes[j] == hashes[i]) ++j;
    if (j - i > 1) duplicates_.emplace_back(hashes[i], static_cast<std::int64_t>(j - i));
    hashes[out++] = hashes[i];
    i = j;
  }
  hashes.resize(out);
  hashes.shrink_to_fit();
  in_memory_ = std::move(hashes);
  return absl::OkStatus();
}

absl::Status IdentifierSet::Merge() {
  // The runs merged through a heap of their heads; the distinct hashes are
  // written after the last run.
  std::vector<BlockReader> readers;
  readers.reserve(runs_.size());
  for (const auto& [begin, end] : runs_) readers.emplace_back(fd_, begin, end);
  using Head = std::pair<std::uint64_t, size_t>;
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heads;
  for (size_t r = 0; r < readers.size(); ++r) {
    std::uint64_t h;
    if (readers[r].Next(h)) heads.emplace(h, r);
  }
  set_begin_ = runs_.empty() ? 0 : runs_.back().second;
  std::vector<std::uint64_t> out;
  out.reserve(kBlock);
  std::uint64_t written = 0;
  auto flush = [&]() -> absl::Status {
    if (!WriteAll(fd_, out.data(), out.size(), set_begin_ + written)) {
      return store::TempFileError(kPurpose, dir_, "write", LastError());
    }
    written += out.size();
    out.clear();
    return absl::OkStatus();
  };
  bool have_last = false;
  std::uint64_t last = 0;
  std::int64_t last_count = 0;
  auto end_of_last = [&] {
    if (last_count > 1) duplicates_.emplace_back(last, last_count);
  };
  while (!heads.empty()) {
    auto [h, r] = heads.top();
    heads.pop();
    std::uint64_t next;
    if (readers[r].Next(next)) heads.emplace(next, r);
    if (have_last && h == last) {
      ++last_count;
      continue;
    }
    if (have_last) end_of_last();
    have_last = true;
    last = h;
    last_count = 1;
    out.push_back(h);
    if (out.size() == kBlock) EXPORTD_RETURN_IF_ERROR(flush());
  }
  if (have_last) end_of_last();
  for (const BlockReader& reader : readers) {
    if (!reader.ok()) return store::TempFileError(kPurpose, dir_, "read", LastError());
  }
  if (!out.empty()) EXPORTD_RETURN_IF_ERROR(flush());
  set_size_ = written;
  return absl::OkStatus();
}

std::int64_t IdentifierSet::DuplicateCount(std::uint64_t hash) const {
  if (hash == 0 || duplicates_.empty()) return 0;
  auto it = std::lower_bound(
      duplicates_.begin(), duplicates_.end(), hash,
      [](const std::pair<std::uint64_t, std::int64_t>& d, std::uint64_t h) { return d.first < h; });
  return it != duplicates_.end() && it->first == hash ? it->second : 0;
}

absl::Status IdentifierSet::Prefetch(std::vector<std::uint64_t> hashes) {
  if (fd_ < 0) return absl::OkStatus();
  std::sort(hashes.begin(), hashes.end());
  hashes.erase(std::unique(hashes.begin(), hashes.end()), hashes.end());
  // One pass over the distinct hashes, beside the sorted questions.
  BlockReader reader(fd_, set_begin_, set_begin_ + set_size_);
  std::vector<std::uint64_t> present;
  std::uint64_t h = 0;
  bool more = !hashes.empty() && reader.Next(h);
  for (std::uint64_t want : hashes) {
    while (more && h < want) more = reader.Next(h);
    if (!more) break;
    if (h == want) present.push_back(want);
  }
  if (!reader.ok()) return store::TempFileError(kPurpose, dir_, "read", LastError());
  prefetched_ = std::move(hashes);
  in_memory_ = std::move(present);
  return absl::OkStatus();
}

bool IdentifierSet::ReadAt(std::uint64_t index, std::uint64_t& hash) const {
  return ReadSome(fd_, &hash, 1, set_begin_ + index) == 1;
}

bool IdentifierSet::Contains(std::uint64_t hash) const {
  if (hash == 0) return false;
  if (fd_ < 0 || std::binary_search(prefetched_.begin(), prefetched_.end(), hash)) {
    return std::binary_search(in_memory_.begin(), in_memory_.end(), hash);
  }
  // Not prefetched (a delivered row whose identifier is known only from its
  // values): a binary search in the file.
  std::uint64_t lo = 0, hi = set_size_;
  while (lo < hi) {
    std::uint64_t mid = lo + (hi - lo) / 2, at;
    if (!ReadAt(mid, at)) {
      absl::MutexLock lock(&mu_);
      if (read_status_.ok()) read_status_ = store::TempFileError(kPurpose, dir_, "read", LastError());
      return false;
    }
    if (at == hash) return true;
    if (at < hash) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return false;
}

absl::Status IdentifierSet::status() const {
  absl::MutexLock lock(&mu_);
  return read_status_;
}

}  // namespace exportd::sync
