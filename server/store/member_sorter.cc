#include "server/store/member_sorter.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/store/member_chunk.h"
#include "server/store/temp_file.h"

namespace exportd::store {
namespace {

// A run's record: row number (8 bytes), row size, id offset and id size (4
// each), then the row's bytes. Native byte order: the file never leaves the
// process.
constexpr size_t kRecordHeader = 20;
// Each run is read back through a buffer of this size (larger for a larger
// row); written through one of kWriteBuffer.
constexpr size_t kReadBuffer = 64 << 10;
constexpr size_t kWriteBuffer = 1 << 20;

std::uint64_t Prefix(absl::string_view id) {
  std::uint64_t prefix = 0;
  const size_t n = std::min<size_t>(id.size(), 8);
  for (size_t i = 0; i < 8; ++i) {
    prefix = (prefix << 8) | (i < n ? static_cast<unsigned char>(id[i]) : 0);
  }
  return prefix;
}

void PutVarint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

size_t VarintSize(std::uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

// Grows `v` to hold `needed` without letting doubling overshoot `limit` by
// much: the held rows' memory is what `memory_bytes` bounds.
template <typename Container>
void Reserve(Container& v, size_t needed, size_t limit) {
  if (needed <= v.capacity()) return;
  v.reserve(std::max(needed, std::min(v.capacity() * 2, std::max(limit, size_t{4096}))));
}

// Collects rows into chunks of about `target` bytes.
class ChunkBuilder {
 public:
  using Emit = std::function<absl::Status(std::string chunk_bytes, std::int64_t rows)>;
  ChunkBuilder(size_t target, const Emit& emit) : target_(std::max<size_t>(target, 1)), emit_(emit) {}

  absl::Status Add(absl::string_view row) {
    const size_t encoded = 1 + VarintSize(row.size()) + row.size();
    if (rows_ > 0 && chunk_.size() + encoded > target_) EXPORTD_RETURN_IF_ERROR(Flush());
    if (chunk_.capacity() < target_) chunk_.reserve(std::max(target_, encoded));
    chunk_.push_back('\x0a');  // Field 1 (rows), length-delimited.
    PutVarint(chunk_, row.size());
    chunk_.append(row.data(), row.size());
    ++rows_;
    if (chunk_.size() >= target_) return Flush();
    return absl::OkStatus();
  }

  absl::Status Flush() {
    if (rows_ == 0) return absl::OkStatus();
    std::int64_t rows = rows_;
    rows_ = 0;
    std::string chunk = std::move(chunk_);
    chunk_ = std::string();
    return emit_(std::move(chunk), rows);
  }

 private:
  const size_t target_;
  const Emit& emit_;
  std::string chunk_;
  std::int64_t rows_ = 0;
};

}  // namespace

// A sorted sequence of rows: the held ones, or a run on disk. After a true
// Next(), id(), row() and number() describe the current row; the views stay
// valid until the next call.
class MemberSorter::Source {
 public:
  virtual ~Source() = default;
  virtual bool Next() = 0;
  // OK, or why Next() returned false early.
  virtual absl::Status status() const { return absl::OkStatus(); }
  absl::string_view id() const { return id_; }
  absl::string_view row() const { return row_; }
  std::int64_t number() const { return number_; }

 protected:
  absl::string_view id_, row_;
  std::int64_t number_ = 0;
};

class MemberSorter::HeldSource final : public MemberSorter::Source {
 public:
  HeldSource(const std::string& arena, const std::vector<Entry>& held)
      : arena_(arena), held_(held) {}

  bool Next() override {
    if (next_ == held_.size()) return false;
    const Entry& e = held_[next_++];
    row_ = absl::string_view(arena_.data() + e.offset, e.size);
    id_ = row_.substr(e.id_offset, e.id_size);
    number_ = e.row;
    return true;
  }

 private:
  const std::string& arena_;
  const std::vector<Entry>& held_;
  size_t next_ = 0;
};

class MemberSorter::RunSource final : public MemberSorter::Source {
 public:
  RunSource(const MemberSorter& sorter, Run run)
      : sorter_(sorter), next_offset_(run.offset), left_(run.size) {}

  bool Next() override {
    // Drop the current record, then make sure the next one is whole in the
    // buffer.
    begin_ += current_;
    current_ = 0;
    if (!Ensure(kRecordHeader)) return false;
    std::uint32_t size, id_offset, id_size;
    const char* p = buffer_.data() + begin_;
    std::memcpy(&number_, p, 8);
    std::memcpy(&size, p + 8, 4);
    std::memcpy(&id_offset, p + 12, 4);
    std::memcpy(&id_size, p + 16, 4);
    if (!Ensure(kRecordHeader + size)) return false;
    current_ = kRecordHeader + size;
    row_ = absl::string_view(buffer_.data() + begin_ + kRecordHeader, size);
    id_ = row_.substr(id_offset, id_size);
    return true;
  }

