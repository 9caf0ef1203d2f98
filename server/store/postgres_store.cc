// PostgresStore: migrations, connections, segments and their snapshots,
// exports, the audit log, meta values and learned connection rates.
#include "server/store/postgres_store.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/numbers.h"
#include "server/common/clock.h"
#include "server/common/status_macros.h"
#include "server/store/sqlite_util.h"

namespace exportd::store {
namespace {

// Advisory lock keys (pg_advisory_lock(class, key)) of exportd.
constexpr int kMigrationLock = 0x65787064;  // "expd": one migrator at a time.
// (kUploadLockClass, hashtext(segment_id)): held by the session of an upload.
constexpr char kUploadLockClass[] = "1702391908";

// One step of the schema: applied to a database whose version is below
// `version`, which it then has.
struct Migration {
  int version;
  const char* sql;
};

// In ascending version order. Append only; never edit a migration that has
// shipped. A version may be missing (a step of another line of development
// that is not in this build): each step depends only on the steps below it
// that are listed here. Text keys sort bytewise (COLLATE "C"), as SQLite
// does, whatever the database's locale.
constexpr Migration kMigrations[] = {
    // 1: everything the SQLite store has at its version 6.
    {1, R"sql(
    CREATE TABLE connections (
      id TEXT COLLATE "C" PRIMARY KEY, name TEXT COLLATE "C" NOT NULL UNIQUE,
      data BYTEA NOT NULL, secrets BYTEA NOT NULL);
    CREATE TABLE segments (
      id TEXT COLLATE "C" PRIMARY KEY, name TEXT COLLATE "C" NOT NULL UNIQUE, data BYTEA NOT NULL);
    CREATE TABLE segment_chunks (
      segment_id TEXT COLLATE "C" NOT NULL, version BIGINT NOT NULL, seq BIGINT NOT NULL,
      data BYTEA NOT NULL, PRIMARY KEY (segment_id, version, seq));
    CREATE TABLE exports (
      id TEXT COLLATE "C" PRIMARY KEY, name TEXT COLLATE "C" NOT NULL UNIQUE,
      connection_id TEXT COLLATE "C", data BYTEA NOT NULL);
    CREATE INDEX exports_by_connection ON exports (connection_id);
    CREATE TABLE audit (id BIGSERIAL PRIMARY KEY, data BYTEA NOT NULL);
    CREATE TABLE runs (
      seq BIGSERIAL UNIQUE, id TEXT COLLATE "C" PRIMARY KEY,
      export_id TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL,
      finished BOOLEAN NOT NULL, state INTEGER NOT NULL, next_attempt_at BIGINT NOT NULL,
      data BYTEA NOT NULL,
      lease_holder TEXT NOT NULL DEFAULT '', lease_epoch BIGINT NOT NULL DEFAULT 0,
      lease_expires BIGINT NOT NULL DEFAULT 0, cancel_requested BOOLEAN NOT NULL DEFAULT FALSE);
    CREATE INDEX runs_by_export ON runs (export_id, seq);
    CREATE INDEX runs_unfinished ON runs (seq) WHERE NOT finished;
    CREATE TABLE audiences (
      audience_key BIGSERIAL PRIMARY KEY, export_id TEXT COLLATE "C" NOT NULL,
      segment_id TEXT COLLATE "C" NOT NULL, audience_id TEXT NOT NULL,
      mapping_fingerprint BIGINT NOT NULL, UNIQUE (export_id, segment_id));
    CREATE TABLE delivered (
      audience_key BIGINT NOT NULL, profile_id TEXT COLLATE "C" NOT NULL,
      id_hash BIGINT NOT NULL, value_hash BIGINT NOT NULL, run_id TEXT NOT NULL,
      vals BYTEA NOT NULL, ident_hash BIGINT, PRIMARY KEY (audience_key, profile_id));
    CREATE TABLE rejections (
      run_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, data BYTEA NOT NULL,
      PRIMARY KEY (run_id, seq));
    CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL);
    CREATE TABLE connection_rates (
      connection_id TEXT COLLATE "C" PRIMARY KEY, requests_per_second DOUBLE PRECISION NOT NULL,
      records_per_second DOUBLE PRECISION NOT NULL, updated_at BIGINT NOT NULL);
    )sql"},
    // 2: the latest schedule firing claimed per export, so that the
    // schedulers of several replicas fire each occurrence once.
    {2, R"sql(
    CREATE TABLE schedule_firings (
      export_id TEXT COLLATE "C" PRIMARY KEY, fired_for BIGINT NOT NULL);
    )sql"},
    // 3: which replicas send on each connection now (each sends its share of
    // the connection's rate); a share that is not renewed expires.
    {3, R"sql(
    CREATE TABLE connection_shares (
      connection_id TEXT COLLATE "C" NOT NULL, replica TEXT NOT NULL,
      expires_at BIGINT NOT NULL, PRIMARY KEY (connection_id, replica));
    )sql"},
    // 4: what each delivered-state row records (store::DeliveredState): 0
    // delivered, 1 delivered but its last update rejected, 2 never delivered
    // and its last attempt rejected (3, written since without a schema change:
    // forgotten by the destination).
    {4, R"sql(
    ALTER TABLE delivered ADD COLUMN state SMALLINT NOT NULL DEFAULT 0;
    )sql"},
    // 5: snapshots are stored in profile-id order from this version on, and
    // each one's commit records it here; the ones stored before (or by a
    // replica of an older version still running) are not recorded: they are
    // in upload order (Store::SnapshotInMemberOrder).
    {5, R"sql(
    CREATE TABLE sorted_snapshots (
      segment_id TEXT COLLATE "C" NOT NULL, version BIGINT NOT NULL,
      PRIMARY KEY (segment_id, version));
    )sql"},
    // 6: webhook notifications: each export's sealed signing secret (NULL:
    // none), and the outbox of notifications to deliver, leased to the
    // replica that delivers them (lease_expires 0: nobody holds one).
    {6, R"sql(
    ALTER TABLE exports ADD COLUMN notify_secret BYTEA;
    CREATE TABLE notifications (
      run_id TEXT COLLATE "C" NOT NULL, trig TEXT COLLATE "C" NOT NULL,
      export_id TEXT COLLATE "C" NOT NULL, export_name TEXT NOT NULL, url TEXT NOT NULL,
      body BYTEA NOT NULL, attempts INTEGER NOT NULL, created_at BIGINT NOT NULL,
      next_attempt_at BIGINT NOT NULL, last_error TEXT NOT NULL,
      lease_holder TEXT NOT NULL DEFAULT '', lease_expires BIGINT NOT NULL DEFAULT 0,
      PRIMARY KEY (run_id, trig));
    CREATE INDEX notifications_due ON notifications (next_attempt_at);
    )sql"},
    // 7: each run's log lines (Store::AppendRunLog), seq 1, 2, ... per run;
    // `dropped` counts the lines the last one (seq 1000) stands for.
    {7, R"sql(
    CREATE TABLE run_log (
      run_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, at_micros BIGINT NOT NULL,
      level SMALLINT NOT NULL, source TEXT NOT NULL, message TEXT NOT NULL,
      dropped BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (run_id, seq));
    )sql"},
    // 8: the members each unfinished run saw rejected again, unchanged
    // (BatchCommit::rejected_again), in place of rewriting their delivered
    // rows for the run id alone; deleted when the run ends.
    {8, R"sql(
    CREATE TABLE rejected_again (
      run_id TEXT COLLATE "C" NOT NULL, audience_key BIGINT NOT NULL,
      profile_id TEXT COLLATE "C" NOT NULL, PRIMARY KEY (run_id, audience_key, profile_id));
    )sql"},
    // 9: the digest of the snapshot row each delivered member's values were
    // mapped from (DeliveredRow::row_hash); NULL (unknown) before, and for
    // rejected or forgotten rows.
    {9, R"sql(
    ALTER TABLE delivered ADD COLUMN row_hash BIGINT;
    )sql"},
};

// The segments whose upload lock is held, as a subquery on `segments s`.
const std::string& UploadingCondition() {
  static const std::string* condition = new std::string(absl::StrCat(
      "(hashtext(s.id)::bigint & 4294967295)::oid IN (SELECT objid FROM pg_locks WHERE "
      "locktype = 'advisory' AND classid = ",
      kUploadLockClass,
      " AND objsubid = 2 AND granted AND database = "
      "(SELECT oid FROM pg_database WHERE datname = current_database()))"));
  return *condition;
}

template <typename Message>
absl::StatusOr<Message> GetByIdOrName(PgConnection& conn, absl::string_view table,
                                      absl::string_view kind, absl::string_view id_or_name) {
  PgParams params;
  params.Text(id_or_name);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec(absl::StrCat("SELECT data FROM ", table, " WHERE id = $1 OR name = $1 "
                             "ORDER BY id = $1 DESC LIMIT 1"),
                params));
  if (r.rows() == 0) return NotFoundError(kind, id_or_name);
  return ParseRow<Message>(r.Bytes(0, 0), kind);
}

