#include "server/store/store.h"

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace exportd::store {

absl::Status NotFoundError(absl::string_view kind, absl::string_view id_or_name) {
  return absl::NotFoundError(absl::StrCat(kind, " '", id_or_name,
                                          "' does not exist; list them with 'exportctl ", kind,
                                          " list'"));
}

absl::Status DuplicateNameError(absl::string_view kind, absl::string_view name) {
  return absl::AlreadyExistsError(
      absl::StrCat(absl::StrContains("aeiou", kind.substr(0, 1)) ? "an " : "a ", kind,
                   " named '", name, "' already exists; choose another name"));
}

absl::Status SegmentUnusedBy(const std::vector<v1::Export>& exports, const v1::Segment& segment) {
  std::vector<std::string> users;
  for (const auto& e : exports) {
    for (const auto& s : e.segments()) {
      if (s == segment.id()) users.push_back(e.name());
    }
  }
  if (users.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "segment '", segment.name(), "' is used by exports: ", absl::StrJoin(users, ", "),
      "; remove it from those exports (export update --segment) or delete them first"));
}

int PageLimit(const PageRequest& page) {
  return page.limit <= 0 ? 50 : std::min(page.limit, 1000);
}

std::string CapRunLogMessage(absl::string_view message) {
  if (message.size() <= kMaxRunLogMessageBytes) return std::string(message);
  static constexpr absl::string_view kEllipsis = "\xe2\x80\xa6";  // U+2026
  size_t cut = kMaxRunLogMessageBytes - kEllipsis.size();
  // Back to the start of a character: never between a lead byte and its
  // continuation bytes (10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(message.substr(0, cut), kEllipsis);
}

RunLogAppend PlanRunLogAppend(std::int64_t last_seq, std::int64_t dropped_before,
                              v1::RunLogLevel dropped_level_before,
                              const std::vector<v1::RunLogLine>& lines) {
  RunLogAppend plan;
  std::int64_t seq = last_seq;
  std::int64_t dropped = last_seq >= kMaxRunLogLines ? dropped_before : 0;
  v1::RunLogLevel level = dropped_level_before;
  const v1::RunLogLine* newest_dropped = nullptr;
  for (const v1::RunLogLine& line : lines) {
    if (seq + 1 < kMaxRunLogLines) {
      v1::RunLogLine& kept = plan.insert.emplace_back(line);
      kept.set_seq(++seq);
      kept.set_message(CapRunLogMessage(line.message()));
      continue;
    }
    ++dropped;
    level = std::max(level, line.level());
    newest_dropped = &line;
  }
  if (newest_dropped == nullptr) return plan;
  v1::RunLogLine& marker = plan.dropped_line.emplace();
  marker.set_seq(kMaxRunLogLines);
  marker.set_at_micros(newest_dropped->at_micros());
  marker.set_level(level);
  marker.set_source(newest_dropped->source());
  marker.set_message(CapRunLogMessage(absl::StrCat(
      dropped, " more log line", dropped == 1 ? " was" : "s were", " dropped (a run keeps ",
      kMaxRunLogLines, "); the newest: ", newest_dropped->message())));
  plan.dropped = dropped;
  return plan;
}

void ShowLease(v1::Run& run, absl::string_view holder, std::int64_t expires_micros) {
  if (!holder.empty()) run.set_replica(std::string(holder));
  run.set_lease_expires_at_micros(expires_micros);
}

absl::Status CheckWrittenUnderItsLease(const v1::Run& run, const RunLease& lease) {
  if (run.id() == lease.run_id) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "run '", run.id(), "' is written under the lease of run '", lease.run_id, "'"));
}

StagedSnapshotWriter::StagedSnapshotWriter(Store* store, std::string segment_id,
                                           std::int64_t version,
                                           std::vector<v1::SchemaField> schema,
                                           MemberSorterOptions sort)
    : store_(store),
      segment_id_(std::move(segment_id)),
      version_(version),
      schema_(std::move(schema)),
      sorter_(std::move(sort)) {}

absl::Status StagedSnapshotWriter::AppendBytes(std::string chunk_bytes, std::int64_t rows) {
  rows_ += rows;
  return sorter_.AddChunk(chunk_bytes);
}

absl::StatusOr<v1::Segment> StagedSnapshotWriter::Commit() {
  // Sorted chunks are written about this many bytes at a time.
  constexpr size_t kFlushBytes = 8 << 20;
  // Written chunks are rows of a version no reader asks for: if the sort
  // stops (a repeated id), the writer's destructor drops them.
  absl::Status sorted = sorter_.Finish([&](std::string chunk, std::int64_t) -> absl::Status {
    pending_bytes_ += chunk.size();
    pending_.push_back(std::move(chunk));
    if (pending_bytes_ < kFlushBytes) return absl::OkStatus();
    return FlushStaged();
  });
  if (!sorted.ok()) return sorted;
  if (!pending_.empty()) {
    absl::Status flushed = FlushStaged();
    if (!flushed.ok()) return flushed;
  }
  return CommitStaged();
}

void StagedSnapshotWriter::SetCommitted(v1::Segment& segment, std::int64_t now_micros) const {
  segment.clear_schema();
  for (const auto& field : schema_) *segment.add_schema() = field;
  segment.set_member_count(rows_);
  segment.set_snapshot_version(version_);
  segment.set_updated_at_micros(now_micros);
  segment.set_upload_in_progress(false);
}

absl::Status Store::ForEachChunk(
    absl::string_view segment_id, std::int64_t version,
    const std::function<absl::Status(const v1::UploadMembersRequest::Chunk&)>& fn) {
  v1::UploadMembersRequest::Chunk chunk;
  return ForEachChunkBytes(segment_id, version, [&](absl::string_view bytes) {
    if (!chunk.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(
          absl::StrCat("segment '", segment_id, "' snapshot ", version, " has a damaged chunk"));
    }
    return fn(chunk);
  });
}

}  // namespace exportd::store
