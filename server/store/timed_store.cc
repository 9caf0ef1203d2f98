#include "server/store/timed_store.h"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace exportd::store {
namespace {

// Calls `fn` and tells `observer` how long it took, as `operation`.
template <typename Fn>
auto Timed(const OperationObserver& observer, absl::string_view operation, Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  auto result = fn();
  observer(operation, absl::FromChrono(std::chrono::steady_clock::now() - start));
  return result;
}

class TimedSnapshotWriter final : public SnapshotWriter {
 public:
  TimedSnapshotWriter(std::unique_ptr<SnapshotWriter> inner, const OperationObserver& observer)
      : inner_(std::move(inner)), observer_(observer) {}

  absl::Status AppendBytes(std::string chunk_bytes, std::int64_t rows) override {
    return Timed(observer_, "SnapshotWriter.AppendBytes",
                 [&] { return inner_->AppendBytes(std::move(chunk_bytes), rows); });
  }
  absl::StatusOr<v1::Segment> Commit() override {
    return Timed(observer_, "SnapshotWriter.Commit", [&] { return inner_->Commit(); });
  }

 private:
  std::unique_ptr<SnapshotWriter> inner_;
  const OperationObserver& observer_;  // The TimedStore's, which outlives its writers.
};

class TimedStore final : public Store {
 public:
  TimedStore(std::unique_ptr<Store> inner, OperationObserver observer)
      : inner_(std::move(inner)), observer_(std::move(observer)) {}

#define EXPORTD_TIMED(name, call) return Timed(observer_, #name, [&] { return inner_->call; })

  absl::Status CreateConnection(const StoredConnection& connection) override {
    EXPORTD_TIMED(CreateConnection, CreateConnection(connection));
  }
  absl::StatusOr<StoredConnection> GetConnection(absl::string_view id_or_name) override {
    EXPORTD_TIMED(GetConnection, GetConnection(id_or_name));
  }
  absl::StatusOr<std::vector<StoredConnection>> ListConnections() override {
    EXPORTD_TIMED(ListConnections, ListConnections());
  }
  absl::Status UpdateConnection(const StoredConnection& connection) override {
    EXPORTD_TIMED(UpdateConnection, UpdateConnection(connection));
  }
  absl::StatusOr<DeleteConnectionResult> DeleteConnection(
      absl::string_view id, ExportDisposition disposition) override {
    EXPORTD_TIMED(DeleteConnection, DeleteConnection(id, disposition));
  }

  absl::Status CreateSegment(const v1::Segment& segment) override {
    EXPORTD_TIMED(CreateSegment, CreateSegment(segment));
  }
  absl::StatusOr<v1::Segment> GetSegment(absl::string_view id_or_name) override {
    EXPORTD_TIMED(GetSegment, GetSegment(id_or_name));
  }
  absl::StatusOr<std::vector<v1::Segment>> ListSegments() override {
    EXPORTD_TIMED(ListSegments, ListSegments());
  }
  absl::Status DeleteSegment(absl::string_view id) override {
    EXPORTD_TIMED(DeleteSegment, DeleteSegment(id));
  }
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> BeginSnapshot(
      absl::string_view segment_id, std::vector<v1::SchemaField> schema,
      MemberSorterOptions sort) override {
    absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer =
        Timed(observer_, "BeginSnapshot", [&] {
          return inner_->BeginSnapshot(segment_id, std::move(schema), std::move(sort));
        });
    if (!writer.ok()) return writer;
    return std::unique_ptr<SnapshotWriter>(
        std::make_unique<TimedSnapshotWriter>(*std::move(writer), observer_));
  }
  absl::Status ForEachChunkBytes(
      absl::string_view segment_id, std::int64_t version,
      const std::function<absl::Status(absl::string_view bytes)>& fn) override {
    EXPORTD_TIMED(ForEachChunkBytes, ForEachChunkBytes(segment_id, version, fn));
  }
  absl::StatusOr<bool> SnapshotInMemberOrder(absl::string_view segment_id,
                                             std::int64_t version) override {
    EXPORTD_TIMED(SnapshotInMemberOrder, SnapshotInMemberOrder(segment_id, version));
  }

  absl::Status CreateExport(const v1::Export& e) override {
    EXPORTD_TIMED(CreateExport, CreateExport(e));
  }
  absl::StatusOr<v1::Export> GetExport(absl::string_view id_or_name) override {
    EXPORTD_TIMED(GetExport, GetExport(id_or_name));
  }
  absl::StatusOr<std::vector<v1::Export>> ListExports() override {
    EXPORTD_TIMED(ListExports, ListExports());
  }
  absl::Status UpdateExport(const v1::Export& e) override {
    EXPORTD_TIMED(UpdateExport, UpdateExport(e));
  }
  absl::Status DeleteExport(absl::string_view id) override {
    EXPORTD_TIMED(DeleteExport, DeleteExport(id));
  }

