// The Store: everything exportd keeps (connections, segments and their member
// snapshots, exports, runs, delivered state, the audit log) behind one
// interface. The embedded default is SQLite (sqlite_store.h); several
// replicas share PostgreSQL (postgres_store.h). Both pass one conformance
// suite (store_test_fixture.h).
//
// Resources are stored as their v1 protos; ids are assigned by the caller.
// Lookups accept an id or a unique name. Errors use canonical codes:
// NOT_FOUND (unknown id or name), ALREADY_EXISTS (duplicate name),
// FAILED_PRECONDITION (a resource still in use).
#ifndef EXPORTD_SERVER_STORE_STORE_H_
#define EXPORTD_SERVER_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "exportd/v1/audit.pb.h"
#include "exportd/v1/connection.pb.h"
#include "exportd/v1/export.pb.h"
#include "exportd/v1/run.pb.h"
#include "exportd/v1/segment.pb.h"
#include "server/store/member_sorter.h"

namespace exportd::store {

// The NOT_FOUND every lookup by id or name answers, e.g. "connection 'x' does
// not exist; list them with 'exportctl connection list'". The API gives the
// same answer for a resource the caller may not see, so that its existence
// cannot be probed.
absl::Status NotFoundError(absl::string_view kind, absl::string_view id_or_name);
// The ALREADY_EXISTS of a duplicate name: "an export named 'vip' already
// exists; choose another name".
absl::Status DuplicateNameError(absl::string_view kind, absl::string_view name);

struct StoredConnection {
  v1::Connection connection;  // Never holds secret values.
  std::string sealed_secrets;  // Opaque, encrypted by the caller.
};

// What DeleteConnection does with exports that use the connection.
enum class ExportDisposition { kRefuse, kDetach, kDelete };

struct DeleteConnectionResult {
  std::vector<std::string> detached_exports;  // names
  std::vector<std::string> deleted_exports;   // names
};

// Writes one new snapshot of a segment's members. Nothing is visible to
// readers until Commit() succeeds; destroying an uncommitted writer discards
// everything it wrote.
//
// A snapshot is stored in profile-id order (bytewise, as the delivered-state
// tables' keys), whatever order its rows were appended in: the rows are
// sorted (MemberSorter, in bounded memory) as part of Commit, which is also
// where a profile id appended twice is found.
class SnapshotWriter {
 public:
  virtual ~SnapshotWriter() = default;
  // Appends a chunk of `rows` (already validated) rows, as the bytes of a
  // serialized `v1.UploadMembersRequest.Chunk`. Each row's bytes are stored
  // as they are.
  virtual absl::Status AppendBytes(std::string chunk_bytes, std::int64_t rows) = 0;
  // Appends a chunk of (already validated) rows.
  absl::Status Append(const v1::UploadMembersRequest::Chunk& chunk) {
    return AppendBytes(chunk.SerializeAsString(), chunk.rows_size());
  }
  // Sorts the rows, writes them and makes the snapshot the segment's current
  // one, with `schema`; returns the updated segment. INVALID_ARGUMENT
  // "profile id 'X' appears twice (rows 12 and 40017); profile ids must be
  // unique" when one was appended twice (nothing changes then).
  virtual absl::StatusOr<v1::Segment> Commit() = 0;
};

class Store;

// What the stores' SnapshotWriters share: appended rows go into a
// MemberSorter; Commit sorts them and hands the sorted chunks to the store
// (FlushStaged) about 8 MB at a time, as rows seq 0, 1, ... of a version
// above the committed one, which no reader asks for, and then has the store
// make that version current (CommitStaged).
class StagedSnapshotWriter : public SnapshotWriter {
 public:
  absl::Status AppendBytes(std::string chunk_bytes, std::int64_t rows) final;
  absl::StatusOr<v1::Segment> Commit() final;

