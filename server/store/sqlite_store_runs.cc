// SqliteStore: runs, delivered state and rejections (the engine's tables).
#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/run_states.h"
#include "server/common/status_macros.h"
#include "server/store/sqlite_store.h"

namespace exportd::store {
namespace {

// At most this many rejections are kept per run (a sample); all are counted.
constexpr std::int64_t kMaxRejectionsKept = 100000;

int PageLimit(const PageRequest& page) { return page.limit <= 0 ? 50 : std::min(page.limit, 1000); }

}  // namespace

absl::Status SqliteStore::PutRunLocked(const v1::Run& run, bool create) {
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(create ? "INSERT INTO runs (export_id, created_at, finished, data, id) "
                            "VALUES (?, ?, ?, ?, ?)"
                          : "UPDATE runs SET export_id = ?, created_at = ?, finished = ?, "
                            "data = ? WHERE id = ?"));
  stmt.Bind(1, run.export_id())
      .Bind(2, run.created_at_micros())
      .Bind(3, static_cast<std::int64_t>(IsFinal(run.state())))
      .BindBlob(4, run.SerializeAsString())
      .Bind(5, run.id());
  EXPORTD_RETURN_IF_ERROR(stmt.Run());
  if (!create && sqlite3_changes(db_->handle()) == 0) {
    return absl::NotFoundError(absl::StrCat("run '", run.id(), "' does not exist"));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::CreateRun(const v1::Run& run) {
  absl::MutexLock lock(&mu_);
  return PutRunLocked(run, /*create=*/true);
}

absl::Status SqliteStore::UpdateRun(const v1::Run& run) {
  absl::MutexLock lock(&mu_);
  return PutRunLocked(run, /*create=*/false);
}

absl::StatusOr<v1::Run> SqliteStore::GetRun(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt, db_->Prepare("SELECT data FROM runs WHERE id = ?"));
  stmt.Bind(1, id);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat(
        "run '", id, "' does not exist; list an export's runs with 'exportctl export runs NAME'"));
  }
  return ParseRow<v1::Run>(stmt.Blob(0), "run");
}

absl::StatusOr<std::vector<v1::Run>> SqliteStore::ListRuns(absl::string_view export_id,
                                                          const PageRequest& page,
                                                          std::string* next_cursor) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(std::int64_t before, ParsePageToken(page.after, INT64_MAX));
  int limit = PageLimit(page);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare("SELECT rowid, data FROM runs WHERE export_id = ? AND "
                                   "rowid < ? ORDER BY rowid DESC LIMIT ?"));
  stmt.Bind(1, export_id).Bind(2, before).Bind(3, static_cast<std::int64_t>(limit + 1));
  return ReadPage<v1::Run>(stmt, limit, "run", next_cursor, [](v1::Run&, std::int64_t) {});
}

absl::StatusOr<std::vector<v1::Run>> SqliteStore::ListUnfinishedRuns() {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare("SELECT data FROM runs WHERE finished = 0 ORDER BY rowid"));
  std::vector<v1::Run> out;
  while (true) {
    EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return out;
    EXPORTD_ASSIGN_OR_RETURN(v1::Run run, ParseRow<v1::Run>(stmt.Blob(0), "run"));
    out.push_back(std::move(run));
  }
}

absl::StatusOr<std::vector<v1::Run>> SqliteStore::LatestRun(absl::string_view export_id) {
  std::string next;
  return ListRuns(export_id, PageRequest{1, ""}, &next);
}

absl::StatusOr<AudienceState> SqliteStore::GetAudienceState(absl::string_view export_id,
                                                            absl::string_view segment_id) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare("SELECT audience_id, mapping_fingerprint FROM audiences "
                                   "WHERE export_id = ? AND segment_id = ?"));
  stmt.Bind(1, export_id).Bind(2, segment_id);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError("nothing delivered yet");
  return AudienceState{std::string(stmt.Text(0)), static_cast<std::uint64_t>(stmt.Int(1))};
}

