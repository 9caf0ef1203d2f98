// PostgresStore: runs, the run queue (claims, leases), rejections and run logs.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/run_states.h"
#include "server/common/status_macros.h"
#include "server/store/postgres_store.h"
#include "server/store/sqlite_util.h"

namespace exportd::store {
namespace {

// (kClaimLockClass, hashtext(export_id)): held by the transaction that claims
// a run of the export, so that two replicas never claim two runs of one
// export at once.
constexpr char kClaimLockClass[] = "1702391909";
// (kRunLogLockClass, hashtext(run_id)): held by the transaction that appends
// to the run's log, so that appends of one run (from any replica) number
// their lines one after the other.
constexpr char kRunLogLockClass[] = "1702391910";

// Every read of a run selects these, in this order.
constexpr char kRunColumns[] = "data, lease_holder, lease_expires";

absl::StatusOr<v1::Run> RunAt(const PgResult& r, int row, int first_column) {
  EXPORTD_ASSIGN_OR_RETURN(v1::Run run, ParseRow<v1::Run>(r.Bytes(row, first_column), "run"));
  ShowLease(run, r.Bytes(row, first_column + 1), r.Int(row, first_column + 2));
  return run;
}

}  // namespace

absl::Status PostgresStore::PutRun(PgConnection& conn, const v1::Run& run, bool create) {
  PgParams params;
  params.Text(run.export_id())
      .Int(run.created_at_micros())
      .Bool(IsFinal(run.state()))
      .Int(run.state())
      .Int(run.next_attempt_at_micros())
      .Bytes(run.SerializeAsString())
      .Text(run.id());
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec(create ? "INSERT INTO runs (export_id, created_at, finished, state, "
                         "next_attempt_at, data, id) VALUES ($1, $2, $3, $4::int, $5, $6, $7)"
                       : "UPDATE runs SET export_id = $1, created_at = $2, finished = $3, "
                         "state = $4::int, next_attempt_at = $5, data = $6 WHERE id = $7",
                params));
  if (!create && r.affected() == 0) {
    return absl::NotFoundError(absl::StrCat("run '", run.id(), "' does not exist"));
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::CreateRun(const v1::Run& run) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  return PutRun(*conn, run, /*create=*/true);
}

absl::Status PostgresStore::UpdateRun(const v1::Run& run) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  return PutRun(*conn, run, /*create=*/false);
}

absl::StatusOr<v1::Run> PostgresStore::GetRun(absl::string_view id) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(id);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec(absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE id = $1"),
                             params));
  if (r.rows() == 0) {
    return absl::NotFoundError(absl::StrCat(
        "run '", id, "' does not exist; list an export's runs with 'exportctl export runs NAME'"));
  }
  return RunAt(r, 0, 0);
}

absl::StatusOr<std::vector<v1::Run>> PostgresStore::ListRuns(absl::string_view export_id,
                                                            const PageRequest& page,
                                                            std::string* next_cursor) {
  EXPORTD_ASSIGN_OR_RETURN(std::int64_t before, ParsePageToken(page.after, INT64_MAX));
  const int limit = PageLimit(page);
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(export_id).Int(before).Int(limit + 1);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec(absl::StrCat("SELECT seq, ", kRunColumns,
                                          " FROM runs WHERE export_id = $1 AND seq < $2 "
                                          "ORDER BY seq DESC LIMIT $3"),
                             params));
  next_cursor->clear();
  std::vector<v1::Run> out;
  for (int i = 0; i < r.rows(); ++i) {
    if (i == limit) {
      *next_cursor = std::to_string(r.Int(i - 1, 0));
      break;
    }
    EXPORTD_ASSIGN_OR_RETURN(v1::Run run, RunAt(r, i, 1));
    out.push_back(std::move(run));
  }
  return out;
}

absl::StatusOr<std::vector<v1::Run>> PostgresStore::ListUnfinishedRuns() {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec(absl::StrCat("SELECT ", kRunColumns,
                                          " FROM runs WHERE NOT finished ORDER BY seq")));
  std::vector<v1::Run> out;
  for (int i = 0; i < r.rows(); ++i) {
    EXPORTD_ASSIGN_OR_RETURN(v1::Run run, RunAt(r, i, 0));
    out.push_back(std::move(run));
  }
  return out;
}