 protected:
  StagedSnapshotWriter(Store* store, std::string segment_id, std::int64_t version,
                       std::vector<v1::SchemaField> schema, MemberSorterOptions sort);
  // Writes pending_ (the first as row seq_) and clears it with WrotePending.
  virtual absl::Status FlushStaged() = 0;
  // Every chunk is written: makes version_ the segment's current snapshot
  // (SetCommitted), sets committed_ and returns the segment.
  virtual absl::StatusOr<v1::Segment> CommitStaged() = 0;
  void WrotePending() {
    seq_ += static_cast<std::int64_t>(pending_.size());
    pending_.clear();
    pending_bytes_ = 0;
  }
  // `segment` as this snapshot's commit makes it.
  void SetCommitted(v1::Segment& segment, std::int64_t now_micros) const;

  Store* const store_;
  const std::string segment_id_;
  const std::int64_t version_;
  const std::vector<v1::SchemaField> schema_;
  std::vector<std::string> pending_;
  std::int64_t seq_ = 0;  // Of pending_'s first chunk.
  bool committed_ = false;

 private:
  MemberSorter sorter_;
  size_t pending_bytes_ = 0;
  std::int64_t rows_ = 0;
};

// What the engine remembers about one segment of one export: the audience it
// delivers to and a fingerprint of the mapping the delivered state was
// computed with (a changed mapping forces a full resync).
struct AudienceState {
  std::string audience_id;
  std::uint64_t mapping_fingerprint = 0;
};

// What a delivered-state row records about its member.
enum class DeliveredState : int {
  kDelivered = 0,        // At the destination with `value_hash`.
  kUpdateRejected = 1,   // At the destination with `value_hash`; a later update was rejected.
  kRejected = 2,         // Never delivered: its last attempt (`value_hash`) was rejected.
  // The destination erased the member's identifier on the person's request
  // (sdk::kReasonForgotten): not at the destination, and not sent again
  // while its identifier (`ident_hash`) stays the same.
  kForgotten = 3,
};

// One member as last delivered: `value_hash` of the mapped values, and the
// encoded values themselves (needed to remove the member later). `id_hash`
// is a stable 64-bit hash of the profile id, kept so the diff need not
// rehash. `ident_hash` is the stable hash of the destination's canonical
// identifier that was sent (e.g. the lowercased email; the identifier itself
// is in `values`, as sent); 0 for destinations without an identifier field
// and for rows written before schema version 4 (unknown). `row_hash` is the
// run's digest of the snapshot row the values were mapped from, bound to
// `value_hash` (see sync::SegmentSync), so that the next run can tell an
// unchanged row without parsing it; 0: unknown (rows written before SQLite
// schema 12 / PostgreSQL schema 9, and rejected or forgotten rows).
struct DeliveredRow {
  std::uint64_t id_hash = 0;
  std::string profile_id;
  std::uint64_t value_hash = 0;
  std::string run_id;  // The run that delivered it.
  std::string values;  // Encoded mapped values (empty for kRejected).
  std::uint64_t ident_hash = 0;
  DeliveredState state = DeliveredState::kDelivered;
  std::uint64_t row_hash = 0;
};

// A delivered member as the diff reads it: no values. The views are valid
// only during the callback that receives it.
struct DeliveredView {
  std::uint64_t id_hash = 0;
  absl::string_view profile_id;
  std::uint64_t value_hash = 0;
  absl::string_view run_id;
  std::uint64_t ident_hash = 0;  // 0: no identifier, or unknown (see DeliveredRow).
  DeliveredState state = DeliveredState::kDelivered;
  std::uint64_t row_hash = 0;  // 0: unknown (see DeliveredRow).
};

// A replica's claim on a run: the store is the run queue, and a run is
// worked on only by the replica that holds its lease. `epoch` grows with every
// claim of the run, so every write that carries an older epoch comes from a
// replica that lost the run (it stalled past the expiry and another replica
// took over) and is refused with LeaseLostError.
struct RunLease {
  std::string run_id;
  std::string holder;  // The replica id, e.g. "host:pid" or --replica-id.
  std::int64_t epoch = 0;  // 0: no lease.
  std::int64_t expires_at_micros = 0;
};

// What ClaimNextRun looks for.
struct ClaimRequest {
  std::string holder;
  std::int64_t now_micros = 0;
  absl::Duration lease = absl::Seconds(15);
};

struct ClaimedRun {
  v1::Run run;  // With `replica` and `lease_expires_at_micros` of the claim.
  RunLease lease;
  // Someone asked to cancel the run while another replica held it.
  bool cancel_requested = false;
};

struct LeaseRenewal {
  std::int64_t expires_at_micros = 0;
  bool cancel_requested = false;
};

// ABORTED: `lease` no longer holds its run (`now_holder` / `now_epoch` hold
// it, or nobody when empty). Recognised by IsLeaseLost().
absl::Status LeaseLostError(const RunLease& lease, absl::string_view now_holder,
                            std::int64_t now_epoch);
bool IsLeaseLost(const absl::Status& status);

// Everything one finished batch changes, committed in one transaction with
// the run's checkpoint.
struct BatchCommit {
  std::string export_id;
  std::string segment_id;
  std::vector<DeliveredRow> delivered;
  // Members whose records the destination rejected (state kUpdateRejected,
  // kRejected or kForgotten), so that the next run retries them apart from
  // real changes (or, forgotten, does not send them): a kRejected row is
  // written (never over a delivered one); a kUpdateRejected one only marks
  // the member's delivered row; a kForgotten one is written over any row.
  std::vector<DeliveredRow> rejected;
  // Profile ids of members whose rejection this batch saw again, unchanged:
  // their delivered rows already record it (kRejected with the same
  // value_hash and ident_hash, or kUpdateRejected), so the row is not
  // rewritten; only the attempt is recorded, as the run's own mark
  // (ForEachRejectedAgain), until the run ends. Rewriting each such row for
  // its run id alone rewrote most pages of the delivered state on every run
  // when rejections are scattered (2% bad emails: every page holds some).
  std::vector<std::string> rejected_again;
  // Profile ids whose delivered rows go: removed at the destination, or
  // forgotten because another member now holds their identifier.
  std::vector<std::string> removed;
  std::vector<v1::Rejection> rejections;
  v1::Run checkpoint;  // The run with the counts including this batch.
  // The committing replica's lease on the run: the commit is refused
  // (LeaseLostError) unless it still holds the run.
  RunLease lease;
};

// The rate a connection's budget learned from its destination (it slowed
// down after throttling), kept across restarts so that exportd does not start
// by flooding the destination again. 0 means unlimited.
struct ConnectionRate {
  double requests_per_second = 0;
  double records_per_second = 0;
  std::int64_t updated_at_micros = 0;
};

// One notification of the webhook outbox (server/notify/): a run of an export
// ended in a way its webhook asked to hear about. Enqueued once when the run
// ends; delivered (signed at each attempt) by whichever replica claims it.
struct Notification {
  std::string run_id;
  // Why: "failed", "recovered" or "rejections". With run_id, the key.
  std::string trigger;
  std::string export_id;
  std::string export_name;  // For logs and metric labels.
  std::string url;          // The webhook when the run ended.
  std::string body;         // The JSON body, final.
  int attempts = 0;         // Delivery attempts made so far.
  std::int64_t created_at_micros = 0;
  std::int64_t next_attempt_at_micros = 0;  // Due from then.
  std::string last_error;   // Why the last attempt failed.
};

// What ClaimNotifications looks for: due notifications no live lease holds.
struct NotificationClaim {
  std::string holder;  // The replica id.
  std::int64_t now_micros = 0;
  absl::Duration lease = absl::Seconds(60);
  int limit = 16;
};

// A page request: `after` is an opaque cursor from the previous page.
struct PageRequest {
  int limit = 100;
  std::string after;
};

// FAILED_PRECONDITION naming (by name) `segment` and the exports among
// `exports` that use it (DeleteSegment refuses then); OK when none does.
absl::Status SegmentUnusedBy(const std::vector<v1::Export>& exports, const v1::Segment& segment);

// The rows a page holds: `limit`, at most 1000; 50 when not set.
int PageLimit(const PageRequest& page);

// At most this many rejections are kept per run, in every store (a sample);
// all are counted.
inline constexpr std::int64_t kMaxRejectionsKept = 100000;

// A run's log (Store::AppendRunLog): at most kMaxRunLogLines lines per run,
// each message at most kMaxRunLogMessageBytes bytes. Lines 1 ..
// kMaxRunLogLines - 1 are stored as they come; line kMaxRunLogLines says how
// many more were dropped and quotes the newest of them.
inline constexpr std::int64_t kMaxRunLogLines = 1000;
inline constexpr size_t kMaxRunLogMessageBytes = 2000;

// `message` cut to kMaxRunLogMessageBytes at a UTF-8 character boundary,
// ending in "…" when cut.
std::string CapRunLogMessage(absl::string_view message);

// What one AppendRunLog writes, the same for every store: the store reads
// the run's last seq (0: no line yet) and, when it is kMaxRunLogLines, the
// dropped-lines line's count and level; it inserts `insert` and, when set,
// writes `dropped_line` (seq kMaxRunLogLines) with `dropped`, replacing the
// one before.
struct RunLogAppend {
  std::vector<v1::RunLogLine> insert;  // seq set, messages capped
  std::optional<v1::RunLogLine> dropped_line;
  std::int64_t dropped = 0;  // Every line dropped so far, when dropped_line is set.
};
RunLogAppend PlanRunLogAppend(std::int64_t last_seq, std::int64_t dropped_before,
                              v1::RunLogLevel dropped_level_before,
                              const std::vector<v1::RunLogLine>& lines);

// Shows a run's lease (the store's lease columns are the truth about who holds
// it) in its proto: `replica` and `lease_expires_at_micros`.
void ShowLease(v1::Run& run, absl::string_view holder, std::int64_t expires_micros);
// INVALID_ARGUMENT unless `run` is the run `lease` holds (a leased write).
absl::Status CheckWrittenUnderItsLease(const v1::Run& run, const RunLease& lease);

class Store {
 public:
  virtual ~Store() = default;