absl::StatusOr<std::int64_t> SqliteStore::AudienceKey(Database& db, absl::string_view export_id,
                                                      absl::string_view segment_id) {
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt, db.Prepare("SELECT audience_key FROM audiences WHERE export_id = ? AND "
                                 "segment_id = ?"));
  stmt.Bind(1, export_id).Bind(2, segment_id);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError("nothing delivered yet");
  return stmt.Int(0);
}

absl::Status SqliteStore::PutAudienceState(absl::string_view export_id,
                                           absl::string_view segment_id,
                                           const AudienceState& state) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT INTO audiences (export_id, segment_id, audience_id, "
                   "mapping_fingerprint) VALUES (?, ?, ?, ?) ON CONFLICT (export_id, segment_id) "
                   "DO UPDATE SET audience_id = excluded.audience_id, "
                   "mapping_fingerprint = excluded.mapping_fingerprint"));
  stmt.Bind(1, export_id)
      .Bind(2, segment_id)
      .Bind(3, state.audience_id)
      .Bind(4, static_cast<std::int64_t>(state.mapping_fingerprint));
  return stmt.Run();
}

absl::Status SqliteStore::ForEachDelivered(
    absl::string_view export_id, absl::string_view segment_id,
    const std::function<absl::Status(const DeliveredView&)>& fn) {
  // Its own connection, so the engine's long scan does not block writers.
  EXPORTD_ASSIGN_OR_RETURN(auto reader, Database::Open(path_, /*read_only=*/true));
  auto key = AudienceKey(*reader, export_id, segment_id);
  if (absl::IsNotFound(key.status())) return absl::OkStatus();
  EXPORTD_RETURN_IF_ERROR(key.status());
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt, reader->Prepare("SELECT id_hash, profile_id, value_hash, run_id, "
                                      "ident_hash FROM delivered WHERE audience_key = ?"));
  stmt.Bind(1, *key);
  DeliveredView row;
  while (true) {
    EXPORTD_ASSIGN_OR_RETURN(bool has_row, stmt.Step());
    if (!has_row) return absl::OkStatus();
    row.id_hash = static_cast<std::uint64_t>(stmt.Int(0));
    row.profile_id = stmt.Text(1);
    row.value_hash = static_cast<std::uint64_t>(stmt.Int(2));
    row.run_id = stmt.Text(3);
    row.ident_hash = static_cast<std::uint64_t>(stmt.Int(4));  // NULL reads as 0.
    EXPORTD_RETURN_IF_ERROR(fn(row));
  }
}

