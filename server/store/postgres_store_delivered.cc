// PostgresStore: delivered state (audiences and delivered members) and the
// batch commit that writes it, fenced by the run's lease. All of the
// delivered-state format of this store is in this file.
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/store/postgres_store.h"

namespace exportd::store {
namespace {

// Rows per page when the diff reads the delivered state.
constexpr int kDeliveredPage = 20000;

}  // namespace

absl::StatusOr<AudienceState> PostgresStore::GetAudienceState(absl::string_view export_id,
                                                              absl::string_view segment_id) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(export_id).Text(segment_id);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec("SELECT audience_id, mapping_fingerprint FROM audiences "
                             "WHERE export_id = $1 AND segment_id = $2",
                             params));
  if (r.rows() == 0) return absl::NotFoundError("nothing delivered yet");
  return AudienceState{std::string(r.Bytes(0, 0)), static_cast<std::uint64_t>(r.Int(0, 1))};
}

absl::StatusOr<std::int64_t> PostgresStore::AudienceKey(PgConnection& conn,
                                                        absl::string_view export_id,
                                                        absl::string_view segment_id) {
  PgParams params;
  params.Text(export_id).Text(segment_id);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn.Exec("SELECT audience_key FROM audiences WHERE export_id = $1 AND "
                            "segment_id = $2",
                            params));
  if (r.rows() == 0) return absl::NotFoundError("nothing delivered yet");
  return r.Int(0, 0);
}

absl::Status PostgresStore::PutAudienceState(absl::string_view export_id,
                                             absl::string_view segment_id,
                                             const AudienceState& state) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(export_id)
      .Text(segment_id)
      .Text(state.audience_id)
      .Int(static_cast<std::int64_t>(state.mapping_fingerprint));
  return conn
      ->Exec("INSERT INTO audiences (export_id, segment_id, audience_id, mapping_fingerprint) "
             "VALUES ($1, $2, $3, $4) ON CONFLICT (export_id, segment_id) DO UPDATE SET "
             "audience_id = excluded.audience_id, "
             "mapping_fingerprint = excluded.mapping_fingerprint",
             params)
      .status();
}

absl::Status PostgresStore::ForEachDelivered(
    absl::string_view export_id, absl::string_view segment_id,
    const std::function<absl::Status(const DeliveredView&)>& fn) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  auto key = AudienceKey(*conn, export_id, segment_id);
  if (absl::IsNotFound(key.status())) return absl::OkStatus();
  EXPORTD_RETURN_IF_ERROR(key.status());
  // One cursor in key order: bounded memory, and one plan for the whole scan
  // (paging with "profile_id > last" planned each page afresh, and right after
  // a bulk load, with stale statistics, each page became a full scan).
  EXPORTD_RETURN_IF_ERROR(conn->Exec("BEGIN READ ONLY").status());
  absl::Status status = [&]() -> absl::Status {
    PgParams params;
    params.Int(*key);
    EXPORTD_RETURN_IF_ERROR(
        conn->Exec("DECLARE delivered_scan NO SCROLL CURSOR FOR SELECT id_hash, profile_id, "
                   "value_hash, run_id, ident_hash, state, row_hash FROM delivered "
                   "WHERE audience_key = $1 ORDER BY profile_id",
                   params)
            .status());
    const std::string fetch = absl::StrCat("FETCH ", kDeliveredPage, " FROM delivered_scan");
    DeliveredView row;
    while (true) {
      EXPORTD_ASSIGN_OR_RETURN(PgResult r, conn->Exec(fetch));
      for (int i = 0; i < r.rows(); ++i) {
        row.id_hash = static_cast<std::uint64_t>(r.Int(i, 0));
        row.profile_id = r.Bytes(i, 1);
        row.value_hash = static_cast<std::uint64_t>(r.Int(i, 2));
        row.run_id = r.Bytes(i, 3);
        row.ident_hash = static_cast<std::uint64_t>(r.Int(i, 4));  // NULL reads as 0.
        row.state = static_cast<DeliveredState>(r.Int(i, 5));
        row.row_hash = static_cast<std::uint64_t>(r.Int(i, 6));  // NULL reads as 0.
        EXPORTD_RETURN_IF_ERROR(fn(row));
      }
      if (r.rows() < kDeliveredPage) return absl::OkStatus();
    }
  }();
  // The scan only reads: ending it either way is the same.
  conn->Exec(status.ok() ? "COMMIT" : "ROLLBACK").IgnoreError();
  return status;
}