template <typename Message>
absl::StatusOr<std::vector<Message>> ListAll(PgConnection& conn, absl::string_view table,
                                             absl::string_view kind) {
  EXPORTD_ASSIGN_OR_RETURN(PgResult r,
                           conn.Exec(absl::StrCat("SELECT data FROM ", table, " ORDER BY name")));
  std::vector<Message> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    EXPORTD_ASSIGN_OR_RETURN(Message message, ParseRow<Message>(r.Bytes(i, 0), kind));
    out.push_back(std::move(message));
  }
  return out;
}

// Names the resource in a uniqueness failure.
absl::Status DuplicateName(absl::Status status, absl::string_view kind, absl::string_view name) {
  if (status.code() != absl::StatusCode::kAlreadyExists) return status;
  return DuplicateNameError(kind, name);
}

absl::Status ExpectChanged(const PgResult& r, absl::string_view kind, absl::string_view id) {
  if (r.affected() == 0) {
    return absl::NotFoundError(absl::StrCat(kind, " '", id, "' does not exist"));
  }
  return absl::OkStatus();
}

}  // namespace

// Stages chunks under a version above the committed one, on a connection of
// its own that holds the segment's upload lock (so every replica sees the
// upload, and a replica that dies mid-upload releases it with its
// connection); Commit flips the segment to the new version in one
// transaction.
class PgSnapshotWriter final : public StagedSnapshotWriter {
 public:
  PgSnapshotWriter(PostgresStore* store, std::unique_ptr<PgConnection> conn,
                   std::string segment_id, std::int64_t version,
                   std::vector<v1::SchemaField> schema, MemberSorterOptions sort)
      : StagedSnapshotWriter(store, std::move(segment_id), version, std::move(schema),
                             std::move(sort)),
        conn_(std::move(conn)) {}

