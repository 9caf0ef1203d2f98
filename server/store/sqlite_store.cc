#include "server/store/sqlite_store.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/numbers.h"
#include "server/common/clock.h"
#include "server/common/status_macros.h"

namespace exportd::store {
namespace {

// One step of the schema: applied to a database whose version is below
// `version`, which it then has.
struct Migration {
  int version;
  const char* sql;
};

// In ascending version order. Append only; never edit a migration that has
// shipped. A version may be missing (a step of another line of development
// that is not in this build): each step depends only on the steps below it
// that are listed here.
constexpr Migration kMigrations[] = {
    // 1: resources, segment snapshots, audit log.
    {1, R"sql(
    CREATE TABLE connections (
      id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BLOB NOT NULL, secrets BLOB NOT NULL);
    CREATE TABLE segments (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BLOB NOT NULL);
    CREATE TABLE segment_chunks (
      segment_id TEXT NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL,
      data BLOB NOT NULL, PRIMARY KEY (segment_id, version, seq)) WITHOUT ROWID;
    CREATE TABLE exports (
      id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, connection_id TEXT, data BLOB NOT NULL);
    CREATE INDEX exports_by_connection ON exports(connection_id);
    CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL);
    )sql"},
    // 2: runs, delivered state, rejections.
    {2, R"sql(
    CREATE TABLE runs (
      id TEXT PRIMARY KEY, export_id TEXT NOT NULL, created_at INTEGER NOT NULL,
      finished INTEGER NOT NULL, data BLOB NOT NULL);
    CREATE INDEX runs_by_export ON runs(export_id, created_at);
    CREATE INDEX runs_unfinished ON runs(finished, created_at);
    CREATE TABLE audiences (
      audience_key INTEGER PRIMARY KEY, export_id TEXT NOT NULL, segment_id TEXT NOT NULL,
      audience_id TEXT NOT NULL, mapping_fingerprint INTEGER NOT NULL,
      UNIQUE (export_id, segment_id));
    CREATE TABLE delivered (
      audience_key INTEGER NOT NULL, profile_id TEXT NOT NULL, id_hash INTEGER NOT NULL,
      value_hash INTEGER NOT NULL, run_id TEXT NOT NULL, vals BLOB NOT NULL,
      PRIMARY KEY (audience_key, profile_id)) WITHOUT ROWID;
    CREATE TABLE rejections (
      run_id TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
      PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
    )sql"},
    // 3: named values about the store itself (the master key's check value).
    {3, R"sql(
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    )sql"},
    // 4: the hash of the destination identifier each delivered member was
    // sent with (the identifier itself is in vals). Rows delivered before
    // keep NULL (unknown): the diff resends such a member once, which records
    // it.
    {4, R"sql(
    ALTER TABLE delivered ADD COLUMN ident_hash INTEGER;
    )sql"},
    // 5: the rate each connection's budget learned (requests and records per second).
    {5, R"sql(
    CREATE TABLE connection_rates (
      connection_id TEXT PRIMARY KEY, requests_per_second REAL NOT NULL,
      records_per_second REAL NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
    )sql"},
    // 6: the run queue's leases. A run is worked on by the replica whose lease
    // (holder, epoch, expiry) is live; lease_expires 0: nobody holds it.
    {6, R"sql(
    ALTER TABLE runs ADD COLUMN lease_holder TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN lease_expires INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    )sql"},
    // 7: what each delivered-state row records (store::DeliveredState): 0
    // delivered, 1 delivered but its last update rejected, 2 never delivered
    // and its last attempt rejected (3, written since without a schema change:
    // forgotten by the destination). Rows before are delivered.
    {7, R"sql(
    ALTER TABLE delivered ADD COLUMN state INTEGER NOT NULL DEFAULT 0;
    )sql"},
    // 8: snapshots are stored in profile-id order from this version on, and
    // each one's commit records it here; the ones stored before (not
    // recorded) are in upload order (Store::SnapshotInMemberOrder).
    {8, R"sql(
    CREATE TABLE sorted_snapshots (
      segment_id TEXT NOT NULL, version INTEGER NOT NULL,
      PRIMARY KEY (segment_id, version)) WITHOUT ROWID;
    )sql"},
    // 9: webhook notifications: each export's sealed signing secret (NULL:
    // none), and the outbox of notifications to deliver, leased to the
    // replica that delivers them (lease_expires 0: nobody holds one).
    {9, R"sql(
    ALTER TABLE exports ADD COLUMN notify_secret BLOB;
    CREATE TABLE notifications (
      run_id TEXT NOT NULL, trig TEXT NOT NULL, export_id TEXT NOT NULL,
      export_name TEXT NOT NULL, url TEXT NOT NULL, body BLOB NOT NULL,
      attempts INTEGER NOT NULL, created_at INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL,
      last_error TEXT NOT NULL, lease_holder TEXT NOT NULL DEFAULT '',
      lease_expires INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, trig)) WITHOUT ROWID;
    CREATE INDEX notifications_due ON notifications (next_attempt_at);
    )sql"},
    // 10: each run's log lines (Store::AppendRunLog), seq 1, 2, ... per run;
    // `dropped` counts the lines the last one (seq 1000) stands for.
    {10, R"sql(
    CREATE TABLE run_log (
      run_id TEXT NOT NULL, seq INTEGER NOT NULL, at_micros INTEGER NOT NULL,
      level INTEGER NOT NULL, source TEXT NOT NULL, message TEXT NOT NULL,
      dropped INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
    )sql"},
    // 11: the members each unfinished run saw rejected again, unchanged
    // (BatchCommit::rejected_again), in place of rewriting their delivered
    // rows for the run id alone; deleted when the run ends.
    {11, R"sql(
    CREATE TABLE rejected_again (
      run_id TEXT NOT NULL, audience_key INTEGER NOT NULL, profile_id TEXT NOT NULL,
      PRIMARY KEY (run_id, audience_key, profile_id)) WITHOUT ROWID;
    )sql"},
    // 12: the digest of the snapshot row each delivered member's values were
    // mapped from (DeliveredRow::row_hash); NULL (unknown) before, and for
    // rejected or forgotten rows.
    {12, R"sql(
    ALTER TABLE delivered ADD COLUMN row_hash INTEGER;
    )sql"},
    // 13: snapshot chunks in a rowid table (its key in an index beside it).
    // In the WITHOUT ROWID table each chunk (about 1 MB) was a key of the
    // B-tree: every page split copied whole chunks' overflow chains into the
    // parent's divider cells, and reading them took three times as long (2 GB
    // of chunks in 2.1 s against 0.6-0.8 s; writing them 1.5 times as long).
    // The upgrade copies the snapshots kept (two per segment) once.
    {13, R"sql(
    CREATE TABLE segment_chunks_rowid (
      segment_id TEXT NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL,
      data BLOB NOT NULL, PRIMARY KEY (segment_id, version, seq));
    INSERT INTO segment_chunks_rowid (segment_id, version, seq, data)
      SELECT segment_id, version, seq, data FROM segment_chunks ORDER BY segment_id, version, seq;
    DROP TABLE segment_chunks;
    ALTER TABLE segment_chunks_rowid RENAME TO segment_chunks;
    )sql"},
};

// Reads one row of (data) from `table` by id or name.
template <typename Message>
absl::StatusOr<Message> GetByIdOrName(Database& db, absl::string_view table, absl::string_view kind,
                                      absl::string_view id_or_name) {
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare(absl::StrCat("SELECT data FROM ", table, " WHERE id = ?1 OR name = ?1")));
  stmt.Bind(1, id_or_name);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return NotFoundError(kind, id_or_name);
  }
  return ParseRow<Message>(stmt.Blob(0), kind);
}

template <typename Message>
absl::StatusOr<std::vector<Message>> ListAll(Database& db, absl::string_view table,
                                             absl::string_view kind) {
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare(absl::StrCat("SELECT data FROM ", table, " ORDER BY name")));
  std::vector<Message> out;
  while (true) {
    EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    EXPORTD_ASSIGN_OR_RETURN(Message message, ParseRow<Message>(stmt.Blob(0), kind));
    out.push_back(std::move(message));
  }
  return out;
}