absl::StatusOr<std::vector<v1::Run>> PostgresStore::LatestRun(absl::string_view export_id) {
  std::string next;
  return ListRuns(export_id, PageRequest{1, ""}, &next);
}

// --- The run queue ---------------------------------------------------------

absl::Status PostgresStore::CheckLease(PgConnection& conn, const RunLease& lease) {
  if (lease.epoch == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run '", lease.run_id,
        "': a worker's write carries no lease; claim the run first (Store::ClaimNextRun)"));
  }
  PgParams params;
  params.Text(lease.run_id);
  // FOR UPDATE: a claim by another replica waits for this transaction, so the
  // lease checked here is still the run's when the transaction commits.
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT lease_holder, lease_epoch, lease_expires FROM runs WHERE id = $1 FOR UPDATE",
                params));
  if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("run '", lease.run_id, "' does not exist"));
  const std::string holder(r.Bytes(0, 0));
  const std::int64_t epoch = r.Int(0, 1);
  const std::int64_t expires = r.Int(0, 2);
  if (holder != lease.holder || epoch != lease.epoch || expires == 0) {
    return LeaseLostError(lease, expires == 0 && epoch == lease.epoch ? lease.holder : holder,
                          epoch);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ClaimedRun>> PostgresStore::ClaimNextRun(const ClaimRequest& request) {
  if (request.holder.empty()) {
    return absl::InvalidArgumentError("a claim needs the replica id of its holder (--replica-id)");
  }
  std::optional<ClaimedRun> claimed;
  EXPORTD_RETURN_IF_ERROR(pool_.InTransaction([&](PgConnection& conn) -> absl::Status {
    claimed.reset();
    // Exports that wait: a segment of theirs is being uploaded (a trigger
    // meanwhile joins their queued run), or a claim found them taken.
    std::vector<std::string> skipped;
    EXPORTD_ASSIGN_OR_RETURN(std::vector<std::string> uploading, UploadingSegments(conn));
    if (!uploading.empty()) {
      EXPORTD_ASSIGN_OR_RETURN(PgResult exports, conn.Exec("SELECT id, data FROM exports"));
      for (int i = 0; i < exports.rows(); ++i) {
        EXPORTD_ASSIGN_OR_RETURN(v1::Export e,
                                 ParseRow<v1::Export>(exports.Bytes(i, 1), "export"));
        for (const std::string& segment_id : e.segments()) {
          if (std::find(uploading.begin(), uploading.end(), segment_id) != uploading.end()) {
            skipped.push_back(e.id());
            break;
          }
        }
      }
    }
    while (true) {
      PgParams params;
      params.Int(request.now_micros)
          .Int(v1::RUN_STATE_FAILED_RETRYING)
          .TextArray(std::vector<absl::string_view>(skipped.begin(), skipped.end()));
      // The oldest due run whose export has no run under a live lease. SKIP
      // LOCKED: a run another replica is claiming (or committing) right now
      // is not waited for.
      EXPORTD_ASSIGN_OR_RETURN(
          PgResult r,
          conn.Exec("SELECT r.id, r.export_id, r.lease_epoch, r.cancel_requested, r.data "
                    "FROM runs r WHERE NOT r.finished AND r.lease_expires <= $1 "
                    "AND (r.state <> $2::int OR r.next_attempt_at <= $1) "
                    "AND NOT (r.export_id = ANY ($3)) "
                    "AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.export_id = r.export_id "
                    "AND NOT o.finished AND o.lease_expires > $1) "
                    "ORDER BY r.seq LIMIT 1 FOR UPDATE OF r SKIP LOCKED",
                    params));
      if (r.rows() == 0) return absl::OkStatus();
      const std::string run_id(r.Bytes(0, 0));
      const std::string export_id(r.Bytes(0, 1));
      // One claim per export at a time, then a fresh look at its leases: a
      // replica that claimed another run of it just now has committed.
      PgParams export_param;
      export_param.Text(export_id);
      EXPORTD_ASSIGN_OR_RETURN(
          PgResult locked,
          conn.Exec(absl::StrCat("SELECT pg_try_advisory_xact_lock(", kClaimLockClass,
                                 ", hashtext($1))"),
                    export_param));
      bool free = locked.Bool(0, 0);
      if (free) {
        PgParams live;
        live.Text(export_id).Int(request.now_micros).Text(run_id);
        EXPORTD_ASSIGN_OR_RETURN(
            PgResult held, conn.Exec("SELECT 1 FROM runs WHERE export_id = $1 AND NOT finished "
                                     "AND lease_expires > $2 AND id <> $3",
                                     live));
        free = held.rows() == 0;
      }
      if (!free) {
        skipped.push_back(export_id);
        continue;
      }
      EXPORTD_ASSIGN_OR_RETURN(v1::Run run, ParseRow<v1::Run>(r.Bytes(0, 4), "run"));
      RunLease lease{run_id, request.holder, r.Int(0, 2) + 1,
                     request.now_micros + absl::ToInt64Microseconds(request.lease)};
      PgParams take;
      take.Text(lease.holder).Int(lease.epoch).Int(lease.expires_at_micros).Text(run_id);
      EXPORTD_RETURN_IF_ERROR(conn.Exec("UPDATE runs SET lease_holder = $1, lease_epoch = $2, "
                                        "lease_expires = $3 WHERE id = $4",
                                        take)
                                  .status());
      ShowLease(run, lease.holder, lease.expires_at_micros);
      claimed = ClaimedRun{std::move(run), std::move(lease), r.Bool(0, 3)};
      return absl::OkStatus();
    }
  }));
  return claimed;
}

absl::StatusOr<LeaseRenewal> PostgresStore::RenewLease(const RunLease& lease,
                                                       std::int64_t now_micros,
                                                       absl::Duration lease_duration) {
  LeaseRenewal renewal;
  EXPORTD_RETURN_IF_ERROR(pool_.InTransaction([&](PgConnection& conn) -> absl::Status {
    EXPORTD_RETURN_IF_ERROR(CheckLease(conn, lease));
    renewal.expires_at_micros = now_micros + absl::ToInt64Microseconds(lease_duration);
    PgParams params;
    params.Int(renewal.expires_at_micros).Text(lease.run_id);
    EXPORTD_ASSIGN_OR_RETURN(
        PgResult r, conn.Exec("UPDATE runs SET lease_expires = $1 WHERE id = $2 "
                              "RETURNING cancel_requested",
                              params));
    renewal.cancel_requested = r.rows() > 0 && r.Bool(0, 0);
    return absl::OkStatus();
  }));
  return renewal;
}

absl::Status PostgresStore::ReleaseLease(const RunLease& lease) {
  return pool_.InTransaction([&](PgConnection& conn) -> absl::Status {
    EXPORTD_RETURN_IF_ERROR(CheckLease(conn, lease));
    PgParams params;
    params.Text(lease.run_id);
    return conn.Exec("UPDATE runs SET lease_expires = 0 WHERE id = $1", params).status();
  });
}

absl::Status PostgresStore::ReleaseLeasesOf(absl::string_view holder) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  if (holder.empty()) {
    return conn->Exec("UPDATE runs SET lease_expires = 0 WHERE NOT finished").status();
  }
  PgParams params;
  params.Text(holder);
  return conn
      ->Exec("UPDATE runs SET lease_expires = 0 WHERE NOT finished AND lease_holder = $1", params)
      .status();
}

