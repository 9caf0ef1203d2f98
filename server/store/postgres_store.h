// The Store on PostgreSQL, for several exportd replicas on one database
// (--store postgresql://...). Every replica opens the same database; the
// first to start migrates it (under an advisory lock), and a replica whose
// schema is older than the database's refuses to start. The run queue is
// shared: ClaimNextRun takes runs with FOR UPDATE SKIP LOCKED, and every
// leased write is fenced by the lease's epoch.
//
//   EXPORTD_ASSIGN_OR_RETURN(auto store,
//                            PostgresStore::Open("postgresql://exportd@db:5432/exportd"));
//
// The connection string must not carry a password: libpq reads it from
// PGPASSWORD or the passfile, and no message of this store shows it.
#ifndef EXPORTD_SERVER_STORE_POSTGRES_STORE_H_
#define EXPORTD_SERVER_STORE_POSTGRES_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "server/store/pg_util.h"
#include "server/store/store.h"

namespace exportd::store {

class PostgresStore final : public Store {
 public:
  // Connects, and migrates the database to this build's schema (once, under
  // an advisory lock, whichever replica comes first). FAILED_PRECONDITION
  // when the database's schema is newer than this build's; INVALID_ARGUMENT
  // when `conninfo` carries a password.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(const std::string& conninfo);
  // The schema version this build writes.
  static int CurrentSchemaVersion();
  // "PostgreSQL database 'exportd' on db:5432 as user 'exportd'".
  const std::string& description() const { return pool_.what(); }

  absl::Status CreateConnection(const StoredConnection& connection) override;
  absl::StatusOr<StoredConnection> GetConnection(absl::string_view id_or_name) override;
  absl::StatusOr<std::vector<StoredConnection>> ListConnections() override;
  absl::Status UpdateConnection(const StoredConnection& connection) override;
  absl::StatusOr<DeleteConnectionResult> DeleteConnection(absl::string_view id,
                                                          ExportDisposition disposition) override;

  absl::Status CreateSegment(const v1::Segment& segment) override;
  absl::StatusOr<v1::Segment> GetSegment(absl::string_view id_or_name) override;
  absl::StatusOr<std::vector<v1::Segment>> ListSegments() override;
  absl::Status DeleteSegment(absl::string_view id) override;
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> BeginSnapshot(
      absl::string_view segment_id, std::vector<v1::SchemaField> schema,
      MemberSorterOptions sort = {}) override;
  absl::Status ForEachChunkBytes(
      absl::string_view segment_id, std::int64_t version,
      const std::function<absl::Status(absl::string_view bytes)>& fn) override;
  absl::StatusOr<bool> SnapshotInMemberOrder(absl::string_view segment_id,
                                             std::int64_t version) override;

  absl::Status CreateExport(const v1::Export& e) override;
  absl::StatusOr<v1::Export> GetExport(absl::string_view id_or_name) override;
  absl::StatusOr<std::vector<v1::Export>> ListExports() override;
  absl::Status UpdateExport(const v1::Export& e) override;
  absl::Status DeleteExport(absl::string_view id) override;

  absl::Status CreateRun(const v1::Run& run) override;
  absl::Status UpdateRun(const v1::Run& run) override;
  absl::StatusOr<v1::Run> GetRun(absl::string_view id) override;
  absl::StatusOr<std::vector<v1::Run>> ListRuns(absl::string_view export_id,
                                                const PageRequest& page,
                                                std::string* next_cursor) override;
  absl::StatusOr<std::vector<v1::Run>> ListUnfinishedRuns() override;
  absl::StatusOr<std::vector<v1::Run>> LatestRun(absl::string_view export_id) override;

  absl::StatusOr<std::optional<ClaimedRun>> ClaimNextRun(const ClaimRequest& request) override;
  absl::StatusOr<LeaseRenewal> RenewLease(const RunLease& lease, std::int64_t now_micros,
                                          absl::Duration lease_duration) override;
  absl::Status ReleaseLease(const RunLease& lease) override;
  absl::Status ReleaseLeasesOf(absl::string_view holder) override;
  absl::Status UpdateLeasedRun(const v1::Run& run, const RunLease& lease) override;
  absl::Status EndLeasedRun(const v1::Run& run, const RunLease& lease,
                            const std::vector<Notification>& notifications) override;
  absl::StatusOr<v1::Run> UpdateUnclaimedRun(
      absl::string_view run_id, std::int64_t now_micros,
      const std::function<absl::Status(v1::Run&)>& fn) override;
  absl::Status RequestCancel(absl::string_view run_id) override;