  absl::Status status() const override { return status_; }

 private:
  // True when `n` bytes from begin_ are in the buffer, reading more as
  // needed. False at the end of the run (a record cut short is an error).
  bool Ensure(size_t n) {
    const size_t have = end_ - begin_;
    if (have >= n) return true;
    if (left_ == 0) {
      if (have != 0) status_ = absl::DataLossError("a sorted run of the upload ends mid-row");
      return false;
    }
    // Keep what is left of the buffer at its front, then fill the rest.
    // (A short run needs no more than its size.)
    const size_t size = std::max<size_t>(
        n, static_cast<size_t>(std::min<std::uint64_t>(kReadBuffer, have + left_)));
    if (buffer_.size() < size) {
      std::string bigger(size, '\0');
      std::memcpy(bigger.data(), buffer_.data() + begin_, have);
      buffer_.swap(bigger);
    } else {
      std::memmove(buffer_.data(), buffer_.data() + begin_, have);
    }
    begin_ = 0;
    end_ = have;
    while (end_ < n && left_ > 0) {
      const size_t want = static_cast<size_t>(std::min<std::uint64_t>(buffer_.size() - end_, left_));
      const ssize_t got = pread(sorter_.fd_, buffer_.data() + end_, want,
                                static_cast<off_t>(next_offset_));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        status_ = sorter_.TempFileError("read", got < 0 ? errno : EIO);
        return false;
      }
      end_ += static_cast<size_t>(got);
      next_offset_ += static_cast<std::uint64_t>(got);
      left_ -= static_cast<std::uint64_t>(got);
    }
    if (end_ < n) {
      status_ = absl::DataLossError("a sorted run of the upload ends mid-row");
      return false;
    }
    return true;
  }