// Names the resource in a uniqueness failure.
absl::Status DuplicateName(absl::Status status, absl::string_view kind, absl::string_view name) {
  if (status.code() != absl::StatusCode::kAlreadyExists) return status;
  return DuplicateNameError(kind, name);
}

absl::Status ExpectChanged(Database& db, absl::string_view kind, absl::string_view id) {
  if (sqlite3_changes(db.handle()) == 0) {
    return absl::NotFoundError(absl::StrCat(kind, " '", id, "' does not exist"));
  }
  return absl::OkStatus();
}

}  // namespace

// Stages chunks under a version above the committed one; Commit flips the
// segment to it in one transaction.
class SqliteSnapshotWriter final : public StagedSnapshotWriter {
 public:
  SqliteSnapshotWriter(SqliteStore* store, std::string segment_id, std::int64_t version,
                       std::vector<v1::SchemaField> schema, MemberSorterOptions sort)
      : StagedSnapshotWriter(store, std::move(segment_id), version, std::move(schema),
                             std::move(sort)),
        sqlite_(store) {}

  ~SqliteSnapshotWriter() override { sqlite_->EndUpload(segment_id_, version_, committed_); }

 private:
  absl::StatusOr<v1::Segment> CommitStaged() override {
    absl::MutexLock lock(&sqlite_->mu_);
    v1::Segment segment;
    EXPORTD_RETURN_IF_ERROR(sqlite_->InTransaction([&]() -> absl::Status {
      EXPORTD_ASSIGN_OR_RETURN(segment, sqlite_->GetSegmentLocked(segment_id_));
      SetCommitted(segment, NowMicros());
      EXPORTD_ASSIGN_OR_RETURN(Statement update,
                               sqlite_->db_->Prepare("UPDATE segments SET data = ? WHERE id = ?"));
      update.BindBlob(1, segment.SerializeAsString()).Bind(2, segment_id_);
      EXPORTD_RETURN_IF_ERROR(update.Run());
      EXPORTD_ASSIGN_OR_RETURN(
          Statement sorted,
          sqlite_->db_->Prepare(
              "INSERT OR IGNORE INTO sorted_snapshots (segment_id, version) VALUES (?, ?)"));
      sorted.Bind(1, segment_id_).Bind(2, version_);
      EXPORTD_RETURN_IF_ERROR(sorted.Run());
      // Keep the previous snapshot for runs still reading it; drop older ones.
      for (const char* table : {"segment_chunks", "sorted_snapshots"}) {
        EXPORTD_ASSIGN_OR_RETURN(
            Statement prune,
            sqlite_->db_->Prepare(absl::StrCat("DELETE FROM ", table,
                                               " WHERE segment_id = ? AND version < ?")));
        prune.Bind(1, segment_id_).Bind(2, version_ - 1);
        EXPORTD_RETURN_IF_ERROR(prune.Run());
      }
      return absl::OkStatus();
    }));
    committed_ = true;
    return segment;
  }

