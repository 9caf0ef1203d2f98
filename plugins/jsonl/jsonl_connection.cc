#include "jsonl_connection.h"

#include <unistd.h>

#include <exception>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "audience_file.h"
#include "record_json.h"

namespace exportd::jsonl {
namespace {

// Nothing may throw across the plugin boundary: this turns a stray exception
// (std::bad_alloc, a filesystem error) into INTERNAL.
template <typename Fn>
auto NoThrow(Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("jsonl: unexpected error: ", e.what()));
  } catch (...) {
    return absl::InternalError("jsonl: unexpected error");
  }
}

absl::Status Cancelled(std::string_view call) {
  return absl::CancelledError(absl::StrCat("jsonl ", std::string(call), ": the run was cancelled"));
}

// A batch the core should never send: a field mapped twice or onto "id".
absl::Status CheckFields(const sdk::RecordBatch& batch) {
  std::set<std::string> names;
  for (const sdk::BatchField& f : batch.fields) {
    if (f.name == kIdField) {
      return absl::InvalidArgumentError(
          "field 'id' is reserved by the jsonl destination (it holds the profile id)");
    }
    if (f.name.empty()) return absl::InvalidArgumentError("a batch field has an empty name");
    if (!names.insert(f.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("field '", f.name, "' appears twice"));
    }
  }
  if (batch.values.size() != batch.size() * batch.fields.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed batch: ", batch.values.size(), " values for ", batch.size(), " records of ",
        batch.fields.size(), " fields"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status JsonlConnection::Check(sdk::RunContext& ctx) {
  return NoThrow([&]() -> absl::Status {
    if (ctx.cancelled()) return Cancelled("Check");
    std::error_code ec;
    if (!std::filesystem::exists(directory_, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "directory '", directory_.string(), "' does not exist; create it or fix 'directory'"));
    }
    if (!std::filesystem::is_directory(directory_, ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("'", directory_.string(), "' is not a directory; fix 'directory'"));
    }
    if (::access(directory_.c_str(), W_OK | X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "directory '", directory_.string(), "' is not writable by exportd; fix its permissions"));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<sdk::Audience> JsonlConnection::EnsureAudience(std::string_view segment_name,
                                                              std::string_view remembered_id,
                                                              sdk::RunContext& ctx) {
  return NoThrow([&]() -> absl::StatusOr<sdk::Audience> {
    if (ctx.cancelled()) return Cancelled("EnsureAudience");
    sdk::Audience audience;
    audience.name = std::string(segment_name);
    std::error_code ec;
    if (!remembered_id.empty() && IsAudienceFileName(remembered_id) &&
        std::filesystem::is_regular_file(directory_ / std::string(remembered_id), ec)) {
      audience.id = std::string(remembered_id);
      return audience;
    }
    absl::StatusOr<std::string> file_name = AudienceFileName(segment_name);
    if (!file_name.ok()) return file_name.status();
    audience.id = *file_name;
    const std::filesystem::path path = directory_ / audience.id;
    absl::MutexLock lock(&FileLock(path));
    if (std::filesystem::exists(path, ec)) return audience;
    absl::Status written = WriteMembers(path, Members(), fsync_);
    if (!written.ok()) return written;
    audience.created = true;
    if (audience.id != audience.name + ".jsonl") {
      audience.note = absl::StrCat("segment '", audience.name, "' is written to file '",
                                   audience.id, "' (special characters escaped)");
    }
    return audience;
  });
}

absl::StatusOr<std::filesystem::path> JsonlConnection::AudiencePath(
    const sdk::Audience& audience) const {
  if (!IsAudienceFileName(audience.id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "audience id '", audience.id, "' is not a jsonl file name; call EnsureAudience first"));
  }
  return directory_ / audience.id;
}

absl::StatusOr<std::vector<sdk::RecordOutcome>> JsonlConnection::Upsert(
    const sdk::Audience& audience, const sdk::RecordBatch& batch, sdk::RunContext& ctx) {
  return NoThrow([&] { return Apply(Op::kUpsert, audience, batch, ctx); });
}

absl::StatusOr<std::vector<sdk::RecordOutcome>> JsonlConnection::Remove(
    const sdk::Audience& audience, const sdk::RecordBatch& batch, sdk::RunContext& ctx) {
  return NoThrow([&] { return Apply(Op::kRemove, audience, batch, ctx); });
}

absl::StatusOr<std::vector<sdk::RecordOutcome>> JsonlConnection::Apply(
    Op op, const sdk::Audience& audience, const sdk::RecordBatch& batch, sdk::RunContext& ctx) {
  const char* call = op == Op::kUpsert ? "Upsert" : "Remove";
  if (ctx.cancelled()) return Cancelled(call);
  absl::StatusOr<std::filesystem::path> path = AudiencePath(audience);
  if (!path.ok()) return path.status();
  absl::Status fields = CheckFields(batch);
  if (!fields.ok()) return fields;

  std::vector<sdk::RecordOutcome> outcomes(batch.size());
  if (batch.size() == 0) return outcomes;
  absl::MutexLock lock(&FileLock(*path));
  absl::StatusOr<Members> members = ReadMembers(*path);
  if (!members.ok()) return members.status();
  for (std::size_t row = 0; row < batch.size(); ++row) {
    const std::string& id = batch.profile_ids[row];
    if (id.empty()) {
      outcomes[row] = sdk::RecordOutcome::Rejected("empty_profile_id", "",
                                                   "the record has an empty profile id");
      continue;
    }
    if (op == Op::kRemove) {
      members->Erase(id);
      continue;
    }
    absl::StatusOr<std::string> line = RecordToJsonLine(batch, row);
    if (!line.ok()) {
      outcomes[row] =
          sdk::RecordOutcome::Rejected("invalid_utf8", "", std::string(line.status().message()));
      continue;
    }
    members->Put(id, *std::move(line));
  }
  // Last chance to stop: nothing has been written yet.
  if (ctx.cancelled()) return Cancelled(call);
  absl::Status written = WriteMembers(*path, *members, fsync_);
  if (!written.ok()) return written;
  return outcomes;
}

}  // namespace exportd::jsonl