  ~PgSnapshotWriter() override {
    if (!committed_) {
      // Never visible.
      PgParams params;
      params.Text(segment_id_).Int(version_);
      conn_->Exec("DELETE FROM segment_chunks WHERE segment_id = $1 AND version = $2", params)
          .IgnoreError();
    }
    // Released here rather than by closing the connection, which the server
    // notices only a little later: a run waiting for the upload may start now.
    PgParams id;
    id.Text(segment_id_);
    conn_->Exec(absl::StrCat("SELECT pg_advisory_unlock(", kUploadLockClass, ", hashtext($1))"), id)
        .IgnoreError();
  }

 private:
  absl::StatusOr<v1::Segment> CommitStaged() override {
    v1::Segment segment;
    EXPORTD_RETURN_IF_ERROR(conn_->Exec("BEGIN").status());
    absl::Status status = [&]() -> absl::Status {
      PgParams id;
      id.Text(segment_id_);
      EXPORTD_ASSIGN_OR_RETURN(PgResult r,
                               conn_->Exec("SELECT data FROM segments WHERE id = $1 FOR UPDATE", id));
      if (r.rows() == 0) return NotFoundError("segment", segment_id_);
      EXPORTD_ASSIGN_OR_RETURN(segment, ParseRow<v1::Segment>(r.Bytes(0, 0), "segment"));
      SetCommitted(segment, NowMicros());
      PgParams update;
      update.Bytes(segment.SerializeAsString()).Text(segment_id_);
      EXPORTD_RETURN_IF_ERROR(
          conn_->Exec("UPDATE segments SET data = $1 WHERE id = $2", update).status());
      PgParams sorted;
      sorted.Text(segment_id_).Int(version_);
      EXPORTD_RETURN_IF_ERROR(conn_
                                  ->Exec("INSERT INTO sorted_snapshots (segment_id, version) "
                                         "VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                         sorted)
                                  .status());
      // Keep the previous snapshot for runs still reading it; drop older ones.
      PgParams prune;
      prune.Text(segment_id_).Int(version_ - 1);
      EXPORTD_RETURN_IF_ERROR(
          conn_->Exec("DELETE FROM segment_chunks WHERE segment_id = $1 AND version < $2", prune)
              .status());
      return conn_
          ->Exec("DELETE FROM sorted_snapshots WHERE segment_id = $1 AND version < $2", prune)
          .status();
    }();
    if (status.ok()) status = conn_->Exec("COMMIT").status();
    if (!status.ok()) {
      conn_->Exec("ROLLBACK").IgnoreError();
      return status;
    }
    committed_ = true;
    return segment;
  }

  absl::Status FlushStaged() override {
    std::int64_t seq = seq_;
    for (const std::string& bytes : pending_) {
      PgParams params;
      params.Text(segment_id_).Int(version_).Int(seq++).Bytes(bytes);
      EXPORTD_RETURN_IF_ERROR(
          conn_
              ->Exec("INSERT INTO segment_chunks (segment_id, version, seq, data) "
                     "VALUES ($1, $2, $3, $4)",
                     params)
              .status());
    }
    WrotePending();
    return absl::OkStatus();
  }

  std::unique_ptr<PgConnection> conn_;
};

int PostgresStore::CurrentSchemaVersion() { return std::end(kMigrations)[-1].version; }

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(const std::string& conninfo) {
  EXPORTD_RETURN_IF_ERROR(CheckPgConnectionString(conninfo));
  std::unique_ptr<PostgresStore> store(new PostgresStore(conninfo));
  EXPORTD_RETURN_IF_ERROR(store->Migrate());
  return store;
}

absl::Status PostgresStore::Migrate() {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  // Session lock: replicas that start together migrate one after another;
  // the later ones find the work done.
  EXPORTD_RETURN_IF_ERROR(
      conn->Exec(absl::StrCat("SELECT pg_advisory_lock(", kMigrationLock, ")")).status());
  absl::Status status = [&]() -> absl::Status {
    EXPORTD_RETURN_IF_ERROR(
        conn->Exec("CREATE TABLE IF NOT EXISTS exportd_schema (version INTEGER NOT NULL)").status());
    EXPORTD_ASSIGN_OR_RETURN(PgResult read, conn->Exec("SELECT version FROM exportd_schema"));
    const int version = read.rows() == 0 ? 0 : static_cast<int>(read.Int(0, 0));
    if (version > CurrentSchemaVersion()) {
      return absl::FailedPreconditionError(absl::StrCat(
          pool_.what(), " has schema version ", version, ", newer than this exportd's ",
          CurrentSchemaVersion(),
          "; a newer exportd migrated it: upgrade this replica to that version (docs/scale-out.md)"));
    }
    for (const Migration& migration : kMigrations) {
      if (migration.version <= version) continue;
      const int next = migration.version - 1;  // For the message below.
      EXPORTD_RETURN_IF_ERROR(conn->Exec("BEGIN").status());
      absl::Status step = conn->ExecScript(migration.sql);
      if (step.ok()) step = conn->Exec("DELETE FROM exportd_schema").status();
      if (step.ok()) {
        step = conn->Exec(absl::StrCat("INSERT INTO exportd_schema VALUES (", migration.version,
                                       ")"))
                   .status();
      }
      if (step.ok()) step = conn->Exec("COMMIT").status();
      if (!step.ok()) {
        conn->Exec("ROLLBACK").IgnoreError();
        return absl::Status(step.code(), absl::StrCat("migrating ", pool_.what(), " to schema ",
                                                      next + 1, ": ", step.message()));
      }
    }
    return absl::OkStatus();
  }();
  conn->Exec(absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLock, ")")).IgnoreError();
  return status;
}

