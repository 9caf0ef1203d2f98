// SqliteStore: runs, delivered state, rejections and run logs (the engine's tables).
#include <algorithm>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/run_states.h"
#include "server/common/status_macros.h"
#include "server/store/sqlite_store.h"

namespace exportd::store {
namespace {

constexpr char kLeaseLostPayload[] = "type.exportd.dev/exportd.store.LeaseLost";

// The columns every read of a run selects after its own: holder, expiry.
constexpr char kLeaseColumns[] = "lease_holder, lease_expires";

// Delivered rows are written kRowsPerInsert to one INSERT statement: a
// statement's own cost (reset, the VDBE's start, opening its cursors) is paid
// once per kRowsPerInsert rows instead of once per row, and the cursor stays
// open from row to row, which lets SQLite append rows that arrive in key order
// (a first run's) next to the last one. Measured in bench/RESULTS.md (first
// run -9% exportd CPU). 8 parameters a row: 512 per statement, well under
// SQLite's limit of 32,766.
constexpr size_t kRowsPerInsert = 64;
constexpr int kDeliveredParams = 8;

// A hash column where 0 means unknown: stored as NULL (read back as 0).
void BindHash(Statement& stmt, int index, std::uint64_t hash) {
  if (hash != 0) {
    stmt.Bind(index, static_cast<std::int64_t>(hash));
  } else {
    stmt.BindNull(index);
  }
}

std::string InsertDeliveredSql(size_t rows) {
  std::string sql =
      "INSERT OR REPLACE INTO delivered (audience_key, id_hash, profile_id, value_hash, run_id, "
      "vals, ident_hash, row_hash) VALUES ";
  for (size_t i = 0; i < rows; ++i) absl::StrAppend(&sql, i == 0 ? "" : ",", "(?,?,?,?,?,?,?,?)");
  return sql;
}

}  // namespace

absl::Status LeaseLostError(const RunLease& lease, absl::string_view now_holder,
                            std::int64_t now_epoch) {
  std::string taken =
      now_holder.empty()
          ? std::string("no replica holds it now (its lease was released)")
          : (now_holder == lease.holder && now_epoch == lease.epoch
                 ? std::string("its lease was released")
                 : absl::StrCat("replica '", now_holder, "' holds it now (epoch ", now_epoch,
                                ")"));
  absl::Status status = absl::AbortedError(absl::StrCat(
      "run '", lease.run_id, "': replica '", lease.holder, "' lost its lease (epoch ",
      lease.epoch, "): ", taken,
      "; this replica stops the run without changing it (a replica that stalls longer than "
      "--lease-seconds loses its runs)"));
  status.SetPayload(kLeaseLostPayload, absl::Cord("1"));
  return status;
}

bool IsLeaseLost(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted &&
         status.GetPayload(kLeaseLostPayload).has_value();
}

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
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat("SELECT data, ", kLeaseColumns, " FROM runs WHERE id = ?")));
  stmt.Bind(1, id);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat(
        "run '", id, "' does not exist; list an export's runs with 'exportctl export runs NAME'"));
  }
  EXPORTD_ASSIGN_OR_RETURN(v1::Run run, ParseRow<v1::Run>(stmt.Blob(0), "run"));
  ShowLease(run, stmt.Text(1), stmt.Int(2));
  return run;
}

absl::StatusOr<std::vector<v1::Run>> SqliteStore::ListRuns(absl::string_view export_id,
                                                          const PageRequest& page,
                                                          std::string* next_cursor) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(std::int64_t before, ParsePageToken(page.after, INT64_MAX));
  int limit = PageLimit(page);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat("SELECT rowid, data, ", kLeaseColumns,
                                " FROM runs WHERE export_id = ? AND rowid < ? ORDER BY rowid "
                                "DESC LIMIT ?")));
  stmt.Bind(1, export_id).Bind(2, before).Bind(3, static_cast<std::int64_t>(limit + 1));
  return ReadPage<v1::Run>(stmt, limit, "run", next_cursor, [&stmt](v1::Run& run, std::int64_t) {
    ShowLease(run, stmt.Text(2), stmt.Int(3));
  });
}