  absl::StatusOr<bool> ClaimScheduledFiring(absl::string_view export_id,
                                            std::int64_t fire_time_micros) override;

  absl::StatusOr<AudienceState> GetAudienceState(absl::string_view export_id,
                                                 absl::string_view segment_id) override;
  absl::Status PutAudienceState(absl::string_view export_id, absl::string_view segment_id,
                                const AudienceState& state) override;
  absl::Status ForEachDelivered(absl::string_view export_id, absl::string_view segment_id,
                                const std::function<absl::Status(const DeliveredView&)>& fn) override;
  absl::Status ForEachRejectedAgain(
      absl::string_view run_id, absl::string_view export_id, absl::string_view segment_id,
      const std::function<absl::Status(absl::string_view)>& fn) override;
  absl::Status LookupDelivered(absl::string_view export_id, absl::string_view segment_id,
                               const std::vector<absl::string_view>& profile_ids,
                               const std::function<absl::Status(const DeliveredRow&)>& fn) override;
  absl::Status CommitBatch(const BatchCommit& commit) override;

  absl::StatusOr<std::vector<v1::Rejection>> ListRejections(absl::string_view run_id,
                                                            const PageRequest& page,
                                                            std::string* next_cursor) override;
  absl::StatusOr<std::int64_t> CountRejections(absl::string_view run_id) override;

  absl::Status AppendRunLog(absl::string_view run_id,
                            const std::vector<v1::RunLogLine>& lines) override;
  absl::StatusOr<std::vector<v1::RunLogLine>> ListRunLog(absl::string_view run_id,
                                                         std::int64_t after_seq, int limit,
                                                         v1::RunLogLevel min_level,
                                                         bool* more) override;

  absl::Status AppendAudit(v1::AuditEntry entry) override;
  absl::StatusOr<std::vector<v1::AuditEntry>> ListAudit(const PageRequest& page,
                                                        std::string* next_cursor) override;

  absl::StatusOr<int> ShareConnection(absl::string_view connection_id, absl::string_view replica,
                                      std::int64_t now_micros,
                                      std::int64_t expires_micros) override;
  absl::Status EndConnectionShare(absl::string_view connection_id,
                                  absl::string_view replica) override;
  absl::StatusOr<ConnectionRate> GetConnectionRate(absl::string_view connection_id) override;
  absl::Status PutConnectionRate(absl::string_view connection_id,
                                 const ConnectionRate& rate) override;
  absl::StatusOr<std::string> GetNotifySecret(absl::string_view export_id) override;
  absl::Status PutNotifySecret(absl::string_view export_id, absl::string_view sealed) override;
  absl::Status EnqueueNotification(const Notification& notification) override;
  absl::StatusOr<std::vector<Notification>> ClaimNotifications(
      const NotificationClaim& claim) override;
  absl::Status DeleteNotification(absl::string_view run_id, absl::string_view trigger) override;
  absl::Status RescheduleNotification(const Notification& notification,
                                      absl::string_view holder) override;
  absl::StatusOr<std::vector<Notification>> ListNotifications() override;

  absl::StatusOr<std::string> GetMeta(absl::string_view key) override;
  absl::Status PutMeta(absl::string_view key, absl::string_view value) override;

 private:
  friend class PgSnapshotWriter;
  explicit PostgresStore(const std::string& conninfo)
      : pool_(conninfo, DescribePgConnection(conninfo)) {}

  absl::Status Migrate();
  // The ids of the segments being uploaded now (by any replica).
  absl::StatusOr<std::vector<std::string>> UploadingSegments(PgConnection& conn);
  absl::StatusOr<v1::Segment> GetSegmentOn(PgConnection& conn, absl::string_view id_or_name);
  absl::Status PutRun(PgConnection& conn, const v1::Run& run, bool create);
  // OK when `lease` holds its run now (the run's row stays locked until the
  // transaction ends), else LeaseLostError (or NOT_FOUND).
  absl::Status CheckLease(PgConnection& conn, const RunLease& lease);
  absl::Status InsertNotification(PgConnection& conn, const Notification& notification);
  // The key of (export, segment)'s audience row; NOT_FOUND if none.
  absl::StatusOr<std::int64_t> AudienceKey(PgConnection& conn, absl::string_view export_id,
                                           absl::string_view segment_id);
  // The delivered rows, removals and rejections of a batch (delivered state
  // lives in postgres_store_delivered.cc).
  absl::Status WriteDelivered(PgConnection& conn, const BatchCommit& commit);

  PgPool pool_;
};

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_POSTGRES_STORE_H_