  // --- Connections -------------------------------------------------------
  virtual absl::Status CreateConnection(const StoredConnection& connection) = 0;
  virtual absl::StatusOr<StoredConnection> GetConnection(absl::string_view id_or_name) = 0;
  virtual absl::StatusOr<std::vector<StoredConnection>> ListConnections() = 0;
  virtual absl::Status UpdateConnection(const StoredConnection& connection) = 0;
  // FAILED_PRECONDITION naming the exports when in use and kRefuse.
  virtual absl::StatusOr<DeleteConnectionResult> DeleteConnection(
      absl::string_view id, ExportDisposition disposition) = 0;

  // --- Segments ----------------------------------------------------------
  virtual absl::Status CreateSegment(const v1::Segment& segment) = 0;
  virtual absl::StatusOr<v1::Segment> GetSegment(absl::string_view id_or_name) = 0;
  virtual absl::StatusOr<std::vector<v1::Segment>> ListSegments() = 0;
  // FAILED_PRECONDITION naming the exports that use it.
  virtual absl::Status DeleteSegment(absl::string_view id) = 0;
  // Starts a new snapshot with `schema`, whose rows Commit sorts with
  // `sort` (its memory budget and temporary directory). FAILED_PRECONDITION
  // when another upload of the same segment is in progress.
  virtual absl::StatusOr<std::unique_ptr<SnapshotWriter>> BeginSnapshot(
      absl::string_view segment_id, std::vector<v1::SchemaField> schema,
      MemberSorterOptions sort = {}) = 0;
  // Calls `fn` with every chunk of snapshot `version` in stored order, as the
  // serialized UploadMembersRequest.Chunk (for callers that parse in
  // parallel): in profile-id order when SnapshotInMemberOrder says so, in
  // upload order for a snapshot stored before exportd sorted them. The
  // snapshot stays readable while a newer one is uploaded.
  virtual absl::Status ForEachChunkBytes(
      absl::string_view segment_id, std::int64_t version,
      const std::function<absl::Status(absl::string_view bytes)>& fn) = 0;
  // Whether snapshot `version` of the segment is stored in profile-id order:
  // true for every snapshot this exportd committed (the commit records it),
  // false for one an older exportd stored in upload order (before the
  // upgrade, or by an older replica still running during one), and for
  // versions that do not exist. A reader that needs the order sorts such a
  // snapshot itself (MemberSorter).
  virtual absl::StatusOr<bool> SnapshotInMemberOrder(absl::string_view segment_id,
                                                     std::int64_t version) = 0;
  // Calls `fn` with every chunk of snapshot `version` in stored order, parsed
  // (ForEachChunkBytes, then protobuf's parser; DATA_LOSS for a damaged one).
  // The snapshot stays readable while a newer one is uploaded and committed.
  absl::Status ForEachChunk(
      absl::string_view segment_id, std::int64_t version,
      const std::function<absl::Status(const v1::UploadMembersRequest::Chunk&)>& fn);