  absl::Status CreateRun(const v1::Run& run) override { EXPORTD_TIMED(CreateRun, CreateRun(run)); }
  absl::Status UpdateRun(const v1::Run& run) override { EXPORTD_TIMED(UpdateRun, UpdateRun(run)); }
  absl::StatusOr<v1::Run> GetRun(absl::string_view id) override {
    EXPORTD_TIMED(GetRun, GetRun(id));
  }
  absl::StatusOr<std::vector<v1::Run>> ListRuns(absl::string_view export_id,
                                                const PageRequest& page,
                                                std::string* next_cursor) override {
    EXPORTD_TIMED(ListRuns, ListRuns(export_id, page, next_cursor));
  }
  absl::StatusOr<std::vector<v1::Run>> ListUnfinishedRuns() override {
    EXPORTD_TIMED(ListUnfinishedRuns, ListUnfinishedRuns());
  }
  absl::StatusOr<std::vector<v1::Run>> LatestRun(absl::string_view export_id) override {
    EXPORTD_TIMED(LatestRun, LatestRun(export_id));
  }

  absl::StatusOr<std::optional<ClaimedRun>> ClaimNextRun(const ClaimRequest& request) override {
    EXPORTD_TIMED(ClaimNextRun, ClaimNextRun(request));
  }
  absl::StatusOr<LeaseRenewal> RenewLease(const RunLease& lease, std::int64_t now_micros,
                                          absl::Duration lease_duration) override {
    EXPORTD_TIMED(RenewLease, RenewLease(lease, now_micros, lease_duration));
  }
  absl::Status ReleaseLease(const RunLease& lease) override {
    EXPORTD_TIMED(ReleaseLease, ReleaseLease(lease));
  }
  absl::Status ReleaseLeasesOf(absl::string_view holder) override {
    EXPORTD_TIMED(ReleaseLeasesOf, ReleaseLeasesOf(holder));
  }
  absl::Status UpdateLeasedRun(const v1::Run& run, const RunLease& lease) override {
    EXPORTD_TIMED(UpdateLeasedRun, UpdateLeasedRun(run, lease));
  }
  absl::Status EndLeasedRun(const v1::Run& run, const RunLease& lease,
                            const std::vector<Notification>& notifications) override {
    EXPORTD_TIMED(EndLeasedRun, EndLeasedRun(run, lease, notifications));
  }
  absl::StatusOr<v1::Run> UpdateUnclaimedRun(
      absl::string_view run_id, std::int64_t now_micros,
      const std::function<absl::Status(v1::Run&)>& fn) override {
    EXPORTD_TIMED(UpdateUnclaimedRun, UpdateUnclaimedRun(run_id, now_micros, fn));
  }
  absl::Status RequestCancel(absl::string_view run_id) override {
    EXPORTD_TIMED(RequestCancel, RequestCancel(run_id));
  }

  absl::StatusOr<bool> ClaimScheduledFiring(absl::string_view export_id,
                                            std::int64_t fire_time_micros) override {
    EXPORTD_TIMED(ClaimScheduledFiring, ClaimScheduledFiring(export_id, fire_time_micros));
  }

  absl::StatusOr<AudienceState> GetAudienceState(absl::string_view export_id,
                                                 absl::string_view segment_id) override {
    EXPORTD_TIMED(GetAudienceState, GetAudienceState(export_id, segment_id));
  }
  absl::Status PutAudienceState(absl::string_view export_id, absl::string_view segment_id,
                                const AudienceState& state) override {
    EXPORTD_TIMED(PutAudienceState, PutAudienceState(export_id, segment_id, state));
  }
  absl::Status ForEachDelivered(
      absl::string_view export_id, absl::string_view segment_id,
      const std::function<absl::Status(const DeliveredView&)>& fn) override {
    EXPORTD_TIMED(ForEachDelivered, ForEachDelivered(export_id, segment_id, fn));
  }
  absl::Status LookupDelivered(absl::string_view export_id, absl::string_view segment_id,
                               const std::vector<absl::string_view>& profile_ids,
                               const std::function<absl::Status(const DeliveredRow&)>& fn) override {
    EXPORTD_TIMED(LookupDelivered, LookupDelivered(export_id, segment_id, profile_ids, fn));
  }
  absl::Status ForEachRejectedAgain(
      absl::string_view run_id, absl::string_view export_id, absl::string_view segment_id,
      const std::function<absl::Status(absl::string_view)>& fn) override {
    EXPORTD_TIMED(ForEachRejectedAgain, ForEachRejectedAgain(run_id, export_id, segment_id, fn));
  }
  absl::Status CommitBatch(const BatchCommit& commit) override {
    EXPORTD_TIMED(CommitBatch, CommitBatch(commit));
  }