  const MemberSorter& sorter_;
  std::uint64_t next_offset_;
  std::uint64_t left_;
  std::string buffer_;
  size_t begin_ = 0, end_ = 0;  // The unread bytes of buffer_.
  size_t current_ = 0;          // The current record's size, at begin_.
  absl::Status status_;
};

// For the messages of TempFileError.
constexpr TempFilePurpose kUploadSort = {"sorting the upload's rows", "the upload",
                                         "upload again"};

MemberSorter::MemberSorter(MemberSorterOptions options)
    : options_(std::move(options)), temp_dir_(TempDirectory(options_.temp_dir)) {}

MemberSorter::~MemberSorter() {
  if (fd_ >= 0) close(fd_);
}

absl::Status MemberSorter::TempFileError(absl::string_view what, int error) const {
  return store::TempFileError(kUploadSort, temp_dir_, what, error);
}

absl::Status MemberSorter::AddChunk(absl::string_view chunk_bytes) {
  if (finished_) return absl::FailedPreconditionError("MemberSorter::AddChunk after Finish");
  ChunkReader reader(chunk_bytes);
  RowView row;
  // The id only: no value is parsed.
  while (reader.Next(row, std::numeric_limits<int>::max())) {
    const absl::string_view bytes = reader.last_row();
    if (!held_.empty() &&
        arena_.size() + bytes.size() + (held_.size() + 1) * sizeof(Entry) > options_.memory_bytes) {
      EXPORTD_RETURN_IF_ERROR(SpillRun());
    }
    Entry e;
    e.prefix = Prefix(row.profile_id);
    e.offset = arena_.size();
    e.size = static_cast<std::uint32_t>(bytes.size());
    // (An empty id is not in the row's bytes at all.)
    e.id_offset = row.profile_id.empty()
                      ? 0
                      : static_cast<std::uint32_t>(row.profile_id.data() - bytes.data());
    e.id_size = static_cast<std::uint32_t>(row.profile_id.size());
    e.row = ++rows_;
    Reserve(arena_, arena_.size() + bytes.size(), options_.memory_bytes);
    arena_.append(bytes.data(), bytes.size());
    Reserve(held_, held_.size() + 1, options_.memory_bytes / sizeof(Entry));
    held_.push_back(e);
  }
  return reader.status();
}

void MemberSorter::SortHeld() {
  const char* arena = arena_.data();
  std::sort(held_.begin(), held_.end(), [arena](const Entry& a, const Entry& b) {
    if (a.prefix != b.prefix) return a.prefix < b.prefix;
    const absl::string_view x(arena + a.offset + a.id_offset, a.id_size);
    const absl::string_view y(arena + b.offset + b.id_offset, b.id_size);
    const int c = x.compare(y);
    if (c != 0) return c < 0;
    return a.row < b.row;
  });
}

absl::Status MemberSorter::OpenTempFile() {
  // Unlinked at once: the rows never outlive the upload, whatever happens to
  // the process.
  EXPORTD_ASSIGN_OR_RETURN(fd_, OpenUnlinkedTempFile(temp_dir_, "exportd-upload-sort", kUploadSort));
  return absl::OkStatus();
}

absl::Status MemberSorter::WriteAll(const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd_, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return TempFileError("write", n < 0 ? errno : EIO);
    data += n;
    size -= static_cast<size_t>(n);
    file_size_ += static_cast<std::uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status MemberSorter::SpillRun() {
  if (held_.empty()) return absl::OkStatus();
  if (fd_ < 0) EXPORTD_RETURN_IF_ERROR(OpenTempFile());
  SortHeld();
  const Run run{file_size_, 0};
  std::string buffer;
  buffer.reserve(kWriteBuffer);
  for (const Entry& e : held_) {
    char header[kRecordHeader];
    std::memcpy(header, &e.row, 8);
    std::memcpy(header + 8, &e.size, 4);
    std::memcpy(header + 12, &e.id_offset, 4);
    std::memcpy(header + 16, &e.id_size, 4);
    if (buffer.size() + kRecordHeader + e.size > kWriteBuffer) {
      EXPORTD_RETURN_IF_ERROR(WriteAll(buffer.data(), buffer.size()));
      buffer.clear();
    }
    buffer.append(header, kRecordHeader);
    if (e.size > kWriteBuffer) {
      EXPORTD_RETURN_IF_ERROR(WriteAll(buffer.data(), buffer.size()));
      buffer.clear();
      EXPORTD_RETURN_IF_ERROR(WriteAll(arena_.data() + e.offset, e.size));
    } else {
      buffer.append(arena_.data() + e.offset, e.size);
    }
  }
  EXPORTD_RETURN_IF_ERROR(WriteAll(buffer.data(), buffer.size()));
  runs_.push_back({run.offset, file_size_ - run.offset});
  // Keep the capacity for the next run.
  arena_.clear();
  held_.clear();
  return absl::OkStatus();
}

absl::Status MemberSorter::Finish(
    const std::function<absl::Status(std::string chunk_bytes, std::int64_t rows)>& emit) {
  if (finished_) return absl::FailedPreconditionError("MemberSorter::Finish called twice");
  finished_ = true;
  // The rows still held are merged from memory, not written out.
  SortHeld();
  std::vector<std::unique_ptr<Source>> sources;
  sources.push_back(std::make_unique<HeldSource>(arena_, held_));
  for (const Run& run : runs_) sources.push_back(std::make_unique<RunSource>(*this, run));

  // A k-way merge by (id, row number).
  auto after = [&](size_t a, size_t b) {
    const int c = sources[a]->id().compare(sources[b]->id());
    if (c != 0) return c > 0;
    return sources[a]->number() > sources[b]->number();
  };
  std::priority_queue<size_t, std::vector<size_t>, decltype(after)> heads(after);
  auto advance = [&](size_t i) -> absl::Status {
    if (sources[i]->Next()) heads.push(i);
    return sources[i]->status();
  };
  for (size_t i = 0; i < sources.size(); ++i) EXPORTD_RETURN_IF_ERROR(advance(i));

  ChunkBuilder chunks(options_.chunk_bytes, emit);
  std::string previous_id;
  std::int64_t previous_row = 0;
  while (!heads.empty()) {
    const size_t i = heads.top();
    heads.pop();
    const Source& s = *sources[i];
    if (previous_row != 0 && s.id() == previous_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("profile id '", s.id(), "' appears twice (rows ", previous_row, " and ",
                       s.number(), "); profile ids must be unique"));
    }
    previous_id.assign(s.id().data(), s.id().size());
    previous_row = s.number();
    EXPORTD_RETURN_IF_ERROR(chunks.Add(s.row()));
    EXPORTD_RETURN_IF_ERROR(advance(i));
  }
  EXPORTD_RETURN_IF_ERROR(chunks.Flush());
  // Give the memory and the file back.
  sources.clear();
  arena_ = std::string();
  held_ = std::vector<Entry>();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return absl::OkStatus();
}

}  // namespace exportd::store