  absl::Status FlushStaged() override {
    absl::MutexLock lock(&sqlite_->mu_);
    return sqlite_->InTransaction([&] { return FlushLocked(); });
  }

  absl::Status FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sqlite_->mu_) {
    if (pending_.empty()) return absl::OkStatus();
    EXPORTD_ASSIGN_OR_RETURN(
        Statement stmt,
        sqlite_->db_->Prepare(
            "INSERT INTO segment_chunks (segment_id, version, seq, data) VALUES (?, ?, ?, ?)"));
    std::int64_t seq = seq_;
    for (const std::string& bytes : pending_) {
      stmt.Reset();
      stmt.Bind(1, segment_id_).Bind(2, version_).Bind(3, seq++).BindBlob(4, bytes);
      EXPORTD_RETURN_IF_ERROR(stmt.Run());
    }
    WrotePending();
    return absl::OkStatus();
  }

  SqliteStore* const sqlite_;
};

int SqliteStore::CurrentSchemaVersion() { return std::end(kMigrations)[-1].version; }

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  EXPORTD_ASSIGN_OR_RETURN(auto db, Database::Open(path, /*read_only=*/false));
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, std::move(db)));
  EXPORTD_RETURN_IF_ERROR(store->Migrate(CurrentSchemaVersion()));
  return store;
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::OpenAtSchemaForTesting(
    const std::string& path, int version) {
  EXPORTD_ASSIGN_OR_RETURN(auto db, Database::Open(path, /*read_only=*/false));
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, std::move(db)));
  EXPORTD_RETURN_IF_ERROR(store->Migrate(std::min(version, CurrentSchemaVersion())));
  return store;
}