absl::Status PostgresStore::UpdateLeasedRun(const v1::Run& run, const RunLease& lease) {
  return EndLeasedRun(run, lease, {});
}

absl::Status PostgresStore::EndLeasedRun(const v1::Run& run, const RunLease& lease,
                                         const std::vector<Notification>& notifications) {
  EXPORTD_RETURN_IF_ERROR(CheckWrittenUnderItsLease(run, lease));
  return pool_.InTransaction([&](PgConnection& conn) -> absl::Status {
    EXPORTD_RETURN_IF_ERROR(CheckLease(conn, lease));
    EXPORTD_RETURN_IF_ERROR(PutRun(conn, run, /*create=*/false));
    for (const Notification& n : notifications) EXPORTD_RETURN_IF_ERROR(InsertNotification(conn, n));
    if (IsFinal(run.state())) {
      // No attempt of the run is left to resume: its marks go.
      PgParams params;
      params.Text(run.id());
      EXPORTD_RETURN_IF_ERROR(
          conn.Exec("DELETE FROM rejected_again WHERE run_id = $1", params).status());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Run> PostgresStore::UpdateUnclaimedRun(
    absl::string_view run_id, std::int64_t now_micros,
    const std::function<absl::Status(v1::Run&)>& fn) {
  v1::Run run;
  EXPORTD_RETURN_IF_ERROR(pool_.InTransaction([&](PgConnection& conn) -> absl::Status {
    PgParams params;
    params.Text(run_id);
    EXPORTD_ASSIGN_OR_RETURN(
        PgResult r, conn.Exec(absl::StrCat("SELECT ", kRunColumns,
                                           ", finished FROM runs WHERE id = $1 FOR UPDATE"),
                              params));
    if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("run '", run_id, "' does not exist"));
    EXPORTD_ASSIGN_OR_RETURN(run, ParseRow<v1::Run>(r.Bytes(0, 0), "run"));
    const std::string holder(r.Bytes(0, 1));
    const std::int64_t expires = r.Int(0, 2);
    if (r.Bool(0, 3)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run '", run_id, "' already ended (", v1::RunState_Name(run.state()), ")"));
    }
    if (expires > now_micros) {
      return absl::FailedPreconditionError(
          absl::StrCat("run '", run_id, "' is held by replica '", holder, "' until ",
                       absl::FormatTime(absl::FromUnixMicros(expires), absl::UTCTimeZone())));
    }
    EXPORTD_RETURN_IF_ERROR(fn(run));
    EXPORTD_RETURN_IF_ERROR(PutRun(conn, run, /*create=*/false));
    ShowLease(run, holder, expires);
    return absl::OkStatus();
  }));
  return run;
}

absl::Status PostgresStore::RequestCancel(absl::string_view run_id) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(run_id);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec("UPDATE runs SET cancel_requested = TRUE WHERE id = $1", params));
  if (r.affected() == 0) return absl::NotFoundError(absl::StrCat("run '", run_id, "' does not exist"));
  return absl::OkStatus();
}

absl::StatusOr<bool> PostgresStore::ClaimScheduledFiring(absl::string_view export_id,
                                                        std::int64_t fire_time_micros) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(export_id).Int(fire_time_micros);
  // The row lock of the upsert orders concurrent claims; only one moves
  // fired_for up to this firing and gets a row back.
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec("INSERT INTO schedule_firings (export_id, fired_for) VALUES ($1, $2) "
                             "ON CONFLICT (export_id) DO UPDATE SET fired_for = excluded.fired_for "
                             "WHERE schedule_firings.fired_for < excluded.fired_for RETURNING 1",
                             params));
  return r.rows() == 1;
}

