// The data path of one segment of one run, as a pipeline of stages, one file
// each in server/sync/ (docs/developing.md draws it):
//   mapping (ResolveMapping) → snapshot_scan (chunks in profile-id order,
//   parsed on 2 threads) merged with delivered_stream (the delivered state in
//   the same order, read ahead in pages) → differ (keyed by the destination's
//   identifier) → batcher (the connection's speed) → dispatcher (the shared
//   rate budget, N in flight) → committer (per-record outcomes → delivered
//   state + rejections + run checkpoint, one commit per batch).
// This file wires them: pass 0 (identifiers), pass 1 (the merge: joins,
// changes, leavers), duplicates, pass 2 (removals), pass 3 (held-back
// members). An incremental run folds pass 0 into pass 1 (one_pass below):
// it reads the snapshot once, holding its few changes until every
// identifier is known. Neither the snapshot nor the delivered state is held in memory,
// nor, beyond a bound, pass 0's identifiers (8 bytes a member, then in a
// temporary file): what grows with the segment is the removal candidates
// (members who left or moved) and held-back members of this run.
//
// A run interrupted at any point (crash, cancel, retryable failure) can run
// the same SegmentSync again: members this run already delivered are
// recognised by their run id and neither resent nor counted twice.
#ifndef EXPORTD_SERVER_SYNC_SEGMENT_SYNC_H_
#define EXPORTD_SERVER_SYNC_SEGMENT_SYNC_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "exportd/sdk/destination.h"
#include "exportd/v1/export.pb.h"
#include "exportd/v1/run.pb.h"
#include "exportd/v1/segment.pb.h"
#include "server/destinations/rate_budget.h"
#include "server/store/store.h"
#include "server/sync/committer.h"
#include "server/sync/identifier_set.h"
#include "server/sync/mapping.h"
#include "server/sync/throttled_call.h"

namespace exportd::sync {

struct SegmentSyncOptions {
  std::string run_id;
  int segment_index = 0;
  const v1::Export* export_ = nullptr;
  const v1::Segment* segment = nullptr;
  // Null in a dry run: nothing is sent.
  sdk::Connection* connection = nullptr;
  // The connection's destination: it canonicalizes identifiers. May be null
  // (keyed by profile id).
  const sdk::Destination* destination = nullptr;
  // The destination field the diff keys by, as Destination::ValidateMapping
  // named it for the connection's settings (empty: by profile id).
  std::string identifier_field;
  sdk::Audience audience;
  bool full = false;       // Resend every member.
  // What was delivered was keyed by something else than `identifier_field`
  // now is (sdk::MappingCheck::keyed_by changed): the delivered identifier
  // hashes are ignored, as for rows from before exportd kept them (each
  // member is an update, not a move; a leaver's identifier is derived from
  // the values sent). Used with `full`.
  bool rekeyed = false;
  bool resuming = false;   // A later attempt of the run: skip what it already did.
  bool dry_run = false;
  // Remove what no current member maps to any more (members who left,
  // identifiers that changed). Add-only when false: nothing is removed.
  bool mirror = true;
  // The connection's effective speed (Connection::speed()).
  int max_records_per_batch = 1000;
  std::int64_t max_bytes_per_batch = 4'000'000;
  int max_parallel_batches = 1;
  // The connection's shared rate budget: every Upsert/Remove (and the
  // engine's EnsureAudience) acquires from it first. Null: no limit (dry
  // runs, tests).
  destinations::RateBudget* budget = nullptr;
  // How often one batch (or the audience call) is sent again after the
  // destination throttled it before the run fails (retryably) instead.
  int max_throttle_resends = 8;
  // The snapshot's identifier hashes in memory at most (then on disk).
  IdentifierSetOptions identifiers;
  // Fold pass 0 into pass 1 (destinations with an identifier; not in a full
  // resync): the scan collects the identifiers and holds the changes until
  // it ends, so an incremental run reads the snapshot once. It reads it
  // again when the changes exceed `held_memory_bytes` or a quarter of the
  // members, or when a shared identifier is also an unchanged member's; the
  // engine turns it off when the last run found shared identifiers.
  bool one_pass = true;
  size_t held_memory_bytes = size_t{64} << 20;
};

// How the calls to the destination for `o`'s segment wait for the
// connection's rate budget (throttled_call.h): its batches, and the engine's
// EnsureAudience for it. `tracker` shows a long wait; it outlives the calls.
ThrottledCallOptions ThrottlingFor(const SegmentSyncOptions& o, RunTracker& tracker);

// Runs the pipeline for one segment. Returns the first whole-call failure of
// the destination (the caller decides between retrying and failing), or
// CANCELLED. Per-record rejections and retryable records are not errors:
// they are counted in the progress.
absl::Status SyncSegment(const SegmentSyncOptions& options, store::Store& store,
                         RunTracker& tracker, sdk::RunContext& ctx);

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_SEGMENT_SYNC_H_
