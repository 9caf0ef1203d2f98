#include "server/sync/segment_sync.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/common/status_macros.h"
#include "server/store/member_chunk.h"
#include "server/sync/batcher.h"
#include "server/sync/committer.h"
#include "server/sync/delivered_stream.h"
#include "server/sync/differ.h"
#include "server/sync/dispatcher.h"
#include "server/sync/mapping.h"
#include "server/sync/record_codec.h"
#include "server/sync/snapshot_scan.h"

namespace exportd::sync {
namespace {

// Members are keyed by this hash of their profile id in the delivered state.
std::uint64_t IdHash(absl::string_view id) { return StableHash64(id); }

// A member held back by the scan: it shares its identifier with another
// member, or it moved to another identifier (sent after the old one's
// removal).
struct HeldMember {
  std::string profile_id;
  std::string identifier;
  std::string encoded;
  std::vector<sdk::Value> values;
  Member member() const { return {profile_id, id_hash, ident_hash, value_hash}; }
  std::uint64_t id_hash = 0;
  std::uint64_t ident_hash = 0;
  std::uint64_t value_hash = 0;
  std::uint64_t row_hash = 0;
  Change change = Change::kAdd;
  std::string note;  // Added to a rejection's message.
  // Its delivered entry (a copy: the merge has moved on), if it was delivered.
  std::optional<DeliveredEntry> entry;
  DeliveredEntry* delivered() { return entry ? &*entry : nullptr; }
};

// A change held by a one-pass scan until the snapshot's identifiers are all
// known: the row's bytes (as a one-row chunk, in its HeldBlock's `bytes`)
// rather than its parsed values, which take about three times the memory.
struct HeldRow {
  std::uint32_t begin = 0, size = 0;  // The one-row chunk in HeldBlock::bytes.
  std::uint64_t id_hash = 0;
  std::uint64_t ident_hash = 0;
  std::uint64_t value_hash = 0;
  std::uint64_t row_hash = 0;
  Change change = Change::kAdd;
  bool retry = false;
  bool delivered = false;  // `entry` holds its delivered entry.
  DeliveredEntry entry;
};

// The changes one snapshot chunk held: their bytes back to back in one
// buffer and their rows in one array, so that a row costs no allocation of
// its own (at 10M members a run holds up to a quarter of a million of them)
// and the held changes grow by whole blocks, never by copying an array.
struct HeldBlock {
  std::string bytes;
  std::vector<HeldRow> rows;
  absl::string_view chunk(const HeldRow& r) const {
    return absl::string_view(bytes).substr(r.begin, r.size);
  }
  size_t memory() const { return bytes.capacity() + rows.capacity() * sizeof(HeldRow); }
};

// Appends a one-row chunk holding `row` (a serialized MemberRow, for
// ChunkReader) to `out`.
void AppendOneRowChunk(absl::string_view row, std::string& out) {
  out.push_back('\x0a');  // Field 1, length-delimited.
  for (std::uint64_t n = row.size(); ; n >>= 7) {
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  out.append(row.data(), row.size());
}

// One segment's sync: the stages wired in order. Each pass is a method.
class SegmentSync {
 public:
  SegmentSync(const SegmentSyncOptions& o, store::Store& store, RunTracker& tracker,
              sdk::RunContext& ctx, Mapping mapping)
      : o_(o),
        e_(*o.export_),
        segment_(*o.segment),
        store_(store),
        tracker_(tracker),
        ctx_(ctx),
        m_(std::move(mapping)),
        by_identifier_(m_.identifier >= 0),
        sending_(!o.dry_run && o.connection != nullptr),
        one_pass_(by_identifier_ && o.one_pass && !o.full),
        differ_({by_identifier_, o.full, o.mirror, o.identifiers}),
        committer_({o.run_id, e_.id(), segment_.id(), o.segment_index}, tracker) {
    std::string columns;
    for (int column : m_.columns) {
      if (static_cast<size_t>(column) >= mapped_.size()) mapped_.resize(column + 1);
      mapped_[column] = true;
      absl::StrAppend(&columns, column, ",");
    }
    row_seed_ = StableHash64(columns);
  }

  absl::Status Run();

 private:
  // Opens the snapshot, reads what this run already rejected, and for
  // destinations with an identifier the snapshot's identifiers (pass 0).
  absl::Status ReadState();
  // Pass 1: the snapshot merged with the delivered state, both in profile-id
  // order. Joins and changes are sent; members sharing or moving an
  // identifier are held back; members who left become removal candidates.
  absl::Status DiffSnapshot();
  // Merges one chunk's rows with the delivered members of its range.
  absl::Status DiffChunk(absl::string_view bytes, DeliveredBundle& delivered);
  // Adds a chunk's identifiers only: pass 0, and the rest of a one-pass
  // scan (pass 0 folded into pass 1) that gave up holding changes.
  absl::Status AddChunkIdentifiers(absl::string_view bytes);
  // After a one-pass scan: true when it stands, false when the run needs
  // pass 1 again now that every identifier is known (too many changes, or a
  // shared identifier that an unchanged member has too).
  bool OnePassStands();
  // After a one-pass scan that stands: sends the held changes, and hands the
  // duplicates and moves to ResolveHeld.
  absl::Status ReleaseHeldRows();
  // Adds a change to the next batch (`retry`: to the retries' batch).
  // False when a batch failed (the scan stops).
  // `entry`: the member's delivered entry (null: none).
  bool Enqueue(const store::RowView& row, std::string encoded, std::uint64_t id_hash,
               std::uint64_t ident_hash, std::uint64_t value_hash, std::uint64_t row_hash,
               bool is_update, bool retry, const DeliveredEntry* entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(out_mu_);
  // The digest of a snapshot row (a serialized MemberRow) under this
  // mapping's columns: the same bytes read through other columns (the
  // segment's schema changed) digest differently.
  std::uint64_t RowDigest(absl::string_view row) const { return StableHash64(row) ^ row_seed_; }
  // What a delivered row keeps (DeliveredRow::row_hash): the digest of the
  // row it was sent from, bound to the hash of the values sent. A replica of
  // an older version (during an upgrade) rewrites a row's values without
  // knowing of row_hash, which it leaves as it was: bound to the old values'
  // hash, it no longer matches.
  static std::uint64_t RowHash(std::uint64_t row_digest, std::uint64_t value_hash) {
    return row_digest ^ value_hash;
  }
  // Whether a snapshot row with this digest is known unchanged from its
  // delivered entry alone, without parsing its values: the entry was
  // delivered from the very same row by another run, under this mapping (a
  // changed mapping resyncs in full), and its identifier is known and shared
  // with no other member (a shared one is resolved from the values).
  bool KnownUnchanged(const DeliveredEntry* entry, std::uint64_t row_digest) const {
    return entry != nullptr && !o_.full && entry->row_hash != 0 &&
           entry->row_hash == RowHash(row_digest, entry->value_hash) &&
           entry->state == store::DeliveredState::kDelivered && !entry->this_run &&
           (!by_identifier_ || (entry->ident_hash != 0 && !differ_.IsDuplicate(entry->ident_hash)));
  }
  // Parses a held row back into a HeldMember.
  absl::Status Materialize(absl::string_view chunk, HeldRow& r, HeldMember& h);
  // A delivered member done with: a removal candidate, if its row may go.
  void Consider(absl::string_view profile_id, const DeliveredEntry& e,
                std::vector<Candidate>& out) const {
    if (auto why = differ_.RemovalReason(e)) {
      out.push_back({std::string(profile_id), *why, e.delivered(), e.ident_hash});
    }
  }
  // The held-back members: one winner per shared identifier, the others
  // reported as duplicates.
  absl::Status ResolveHeld();
  // Pass 2 (mirror mode): identifiers no current member maps to are removed.
  absl::Status SendRemovals();
  // Pass 3: the held-back winners, after every removal is committed (a moved
  // member's new row must not be deleted by its old identifier's removal).
  absl::Status SendHeld();

  void StartDispatcher() {
    DispatchOptions d;
    d.connection = o_.connection;
    d.audience = o_.audience;
    d.max_parallel_batches = o_.max_parallel_batches;
    d.throttling = ThrottlingFor(o_, tracker_);
    dispatcher_ = std::make_unique<Dispatcher>(d, committer_, ctx_);
    batcher_ = NewBatcher();
    retries_ = NewBatcher();
  }
  std::unique_ptr<Batcher> NewBatcher() {
    Dispatcher* dispatcher = dispatcher_.get();
    return std::make_unique<Batcher>(
        o_.max_records_per_batch, o_.max_bytes_per_batch, m_.fields,
        [dispatcher](PendingBatch batch) { return dispatcher->Submit(std::move(batch)); });
  }
  // Stops the batches in flight on a failure.
  absl::Status FailWith(absl::Status status) {
    if (!status.ok()) dispatcher_->Close().IgnoreError();
    return status;
  }
  // The canonical identifier of a value; strings without a copy.
  std::string Canonical(const std::string& text) const {
    return o_.destination->CanonicalIdentifier(m_.fields[m_.identifier].name, text);
  }
  std::string Canonical(const store::ValueView& v) const {
    if (v.kind == v1::Value::kStringValue) {
      return o_.destination->CanonicalIdentifier(
          m_.fields[m_.identifier].name,
          std::string_view(v.string_value.data(), v.string_value.size()));
    }
    return Canonical(IdentifierText(v));
  }
  const std::string& IdentifierField() const { return m_.fields[m_.identifier].name; }

  const SegmentSyncOptions& o_;
  const v1::Export& e_;
  const v1::Segment& segment_;
  store::Store& store_;
  RunTracker& tracker_;
  sdk::RunContext& ctx_;
  const Mapping m_;
  const bool by_identifier_;
  const bool sending_;
  // Pass 0 folded into pass 1: the scan collects the identifiers and holds
  // the changes (usually few: an incremental run) until it ends, instead of
  // reading the snapshot once more first. Cleared when it gives up.
  bool one_pass_;
  std::atomic<bool> gave_up_{false};
  std::vector<bool> mapped_;  // The snapshot's columns the mapping reads (pass 1 parses those).
  const std::vector<bool> no_values_;  // None: a row's profile id and width only.
  std::uint64_t row_seed_ = 0;  // Of the mapping's columns (RowDigest).
  Differ differ_;
  Committer committer_;
  absl::flat_hash_set<std::string> rejected_this_run_;
  std::unique_ptr<SnapshotSource> source_;
  std::string last_id_;  // Of the chunk attached last (pass 1's reading thread).
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<Batcher> retries_;
  absl::Mutex out_mu_;  // The batchers, held_ and stopped_ during pass 1.
  std::vector<HeldMember> held_;
  std::vector<HeldBlock> held_blocks_;  // A one-pass scan's changes.
  std::int64_t held_rows_ = 0;
  size_t held_bytes_ = 0;
  std::int64_t rows_seen_ = 0;
  std::int64_t deferred_unchanged_ = 0;  // Counted when a one-pass scan stands.
  std::vector<Candidate> candidates_;  // Delivered rows that may go.
  std::int64_t delivered_read_ = 0;
  bool stopped_ = false;
  std::vector<HeldMember*> late_;  // Sent after the removals.
  absl::flat_hash_set<std::string> old_removed_;  // Moved members whose old identifier went.
  absl::Time started_, loaded_, scanned_;
};

absl::Status SegmentSync::Run() {
  started_ = absl::Now();
  EXPORTD_RETURN_IF_ERROR(ReadState());
  loaded_ = absl::Now();
  StartDispatcher();
  EXPORTD_RETURN_IF_ERROR(DiffSnapshot());
  if (one_pass_) {
    EXPORTD_RETURN_IF_ERROR(differ_.SealIdentifiers());
    if (OnePassStands()) {
      EXPORTD_RETURN_IF_ERROR(ReleaseHeldRows());
    } else {
      // Pass 1 again, with every identifier known: nothing was sent yet.
      ctx_.Log(sdk::LogLevel::kInfo,
               absl::StrCat("segment '", segment_.name(),
                            "': many changes or shared identifiers; the snapshot is read again"));
      one_pass_ = false;
      held_blocks_ = {};
      held_rows_ = 0;
      held_.clear();
      candidates_.clear();
      deferred_unchanged_ = 0;
      EXPORTD_RETURN_IF_ERROR(DiffSnapshot());
    }
  }
  scanned_ = absl::Now();
  EXPORTD_RETURN_IF_ERROR(ResolveHeld());
  EXPORTD_RETURN_IF_ERROR(SendRemovals());
  EXPORTD_RETURN_IF_ERROR(SendHeld());
  absl::Status sent = dispatcher_->Close();
  ctx_.Log(sdk::LogLevel::kInfo,
           absl::StrCat("segment '", segment_.name(), "': delivered state of ",
                        delivered_read_, " members merged with the snapshot",
                        by_identifier_ && !one_pass_ ? "; the snapshot's identifiers read in "
                                                     : "; opened in ",
                        absl::FormatDuration(loaded_ - started_), ", snapshot diffed in ",
                        absl::FormatDuration(scanned_ - loaded_),
                        ", removals and last batches in ",
                        absl::FormatDuration(absl::Now() - scanned_)));
  EXPORTD_RETURN_IF_ERROR(sent);
  if (ctx_.cancelled()) return absl::CancelledError("the run was canceled");
  return absl::OkStatus();
}

absl::Status SegmentSync::ReadState() {
  EXPORTD_ASSIGN_OR_RETURN(source_, SnapshotSource::Open(store_, segment_, ctx_));
  if (o_.resuming) {
    std::string cursor;
    do {
      EXPORTD_ASSIGN_OR_RETURN(auto page,
                               store_.ListRejections(o_.run_id, {1000, cursor}, &cursor));
      for (const auto& r : page) {
        if (r.segment_id() == segment_.id()) rejected_this_run_.insert(r.profile_id());
      }
    } while (!cursor.empty());
    // Beyond what the rejections list keeps (kMaxRejectionsKept), the
    // members rejected again are known by the run's marks.
    EXPORTD_RETURN_IF_ERROR(store_.ForEachRejectedAgain(
        o_.run_id, e_.id(), segment_.id(), [&](absl::string_view profile_id) {
          rejected_this_run_.emplace(profile_id);
          return absl::OkStatus();
        }));
  }
  // Pass 0 (destinations with an identifier): the snapshot's identifiers, so
  // that members sharing one are known before anything is sent.
  if (by_identifier_) differ_.ReserveIdentifiers(segment_.member_count());
  if (one_pass_) return absl::OkStatus();  // Pass 1 collects them.
  if (by_identifier_) {
    EXPORTD_RETURN_IF_ERROR(ScanSnapshot(
        *source_, ctx_, nullptr,
        [&](size_t, absl::string_view bytes, DeliveredBundle&) -> absl::Status {
          return AddChunkIdentifiers(bytes);
        }));
  }
  return differ_.SealIdentifiers();
}

absl::Status SegmentSync::DiffSnapshot() {
  DeliveredStream delivered(store_, e_.id(), segment_.id(), o_.run_id, o_.rekeyed);
  last_id_.clear();
  auto attach = [&](absl::string_view bytes, DeliveredBundle& bundle) -> absl::Status {
    EXPORTD_ASSIGN_OR_RETURN(std::string last, LastProfileId(segment_, bytes, last_id_));
    if (last.empty()) return absl::OkStatus();  // A chunk without rows.
    last_id_ = std::move(last);
    return delivered.TakeThrough(last_id_, bundle);
  };
  absl::Status scanned = ScanSnapshot(
      *source_, ctx_, attach,
      [&](size_t, absl::string_view bytes, DeliveredBundle& bundle) {
        return DiffChunk(bytes, bundle);
      });
  if (scanned.ok()) {
    // The delivered members after the snapshot's last one left.
    DeliveredBundle rest;
    scanned = delivered.TakeThrough(std::nullopt, rest);
    std::vector<Candidate> left;
    for (size_t i = 0; i < rest.size(); ++i) Consider(rest.id(i), rest.entry(i), left);
    absl::MutexLock lock(&out_mu_);
    candidates_.insert(candidates_.end(), std::make_move_iterator(left.begin()),
                       std::make_move_iterator(left.end()));
  }
  delivered_read_ = delivered.taken();
  if (!scanned.ok() && !stopped_) return FailWith(scanned);
  if (!stopped_) stopped_ = !batcher_->Flush() || !retries_->Flush();
  if (stopped_) {
    // Only a failed batch stops the scan: the dispatcher has its error.
    absl::Status sent = dispatcher_->Close();
    return sent.ok() ? absl::AbortedError("the sync stopped") : sent;
  }
  return absl::OkStatus();
}

absl::Status SegmentSync::DiffChunk(absl::string_view bytes,
                                    DeliveredBundle& delivered) {
  if (one_pass_ && gave_up_.load()) return AddChunkIdentifiers(bytes);
  const bool holding = one_pass_;
  store::ChunkReader reader(bytes);
  store::RowView row;
  std::string encoded;
  std::int64_t adds = 0, updates = 0, unchanged = 0, rows = 0;
  std::vector<Candidate> candidates;
  std::vector<std::uint64_t> present;  // A one-pass scan's identifiers.
  HeldBlock held;
  std::string identifier;
  size_t d = 0;  // The next delivered member of the chunk's range.
  // When members of the chunk's range were delivered (an incremental run),
  // each row is first read for its profile id and width only: most are known
  // unchanged by their digest (KnownUnchanged), and only the others have
  // their values parsed. Rows of a chunk with none (a first run's) are parsed
  // at once.
  const bool digest_first = !o_.full && !delivered.empty();
  while (reader.Next(row, digest_first ? no_values_ : mapped_)) {
    EXPORTD_RETURN_IF_ERROR(CheckRowWidth(segment_, row));
    ++rows;
    // Delivered members before this row are not in the snapshot: they left.
    for (; d < delivered.size() && delivered.id(d) < row.profile_id; ++d) {
      Consider(delivered.id(d), delivered.entry(d), candidates);
    }
    DeliveredEntry* entry = nullptr;
    if (d < delivered.size() && delivered.id(d) == row.profile_id) entry = &delivered.entry(d++);
    const std::uint64_t row_digest = RowDigest(reader.last_row());
    if (digest_first) {
      if (KnownUnchanged(entry, row_digest) &&
          differ_.Classify({row.profile_id, IdHash(row.profile_id), entry->ident_hash,
                            entry->value_hash},
                           entry, /*resolved=*/holding) == Change::kUnchanged) {
        if (holding && entry->ident_hash != 0) present.push_back(entry->ident_hash);
        Consider(row.profile_id, *entry, candidates);
        ++unchanged;
        continue;
      }
      // Classify only marks the entry: classified again below, from the values.
      if (!reader.Reparse(row, mapped_)) return DamagedChunk(segment_, reader);
    }
    encoded.clear();
    for (int column : m_.columns) EncodeValue(row.values[column], encoded);
    std::uint64_t value_hash = HashValues(encoded);
    const std::uint64_t row_hash = RowHash(row_digest, value_hash);
    std::uint64_t id_hash = IdHash(row.profile_id);
    std::uint64_t ident_hash = 0;
    identifier.clear();
    if (by_identifier_ && !o_.full && entry != nullptr && entry->delivered() && !entry->this_run &&
        entry->ident_hash != 0 && entry->value_hash == value_hash &&
        !differ_.IsDuplicate(entry->ident_hash)) {
      // The values delivered last time, the identifier's among them: so is
      // its canonical form, and canonicalizing it again (most of an
      // incremental run's members) is skipped. It is the same function of
      // the same value, as long as the destination's canonical form does not
      // change between runs (a full resync canonicalizes every member again).
      ident_hash = entry->ident_hash;
    } else if (by_identifier_) {
      identifier = Canonical(row.values[m_.columns[m_.identifier]]);
      if (!identifier.empty()) ident_hash = IdentHash(identifier);
    }
    if (holding && ident_hash != 0) present.push_back(ident_hash);
    bool retry = false;
    // A one-pass scan does not know the duplicates yet (ReleaseHeldRows
    // asks again): every member is classified as if it had none.
    Change change = differ_.Classify({row.profile_id, id_hash, ident_hash, value_hash}, entry,
                                     /*resolved=*/holding, &retry);
    if (holding && (change == Change::kAdd || change == Change::kUpdate ||
                    change == Change::kMove)) {
      HeldRow r;
      r.begin = static_cast<std::uint32_t>(held.bytes.size());
      AppendOneRowChunk(reader.last_row(), held.bytes);
      r.size = static_cast<std::uint32_t>(held.bytes.size() - r.begin);
      r.id_hash = id_hash;
      r.ident_hash = ident_hash;
      r.value_hash = value_hash;
      r.row_hash = row_hash;
      r.change = change;
      r.retry = retry;
      if (entry != nullptr) {
        r.delivered = true;
        r.entry = *entry;
      }
      held.rows.push_back(r);
      continue;
    }
    if (change == Change::kDuplicate || change == Change::kMove) {
      // Held back, with a copy of its entry: decided after the scan.
      HeldMember h;
      h.profile_id.assign(row.profile_id.data(), row.profile_id.size());
      h.identifier = identifier;
      h.encoded = encoded;
      for (size_t f = 0; f < m_.columns.size(); ++f) {
        h.values.emplace_back();
        ToSdkValue(row.values[m_.columns[f]], m_.fields[f].type, h.values.back());
      }
      h.id_hash = id_hash;
      h.ident_hash = ident_hash;
      h.value_hash = value_hash;
      h.row_hash = row_hash;
      h.change = change;
      if (entry != nullptr) h.entry = *entry;
      absl::MutexLock lock(&out_mu_);
      held_.push_back(std::move(h));
      continue;
    }
    if (entry != nullptr) Consider(row.profile_id, *entry, candidates);
    if (change == Change::kDone) continue;  // Done before the interruption.
    if (change == Change::kUnchanged) {
      ++unchanged;
      continue;
    }
    bool is_update = change == Change::kUpdate;
    if (!rejected_this_run_.empty() && rejected_this_run_.contains(row.profile_id)) continue;
    ++(is_update ? updates : adds);
    if (!sending_) continue;
    absl::MutexLock lock(&out_mu_);
    if (stopped_) return absl::AbortedError("stopped");
    if (!Enqueue(row, encoded, id_hash, ident_hash, value_hash, row_hash, is_update, retry,
                 entry)) {
      return absl::AbortedError("stopped");
    }
  }
  if (!reader.status().ok()) return DamagedChunk(segment_, reader);
  for (; d < delivered.size(); ++d) Consider(delivered.id(d), delivered.entry(d), candidates);
  if (holding) {
    EXPORTD_RETURN_IF_ERROR(differ_.AddIdentifiers(present));
    absl::MutexLock lock(&out_mu_);
    rows_seen_ += rows;
    deferred_unchanged_ += unchanged;
    if (!held.rows.empty() && !gave_up_.load()) {
      held.bytes.shrink_to_fit();  // The block is kept to the end of the scan.
      held.rows.shrink_to_fit();
      held_rows_ += static_cast<std::int64_t>(held.rows.size());
      held_bytes_ += held.memory();
      held_blocks_.push_back(std::move(held));
    }
    // Too many changes to hold (a first run, a big change): the rest of the
    // scan collects identifiers only, and pass 1 runs again after it.
    if (held_bytes_ > o_.held_memory_bytes || (rows_seen_ >= 16384 && held_rows_ * 4 > rows_seen_)) {
      gave_up_ = true;
      held_blocks_ = {};
      held_rows_ = 0;
      held_bytes_ = 0;
    }
  } else {
    tracker_.Update(o_.segment_index, [&](v1::SegmentProgress& p) {
      p.set_to_add(p.to_add() + adds);
      p.set_to_update(p.to_update() + updates);
      p.set_unchanged(p.unchanged() + unchanged);
    });
  }
  if (!candidates.empty()) {
    absl::MutexLock lock(&out_mu_);
    candidates_.insert(candidates_.end(), std::make_move_iterator(candidates.begin()),
                       std::make_move_iterator(candidates.end()));
  }
  return absl::OkStatus();
}

// Whether `e`'s delivered row already records what a rejection of this
// attempt would record: a retried member that is rejected again only gets
// the run's mark (BatchCommit::rejected_again), not its row rewritten.
bool RecordsRejectionOf(const DeliveredEntry* e, bool is_update, std::uint64_t value_hash,
                        std::uint64_t ident_hash) {
  if (e == nullptr || e->this_run) return false;
  switch (e->state) {
    case store::DeliveredState::kRejected:
      return !is_update && e->value_hash == value_hash && e->ident_hash == ident_hash;
    case store::DeliveredState::kUpdateRejected:
      return is_update;  // The row keeps its delivered values; only its run would change.
    default:
      return false;
  }
}

bool SegmentSync::Enqueue(const store::RowView& row, std::string encoded, std::uint64_t id_hash,
                          std::uint64_t ident_hash, std::uint64_t value_hash,
                          std::uint64_t row_hash, bool is_update, bool retry,
                          const DeliveredEntry* entry) {
  // Members the destination rejected last time are retried in batches of
  // their own, so that they do not dilute the batches of real changes.
  Batcher& out = retry ? *retries_ : *batcher_;
  PendingBatch& batch = out.current();
  batch.records.profile_ids.emplace_back(row.profile_id.data(), row.profile_id.size());
  for (size_t f = 0; f < m_.columns.size(); ++f) {
    batch.records.values.emplace_back();
    ToSdkValue(row.values[m_.columns[f]], m_.fields[f].type, batch.records.values.back());
  }
  const auto size = static_cast<std::int64_t>(encoded.size() + row.profile_id.size() + 16);
  batch.encoded.push_back(std::move(encoded));
  batch.id_hashes.push_back(id_hash);
  batch.hashes.push_back(value_hash);
  batch.row_hashes.push_back(row_hash);
  batch.is_update.push_back(is_update);
  batch.rejection_recorded.push_back(RecordsRejectionOf(entry, is_update, value_hash, ident_hash));
  if (by_identifier_) batch.ident_hashes.push_back(ident_hash);
  if (!out.RecordAdded(size)) {
    stopped_ = true;
    return false;
  }
  return true;
}

absl::Status SegmentSync::AddChunkIdentifiers(absl::string_view bytes) {
  store::ChunkReader reader(bytes);
  store::RowView row;
  std::vector<std::uint64_t> present;
  const int column = m_.columns[m_.identifier];
  // Only the identifier's column: pass 1 reads (and checks) the rest, the
  // profile id included, and canonicalizes again rather than keep 8 bytes a
  // member.
  while (reader.Next(row, column, store::ChunkReader::ProfileId::kUnchecked)) {
    EXPORTD_RETURN_IF_ERROR(CheckRowWidth(segment_, row));
    std::string id = Canonical(row.values[column]);
    if (!id.empty()) present.push_back(IdentHash(id));
  }
  if (!reader.status().ok()) return DamagedChunk(segment_, reader);
  return differ_.AddIdentifiers(present);
}

bool SegmentSync::OnePassStands() {
  if (gave_up_.load()) return false;
  // Every member sharing an identifier must be among the held changes: an
  // unchanged member in a group was not held (its row is not at hand).
  absl::flat_hash_map<std::uint64_t, std::int64_t> held_per_identifier;
  for (const HeldBlock& block : held_blocks_) {
    for (const HeldRow& r : block.rows) {
      if (differ_.IsDuplicate(r.ident_hash)) ++held_per_identifier[r.ident_hash];
    }
  }
  for (const auto& [hash, held] : held_per_identifier) {
    if (held < differ_.DuplicateCount(hash)) return false;
  }
  return true;
}

absl::Status SegmentSync::Materialize(absl::string_view chunk, HeldRow& r, HeldMember& h) {
  store::ChunkReader reader(chunk);
  store::RowView row;
  if (!reader.Next(row, mapped_)) return DamagedChunk(segment_, reader);
  h.profile_id.assign(row.profile_id.data(), row.profile_id.size());
  h.identifier = Canonical(row.values[m_.columns[m_.identifier]]);
  for (int column : m_.columns) EncodeValue(row.values[column], h.encoded);
  for (size_t f = 0; f < m_.columns.size(); ++f) {
    h.values.emplace_back();
    ToSdkValue(row.values[m_.columns[f]], m_.fields[f].type, h.values.back());
  }
  h.id_hash = r.id_hash;
  h.ident_hash = r.ident_hash;
  h.value_hash = r.value_hash;
  h.row_hash = r.row_hash;
  h.change = differ_.IsDuplicate(r.ident_hash) ? Change::kDuplicate : r.change;
  if (r.delivered) h.entry = r.entry;
  return absl::OkStatus();
}

absl::Status SegmentSync::ReleaseHeldRows() {
  // Duplicates and moves go to ResolveHeld like a two-pass scan's; the other
  // changes are sent now, as a two-pass scan sends them during pass 1.
  std::vector<HeldBlock> blocks = std::move(held_blocks_);
  held_blocks_ = {};
  held_rows_ = 0;
  held_bytes_ = 0;
  std::int64_t adds = 0, updates = 0;
  std::vector<Candidate> candidates;
  store::RowView row;
  std::string encoded;
  for (HeldBlock& block : blocks) {
    for (HeldRow& r : block.rows) {
      if (ctx_.cancelled()) return FailWith(absl::CancelledError("the run was canceled"));
      if (r.change == Change::kMove || differ_.IsDuplicate(r.ident_hash)) {
        HeldMember h;
        EXPORTD_RETURN_IF_ERROR(FailWith(Materialize(block.chunk(r), r, h)));
        held_.push_back(std::move(h));
        continue;
      }
      store::ChunkReader reader(block.chunk(r));
      if (!reader.Next(row, mapped_)) return FailWith(DamagedChunk(segment_, reader));
      if (r.delivered) Consider(row.profile_id, r.entry, candidates);
      const bool is_update = r.change == Change::kUpdate;
      if (!rejected_this_run_.empty() && rejected_this_run_.contains(row.profile_id)) continue;
      ++(is_update ? updates : adds);
      if (!sending_) continue;
      encoded.clear();
      for (int column : m_.columns) EncodeValue(row.values[column], encoded);
      absl::MutexLock lock(&out_mu_);
      if (!Enqueue(row, std::move(encoded), r.id_hash, r.ident_hash, r.value_hash, r.row_hash,
                   is_update, r.retry, r.delivered ? &r.entry : nullptr)) {
        break;
      }
    }
    if (stopped_) break;
    block = HeldBlock();  // Sent: its bytes are not needed any more.
  }
  candidates_.insert(candidates_.end(), std::make_move_iterator(candidates.begin()),
                     std::make_move_iterator(candidates.end()));
  const std::int64_t unchanged = deferred_unchanged_;
  tracker_.Update(o_.segment_index, [&](v1::SegmentProgress& p) {
    p.set_to_add(p.to_add() + adds);
    p.set_to_update(p.to_update() + updates);
    p.set_unchanged(p.unchanged() + unchanged);
  });
  if (!stopped_) stopped_ = !batcher_->Flush() || !retries_->Flush();
  if (stopped_) {
    absl::Status sent = dispatcher_->Close();
    return sent.ok() ? absl::AbortedError("the sync stopped") : sent;
  }
  return absl::OkStatus();
}

absl::Status SegmentSync::ResolveHeld() {
  // Duplicates are grouped by their exact identifier and the greatest profile
  // id wins; the others are reported, not sent.
  std::int64_t duplicates = 0;
  store::BatchCommit informational;
  informational.export_id = e_.id();
  informational.segment_id = segment_.id();
  std::vector<HeldMember>& held = held_;
  std::sort(held.begin(), held.end(), [](const HeldMember& a, const HeldMember& b) {
    return std::tie(a.identifier, a.profile_id) < std::tie(b.identifier, b.profile_id);
  });
  std::int64_t adds = 0, updates = 0, unchanged = 0;
  for (size_t i = 0; i < held.size();) {
    size_t j = i + 1;
    if (held[i].change == Change::kDuplicate) {
      while (j < held.size() && held[j].change == Change::kDuplicate &&
             held[j].identifier == held[i].identifier) {
        ++j;
      }
    }
    HeldMember* winner = &held[i];
    if (held[i].change == Change::kDuplicate) {
      std::vector<Member> group;
      std::vector<DeliveredEntry*> entries;
      for (size_t k = i; k < j; ++k) {
        group.push_back(held[k].member());
        entries.push_back(held[k].delivered());
      }
      winner = &held[i + differ_.ResolveDuplicates(group, entries)];
      winner->change = differ_.Classify(winner->member(), winner->delivered(), /*resolved=*/true);
      for (size_t k = i; k < j; ++k) {
        if (&held[k] == winner || rejected_this_run_.contains(held[k].profile_id)) continue;
        ++duplicates;
        v1::Rejection r;
        r.set_run_id(o_.run_id);
        r.set_segment_id(segment_.id());
        r.set_profile_id(held[k].profile_id);
        r.set_field(IdentifierField());
        r.set_reason_code("duplicate_identifier");
        r.set_message(absl::StrCat(
            "informational, not an error: profile '", held[k].profile_id, "' has the same ",
            IdentifierField(), " '", held[k].identifier, "' as profile '", winner->profile_id,
            "', which won (the greatest profile id is sent)"));
        informational.rejections.push_back(std::move(r));
      }
    }
    i = j;
    switch (winner->change) {
      case Change::kDone: continue;
      case Change::kUnchanged: ++unchanged; continue;
      case Change::kUpdate: ++updates; break;
      default: ++adds; break;  // kAdd, kMove: a new identifier.
    }
    if (rejected_this_run_.contains(winner->profile_id)) {
      --(winner->change == Change::kUpdate ? updates : adds);
      continue;
    }
    late_.push_back(winner);
  }
  tracker_.Update(o_.segment_index, [&](v1::SegmentProgress& p) {
    p.set_to_add(p.to_add() + adds);
    p.set_to_update(p.to_update() + updates);
    p.set_unchanged(p.unchanged() + unchanged);
  });
  // The held members' delivered rows: losers' and moved members' may go.
  for (HeldMember& h : held) {
    if (h.entry) Consider(h.profile_id, *h.entry, candidates_);
  }
  auto count_duplicates = [&](v1::SegmentProgress& p) {
    p.set_duplicates(p.duplicates() + duplicates);
  };
  if (!o_.dry_run && !informational.rejections.empty()) {
    return FailWith(tracker_.Commit(o_.segment_index, count_duplicates, informational));
  }
  if (duplicates > 0) tracker_.Update(o_.segment_index, count_duplicates);
  return absl::OkStatus();
}

absl::Status SegmentSync::SendRemovals() {
  // Delivered members whose identifier no current member maps to are removed
  // (mirror mode); rows whose identifier another member now holds are
  // forgotten. Their rows are read only when there are any.
  std::vector<Candidate>& candidates = candidates_;
  if (candidates.empty()) return absl::OkStatus();
  // In key order, the store reads them from neighbouring pages.
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.profile_id < b.profile_id; });
  std::vector<absl::string_view> ids;
  ids.reserve(candidates.size());
  for (const auto& c : candidates) ids.push_back(c.profile_id);
  if (by_identifier_) {
    // Whether a current member maps to each candidate's identifier: one pass
    // over the snapshot's identifiers when they are on disk.
    std::vector<std::uint64_t> hashes;
    hashes.reserve(candidates.size());
    for (const auto& c : candidates) {
      if (c.ident_hash != 0) hashes.push_back(c.ident_hash);
    }
    EXPORTD_RETURN_IF_ERROR(FailWith(differ_.PrefetchIdentifiers(std::move(hashes))));
  }
  store::BatchCommit forget;
  forget.export_id = e_.id();
  forget.segment_id = segment_.id();
  std::int64_t to_remove = 0;
  size_t next = 0;
  batcher_->Reset(/*removal=*/true);
  std::vector<sdk::Value> values;
  absl::Status removals = store_.LookupDelivered(
      e_.id(), segment_.id(), ids, [&](const store::DeliveredRow& row) -> absl::Status {
        if (ctx_.cancelled()) return absl::CancelledError("the run was canceled");
        while (next < candidates.size() && candidates[next].profile_id != row.profile_id) ++next;
        if (next == candidates.size()) return absl::OkStatus();
        const Candidate& c = candidates[next];
        if (row.state == store::DeliveredState::kRejected ||
            row.state == store::DeliveredState::kForgotten) {
          // Not at the destination: nothing to remove, the row goes.
          forget.removed.push_back(row.profile_id);
          return absl::OkStatus();
        }
        values.clear();
        EXPORTD_RETURN_IF_ERROR(DecodeValues(row.values, m_.fields.size(), m_.fields, values));
        std::uint64_t old_ident = o_.rekeyed && row.run_id != o_.run_id ? 0 : row.ident_hash;
        if (by_identifier_ && old_ident == 0) {
          // Delivered before identifiers were kept, or keyed otherwise
          // (rekeyed): derived from the values sent.
          std::string id = Canonical(IdentifierText(values[m_.identifier]));
          if (!id.empty()) old_ident = IdentHash(id);
        }
        switch (differ_.Decide(c, old_ident)) {
          case Fate::kKeep: return absl::OkStatus();
          case Fate::kForget:
            forget.removed.push_back(row.profile_id);
            return absl::OkStatus();
          case Fate::kRemove: break;
        }
        ++to_remove;
        if (c.why == Candidate::Why::kMoved) old_removed_.insert(row.profile_id);
        if (!sending_) return absl::OkStatus();
        PendingBatch& batch = batcher_->current();
        batch.records.profile_ids.push_back(row.profile_id);
        for (auto& v : values) batch.records.values.push_back(std::move(v));
        batch.encoded.emplace_back();
        batch.id_hashes.push_back(row.id_hash);
        batch.hashes.push_back(0);
        batch.row_hashes.push_back(0);
        batch.is_update.push_back(false);
        batch.rejection_recorded.push_back(false);
        if (!batcher_->RecordAdded(static_cast<std::int64_t>(row.values.size() + 16))) {
          stopped_ = true;
          return absl::CancelledError("stopped");
        }
        return absl::OkStatus();
      });
  if (!removals.ok() && !stopped_) return FailWith(removals);
  EXPORTD_RETURN_IF_ERROR(FailWith(differ_.status()));
  if (to_remove > 0) {
    tracker_.Update(o_.segment_index,
                    [&](v1::SegmentProgress& p) { p.set_to_remove(p.to_remove() + to_remove); });
  }
  if (!stopped_) stopped_ = !batcher_->Flush();
  if (!stopped_ && !o_.dry_run && !forget.removed.empty()) {
    return FailWith(tracker_.Commit(o_.segment_index, [](v1::SegmentProgress&) {}, forget));
  }
  return absl::OkStatus();
}

absl::Status SegmentSync::SendHeld() {
  if (late_.empty() || !sending_ || stopped_) return absl::OkStatus();
  // Every removal is committed before a held-back member is sent.
  EXPORTD_RETURN_IF_ERROR(dispatcher_->Close());
  StartDispatcher();
  for (HeldMember* h : late_) {
    PendingBatch& batch = batcher_->current();
    batch.records.profile_ids.push_back(h->profile_id);
    for (auto& v : h->values) batch.records.values.push_back(std::move(v));
    batch.encoded.push_back(std::move(h->encoded));
    batch.id_hashes.push_back(h->id_hash);
    batch.hashes.push_back(h->value_hash);
    batch.row_hashes.push_back(h->row_hash);
    batch.is_update.push_back(h->change == Change::kUpdate);
    batch.rejection_recorded.push_back(false);  // Rewritten in full, as it moved or won.
    batch.ident_hashes.push_back(h->ident_hash);
    batch.notes.resize(batch.records.profile_ids.size());
    if (old_removed_.contains(h->profile_id)) {
      batch.notes.back() = absl::StrCat("its previous ", IdentifierField(),
                                        " was removed from the audience (mirror mode)");
    }
    if (!batcher_->RecordAdded(static_cast<std::int64_t>(batch.encoded.back().size() +
                                                         h->profile_id.size() + 16))) {
      stopped_ = true;
      break;
    }
  }
  if (!stopped_) batcher_->Flush();
  return absl::OkStatus();
}

}  // namespace

ThrottledCallOptions ThrottlingFor(const SegmentSyncOptions& o, RunTracker& tracker) {
  ThrottledCallOptions t;
  t.budget = o.budget;
  if (o.destination != nullptr) t.destination_name = o.destination->manifest().display_name;
  t.show_wait = [&tracker](const std::string& message) { tracker.ShowWait(message); };
  t.max_throttle_resends = o.max_throttle_resends;
  if (o.export_ != nullptr) t.connection_name = o.export_->connection_id();
  return t;
}

absl::Status SyncSegment(const SegmentSyncOptions& o, store::Store& store, RunTracker& tracker,
                         sdk::RunContext& ctx) {
  auto mapping = ResolveMapping(*o.export_, *o.segment,
                                o.destination != nullptr ? o.identifier_field : std::string());
  if (!mapping.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("export '", o.export_->name(), "': ",
                                                      mapping.status().message(),
                                                      "; update the export's mapping"));
  }
  SegmentSync sync(o, store, tracker, ctx, std::move(*mapping));
  return sync.Run();
}

}  // namespace exportd::sync