absl::Status SqliteStore::Migrate(int target) {
  absl::MutexLock lock(&mu_);
  EXPORTD_RETURN_IF_ERROR(db_->Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  int version = 0;
  {
    // Finalized before the steps run: a statement still open would keep a
    // step from dropping a table ("database table is locked").
    EXPORTD_ASSIGN_OR_RETURN(Statement read, db_->Prepare("SELECT version FROM schema_version"));
    EXPORTD_ASSIGN_OR_RETURN(bool has_row, read.Step());
    if (has_row) version = static_cast<int>(read.Int(0));
  }
  if (version > CurrentSchemaVersion()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database '", path_, "' has schema version ", version, ", newer than this exportd's ",
        CurrentSchemaVersion(), "; run a newer exportd or another --data-dir"));
  }
  for (const Migration& step : kMigrations) {
    if (step.version <= version) continue;
    if (step.version > target) break;
    EXPORTD_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
      EXPORTD_RETURN_IF_ERROR(db_->Exec(step.sql));
      EXPORTD_RETURN_IF_ERROR(db_->Exec("DELETE FROM schema_version"));
      return db_->Exec(absl::StrCat("INSERT INTO schema_version VALUES (", step.version, ")"));
    }));
  }
  if (target < CurrentSchemaVersion()) return absl::OkStatus();  // An old schema, for tests.
  // Uploads interrupted by a crash left staged chunks above the committed
  // version: they were never visible, so they go.
  EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Segment> segments,
                           ListAll<v1::Segment>(*db_, "segments", "segment"));
  for (const v1::Segment& segment : segments) {
    EXPORTD_ASSIGN_OR_RETURN(
        Statement prune,
        db_->Prepare("DELETE FROM segment_chunks WHERE segment_id = ? AND version > ?"));
    prune.Bind(1, segment.id()).Bind(2, segment.snapshot_version());
    EXPORTD_RETURN_IF_ERROR(prune.Run());
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::InTransaction(const std::function<absl::Status()>& fn) {
  EXPORTD_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  absl::Status status = fn();
  if (status.ok()) status = db_->Exec("COMMIT");
  if (!status.ok()) db_->Exec("ROLLBACK").IgnoreError();
  return status;
}

// --- Connections -----------------------------------------------------------

absl::Status SqliteStore::CreateConnection(const StoredConnection& c) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT INTO connections (id, name, data, secrets) VALUES (?, ?, ?, ?)"));
  stmt.Bind(1, c.connection.id())
      .Bind(2, c.connection.display_name())
      .BindBlob(3, c.connection.SerializeAsString())
      .BindBlob(4, c.sealed_secrets);
  return DuplicateName(stmt.Run(), "connection", c.connection.display_name());
}

absl::StatusOr<StoredConnection> SqliteStore::GetConnection(absl::string_view id_or_name) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT data, secrets FROM connections WHERE id = ?1 OR name = ?1"));
  stmt.Bind(1, id_or_name);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat(
        "connection '", id_or_name,
        "' does not exist; list them with 'exportctl connection list'"));
  }
  StoredConnection out;
  EXPORTD_ASSIGN_OR_RETURN(out.connection, ParseRow<v1::Connection>(stmt.Blob(0), "connection"));
  out.sealed_secrets = std::string(stmt.Blob(1));
  return out;
}