  absl::StatusOr<ConnectionRate> GetConnectionRate(absl::string_view connection_id) override {
    EXPORTD_TIMED(GetConnectionRate, GetConnectionRate(connection_id));
  }
  absl::Status PutConnectionRate(absl::string_view connection_id,
                                 const ConnectionRate& rate) override {
    EXPORTD_TIMED(PutConnectionRate, PutConnectionRate(connection_id, rate));
  }
  absl::StatusOr<int> ShareConnection(absl::string_view connection_id, absl::string_view replica,
                                      std::int64_t now_micros,
                                      std::int64_t expires_micros) override {
    EXPORTD_TIMED(ShareConnection,
                  ShareConnection(connection_id, replica, now_micros, expires_micros));
  }
  absl::Status EndConnectionShare(absl::string_view connection_id,
                                  absl::string_view replica) override {
    EXPORTD_TIMED(EndConnectionShare, EndConnectionShare(connection_id, replica));
  }

  absl::StatusOr<std::vector<v1::Rejection>> ListRejections(absl::string_view run_id,
                                                            const PageRequest& page,
                                                            std::string* next_cursor) override {
    EXPORTD_TIMED(ListRejections, ListRejections(run_id, page, next_cursor));
  }
  absl::StatusOr<std::int64_t> CountRejections(absl::string_view run_id) override {
    EXPORTD_TIMED(CountRejections, CountRejections(run_id));
  }

  absl::Status AppendRunLog(absl::string_view run_id,
                            const std::vector<v1::RunLogLine>& lines) override {
    EXPORTD_TIMED(AppendRunLog, AppendRunLog(run_id, lines));
  }
  absl::StatusOr<std::vector<v1::RunLogLine>> ListRunLog(absl::string_view run_id,
                                                         std::int64_t after_seq, int limit,
                                                         v1::RunLogLevel min_level,
                                                         bool* more) override {
    EXPORTD_TIMED(ListRunLog, ListRunLog(run_id, after_seq, limit, min_level, more));
  }

  absl::Status AppendAudit(v1::AuditEntry entry) override {
    EXPORTD_TIMED(AppendAudit, AppendAudit(std::move(entry)));
  }
  absl::StatusOr<std::vector<v1::AuditEntry>> ListAudit(const PageRequest& page,
                                                        std::string* next_cursor) override {
    EXPORTD_TIMED(ListAudit, ListAudit(page, next_cursor));
  }

  absl::StatusOr<std::string> GetMeta(absl::string_view key) override {
    EXPORTD_TIMED(GetMeta, GetMeta(key));
  }
  absl::Status PutMeta(absl::string_view key, absl::string_view value) override {
    EXPORTD_TIMED(PutMeta, PutMeta(key, value));
  }

  absl::StatusOr<std::string> GetNotifySecret(absl::string_view export_id) override {
    EXPORTD_TIMED(GetNotifySecret, GetNotifySecret(export_id));
  }
  absl::Status PutNotifySecret(absl::string_view export_id, absl::string_view sealed) override {
    EXPORTD_TIMED(PutNotifySecret, PutNotifySecret(export_id, sealed));
  }
  absl::Status EnqueueNotification(const Notification& notification) override {
    EXPORTD_TIMED(EnqueueNotification, EnqueueNotification(notification));
  }
  absl::StatusOr<std::vector<Notification>> ClaimNotifications(
      const NotificationClaim& claim) override {
    EXPORTD_TIMED(ClaimNotifications, ClaimNotifications(claim));
  }
  absl::Status DeleteNotification(absl::string_view run_id, absl::string_view trigger) override {
    EXPORTD_TIMED(DeleteNotification, DeleteNotification(run_id, trigger));
  }
  absl::Status RescheduleNotification(const Notification& notification,
                                      absl::string_view holder) override {
    EXPORTD_TIMED(RescheduleNotification, RescheduleNotification(notification, holder));
  }
  absl::StatusOr<std::vector<Notification>> ListNotifications() override {
    EXPORTD_TIMED(ListNotifications, ListNotifications());
  }

#undef EXPORTD_TIMED

 private:
  const std::unique_ptr<Store> inner_;
  const OperationObserver observer_;
};

}  // namespace

std::unique_ptr<Store> TimeStore(std::unique_ptr<Store> inner, OperationObserver observer) {
  if (!observer || inner == nullptr) return inner;
  return std::make_unique<TimedStore>(std::move(inner), std::move(observer));
}

}  // namespace exportd::store
