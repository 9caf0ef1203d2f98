// A connection of the JSON Lines destination: one output directory.
// Thread-safe: writes to one file are serialized (FileLock), different files
// proceed in parallel.
#ifndef EXPORTD_PLUGINS_JSONL_JSONL_CONNECTION_H_
#define EXPORTD_PLUGINS_JSONL_JSONL_CONNECTION_H_

#include <filesystem>
#include <string>
#include <vector>

#include "exportd/sdk/destination.h"

namespace exportd::jsonl {

class JsonlConnection final : public sdk::Connection {
 public:
  JsonlConnection(std::filesystem::path directory, bool fsync, sdk::SyncSpeed speed)
      : directory_(std::move(directory)), fsync_(fsync), speed_(speed) {}

  sdk::SyncSpeed speed() const override { return speed_; }

  // FAILED_PRECONDITION naming the directory when it is missing, not a
  // directory or not writable.
  absl::Status Check(sdk::RunContext& ctx) override;
  // Creates `<directory>/<escaped name>.jsonl` when it does not exist.
  absl::StatusOr<sdk::Audience> EnsureAudience(std::string_view segment_name,
                                               std::string_view remembered_id,
                                               sdk::RunContext& ctx) override;
  // Adds or replaces one line per record. Rejected: an empty profile id
  // ("empty_profile_id"), a string that is not UTF-8 ("invalid_utf8").
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Upsert(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext& ctx) override;
  // Deletes the records' lines; absent members are delivered (idempotent).
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Remove(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext& ctx) override;

 private:
  enum class Op { kUpsert, kRemove };
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Apply(Op op, const sdk::Audience& audience,
                                                        const sdk::RecordBatch& batch,
                                                        sdk::RunContext& ctx);
  absl::StatusOr<std::filesystem::path> AudiencePath(const sdk::Audience& audience) const;

  const std::filesystem::path directory_;
  const bool fsync_;
  const sdk::SyncSpeed speed_;
};

}  // namespace exportd::jsonl

#endif  // EXPORTD_PLUGINS_JSONL_JSONL_CONNECTION_H_