  // --- Exports -----------------------------------------------------------
  virtual absl::Status CreateExport(const v1::Export& e) = 0;
  virtual absl::StatusOr<v1::Export> GetExport(absl::string_view id_or_name) = 0;
  virtual absl::StatusOr<std::vector<v1::Export>> ListExports() = 0;
  virtual absl::Status UpdateExport(const v1::Export& e) = 0;
  virtual absl::Status DeleteExport(absl::string_view id) = 0;

  // --- Runs --------------------------------------------------------------
  virtual absl::Status CreateRun(const v1::Run& run) = 0;
  virtual absl::Status UpdateRun(const v1::Run& run) = 0;
  virtual absl::StatusOr<v1::Run> GetRun(absl::string_view id) = 0;
  // Newest first.
  virtual absl::StatusOr<std::vector<v1::Run>> ListRuns(absl::string_view export_id,
                                                        const PageRequest& page,
                                                        std::string* next_cursor) = 0;
  // Runs not in a final state (QUEUED, RUNNING, FAILED_RETRYING), oldest first.
  virtual absl::StatusOr<std::vector<v1::Run>> ListUnfinishedRuns() = 0;
  // The newest run of the export, if any.
  virtual absl::StatusOr<std::vector<v1::Run>> LatestRun(absl::string_view export_id) = 0;