// --- Connections -----------------------------------------------------------

absl::Status PostgresStore::CreateConnection(const StoredConnection& c) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(c.connection.id())
      .Text(c.connection.display_name())
      .Bytes(c.connection.SerializeAsString())
      .Bytes(c.sealed_secrets);
  return DuplicateName(
      conn->Exec("INSERT INTO connections (id, name, data, secrets) VALUES ($1, $2, $3, $4)",
                 params)
          .status(),
      "connection", c.connection.display_name());
}

absl::StatusOr<StoredConnection> PostgresStore::GetConnection(absl::string_view id_or_name) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(id_or_name);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec("SELECT data, secrets FROM connections WHERE id = $1 OR name = $1 "
                             "ORDER BY id = $1 DESC LIMIT 1",
                             params));
  if (r.rows() == 0) return NotFoundError("connection", id_or_name);
  StoredConnection out;
  EXPORTD_ASSIGN_OR_RETURN(out.connection, ParseRow<v1::Connection>(r.Bytes(0, 0), "connection"));
  out.sealed_secrets = std::string(r.Bytes(0, 1));
  return out;
}

absl::StatusOr<std::vector<StoredConnection>> PostgresStore::ListConnections() {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Connection> connections,
                           ListAll<v1::Connection>(*conn, "connections", "connection"));
  std::vector<StoredConnection> out;
  out.reserve(connections.size());
  for (auto& c : connections) out.push_back({std::move(c), {}});
  return out;
}