absl::StatusOr<std::vector<v1::Run>> SqliteStore::ListUnfinishedRuns() {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare(absl::StrCat("SELECT data, ", kLeaseColumns,
                                                " FROM runs WHERE finished = 0 ORDER BY rowid")));
  std::vector<v1::Run> out;
  while (true) {
    EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return out;
    EXPORTD_ASSIGN_OR_RETURN(v1::Run run, ParseRow<v1::Run>(stmt.Blob(0), "run"));
    ShowLease(run, stmt.Text(1), stmt.Int(2));
    out.push_back(std::move(run));
  }
}

// --- The run queue ---------------------------------------------------------

absl::Status SqliteStore::CheckLeaseLocked(const RunLease& lease) {
  if (lease.epoch == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run '", lease.run_id,
        "': a worker's write carries no lease; claim the run first (Store::ClaimNextRun)"));
  }
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT lease_holder, lease_epoch, lease_expires FROM runs WHERE id = ?"));
  stmt.Bind(1, lease.run_id);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("run '", lease.run_id, "' does not exist"));
  const std::string holder(stmt.Text(0));
  const std::int64_t epoch = stmt.Int(1);
  if (holder != lease.holder || epoch != lease.epoch || stmt.Int(2) == 0) {
    return LeaseLostError(lease, stmt.Int(2) == 0 && epoch == lease.epoch ? lease.holder : holder,
                          epoch);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ClaimedRun>> SqliteStore::ClaimNextRun(const ClaimRequest& request) {
  if (request.holder.empty()) {
    return absl::InvalidArgumentError("a claim needs the replica id of its holder (--replica-id)");
  }
  absl::MutexLock lock(&mu_);
  std::optional<ClaimedRun> claimed;
  EXPORTD_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    EXPORTD_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT id, export_id, lease_holder, lease_epoch, lease_expires, "
                     "cancel_requested, data FROM runs WHERE finished = 0 ORDER BY rowid"));
    struct Candidate {
      std::string id, export_id;
      std::int64_t epoch;
      bool cancel_requested;
      std::string data;
    };
    std::vector<Candidate> candidates;
    // Exports with a run under a live lease (one run per export at a time),
    // or with a segment being uploaded (the run waits for the upload).
    absl::flat_hash_set<std::string> busy;
    if (!uploading_.empty()) {
      EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Export> exports, ListExportsLocked());
      for (const v1::Export& e : exports) {
        for (const std::string& segment_id : e.segments()) {
          if (uploading_.contains(segment_id)) busy.insert(e.id());
        }
      }
    }
    while (true) {
      EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      std::string export_id(stmt.Text(1));
      if (stmt.Int(4) > request.now_micros) {
        busy.insert(std::move(export_id));
        continue;
      }
      candidates.push_back({std::string(stmt.Text(0)), std::move(export_id), stmt.Int(3),
                            stmt.Int(5) != 0, std::string(stmt.Blob(6))});
    }
    for (Candidate& c : candidates) {
      if (busy.contains(c.export_id)) continue;
      EXPORTD_ASSIGN_OR_RETURN(v1::Run run, ParseRow<v1::Run>(c.data, "run"));
      if (run.state() == v1::RUN_STATE_FAILED_RETRYING &&
          run.next_attempt_at_micros() > request.now_micros) {
        continue;  // Its backoff is not over.
      }
      RunLease lease{c.id, request.holder, c.epoch + 1,
                     request.now_micros + absl::ToInt64Microseconds(request.lease)};
      EXPORTD_ASSIGN_OR_RETURN(
          Statement take, db_->Prepare("UPDATE runs SET lease_holder = ?, lease_epoch = ?, "
                                       "lease_expires = ? WHERE id = ?"));
      take.Bind(1, lease.holder).Bind(2, lease.epoch).Bind(3, lease.expires_at_micros).Bind(4, c.id);
      EXPORTD_RETURN_IF_ERROR(take.Run());
      ShowLease(run, lease.holder, lease.expires_at_micros);
      claimed = ClaimedRun{std::move(run), std::move(lease), c.cancel_requested};
      return absl::OkStatus();
    }
    return absl::OkStatus();
  }));
  return claimed;
}