  // --- The run queue: claims and leases ------------------------------------
  // Atomically claims the oldest unfinished run that is due (QUEUED, or
  // FAILED_RETRYING whose next attempt is due, or any whose lease expired, as
  // a RUNNING run whose replica died) and whose export has no other run under
  // a live lease (one run per export at a time), and none of whose export's
  // segments is being uploaded (it waits, unclaimed, so that a trigger meanwhile
  // joins it). The lease's epoch is one more than the run's last one. nullopt
  // when nothing is claimable.
  virtual absl::StatusOr<std::optional<ClaimedRun>> ClaimNextRun(const ClaimRequest& request) = 0;
  // Extends a held lease to now + `lease` (a heartbeat). LeaseLostError when
  // the lease was taken over or released.
  virtual absl::StatusOr<LeaseRenewal> RenewLease(const RunLease& lease, std::int64_t now_micros,
                                                  absl::Duration lease_duration) = 0;
  // Ends a held lease: the run is claimable again at once (if unfinished).
  // LeaseLostError when it was no longer held.
  virtual absl::Status ReleaseLease(const RunLease& lease) = 0;
  // Ends every lease `holder` holds, or every lease when `holder` is empty: a
  // restarted replica (or the only one, with SQLite) resumes its runs at once.
  virtual absl::Status ReleaseLeasesOf(absl::string_view holder) = 0;
  // UpdateRun for the replica that holds the run: refused (LeaseLostError)
  // unless `lease` still holds it.
  virtual absl::Status UpdateLeasedRun(const v1::Run& run, const RunLease& lease) = 0;
  // UpdateLeasedRun and EnqueueNotification of each of `notifications`, in
  // one transaction: a run that ended is never stored ended without the
  // webhook notifications its end queues, nor they without it.
  virtual absl::Status EndLeasedRun(const v1::Run& run, const RunLease& lease,
                                    const std::vector<Notification>& notifications) = 0;
  // Changes a run no replica holds (it waits in the queue) with `fn`,
  // atomically, and returns it. FAILED_PRECONDITION when a replica holds it
  // under a live lease at `now_micros`, or it is final.
  virtual absl::StatusOr<v1::Run> UpdateUnclaimedRun(
      absl::string_view run_id, std::int64_t now_micros,
      const std::function<absl::Status(v1::Run&)>& fn) = 0;
  // Asks the replica that holds the run to cancel it (its next heartbeat
  // tells it).
  virtual absl::Status RequestCancel(absl::string_view run_id) = 0;