// --- Rejections ------------------------------------------------------------

absl::StatusOr<std::vector<v1::Rejection>> PostgresStore::ListRejections(
    absl::string_view run_id, const PageRequest& page, std::string* next_cursor) {
  EXPORTD_ASSIGN_OR_RETURN(std::int64_t after, ParsePageToken(page.after, -1));
  const int limit = PageLimit(page);
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(run_id).Int(after).Int(limit + 1);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec("SELECT seq, data FROM rejections WHERE run_id = $1 AND seq > $2 "
                             "ORDER BY seq LIMIT $3",
                             params));
  next_cursor->clear();
  std::vector<v1::Rejection> out;
  for (int i = 0; i < r.rows(); ++i) {
    if (i == limit) {
      *next_cursor = std::to_string(r.Int(i - 1, 0));
      break;
    }
    EXPORTD_ASSIGN_OR_RETURN(v1::Rejection rejection,
                             ParseRow<v1::Rejection>(r.Bytes(i, 1), "rejection"));
    out.push_back(std::move(rejection));
  }
  return out;
}

absl::StatusOr<std::int64_t> PostgresStore::CountRejections(absl::string_view run_id) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(run_id);
  EXPORTD_ASSIGN_OR_RETURN(PgResult r,
                           conn->Exec("SELECT COUNT(*) FROM rejections WHERE run_id = $1", params));
  return r.Int(0, 0);
}