absl::StatusOr<LeaseRenewal> SqliteStore::RenewLease(const RunLease& lease,
                                                     std::int64_t now_micros,
                                                     absl::Duration lease_duration) {
  absl::MutexLock lock(&mu_);
  LeaseRenewal renewal;
  EXPORTD_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    EXPORTD_RETURN_IF_ERROR(CheckLeaseLocked(lease));
    renewal.expires_at_micros = now_micros + absl::ToInt64Microseconds(lease_duration);
    EXPORTD_ASSIGN_OR_RETURN(Statement stmt,
                             db_->Prepare("UPDATE runs SET lease_expires = ? WHERE id = ?"));
    stmt.Bind(1, renewal.expires_at_micros).Bind(2, lease.run_id);
    EXPORTD_RETURN_IF_ERROR(stmt.Run());
    EXPORTD_ASSIGN_OR_RETURN(Statement cancel,
                             db_->Prepare("SELECT cancel_requested FROM runs WHERE id = ?"));
    cancel.Bind(1, lease.run_id);
    EXPORTD_ASSIGN_OR_RETURN(bool row, cancel.Step());
    renewal.cancel_requested = row && cancel.Int(0) != 0;
    return absl::OkStatus();
  }));
  return renewal;
}

absl::Status SqliteStore::ReleaseLease(const RunLease& lease) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    EXPORTD_RETURN_IF_ERROR(CheckLeaseLocked(lease));
    EXPORTD_ASSIGN_OR_RETURN(Statement stmt,
                             db_->Prepare("UPDATE runs SET lease_expires = 0 WHERE id = ?"));
    stmt.Bind(1, lease.run_id);
    return stmt.Run();
  });
}

absl::Status SqliteStore::ReleaseLeasesOf(absl::string_view holder) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(holder.empty()
                       ? "UPDATE runs SET lease_expires = 0 WHERE finished = 0"
                       : "UPDATE runs SET lease_expires = 0 WHERE finished = 0 AND lease_holder = ?"));
  if (!holder.empty()) stmt.Bind(1, holder);
  return stmt.Run();
}

absl::Status SqliteStore::UpdateLeasedRun(const v1::Run& run, const RunLease& lease) {
  return EndLeasedRun(run, lease, {});
}

absl::Status SqliteStore::EndLeasedRun(const v1::Run& run, const RunLease& lease,
                                       const std::vector<Notification>& notifications) {
  EXPORTD_RETURN_IF_ERROR(CheckWrittenUnderItsLease(run, lease));
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    EXPORTD_RETURN_IF_ERROR(CheckLeaseLocked(lease));
    EXPORTD_RETURN_IF_ERROR(PutRunLocked(run, /*create=*/false));
    for (const Notification& n : notifications) EXPORTD_RETURN_IF_ERROR(InsertNotificationLocked(n));
    if (IsFinal(run.state())) {
      // No attempt of the run is left to resume: its marks go.
      EXPORTD_ASSIGN_OR_RETURN(Statement forget,
                               db_->Prepare("DELETE FROM rejected_again WHERE run_id = ?"));
      forget.Bind(1, run.id());
      EXPORTD_RETURN_IF_ERROR(forget.Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Run> SqliteStore::UpdateUnclaimedRun(
    absl::string_view run_id, std::int64_t now_micros,
    const std::function<absl::Status(v1::Run&)>& fn) {
  absl::MutexLock lock(&mu_);
  v1::Run run;
  EXPORTD_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    EXPORTD_ASSIGN_OR_RETURN(
        Statement stmt, db_->Prepare(absl::StrCat("SELECT data, ", kLeaseColumns,
                                                  ", finished FROM runs WHERE id = ?")));
    stmt.Bind(1, run_id);
    EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("run '", run_id, "' does not exist"));
    EXPORTD_ASSIGN_OR_RETURN(run, ParseRow<v1::Run>(stmt.Blob(0), "run"));
    const std::string holder(stmt.Text(1));
    const std::int64_t expires = stmt.Int(2);
    if (stmt.Int(3) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run '", run_id, "' already ended (", v1::RunState_Name(run.state()), ")"));
    }
    if (expires > now_micros) {
      return absl::FailedPreconditionError(
          absl::StrCat("run '", run_id, "' is held by replica '", holder, "' until ",
                       absl::FormatTime(absl::FromUnixMicros(expires), absl::UTCTimeZone())));
    }
    EXPORTD_RETURN_IF_ERROR(fn(run));
    EXPORTD_RETURN_IF_ERROR(PutRunLocked(run, /*create=*/false));
    ShowLease(run, holder, expires);
    return absl::OkStatus();
  }));
  return run;
}