absl::StatusOr<std::vector<StoredConnection>> SqliteStore::ListConnections() {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Connection> connections,
                           ListAll<v1::Connection>(*db_, "connections", "connection"));
  std::vector<StoredConnection> out;
  out.reserve(connections.size());
  for (auto& c : connections) out.push_back({std::move(c), {}});
  return out;
}

absl::Status SqliteStore::UpdateConnection(const StoredConnection& c) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("UPDATE connections SET name = ?, data = ?, secrets = ? WHERE id = ?"));
  stmt.Bind(1, c.connection.display_name())
      .BindBlob(2, c.connection.SerializeAsString())
      .BindBlob(3, c.sealed_secrets)
      .Bind(4, c.connection.id());
  EXPORTD_RETURN_IF_ERROR(DuplicateName(stmt.Run(), "connection", c.connection.display_name()));
  return ExpectChanged(*db_, "connection", c.connection.id());
}

absl::StatusOr<DeleteConnectionResult> SqliteStore::DeleteConnection(
    absl::string_view id, ExportDisposition disposition) {
  absl::MutexLock lock(&mu_);
  DeleteConnectionResult result;
  EXPORTD_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Export> exports, ListExportsLocked());
    std::vector<v1::Export> users;
    for (auto& e : exports) {
      if (e.connection_id() == id) users.push_back(std::move(e));
    }
    if (!users.empty() && disposition == ExportDisposition::kRefuse) {
      std::vector<std::string> names;
      for (const auto& e : users) names.push_back(e.name());
      EXPORTD_ASSIGN_OR_RETURN(Statement name,
                               db_->Prepare("SELECT name FROM connections WHERE id = ?"));
      name.Bind(1, id);
      EXPORTD_ASSIGN_OR_RETURN(bool found, name.Step());
      return absl::FailedPreconditionError(absl::StrCat(
          "connection '", found ? name.Text(0) : id, "' is used by exports: ", absl::StrJoin(names, ", "),
          "; detach them (--detach-exports) or delete them (--delete-exports) first"));
    }
    for (v1::Export& e : users) {
      if (disposition == ExportDisposition::kDelete) {
        EXPORTD_ASSIGN_OR_RETURN(Statement del, db_->Prepare("DELETE FROM exports WHERE id = ?"));
        EXPORTD_RETURN_IF_ERROR(del.Bind(1, e.id()).Run());
        result.deleted_exports.push_back(e.name());
      } else {
        e.clear_connection_id();
        e.clear_connection_name();
        e.set_active(false);
        e.set_updated_at_micros(NowMicros());
        EXPORTD_ASSIGN_OR_RETURN(
            Statement upd,
            db_->Prepare("UPDATE exports SET connection_id = NULL, data = ? WHERE id = ?"));
        EXPORTD_RETURN_IF_ERROR(upd.BindBlob(1, e.SerializeAsString()).Bind(2, e.id()).Run());
        result.detached_exports.push_back(e.name());
      }
    }
    EXPORTD_ASSIGN_OR_RETURN(Statement del, db_->Prepare("DELETE FROM connections WHERE id = ?"));
    EXPORTD_RETURN_IF_ERROR(del.Bind(1, id).Run());
    EXPORTD_RETURN_IF_ERROR(ExpectChanged(*db_, "connection", id));
    EXPORTD_ASSIGN_OR_RETURN(Statement rate,
                             db_->Prepare("DELETE FROM connection_rates WHERE connection_id = ?"));
    return rate.Bind(1, id).Run();
  }));
  return result;
}

// --- Segments --------------------------------------------------------------