absl::Status PostgresStore::UpdateConnection(const StoredConnection& c) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(c.connection.display_name())
      .Bytes(c.connection.SerializeAsString())
      .Bytes(c.sealed_secrets)
      .Text(c.connection.id());
  auto r = conn->Exec("UPDATE connections SET name = $1, data = $2, secrets = $3 WHERE id = $4",
                      params);
  EXPORTD_RETURN_IF_ERROR(DuplicateName(r.status(), "connection", c.connection.display_name()));
  return ExpectChanged(*r, "connection", c.connection.id());
}

absl::StatusOr<DeleteConnectionResult> PostgresStore::DeleteConnection(
    absl::string_view id, ExportDisposition disposition) {
  DeleteConnectionResult result;
  EXPORTD_RETURN_IF_ERROR(pool_.InTransaction([&](PgConnection& conn) -> absl::Status {
    result = DeleteConnectionResult();
    PgParams by_id;
    by_id.Text(id);
    EXPORTD_ASSIGN_OR_RETURN(
        PgResult found, conn.Exec("SELECT name FROM connections WHERE id = $1 FOR UPDATE", by_id));
    EXPORTD_ASSIGN_OR_RETURN(
        PgResult rows,
        conn.Exec("SELECT data FROM exports WHERE connection_id = $1 ORDER BY name FOR UPDATE",
                  by_id));
    std::vector<v1::Export> users;
    for (int i = 0; i < rows.rows(); ++i) {
      EXPORTD_ASSIGN_OR_RETURN(v1::Export e, ParseRow<v1::Export>(rows.Bytes(i, 0), "export"));
      users.push_back(std::move(e));
    }
    if (!users.empty() && disposition == ExportDisposition::kRefuse) {
      std::vector<std::string> names;
      for (const auto& e : users) names.push_back(e.name());
      return absl::FailedPreconditionError(absl::StrCat(
          "connection '", found.rows() > 0 ? found.Bytes(0, 0) : id,
          "' is used by exports: ", absl::StrJoin(names, ", "),
          "; detach them (--detach-exports) or delete them (--delete-exports) first"));
    }
    for (v1::Export& e : users) {
      PgParams export_id;
      export_id.Text(e.id());
      if (disposition == ExportDisposition::kDelete) {
        EXPORTD_RETURN_IF_ERROR(conn.Exec("DELETE FROM exports WHERE id = $1", export_id).status());
        result.deleted_exports.push_back(e.name());
      } else {
        e.clear_connection_id();
        e.clear_connection_name();
        e.set_active(false);
        e.set_updated_at_micros(NowMicros());
        PgParams update;
        update.Bytes(e.SerializeAsString()).Text(e.id());
        EXPORTD_RETURN_IF_ERROR(
            conn.Exec("UPDATE exports SET connection_id = NULL, data = $1 WHERE id = $2", update)
                .status());
        result.detached_exports.push_back(e.name());
      }
    }
    EXPORTD_ASSIGN_OR_RETURN(PgResult del,
                             conn.Exec("DELETE FROM connections WHERE id = $1", by_id));
    EXPORTD_RETURN_IF_ERROR(ExpectChanged(del, "connection", id));
    return conn.Exec("DELETE FROM connection_rates WHERE connection_id = $1", by_id).status();
  }));
  return result;
}