absl::Status SqliteStore::RequestCancel(absl::string_view run_id) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt,
                           db_->Prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?"));
  stmt.Bind(1, run_id);
  EXPORTD_RETURN_IF_ERROR(stmt.Run());
  if (sqlite3_changes(db_->handle()) == 0) {
    return absl::NotFoundError(absl::StrCat("run '", run_id, "' does not exist"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteStore::ClaimScheduledFiring(absl::string_view export_id,
                                                      std::int64_t fire_time_micros) {
  // One process per SQLite store, but the claim is kept anyway, in meta:
  // the latest firing claimed per export.
  absl::MutexLock lock(&mu_);
  bool claimed = false;
  EXPORTD_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    const std::string key = absl::StrCat("schedule_fired/", export_id);
    EXPORTD_ASSIGN_OR_RETURN(Statement read, db_->Prepare("SELECT value FROM meta WHERE key = ?"));
    read.Bind(1, key);
    EXPORTD_ASSIGN_OR_RETURN(bool row, read.Step());
    std::int64_t last = INT64_MIN;
    if (row && !absl::SimpleAtoi(read.Blob(0), &last)) last = INT64_MIN;
    if (last >= fire_time_micros) return absl::OkStatus();
    EXPORTD_ASSIGN_OR_RETURN(
        Statement put, db_->Prepare("INSERT INTO meta (key, value) VALUES (?, ?) "
                                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"));
    EXPORTD_RETURN_IF_ERROR(put.Bind(1, key).BindBlob(2, absl::StrCat(fire_time_micros)).Run());
    claimed = true;
    return absl::OkStatus();
  }));
  return claimed;
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
  // In the primary key's order: no sort.
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt, reader->Prepare("SELECT id_hash, profile_id, value_hash, run_id, "
                                      "ident_hash, state, row_hash FROM delivered "
                                      "WHERE audience_key = ? ORDER BY profile_id"));
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
    row.state = static_cast<DeliveredState>(stmt.Int(5));
    row.row_hash = static_cast<std::uint64_t>(stmt.Int(6));  // NULL reads as 0.
    EXPORTD_RETURN_IF_ERROR(fn(row));
  }
}