absl::Status SqliteStore::CreateSegment(const v1::Segment& segment) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt,
                           db_->Prepare("INSERT INTO segments (id, name, data) VALUES (?, ?, ?)"));
  stmt.Bind(1, segment.id()).Bind(2, segment.name()).BindBlob(3, segment.SerializeAsString());
  return DuplicateName(stmt.Run(), "segment", segment.name());
}

absl::StatusOr<v1::Segment> SqliteStore::GetSegmentLocked(absl::string_view id_or_name) {
  EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment,
                           GetByIdOrName<v1::Segment>(*db_, "segments", "segment", id_or_name));
  segment.set_upload_in_progress(uploading_.contains(segment.id()));
  return segment;
}

absl::StatusOr<v1::Segment> SqliteStore::GetSegment(absl::string_view id_or_name) {
  absl::MutexLock lock(&mu_);
  return GetSegmentLocked(id_or_name);
}

absl::StatusOr<std::vector<v1::Segment>> SqliteStore::ListSegments() {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(auto segments, ListAll<v1::Segment>(*db_, "segments", "segment"));
  for (auto& s : segments) s.set_upload_in_progress(uploading_.contains(s.id()));
  return segments;
}

absl::Status SqliteStore::DeleteSegment(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment, GetSegmentLocked(id));
  if (segment.id() != id) return NotFoundError("segment", id);
  if (segment.upload_in_progress()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "segment '", segment.name(), "' is being uploaded; delete it when the upload ends"));
  }
  return InTransaction([&]() -> absl::Status {
    EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Export> exports, ListExportsLocked());
    EXPORTD_RETURN_IF_ERROR(SegmentUnusedBy(exports, segment));
    for (const char* table : {"segment_chunks", "sorted_snapshots"}) {
      EXPORTD_ASSIGN_OR_RETURN(
          Statement chunks,
          db_->Prepare(absl::StrCat("DELETE FROM ", table, " WHERE segment_id = ?")));
      EXPORTD_RETURN_IF_ERROR(chunks.Bind(1, id).Run());
    }
    EXPORTD_ASSIGN_OR_RETURN(Statement del, db_->Prepare("DELETE FROM segments WHERE id = ?"));
    EXPORTD_RETURN_IF_ERROR(del.Bind(1, id).Run());
    return ExpectChanged(*db_, "segment", id);
  });
}

absl::StatusOr<std::unique_ptr<SnapshotWriter>> SqliteStore::BeginSnapshot(
    absl::string_view segment_id, std::vector<v1::SchemaField> schema, MemberSorterOptions sort) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment, GetSegmentLocked(segment_id));
  if (!uploading_.insert(segment.id()).second) {
    return absl::FailedPreconditionError(absl::StrCat(
        "segment '", segment.name(), "' is already being uploaded; wait for that upload to end"));
  }
  return std::unique_ptr<SnapshotWriter>(new SqliteSnapshotWriter(
      this, segment.id(), segment.snapshot_version() + 1, std::move(schema), std::move(sort)));
}

void SqliteStore::EndUpload(const std::string& segment_id, std::int64_t version, bool committed) {
  absl::MutexLock lock(&mu_);
  uploading_.erase(segment_id);
  if (committed) return;
  auto prune = db_->Prepare("DELETE FROM segment_chunks WHERE segment_id = ? AND version = ?");
  if (prune.ok()) prune->Bind(1, segment_id).Bind(2, version).Run().IgnoreError();
}