absl::Status PostgresStore::ForEachRejectedAgain(
    absl::string_view run_id, absl::string_view export_id, absl::string_view segment_id,
    const std::function<absl::Status(absl::string_view)>& fn) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(run_id).Text(export_id).Text(segment_id);
  // As many as the run's rejections so far: one result.
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec("SELECT r.profile_id FROM rejected_again r JOIN audiences a ON "
                             "a.audience_key = r.audience_key WHERE r.run_id = $1 AND "
                             "a.export_id = $2 AND a.segment_id = $3",
                             params));
  for (int i = 0; i < r.rows(); ++i) EXPORTD_RETURN_IF_ERROR(fn(r.Bytes(i, 0)));
  return absl::OkStatus();
}

absl::Status PostgresStore::LookupDelivered(
    absl::string_view export_id, absl::string_view segment_id,
    const std::vector<absl::string_view>& profile_ids,
    const std::function<absl::Status(const DeliveredRow&)>& fn) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  auto key = AudienceKey(*conn, export_id, segment_id);
  if (absl::IsNotFound(key.status())) return absl::OkStatus();
  EXPORTD_RETURN_IF_ERROR(key.status());
  DeliveredRow row;
  constexpr size_t kPerQuery = 5000;
  for (size_t begin = 0; begin < profile_ids.size(); begin += kPerQuery) {
    const size_t end = std::min(profile_ids.size(), begin + kPerQuery);
    std::vector<absl::string_view> ids(profile_ids.begin() + begin, profile_ids.begin() + end);
    PgParams params;
    params.Int(*key).TextArray(ids);
    // In the order asked (ordinality), skipping ids not delivered.
    EXPORTD_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Exec("SELECT d.id_hash, d.profile_id, d.value_hash, d.run_id, d.vals, d.ident_hash, "
                   "d.state FROM unnest($2::text[]) WITH ORDINALITY AS u(profile_id, n) "
                   "JOIN delivered d ON d.audience_key = $1 AND d.profile_id = u.profile_id "
                   "ORDER BY u.n",
                   params));
    for (int i = 0; i < r.rows(); ++i) {
      row.id_hash = static_cast<std::uint64_t>(r.Int(i, 0));
      row.profile_id.assign(r.Bytes(i, 1).data(), r.Bytes(i, 1).size());
      row.value_hash = static_cast<std::uint64_t>(r.Int(i, 2));
      row.run_id.assign(r.Bytes(i, 3).data(), r.Bytes(i, 3).size());
      row.values.assign(r.Bytes(i, 4).data(), r.Bytes(i, 4).size());
      row.ident_hash = static_cast<std::uint64_t>(r.Int(i, 5));
      row.state = static_cast<DeliveredState>(r.Int(i, 6));
      EXPORTD_RETURN_IF_ERROR(fn(row));
    }
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::WriteDelivered(PgConnection& conn, const BatchCommit& commit) {
  EXPORTD_ASSIGN_OR_RETURN(std::int64_t key, AudienceKey(conn, commit.export_id, commit.segment_id));
  if (!commit.delivered.empty()) {
    // One statement for the batch. A profile id twice in one batch: the last
    // row wins (as an INSERT OR REPLACE per row would have it).
    absl::flat_hash_map<absl::string_view, size_t> last;
    for (size_t i = 0; i < commit.delivered.size(); ++i) last[commit.delivered[i].profile_id] = i;
    std::vector<std::int64_t> id_hashes, value_hashes, ident_hashes, row_hashes;
    std::vector<absl::string_view> profile_ids, run_ids, values;
    for (size_t i = 0; i < commit.delivered.size(); ++i) {
      const DeliveredRow& row = commit.delivered[i];
      if (last[row.profile_id] != i) continue;
      id_hashes.push_back(static_cast<std::int64_t>(row.id_hash));
      profile_ids.push_back(row.profile_id);
      value_hashes.push_back(static_cast<std::int64_t>(row.value_hash));
      run_ids.push_back(row.run_id);
      values.push_back(row.values);
      ident_hashes.push_back(static_cast<std::int64_t>(row.ident_hash));
      row_hashes.push_back(static_cast<std::int64_t>(row.row_hash));
    }
    PgParams params;
    params.Int(key)
        .IntArray(id_hashes)
        .TextArray(profile_ids)
        .IntArray(value_hashes)
        .TextArray(run_ids)
        .BytesArray(values)
        .IntArray(ident_hashes)
        .IntArray(row_hashes);
    EXPORTD_RETURN_IF_ERROR(
        conn.Exec("INSERT INTO delivered (audience_key, id_hash, profile_id, value_hash, run_id, "
                  "vals, ident_hash, row_hash) SELECT $1, u.id_hash, u.profile_id, u.value_hash, "
                  "u.run_id, u.vals, NULLIF(u.ident_hash, 0), NULLIF(u.row_hash, 0) FROM "
                  "unnest($2::int8[], $3::text[], $4::int8[], $5::text[], $6::bytea[], "
                  "$7::int8[], $8::int8[]) AS u(id_hash, profile_id, value_hash, run_id, vals, "
                  "ident_hash, row_hash) "
                  "ON CONFLICT (audience_key, profile_id) DO UPDATE SET "
                  "id_hash = excluded.id_hash, value_hash = excluded.value_hash, "
                  "run_id = excluded.run_id, vals = excluded.vals, ident_hash = excluded.ident_hash, "
                  "row_hash = excluded.row_hash, state = 0",
                  params)
            .status());
  }
  if (!commit.rejected.empty()) {
    // A member never delivered gets (or keeps) a row of its own; a delivered
    // one is only marked, so that its removal stays possible.
    std::vector<std::int64_t> id_hashes, value_hashes, ident_hashes, states;
    std::vector<absl::string_view> new_ids, run_ids, marked_ids, marked_runs;
    for (const DeliveredRow& row : commit.rejected) {
      if (row.state == DeliveredState::kRejected || row.state == DeliveredState::kForgotten) {
        states.push_back(static_cast<std::int64_t>(row.state));
        id_hashes.push_back(static_cast<std::int64_t>(row.id_hash));
        new_ids.push_back(row.profile_id);
        value_hashes.push_back(static_cast<std::int64_t>(row.value_hash));
        run_ids.push_back(row.run_id);
        ident_hashes.push_back(static_cast<std::int64_t>(row.ident_hash));
      } else {
        marked_ids.push_back(row.profile_id);
        marked_runs.push_back(row.run_id);
      }
    }
    if (!new_ids.empty()) {
      PgParams params;
      params.Int(key)
          .IntArray(id_hashes)
          .TextArray(new_ids)
          .IntArray(value_hashes)
          .TextArray(run_ids)
          .IntArray(ident_hashes)
          .IntArray(states);
      // A rejected row never goes over a delivered one; a forgotten one
      // (state 3) goes over any.
      EXPORTD_RETURN_IF_ERROR(
          conn.Exec("INSERT INTO delivered (audience_key, id_hash, profile_id, value_hash, run_id, "
                    "vals, ident_hash, state) SELECT DISTINCT ON (u.profile_id) $1, u.id_hash, "
                    "u.profile_id, u.value_hash, u.run_id, ''::bytea, NULLIF(u.ident_hash, 0), "
                    "u.state FROM unnest($2::int8[], $3::text[], $4::int8[], $5::text[], "
                    "$6::int8[], $7::int8[]) "
                    "AS u(id_hash, profile_id, value_hash, run_id, ident_hash, state) "
                    "ON CONFLICT (audience_key, profile_id) DO UPDATE SET "
                    "value_hash = excluded.value_hash, run_id = excluded.run_id, "
                    "ident_hash = excluded.ident_hash, "
                    "vals = CASE WHEN excluded.state = 3 THEN ''::bytea ELSE delivered.vals END, "
                    "state = excluded.state "
                    "WHERE delivered.state IN (2, 3) OR excluded.state = 3",
                    params)
              .status());
    }
    if (!marked_ids.empty()) {
      PgParams params;
      params.Int(key).TextArray(marked_ids).TextArray(marked_runs);
      EXPORTD_RETURN_IF_ERROR(
          conn.Exec("UPDATE delivered d SET state = 1, run_id = u.run_id FROM "
                    "unnest($2::text[], $3::text[]) AS u(profile_id, run_id) "
                    "WHERE d.audience_key = $1 AND d.profile_id = u.profile_id "
                    "AND d.state NOT IN (2, 3)",
                    params)
              .status());
    }
  }
  if (!commit.rejected_again.empty()) {
    PgParams params;
    params.Text(commit.checkpoint.id())
        .Int(key)
        .TextArray(std::vector<absl::string_view>(commit.rejected_again.begin(),
                                                  commit.rejected_again.end()));
    EXPORTD_RETURN_IF_ERROR(
        conn.Exec("INSERT INTO rejected_again (run_id, audience_key, profile_id) "
                  "SELECT $1, $2, u FROM unnest($3::text[]) AS u ON CONFLICT DO NOTHING",
                  params)
            .status());
  }
  if (!commit.removed.empty()) {
    PgParams params;
    params.Int(key).TextArray(
        std::vector<absl::string_view>(commit.removed.begin(), commit.removed.end()));
    EXPORTD_RETURN_IF_ERROR(
        conn.Exec("DELETE FROM delivered WHERE audience_key = $1 AND profile_id = ANY ($2::text[])",
                  params)
            .status());
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::CommitBatch(const BatchCommit& commit) {
  return pool_.InTransaction([&](PgConnection& conn) -> absl::Status {
    // Fenced: a replica that lost the run writes nothing. The run's row stays
    // locked to the end of the transaction, so no claim slips in between.
    EXPORTD_RETURN_IF_ERROR(CheckLease(conn, commit.lease));
    if (commit.lease.run_id != commit.checkpoint.id()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a batch of run '", commit.checkpoint.id(),
                       "' is committed under the lease of run '", commit.lease.run_id, "'"));
    }
    EXPORTD_RETURN_IF_ERROR(WriteDelivered(conn, commit));
    if (!commit.rejections.empty()) {
      PgParams run_id;
      run_id.Text(commit.checkpoint.id());
      EXPORTD_ASSIGN_OR_RETURN(
          PgResult next,
          conn.Exec("SELECT COALESCE(MAX(seq), -1) + 1 FROM rejections WHERE run_id = $1", run_id));
      const std::int64_t seq = next.Int(0, 0);
      std::vector<std::string> serialized;
      for (const v1::Rejection& rejection : commit.rejections) {
        if (seq + static_cast<std::int64_t>(serialized.size()) >= kMaxRejectionsKept) break;
        serialized.push_back(rejection.SerializeAsString());
      }
      if (!serialized.empty()) {
        PgParams params;
        params.Text(commit.checkpoint.id())
            .Int(seq)
            .BytesArray(std::vector<absl::string_view>(serialized.begin(), serialized.end()));
        EXPORTD_RETURN_IF_ERROR(
            conn.Exec("INSERT INTO rejections (run_id, seq, data) SELECT $1, $2 + u.n - 1, u.d "
                      "FROM unnest($3::bytea[]) WITH ORDINALITY AS u(d, n)",
                      params)
                .status());
      }
    }
    return PutRun(conn, commit.checkpoint, /*create=*/false);
  });
}

}  // namespace exportd::store