absl::Status SqliteStore::ForEachRejectedAgain(
    absl::string_view run_id, absl::string_view export_id, absl::string_view segment_id,
    const std::function<absl::Status(absl::string_view)>& fn) {
  EXPORTD_ASSIGN_OR_RETURN(auto reader, Database::Open(path_, /*read_only=*/true));
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      reader->Prepare("SELECT r.profile_id FROM rejected_again r JOIN audiences a ON "
                      "a.audience_key = r.audience_key WHERE r.run_id = ? AND a.export_id = ? "
                      "AND a.segment_id = ?"));
  stmt.Bind(1, run_id).Bind(2, export_id).Bind(3, segment_id);
  while (true) {
    EXPORTD_ASSIGN_OR_RETURN(bool has_row, stmt.Step());
    if (!has_row) return absl::OkStatus();
    EXPORTD_RETURN_IF_ERROR(fn(stmt.Text(0)));
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
      reader->Prepare("SELECT id_hash, value_hash, run_id, vals, ident_hash, state FROM "
                      "delivered WHERE audience_key = ? AND profile_id = ?"));
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
    row.ident_hash = static_cast<std::uint64_t>(stmt.Int(4));
    row.state = static_cast<DeliveredState>(stmt.Int(5));
    EXPORTD_RETURN_IF_ERROR(fn(row));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::CommitBatch(const BatchCommit& commit) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    // Fenced: a replica that lost the run writes nothing.
    EXPORTD_RETURN_IF_ERROR(CheckLeaseLocked(commit.lease));
    if (commit.lease.run_id != commit.checkpoint.id()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a batch of run '", commit.checkpoint.id(),
                       "' is committed under the lease of run '", commit.lease.run_id, "'"));
    }
    EXPORTD_ASSIGN_OR_RETURN(std::int64_t key,
                             AudienceKey(*db_, commit.export_id, commit.segment_id));
    if (!commit.delivered.empty()) {
      const std::vector<DeliveredRow>& rows = commit.delivered;
      // One statement for every full group of kRowsPerInsert rows, another
      // for the tail. The rows outlive each step: bound without a copy.
      std::optional<Statement> put;
      size_t put_rows = 0;  // The rows `put` takes.
      for (size_t begin = 0; begin < rows.size(); begin += put_rows) {
        const size_t n = std::min(kRowsPerInsert, rows.size() - begin);
        if (n != put_rows) {
          EXPORTD_ASSIGN_OR_RETURN(Statement prepared, db_->Prepare(InsertDeliveredSql(n)));
          put.emplace(std::move(prepared));
          put_rows = n;
        }
        for (size_t i = 0; i < n; ++i) {
          const DeliveredRow& row = rows[begin + i];
          const int base = static_cast<int>(i) * kDeliveredParams;
          put->Bind(base + 1, key)
              .Bind(base + 2, static_cast<std::int64_t>(row.id_hash))
              .BindUnowned(base + 3, row.profile_id)
              .Bind(base + 4, static_cast<std::int64_t>(row.value_hash))
              .BindUnowned(base + 5, row.run_id)
              .BindBlobUnowned(base + 6, row.values);
          BindHash(*put, base + 7, row.ident_hash);
          BindHash(*put, base + 8, row.row_hash);
        }
        absl::Status status = put->Run();
        put->Reset();  // Done with these rows' bytes.
        EXPORTD_RETURN_IF_ERROR(status);
      }
    }
    if (!commit.rejected.empty()) {
      // A member never delivered gets (or keeps) a row of its own; a
      // delivered one is only marked, so that its removal stays possible.
      EXPORTD_ASSIGN_OR_RETURN(
          Statement add,
          db_->Prepare("INSERT INTO delivered (audience_key, id_hash, profile_id, value_hash, "
                       "run_id, vals, ident_hash, state) VALUES (?, ?, ?, ?, ?, X'', ?, 2) "
                       "ON CONFLICT (audience_key, profile_id) DO UPDATE SET "
                       "value_hash = excluded.value_hash, run_id = excluded.run_id, "
                       "ident_hash = excluded.ident_hash, state = 2 "
                       "WHERE delivered.state IN (2, 3)"));
      EXPORTD_ASSIGN_OR_RETURN(
          Statement mark,
          db_->Prepare("UPDATE delivered SET state = 1, run_id = ? "
                       "WHERE audience_key = ? AND profile_id = ? AND state NOT IN (2, 3)"));
      // Forgotten by the destination: over whatever the row was.
      EXPORTD_ASSIGN_OR_RETURN(
          Statement forgot,
          db_->Prepare("INSERT INTO delivered (audience_key, id_hash, profile_id, value_hash, "
                       "run_id, vals, ident_hash, state) VALUES (?, ?, ?, ?, ?, X'', ?, 3) "
                       "ON CONFLICT (audience_key, profile_id) DO UPDATE SET "
                       "value_hash = excluded.value_hash, run_id = excluded.run_id, "
                       "ident_hash = excluded.ident_hash, vals = X'', state = 3"));
      for (const DeliveredRow& row : commit.rejected) {
        if (row.state == DeliveredState::kRejected || row.state == DeliveredState::kForgotten) {
          Statement& insert = row.state == DeliveredState::kForgotten ? forgot : add;
          insert.Reset();
          insert.Bind(1, key)
              .Bind(2, static_cast<std::int64_t>(row.id_hash))
              .Bind(3, row.profile_id)
              .Bind(4, static_cast<std::int64_t>(row.value_hash))
              .Bind(5, row.run_id);
          BindHash(insert, 6, row.ident_hash);
          EXPORTD_RETURN_IF_ERROR(insert.Run());
        } else {
          mark.Reset();
          mark.Bind(1, row.run_id).Bind(2, key).Bind(3, row.profile_id);
          EXPORTD_RETURN_IF_ERROR(mark.Run());
        }
      }
    }
    if (!commit.rejected_again.empty()) {
      // Appended in the run's own key range: a few pages, not the rows'.
      EXPORTD_ASSIGN_OR_RETURN(
          Statement mark, db_->Prepare("INSERT OR IGNORE INTO rejected_again (run_id, "
                                       "audience_key, profile_id) VALUES (?, ?, ?)"));
      for (const std::string& profile_id : commit.rejected_again) {
        mark.Reset();
        mark.Bind(1, commit.checkpoint.id()).Bind(2, key).Bind(3, profile_id);
        EXPORTD_RETURN_IF_ERROR(mark.Run());
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

// --- Run logs ----------------------------------------------------------------

absl::Status SqliteStore::AppendRunLog(absl::string_view run_id,
                                       const std::vector<v1::RunLogLine>& lines) {
  if (lines.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    EXPORTD_ASSIGN_OR_RETURN(
        Statement last, db_->Prepare("SELECT seq, level, dropped FROM run_log WHERE run_id = ? "
                                     "ORDER BY seq DESC LIMIT 1"));
    last.Bind(1, run_id);
    EXPORTD_ASSIGN_OR_RETURN(bool any, last.Step());
    const RunLogAppend plan = PlanRunLogAppend(
        any ? last.Int(0) : 0, any ? last.Int(2) : 0,
        any ? static_cast<v1::RunLogLevel>(last.Int(1)) : v1::RUN_LOG_LEVEL_UNSPECIFIED, lines);
    EXPORTD_ASSIGN_OR_RETURN(
        Statement put,
        db_->Prepare("INSERT OR REPLACE INTO run_log (run_id, seq, at_micros, level, source, "
                     "message, dropped) VALUES (?, ?, ?, ?, ?, ?, ?)"));
    auto write = [&](const v1::RunLogLine& line, std::int64_t dropped) {
      put.Reset();
      put.Bind(1, run_id)
          .Bind(2, line.seq())
          .Bind(3, line.at_micros())
          .Bind(4, static_cast<std::int64_t>(line.level()))
          .Bind(5, line.source())
          .Bind(6, line.message())
          .Bind(7, dropped);
      return put.Run();
    };
    for (const v1::RunLogLine& line : plan.insert) EXPORTD_RETURN_IF_ERROR(write(line, 0));
    if (plan.dropped_line.has_value()) {
      EXPORTD_RETURN_IF_ERROR(write(*plan.dropped_line, plan.dropped));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<v1::RunLogLine>> SqliteStore::ListRunLog(absl::string_view run_id,
                                                                    std::int64_t after_seq,
                                                                    int limit,
                                                                    v1::RunLogLevel min_level,
                                                                    bool* more) {
  limit = std::clamp(limit, 1, 1000);
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT seq, at_micros, level, source, message FROM run_log WHERE run_id = ? "
                   "AND seq > ? AND level >= ? ORDER BY seq LIMIT ?"));
  stmt.Bind(1, run_id)
      .Bind(2, after_seq)
      .Bind(3, static_cast<std::int64_t>(min_level))
      .Bind(4, static_cast<std::int64_t>(limit) + 1);
  std::vector<v1::RunLogLine> out;
  if (more != nullptr) *more = false;
  while (true) {
    EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    if (static_cast<int>(out.size()) == limit) {
      if (more != nullptr) *more = true;
      break;
    }
    v1::RunLogLine& line = out.emplace_back();
    line.set_seq(stmt.Int(0));
    line.set_at_micros(stmt.Int(1));
    line.set_level(static_cast<v1::RunLogLevel>(stmt.Int(2)));
    line.set_source(std::string(stmt.Text(3)));
    line.set_message(std::string(stmt.Text(4)));
  }
  return out;
}

}  // namespace exportd::store