absl::Status SqliteStore::ForEachChunkBytes(
    absl::string_view segment_id, std::int64_t version,
    const std::function<absl::Status(absl::string_view bytes)>& fn) {
  // A connection of its own: a long read must not hold the writers' mutex.
  EXPORTD_ASSIGN_OR_RETURN(auto reader, Database::Open(path_, /*read_only=*/true));
  // The chunks are read a few at a time, each slice copied out in a read
  // transaction of its own that ends before `fn` sees them. One statement
  // stepping through the whole snapshot kept its read transaction open for the
  // whole run, and while a reader is open SQLite can neither checkpoint what
  // was committed after it began nor start its write-ahead log over: the log
  // grew by every row the run delivered (2.1 GB for a first run of 10M
  // members), and the kernel zero-filled each new page of it (11% of that
  // run's CPU). A slice read in place (its transaction open while `fn` waits
  // for the parsers) still kept one open nearly all the time.
  // A snapshot's chunks never change, but the version may be pruned between
  // slices (two newer uploads committed while the run read it): the count
  // read first tells, and the run is retried on the newest snapshot.
  constexpr std::int64_t kSliceChunks = 4;
  EXPORTD_ASSIGN_OR_RETURN(
      Statement count,
      reader->Prepare("SELECT COUNT(*) FROM segment_chunks WHERE segment_id = ? AND version = ?"));
  count.Bind(1, segment_id).Bind(2, version);
  EXPORTD_ASSIGN_OR_RETURN(bool counted, count.Step());
  const std::int64_t total = counted ? count.Int(0) : 0;
  count.Reset();
  EXPORTD_ASSIGN_OR_RETURN(
      Statement slice,
      reader->Prepare("SELECT seq, data FROM segment_chunks WHERE segment_id = ? AND version = ? "
                      "AND seq > ? ORDER BY seq LIMIT ?"));
  std::vector<std::string> chunks(kSliceChunks);  // Reused: no allocation per slice.
  std::int64_t last_seq = std::numeric_limits<std::int64_t>::min();
  for (std::int64_t read = 0; read < total;) {
    slice.Reset();
    slice.Bind(1, segment_id).Bind(2, version).Bind(3, last_seq).Bind(4, kSliceChunks);
    size_t got = 0;
    while (got < chunks.size()) {
      EXPORTD_ASSIGN_OR_RETURN(bool row, slice.Step());
      if (!row) break;
      last_seq = slice.Int(0);
      const absl::string_view bytes = slice.Blob(1);
      chunks[got++].assign(bytes.data(), bytes.size());
    }
    slice.Reset();  // Ends the slice's read transaction.
    if (got == 0) {
      return absl::AbortedError(absl::StrCat(
          "snapshot version ", version, " of segment '", segment_id,
          "' was replaced by two newer uploads while it was being read (", read, " of ", total,
          " chunks read); read the segment's newest snapshot instead (a run is retried)"));
    }
    for (size_t i = 0; i < got; ++i) EXPORTD_RETURN_IF_ERROR(fn(chunks[i]));
    read += static_cast<std::int64_t>(got);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteStore::SnapshotInMemberOrder(absl::string_view segment_id,
                                                        std::int64_t version) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT 1 FROM sorted_snapshots WHERE segment_id = ? AND version = ?"));
  stmt.Bind(1, segment_id).Bind(2, version);
  return stmt.Step();
}

// --- Exports ---------------------------------------------------------------

absl::Status SqliteStore::CreateExport(const v1::Export& e) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT INTO exports (id, name, connection_id, data) VALUES (?, ?, ?, ?)"));
  stmt.Bind(1, e.id()).Bind(2, e.name());
  if (e.connection_id().empty()) {
    stmt.BindNull(3);
  } else {
    stmt.Bind(3, e.connection_id());
  }
  stmt.BindBlob(4, e.SerializeAsString());
  return DuplicateName(stmt.Run(), "export", e.name());
}

absl::StatusOr<v1::Export> SqliteStore::GetExport(absl::string_view id_or_name) {
  absl::MutexLock lock(&mu_);
  return GetByIdOrName<v1::Export>(*db_, "exports", "export", id_or_name);
}

absl::StatusOr<std::vector<v1::Export>> SqliteStore::ListExportsLocked() {
  return ListAll<v1::Export>(*db_, "exports", "export");
}

absl::StatusOr<std::vector<v1::Export>> SqliteStore::ListExports() {
  absl::MutexLock lock(&mu_);
  return ListExportsLocked();
}