// --- Segments --------------------------------------------------------------

absl::Status PostgresStore::CreateSegment(const v1::Segment& segment) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(segment.id()).Text(segment.name()).Bytes(segment.SerializeAsString());
  return DuplicateName(
      conn->Exec("INSERT INTO segments (id, name, data) VALUES ($1, $2, $3)", params).status(),
      "segment", segment.name());
}

absl::StatusOr<std::vector<std::string>> PostgresStore::UploadingSegments(PgConnection& conn) {
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn.Exec(absl::StrCat("SELECT s.id FROM segments s WHERE ", UploadingCondition())));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.Bytes(i, 0));
  return out;
}

absl::StatusOr<v1::Segment> PostgresStore::GetSegmentOn(PgConnection& conn,
                                                       absl::string_view id_or_name) {
  PgParams params;
  params.Text(id_or_name);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn.Exec(absl::StrCat("SELECT s.data, ", UploadingCondition(),
                                         " FROM segments s WHERE s.id = $1 OR s.name = $1 "
                                         "ORDER BY s.id = $1 DESC LIMIT 1"),
                            params));
  if (r.rows() == 0) return NotFoundError("segment", id_or_name);
  EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment, ParseRow<v1::Segment>(r.Bytes(0, 0), "segment"));
  segment.set_upload_in_progress(r.Bool(0, 1));
  return segment;
}

absl::StatusOr<v1::Segment> PostgresStore::GetSegment(absl::string_view id_or_name) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  return GetSegmentOn(*conn, id_or_name);
}

absl::StatusOr<std::vector<v1::Segment>> PostgresStore::ListSegments() {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec(absl::StrCat("SELECT s.data, ", UploadingCondition(),
                                          " FROM segments s ORDER BY s.name")));
  std::vector<v1::Segment> out;
  for (int i = 0; i < r.rows(); ++i) {
    EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment, ParseRow<v1::Segment>(r.Bytes(i, 0), "segment"));
    segment.set_upload_in_progress(r.Bool(i, 1));
    out.push_back(std::move(segment));
  }
  return out;
}

absl::Status PostgresStore::DeleteSegment(absl::string_view id) {
  return pool_.InTransaction([&](PgConnection& conn) -> absl::Status {
    EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment, GetSegmentOn(conn, id));
    if (segment.id() != id) return NotFoundError("segment", id);
    if (segment.upload_in_progress()) {
      return absl::FailedPreconditionError(
          absl::StrCat("segment '", segment.name(),
                       "' is being uploaded; delete it when the upload ends"));
    }
    EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Export> exports,
                             ListAll<v1::Export>(conn, "exports", "export"));
    EXPORTD_RETURN_IF_ERROR(SegmentUnusedBy(exports, segment));
    PgParams params;
    params.Text(id);
    EXPORTD_RETURN_IF_ERROR(
        conn.Exec("DELETE FROM segment_chunks WHERE segment_id = $1", params).status());
    EXPORTD_RETURN_IF_ERROR(
        conn.Exec("DELETE FROM sorted_snapshots WHERE segment_id = $1", params).status());
    EXPORTD_ASSIGN_OR_RETURN(PgResult del, conn.Exec("DELETE FROM segments WHERE id = $1", params));
    return ExpectChanged(del, "segment", id);
  });
}