  // --- Schedules ------------------------------------------------------------
  // Claims the firing of `export_id`'s schedule at `fire_time_micros` for the
  // caller: true for exactly one caller across every replica sharing the
  // store, false when this or a later firing of the export was claimed
  // already (another replica's scheduler fired it).
  virtual absl::StatusOr<bool> ClaimScheduledFiring(absl::string_view export_id,
                                                    std::int64_t fire_time_micros) = 0;

  // --- Delivered state ---------------------------------------------------
  // NOT_FOUND before the first delivery.
  virtual absl::StatusOr<AudienceState> GetAudienceState(absl::string_view export_id,
                                                         absl::string_view segment_id) = 0;
  virtual absl::Status PutAudienceState(absl::string_view export_id, absl::string_view segment_id,
                                        const AudienceState& state) = 0;
  // Calls `fn` for every delivered member of (export, segment), without its
  // values, in profile-id order (bytewise, as std::string compares): the
  // diff merges it with the snapshot, stored in the same order. Streams: a
  // store never holds the whole delivered state in memory for it.
  virtual absl::Status ForEachDelivered(
      absl::string_view export_id, absl::string_view segment_id,
      const std::function<absl::Status(const DeliveredView&)>& fn) = 0;
  // Calls `fn` with the full rows of the members named in `profile_ids`, in
  // that order (used for the members who left); ids not delivered are
  // skipped. Sorted ids read fastest.
  virtual absl::Status LookupDelivered(
      absl::string_view export_id, absl::string_view segment_id,
      const std::vector<absl::string_view>& profile_ids,
      const std::function<absl::Status(const DeliveredRow&)>& fn) = 0;
  // Calls `fn` with the profile id of every member of (export, segment) that
  // run `run_id` recorded as rejected again (BatchCommit::rejected_again), in
  // no particular order: a resumed attempt does not send them again. The
  // marks of a run are deleted when it ends (EndLeasedRun with a final
  // state).
  virtual absl::Status ForEachRejectedAgain(
      absl::string_view run_id, absl::string_view export_id, absl::string_view segment_id,
      const std::function<absl::Status(absl::string_view profile_id)>& fn) = 0;
  // Applies a batch's outcomes and the run checkpoint atomically, fenced by
  // `commit.lease` (LeaseLostError: nothing is written). The audience state
  // of (export, segment) must have been put first.
  virtual absl::Status CommitBatch(const BatchCommit& commit) = 0;

  // --- Learned connection rates ---------------------------------------------
  // NOT_FOUND when nothing was learned for the connection yet.
  virtual absl::StatusOr<ConnectionRate> GetConnectionRate(absl::string_view connection_id) = 0;
  // Replaces the connection's learned rate. Written when the rate changes,
  // not per batch. Deleting the connection deletes it.
  virtual absl::Status PutConnectionRate(absl::string_view connection_id,
                                         const ConnectionRate& rate) = 0;

  // --- Rate shares: replicas sending on one connection -----------------------
  // Records that `replica` sends on `connection_id` until `expires_micros`
  // (renewed while it does) and returns how many replicas do at
  // `now_micros`, this one included: each sends that share of the
  // connection's rate. SQLite has one process per store: always 1.
  virtual absl::StatusOr<int> ShareConnection(absl::string_view connection_id,
                                              absl::string_view replica, std::int64_t now_micros,
                                              std::int64_t expires_micros) = 0;
  // Ends `replica`'s share of the connection (its last run on it ended).
  virtual absl::Status EndConnectionShare(absl::string_view connection_id,
                                          absl::string_view replica) = 0;