absl::Status SqliteStore::UpdateExport(const v1::Export& e) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("UPDATE exports SET name = ?, connection_id = ?, data = ? WHERE id = ?"));
  stmt.Bind(1, e.name());
  if (e.connection_id().empty()) {
    stmt.BindNull(2);
  } else {
    stmt.Bind(2, e.connection_id());
  }
  stmt.BindBlob(3, e.SerializeAsString()).Bind(4, e.id());
  EXPORTD_RETURN_IF_ERROR(DuplicateName(stmt.Run(), "export", e.name()));
  return ExpectChanged(*db_, "export", e.id());
}

absl::Status SqliteStore::DeleteExport(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt, db_->Prepare("DELETE FROM exports WHERE id = ?"));
  EXPORTD_RETURN_IF_ERROR(stmt.Bind(1, id).Run());
  return ExpectChanged(*db_, "export", id);
}

// --- Audit -----------------------------------------------------------------

absl::Status SqliteStore::AppendAudit(v1::AuditEntry entry) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt, db_->Prepare("INSERT INTO audit (data) VALUES (?)"));
  entry.clear_id();
  return stmt.BindBlob(1, entry.SerializeAsString()).Run();
}

absl::StatusOr<std::vector<v1::AuditEntry>> SqliteStore::ListAudit(const PageRequest& page,
                                                                  std::string* next_cursor) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(std::int64_t before, ParsePageToken(page.after, INT64_MAX));
  int limit = page.limit <= 0 ? 100 : std::min(page.limit, 1000);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT id, data FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?"));
  stmt.Bind(1, before).Bind(2, static_cast<std::int64_t>(limit + 1));
  return ReadPage<v1::AuditEntry>(stmt, limit, "audit entry", next_cursor,
                                  [](v1::AuditEntry& e, std::int64_t id) { e.set_id(id); });
}

// --- Meta ------------------------------------------------------------------

absl::StatusOr<ConnectionRate> SqliteStore::GetConnectionRate(absl::string_view connection_id) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT requests_per_second, records_per_second, updated_at "
                   "FROM connection_rates WHERE connection_id = ?"));
  stmt.Bind(1, connection_id);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(
        absl::StrCat("no rate was learned for connection '", connection_id, "' yet"));
  }
  ConnectionRate rate;
  rate.requests_per_second = stmt.Double(0);
  rate.records_per_second = stmt.Double(1);
  rate.updated_at_micros = stmt.Int(2);
  return rate;
}

absl::Status SqliteStore::PutConnectionRate(absl::string_view connection_id,
                                            const ConnectionRate& rate) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT INTO connection_rates "
                   "(connection_id, requests_per_second, records_per_second, updated_at) "
                   "VALUES (?, ?, ?, ?) ON CONFLICT (connection_id) DO UPDATE SET "
                   "requests_per_second = excluded.requests_per_second, "
                   "records_per_second = excluded.records_per_second, "
                   "updated_at = excluded.updated_at"));
  return stmt.Bind(1, connection_id)
      .BindDouble(2, rate.requests_per_second)
      .BindDouble(3, rate.records_per_second)
      .Bind(4, rate.updated_at_micros)
      .Run();
}

absl::StatusOr<int> SqliteStore::ShareConnection(absl::string_view, absl::string_view,
                                                 std::int64_t, std::int64_t) {
  return 1;  // The data directory is locked: this process is the only sender.
}

absl::Status SqliteStore::EndConnectionShare(absl::string_view, absl::string_view) {
  return absl::OkStatus();
}

absl::StatusOr<std::string> SqliteStore::GetMeta(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt, db_->Prepare("SELECT value FROM meta WHERE key = ?"));
  stmt.Bind(1, key);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("database '", path_, "' holds no value '", key, "'"));
  }
  return std::string(stmt.Blob(0));
}

absl::Status SqliteStore::PutMeta(absl::string_view key, absl::string_view value) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt,
                           db_->Prepare("INSERT INTO meta (key, value) VALUES (?, ?) "
                                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"));
  return stmt.Bind(1, key).BindBlob(2, value).Run();
}

}  // namespace exportd::store