absl::StatusOr<std::unique_ptr<SnapshotWriter>> PostgresStore::BeginSnapshot(
    absl::string_view segment_id, std::vector<v1::SchemaField> schema, MemberSorterOptions sort) {
  // The upload's own session: its lock lasts as long as the connection.
  EXPORTD_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn,
                           PgConnection::Open(pool_.conninfo(), pool_.what()));
  EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment, GetSegmentOn(*conn, segment_id));
  PgParams id;
  id.Text(segment.id());
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult locked,
      conn->Exec(absl::StrCat("SELECT pg_try_advisory_lock(", kUploadLockClass, ", hashtext($1))"),
                 id));
  if (!locked.Bool(0, 0)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "segment '", segment.name(), "' is already being uploaded; wait for that upload to end"));
  }
  // Re-read under the lock: an upload that committed meanwhile moved the version.
  EXPORTD_ASSIGN_OR_RETURN(segment, GetSegmentOn(*conn, segment.id()));
  // An upload of a replica that died left staged chunks: never visible, they go.
  PgParams prune;
  prune.Text(segment.id()).Int(segment.snapshot_version());
  EXPORTD_RETURN_IF_ERROR(
      conn->Exec("DELETE FROM segment_chunks WHERE segment_id = $1 AND version > $2", prune)
          .status());
  return std::unique_ptr<SnapshotWriter>(new PgSnapshotWriter(
      this, std::move(conn), segment.id(), segment.snapshot_version() + 1, std::move(schema),
      std::move(sort)));
}

absl::Status PostgresStore::ForEachChunkBytes(
    absl::string_view segment_id, std::int64_t version,
    const std::function<absl::Status(absl::string_view bytes)>& fn) {
  // Pages by seq: a long read holds no transaction open and little memory.
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  std::int64_t after = -1;
  while (true) {
    PgParams params;
    params.Text(segment_id).Int(version).Int(after);
    EXPORTD_ASSIGN_OR_RETURN(
        PgResult r, conn->Exec("SELECT seq, data FROM segment_chunks WHERE segment_id = $1 AND "
                               "version = $2 AND seq > $3 ORDER BY seq LIMIT 8",
                               params));
    for (int i = 0; i < r.rows(); ++i) {
      after = r.Int(i, 0);
      EXPORTD_RETURN_IF_ERROR(fn(r.Bytes(i, 1)));
    }
    if (r.rows() < 8) return absl::OkStatus();
  }
}

absl::StatusOr<bool> PostgresStore::SnapshotInMemberOrder(absl::string_view segment_id,
                                                          std::int64_t version) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(segment_id).Int(version);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r,
      conn->Exec("SELECT 1 FROM sorted_snapshots WHERE segment_id = $1 AND version = $2",
                 params));
  return r.rows() > 0;
}

// --- Exports ---------------------------------------------------------------

absl::Status PostgresStore::CreateExport(const v1::Export& e) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(e.id()).Text(e.name());
  if (e.connection_id().empty()) {
    params.Null();
  } else {
    params.Text(e.connection_id());
  }
  params.Bytes(e.SerializeAsString());
  return DuplicateName(
      conn->Exec("INSERT INTO exports (id, name, connection_id, data) VALUES ($1, $2, $3, $4)",
                 params)
          .status(),
      "export", e.name());
}

absl::StatusOr<v1::Export> PostgresStore::GetExport(absl::string_view id_or_name) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  return GetByIdOrName<v1::Export>(*conn, "exports", "export", id_or_name);
}

absl::StatusOr<std::vector<v1::Export>> PostgresStore::ListExports() {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  return ListAll<v1::Export>(*conn, "exports", "export");
}

absl::Status PostgresStore::UpdateExport(const v1::Export& e) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(e.name());
  if (e.connection_id().empty()) {
    params.Null();
  } else {
    params.Text(e.connection_id());
  }
  params.Bytes(e.SerializeAsString()).Text(e.id());
  auto r = conn->Exec("UPDATE exports SET name = $1, connection_id = $2, data = $3 WHERE id = $4",
                      params);
  EXPORTD_RETURN_IF_ERROR(DuplicateName(r.status(), "export", e.name()));
  return ExpectChanged(*r, "export", e.id());
}

absl::Status PostgresStore::DeleteExport(absl::string_view id) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(id);
  EXPORTD_ASSIGN_OR_RETURN(PgResult r, conn->Exec("DELETE FROM exports WHERE id = $1", params));
  return ExpectChanged(r, "export", id);
}

// --- Audit -----------------------------------------------------------------

absl::Status PostgresStore::AppendAudit(v1::AuditEntry entry) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  entry.clear_id();
  PgParams params;
  params.Bytes(entry.SerializeAsString());
  return conn->Exec("INSERT INTO audit (data) VALUES ($1)", params).status();
}