absl::Status SqliteStore::LookupDelivered(
    absl::string_view export_id, absl::string_view segment_id,
    const std::vector<absl::string_view>& profile_ids,
    const std::function<absl::Status(const DeliveredRow&)>& fn) {
  EXPORTD_ASSIGN_OR_RETURN(auto reader, Database::Open(path_, /*read_only=*/true));
  auto key = AudienceKey(*reader, export_id, segment_id);
  if (absl::IsNotFound(key.status())) return absl::OkStatus();
  EXPORTD_RETURN_IF_ERROR(key.status());
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      reader->Prepare("SELECT id_hash, value_hash, run_id, vals, identifier, ident_hash FROM delivered "
                      "WHERE audience_key = ? AND profile_id = ?"));
  DeliveredRow row;
  for (absl::string_view profile_id : profile_ids) {
    stmt.Reset();
    stmt.Bind(1, *key).Bind(2, profile_id);
    EXPORTD_ASSIGN_OR_RETURN(bool has_row, stmt.Step());
    if (!has_row) continue;
    row.id_hash = static_cast<std::uint64_t>(stmt.Int(0));
    row.profile_id.assign(profile_id.data(), profile_id.size());
    row.value_hash = static_cast<std::uint64_t>(stmt.Int(1));
    absl::string_view text = stmt.Text(2);
    row.run_id.assign(text.data(), text.size());
    text = stmt.Blob(3);
    row.values.assign(text.data(), text.size());
    text = stmt.Text(4);
    row.identifier.assign(text.data(), text.size());
    row.ident_hash = static_cast<std::uint64_t>(stmt.Int(5));
    EXPORTD_RETURN_IF_ERROR(fn(row));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::CommitBatch(const BatchCommit& commit) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    EXPORTD_ASSIGN_OR_RETURN(std::int64_t key,
                             AudienceKey(*db_, commit.export_id, commit.segment_id));
    if (!commit.delivered.empty()) {
      EXPORTD_ASSIGN_OR_RETURN(
          Statement put,
          db_->Prepare("INSERT OR REPLACE INTO delivered (audience_key, id_hash, profile_id, "
                       "value_hash, run_id, vals, identifier, ident_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
      // Profile ids usually arrive in a stable order, so inserts stay local
      // in the (audience_key, profile_id) B-tree.
      for (const DeliveredRow& row : commit.delivered) {
        put.Reset();
        put.Bind(1, key)
            .Bind(2, static_cast<std::int64_t>(row.id_hash))
            .Bind(3, row.profile_id)
            .Bind(4, static_cast<std::int64_t>(row.value_hash))
            .Bind(5, row.run_id)
            .BindBlob(6, row.values);
        if (row.ident_hash != 0) {
          put.Bind(7, row.identifier).Bind(8, static_cast<std::int64_t>(row.ident_hash));
        } else {
          put.BindNull(7).BindNull(8);
        }
        EXPORTD_RETURN_IF_ERROR(put.Run());
      }
    }
    if (!commit.removed.empty()) {
      EXPORTD_ASSIGN_OR_RETURN(
          Statement del,
          db_->Prepare("DELETE FROM delivered WHERE audience_key = ? AND profile_id = ?"));
      for (const std::string& profile_id : commit.removed) {
        del.Reset();
        del.Bind(1, key).Bind(2, profile_id);
        EXPORTD_RETURN_IF_ERROR(del.Run());
      }
    }
    if (!commit.rejections.empty()) {
      EXPORTD_ASSIGN_OR_RETURN(
          Statement next, db_->Prepare("SELECT COALESCE(MAX(seq), -1) + 1 FROM rejections "
                                       "WHERE run_id = ?"));
      next.Bind(1, commit.checkpoint.id());
      EXPORTD_ASSIGN_OR_RETURN(bool has_row, next.Step());
      std::int64_t seq = has_row ? next.Int(0) : 0;
      EXPORTD_ASSIGN_OR_RETURN(
          Statement put, db_->Prepare("INSERT INTO rejections (run_id, seq, data) VALUES (?, ?, ?)"));
      for (const v1::Rejection& rejection : commit.rejections) {
        if (seq >= kMaxRejectionsKept) break;
        put.Reset();
        put.Bind(1, commit.checkpoint.id()).Bind(2, seq++).BindBlob(3, rejection.SerializeAsString());
        EXPORTD_RETURN_IF_ERROR(put.Run());
      }
    }
    return PutRunLocked(commit.checkpoint, /*create=*/false);
  });
}

absl::StatusOr<std::vector<v1::Rejection>> SqliteStore::ListRejections(
    absl::string_view run_id, const PageRequest& page, std::string* next_cursor) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(std::int64_t after, ParsePageToken(page.after, -1));
  int limit = PageLimit(page);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare("SELECT seq, data FROM rejections WHERE run_id = ? AND "
                                   "seq > ? ORDER BY seq LIMIT ?"));
  stmt.Bind(1, run_id).Bind(2, after).Bind(3, static_cast<std::int64_t>(limit + 1));
  return ReadPage<v1::Rejection>(stmt, limit, "rejection", next_cursor,
                                 [](v1::Rejection&, std::int64_t) {});
}

absl::StatusOr<std::int64_t> SqliteStore::CountRejections(absl::string_view run_id) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt,
                           db_->Prepare("SELECT COUNT(*) FROM rejections WHERE run_id = ?"));
  stmt.Bind(1, run_id);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.Int(0) : 0;
}

}  // namespace exportd::store