  // --- Webhook notifications: signing secrets and the outbox ---------------
  // The export's webhook signing secret, sealed by the caller (never the
  // secret itself). NOT_FOUND when the export or its secret does not exist.
  virtual absl::StatusOr<std::string> GetNotifySecret(absl::string_view export_id) = 0;
  // Replaces the export's sealed signing secret; empty removes it. It goes
  // with the export. NOT_FOUND for an unknown export.
  virtual absl::Status PutNotifySecret(absl::string_view export_id, absl::string_view sealed) = 0;
  // Adds a notification, due at its next_attempt_at_micros. Idempotent: a
  // notification already there with the same (run_id, trigger) stays as it
  // is, and OK is returned.
  virtual absl::Status EnqueueNotification(const Notification& notification) = 0;
  // Atomically leases up to `claim.limit` due notifications that no live
  // lease holds (FOR UPDATE SKIP LOCKED on PostgreSQL), oldest due first, to
  // `claim.holder` until now + lease: no other replica gets them meanwhile.
  virtual absl::StatusOr<std::vector<Notification>> ClaimNotifications(
      const NotificationClaim& claim) = 0;
  // A claimed notification was delivered, or given up: it goes.
  virtual absl::Status DeleteNotification(absl::string_view run_id,
                                          absl::string_view trigger) = 0;
  // A claimed notification is tried again at its next_attempt_at_micros,
  // with its attempts and last_error; its lease ends. Changes nothing (OK)
  // when `holder` no longer holds it.
  virtual absl::Status RescheduleNotification(const Notification& notification,
                                              absl::string_view holder) = 0;
  // Every notification not delivered yet, oldest first (for operators and
  // tests).
  virtual absl::StatusOr<std::vector<Notification>> ListNotifications() = 0;

  // --- Rejections --------------------------------------------------------
  virtual absl::StatusOr<std::vector<v1::Rejection>> ListRejections(absl::string_view run_id,
                                                                    const PageRequest& page,
                                                                    std::string* next_cursor) = 0;
  virtual absl::StatusOr<std::int64_t> CountRejections(absl::string_view run_id) = 0;

  // --- Run logs ----------------------------------------------------------
  // Appends `lines` (their seq is ignored) to the run's log, numbered on from
  // the last stored line, in one transaction; messages are cut
  // (CapRunLogMessage). Past kMaxRunLogLines - 1 lines, the rest are dropped
  // and counted in the run's last line (RunLogDroppedLine), which each later
  // append rewrites. Appends of one run are serialized (several replicas may
  // append to one run's log: the attempts of a run that moved).
  virtual absl::Status AppendRunLog(absl::string_view run_id,
                                    const std::vector<v1::RunLogLine>& lines) = 0;
  // The run's lines with seq > `after_seq` and level >= `min_level`
  // (UNSPECIFIED: all), oldest first, at most `limit` (1 .. 1000). `*more`
  // (if not null) tells whether lines that match follow the last one
  // returned. An unknown run has no lines.
  virtual absl::StatusOr<std::vector<v1::RunLogLine>> ListRunLog(absl::string_view run_id,
                                                                 std::int64_t after_seq, int limit,
                                                                 v1::RunLogLevel min_level,
                                                                 bool* more) = 0;

  // --- Audit -------------------------------------------------------------
  virtual absl::Status AppendAudit(v1::AuditEntry entry) = 0;
  // Newest first.
  virtual absl::StatusOr<std::vector<v1::AuditEntry>> ListAudit(
      const PageRequest& page, std::string* next_cursor) = 0;

  // --- About the store itself ----------------------------------------------
  // Small named values exportd keeps with the data, e.g. the master key's
  // check value (never a secret). NOT_FOUND when `key` was never put.
  virtual absl::StatusOr<std::string> GetMeta(absl::string_view key) = 0;
  // Sets `key` to `value`, replacing any earlier value.
  virtual absl::Status PutMeta(absl::string_view key, absl::string_view value) = 0;
};

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_STORE_H_