absl::StatusOr<std::vector<v1::AuditEntry>> PostgresStore::ListAudit(const PageRequest& page,
                                                                    std::string* next_cursor) {
  EXPORTD_ASSIGN_OR_RETURN(std::int64_t before, ParsePageToken(page.after, INT64_MAX));
  const int limit = page.limit <= 0 ? 100 : std::min(page.limit, 1000);
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Int(before).Int(limit + 1);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r,
      conn->Exec("SELECT id, data FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2", params));
  next_cursor->clear();
  std::vector<v1::AuditEntry> out;
  for (int i = 0; i < r.rows(); ++i) {
    if (i == limit) {
      *next_cursor = std::to_string(r.Int(i - 1, 0));
      break;
    }
    EXPORTD_ASSIGN_OR_RETURN(v1::AuditEntry entry,
                             ParseRow<v1::AuditEntry>(r.Bytes(i, 1), "audit entry"));
    entry.set_id(r.Int(i, 0));
    out.push_back(std::move(entry));
  }
  return out;
}

// --- Meta ------------------------------------------------------------------

absl::StatusOr<ConnectionRate> PostgresStore::GetConnectionRate(absl::string_view connection_id) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(connection_id);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec("SELECT requests_per_second, records_per_second, updated_at "
                             "FROM connection_rates WHERE connection_id = $1",
                             params));
  if (r.rows() == 0) {
    return absl::NotFoundError(
        absl::StrCat("no rate was learned for connection '", connection_id, "' yet"));
  }
  return ConnectionRate{r.Double(0, 0), r.Double(0, 1), r.Int(0, 2)};
}

absl::Status PostgresStore::PutConnectionRate(absl::string_view connection_id,
                                              const ConnectionRate& rate) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(connection_id)
      .Double(rate.requests_per_second)
      .Double(rate.records_per_second)
      .Int(rate.updated_at_micros);
  return conn
      ->Exec("INSERT INTO connection_rates "
             "(connection_id, requests_per_second, records_per_second, updated_at) "
             "VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id) DO UPDATE SET "
             "requests_per_second = excluded.requests_per_second, "
             "records_per_second = excluded.records_per_second, "
             "updated_at = excluded.updated_at",
             params)
      .status();
}

absl::StatusOr<int> PostgresStore::ShareConnection(absl::string_view connection_id,
                                                   absl::string_view replica,
                                                   std::int64_t now_micros,
                                                   std::int64_t expires_micros) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams share;
  share.Text(connection_id).Text(replica).Int(expires_micros);
  EXPORTD_RETURN_IF_ERROR(
      conn->Exec("INSERT INTO connection_shares (connection_id, replica, expires_at) "
                 "VALUES ($1, $2, $3) ON CONFLICT (connection_id, replica) DO UPDATE SET "
                 "expires_at = excluded.expires_at",
                 share)
          .status());
  // A replica that died stops counting when its share expires.
  PgParams count;
  count.Text(connection_id).Int(now_micros);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec("SELECT COUNT(*) FROM connection_shares WHERE connection_id = $1 "
                             "AND expires_at > $2",
                             count));
  return static_cast<int>(std::max<std::int64_t>(1, r.Int(0, 0)));
}

absl::Status PostgresStore::EndConnectionShare(absl::string_view connection_id,
                                               absl::string_view replica) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(connection_id).Text(replica);
  return conn
      ->Exec("DELETE FROM connection_shares WHERE connection_id = $1 AND replica = $2", params)
      .status();
}

absl::StatusOr<std::string> PostgresStore::GetMeta(absl::string_view key) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(key);
  EXPORTD_ASSIGN_OR_RETURN(PgResult r, conn->Exec("SELECT value FROM meta WHERE key = $1", params));
  if (r.rows() == 0) {
    return absl::NotFoundError(absl::StrCat(pool_.what(), " holds no value '", key, "'"));
  }
  return std::string(r.Bytes(0, 0));
}

absl::Status PostgresStore::PutMeta(absl::string_view key, absl::string_view value) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(key).Bytes(value);
  return conn
      ->Exec("INSERT INTO meta (key, value) VALUES ($1, $2) "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             params)
      .status();
}

}  // namespace exportd::store