// --- Run logs ----------------------------------------------------------------

absl::Status PostgresStore::AppendRunLog(absl::string_view run_id,
                                         const std::vector<v1::RunLogLine>& lines) {
  if (lines.empty()) return absl::OkStatus();
  return pool_.InTransaction([&](PgConnection& conn) -> absl::Status {
    PgParams id;
    id.Text(run_id);
    EXPORTD_RETURN_IF_ERROR(conn.Exec(absl::StrCat("SELECT pg_advisory_xact_lock(",
                                                   kRunLogLockClass, ", hashtext($1))"),
                                      id)
                                .status());
    EXPORTD_ASSIGN_OR_RETURN(PgResult last,
                             conn.Exec("SELECT seq, level, dropped FROM run_log WHERE run_id = $1 "
                                       "ORDER BY seq DESC LIMIT 1",
                                       id));
    const bool any = last.rows() > 0;
    const RunLogAppend plan = PlanRunLogAppend(
        any ? last.Int(0, 0) : 0, any ? last.Int(0, 2) : 0,
        any ? static_cast<v1::RunLogLevel>(last.Int(0, 1)) : v1::RUN_LOG_LEVEL_UNSPECIFIED, lines);
    std::vector<v1::RunLogLine> rows = plan.insert;
    std::vector<std::int64_t> dropped(rows.size(), 0);
    if (plan.dropped_line.has_value()) {
      rows.push_back(*plan.dropped_line);
      dropped.push_back(plan.dropped);
    }
    if (rows.empty()) return absl::OkStatus();
    // One statement for the whole batch: arrays, unnested.
    std::vector<std::int64_t> seqs, ats, levels;
    std::vector<absl::string_view> sources, messages;
    for (const v1::RunLogLine& line : rows) {
      seqs.push_back(line.seq());
      ats.push_back(line.at_micros());
      levels.push_back(line.level());
      sources.push_back(line.source());
      messages.push_back(line.message());
    }
    PgParams params;
    params.Text(run_id)
        .IntArray(seqs)
        .IntArray(ats)
        .IntArray(levels)
        .TextArray(sources)
        .TextArray(messages)
        .IntArray(dropped);
    return conn
        .Exec(
            "INSERT INTO run_log (run_id, seq, at_micros, level, source, message, dropped) "
            "SELECT $1, s, a, l, src, m, d FROM unnest($2::bigint[], $3::bigint[], "
            "$4::bigint[], $5::text[], $6::text[], $7::bigint[]) AS t(s, a, l, src, m, d) "
            "ON CONFLICT (run_id, seq) DO UPDATE SET at_micros = EXCLUDED.at_micros, "
            "level = EXCLUDED.level, source = EXCLUDED.source, message = EXCLUDED.message, "
            "dropped = EXCLUDED.dropped",
            params)
        .status();
  });
}

absl::StatusOr<std::vector<v1::RunLogLine>> PostgresStore::ListRunLog(absl::string_view run_id,
                                                                      std::int64_t after_seq,
                                                                      int limit,
                                                                      v1::RunLogLevel min_level,
                                                                      bool* more) {
  limit = std::clamp(limit, 1, 1000);
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(run_id).Int(after_seq).Int(min_level).Int(limit + 1);
  EXPORTD_ASSIGN_OR_RETURN(PgResult r,
                           conn->Exec("SELECT seq, at_micros, level, source, message FROM run_log "
                                      "WHERE run_id = $1 AND seq > $2 AND level >= $3 ORDER BY seq "
                                      "LIMIT $4",
                                      params));
  if (more != nullptr) *more = r.rows() > limit;
  std::vector<v1::RunLogLine> out;
  for (int i = 0; i < r.rows() && i < limit; ++i) {
    v1::RunLogLine& line = out.emplace_back();
    line.set_seq(r.Int(i, 0));
    line.set_at_micros(r.Int(i, 1));
    line.set_level(static_cast<v1::RunLogLevel>(r.Int(i, 2)));
    line.set_source(std::string(r.Bytes(i, 3)));
    line.set_message(std::string(r.Bytes(i, 4)));
  }
  return out;
}

}  // namespace exportd::store
