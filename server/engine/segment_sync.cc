#include "server/engine/segment_sync.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <thread>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/common/status_macros.h"
#include "server/engine/record_codec.h"
#include "server/store/member_chunk.h"
#include "server/sync/differ.h"

namespace exportd::engine {
namespace {

// Members are keyed by this hash of their profile id in the delivered state.
std::uint64_t IdHash(absl::string_view id) { return StableHash64(id); }

// Threads that parse and diff snapshot chunks, and chunks read ahead.
constexpr int kScanThreads = 2;
constexpr size_t kScanQueueChunks = 8;

// A serialized snapshot chunk and its position in the snapshot.
struct QueuedChunk {
  size_t seq = 0;
  std::string bytes;
};

// A bounded queue of serialized chunks from the reader to the scan threads.
class ChunkQueue {
 public:
  explicit ChunkQueue(size_t capacity) : capacity_(capacity) {}
  // Blocks while full. False once aborted.
  bool Push(QueuedChunk bytes) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ChunkQueue* q) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return q->items_.size() < q->capacity_ || q->aborted_;
        },
        this));
    if (aborted_) return false;
    items_.push_back(std::move(bytes));
    return true;
  }
  // Blocks while empty. False when closed and drained, or aborted.
  bool Pop(QueuedChunk& out) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ChunkQueue* q) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return !q->items_.empty() || q->closed_ || q->aborted_;
        },
        this));
    if (aborted_ || items_.empty()) return false;
    out = std::move(items_.front());
    items_.pop_front();
    return true;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  void Abort() {
    absl::MutexLock lock(&mu_);
    aborted_ = true;
  }

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<QueuedChunk> items_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
};

// A batch on its way to the destination, with what is needed to commit it.
struct PendingBatch {
  bool removal = false;
  sdk::RecordBatch records;
  std::vector<std::string> encoded;
  std::vector<std::uint64_t> id_hashes;
  std::vector<std::uint64_t> hashes;
  std::vector<bool> is_update;
  // The canonical identifiers sent and their hashes (upserts to destinations
  // with an identifier field; empty otherwise).
  std::vector<std::string> identifiers;
  std::vector<std::uint64_t> ident_hashes;
  // Per record, what a rejection's message adds (empty: nothing, for all).
  std::vector<std::string> notes;
  std::int64_t bytes = 0;
};

// The run's context for one Upsert/Remove call: everything goes to the run's
// context, and a throttle report is kept for the Dispatcher that made the call.
class CallContext final : public sdk::RunContext {
 public:
  explicit CallContext(sdk::RunContext& run) : run_(run) {}
  bool cancelled() const override { return run_.cancelled(); }
  bool SleepFor(absl::Duration d) override { return run_.SleepFor(d); }
  absl::Time Now() const override { return run_.Now(); }
  void Log(sdk::LogLevel level, std::string_view message) override { run_.Log(level, message); }
  void ReportThrottle(absl::Duration retry_after) override {
    absl::MutexLock lock(&mu_);
    retry_after_ = std::max(retry_after_, retry_after);
  }
  // The longest retry-after the plugin reported (zero if none).
  absl::Duration retry_after() const {
    absl::MutexLock lock(&mu_);
    return retry_after_;
  }

 private:
  sdk::RunContext& run_;
  mutable absl::Mutex mu_;
  absl::Duration retry_after_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

// Sends batches with up to N in flight, each within the connection's rate
// budget, and commits each one's outcomes.
class Dispatcher {
 public:
  Dispatcher(const SegmentSyncOptions& o, RunTracker& tracker, sdk::RunContext& ctx)
      : o_(o), tracker_(tracker), ctx_(ctx) {
    int workers = std::max(1, o.max_parallel_batches);
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~Dispatcher() { Close().IgnoreError(); }

  // Blocks while N batches are waiting. False once a failure stopped the sync.
  bool Submit(PendingBatch batch) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Dispatcher* d) { return d->queue_.size() < d->threads_.size() || !d->error_.ok(); },
        this));
    if (!error_.ok()) return false;
    queue_.push_back(std::move(batch));
    return true;
  }

  // Waits for every batch, stops the workers, returns the first failure.
  absl::Status Close() {
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
    absl::MutexLock lock(&mu_);
    return error_;
  }

 private:
  void Work() {
    while (true) {
      PendingBatch batch;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Dispatcher* d) { return !d->queue_.empty() || d->closed_; }, this));
        if (queue_.empty()) return;
        batch = std::move(queue_.front());
        queue_.pop_front();
      }
      absl::Status status = Send(batch);
      if (!status.ok()) {
        absl::MutexLock lock(&mu_);
        if (error_.ok()) error_ = status;
        queue_.clear();
      }
    }
  }

  // One call per batch, after the budget allows it. A throttled batch
  // (RESOURCE_EXHAUSTED) slows the connection down and is sent again, a
  // bounded number of times.
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Deliver(const PendingBatch& batch) {
    const auto records = static_cast<std::int64_t>(batch.records.size());
    absl::Duration waited;
    for (int resend = 0;; ++resend) {
      if (ctx_.cancelled()) return absl::CancelledError("the run was canceled");
      absl::Time start = ctx_.Now();
      if (o_.budget != nullptr && !o_.budget->Acquire(records, ctx_)) {
        return absl::CancelledError("the run was canceled");
      }
      waited += ctx_.Now() - start;
      CallContext call(ctx_);
      auto outcomes = batch.removal ? o_.connection->Remove(o_.audience, batch.records, call)
                                    : o_.connection->Upsert(o_.audience, batch.records, call);
      if (!absl::IsResourceExhausted(outcomes.status())) {
        if (outcomes.ok() && o_.budget != nullptr) o_.budget->OnSuccess();
        return outcomes;
      }
      const absl::Duration retry_after = call.retry_after();
      if (o_.budget != nullptr) o_.budget->OnThrottle(retry_after);
      if (resend >= o_.max_throttle_resends) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the destination throttled a batch of ", records, " records ", resend + 1,
            " times in a row (", absl::FormatDuration(absl::Trunc(waited, absl::Seconds(1))),
            " waited; last answer: ", outcomes.status().message(),
            "); the run is retried later. If this keeps happening, lower the speed settings of "
            "connection '", o_.export_->connection_id(), "' (e.g. requests_per_second)"));
      }
      ctx_.Log(sdk::LogLevel::kInfo,
               absl::StrCat("the destination throttled a batch of ", records, " records (",
                            outcomes.status().message(), "); the connection slows down",
                            retry_after > absl::ZeroDuration()
                                ? absl::StrCat(" and pauses for ", absl::FormatDuration(retry_after))
                                : std::string(),
                            "; sending it again (", resend + 1, " of ", o_.max_throttle_resends,
                            " resends)"));
      // Without a budget to wait on, wait here.
      if (o_.budget == nullptr &&
          !ctx_.SleepFor(std::max(retry_after, absl::Milliseconds(100)))) {
        return absl::CancelledError("the run was canceled");
      }
    }
  }

  absl::Status Send(PendingBatch& batch) {
    if (ctx_.cancelled()) return absl::CancelledError("the run was canceled");
    auto outcomes = Deliver(batch);
    if (!outcomes.ok()) return outcomes.status();
    if (outcomes->size() != batch.records.size()) {
      return absl::InternalError(absl::StrCat(
          "destination returned ", outcomes->size(), " outcomes for ", batch.records.size(),
          " records; a plugin must return exactly one per record"));
    }
    store::BatchCommit commit;
    commit.export_id = o_.export_->id();
    commit.segment_id = o_.segment->id();
    std::int64_t added = 0, updated = 0, removed = 0, rejected = 0, retryable = 0;
    for (size_t i = 0; i < outcomes->size(); ++i) {
      const sdk::RecordOutcome& outcome = (*outcomes)[i];
      std::string& id = batch.records.profile_ids[i];
      switch (outcome.kind) {
        case sdk::OutcomeKind::kDelivered:
          if (batch.removal) {
            commit.removed.push_back(std::move(id));
            ++removed;
          } else {
            store::DeliveredRow row;
            row.id_hash = batch.id_hashes[i];
            row.profile_id = std::move(id);
            row.value_hash = batch.hashes[i];
            row.run_id = o_.run_id;
            row.values = std::move(batch.encoded[i]);
            if (!batch.ident_hashes.empty()) {
              row.identifier = std::move(batch.identifiers[i]);
              row.ident_hash = batch.ident_hashes[i];
            }
            commit.delivered.push_back(std::move(row));
            ++(batch.is_update[i] ? updated : added);
          }
          break;
        case sdk::OutcomeKind::kRejected: {
          v1::Rejection r;
          r.set_run_id(o_.run_id);
          r.set_segment_id(o_.segment->id());
          r.set_profile_id(id);
          r.set_field(outcome.field);
          r.set_reason_code(outcome.reason_code);
          r.set_message(outcome.message);
          if (!batch.notes.empty() && !batch.notes[i].empty()) {
            r.set_message(absl::StrCat(outcome.message, "; ", batch.notes[i]));
          }
          r.set_removal(batch.removal);
          commit.rejections.push_back(std::move(r));
          ++rejected;
          break;
        }
        case sdk::OutcomeKind::kRetryable:
          ++retryable;
          break;
      }
    }
    return tracker_.Commit(
        o_.segment_index,
        [&](v1::SegmentProgress& p) {
          p.set_added(p.added() + added);
          p.set_updated(p.updated() + updated);
          p.set_removed(p.removed() + removed);
          p.set_rejected(p.rejected() + rejected);
          p.set_retryable(p.retryable() + retryable);
        },
        commit);
  }

  const SegmentSyncOptions& o_;
  RunTracker& tracker_;
  sdk::RunContext& ctx_;
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  std::deque<PendingBatch> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

// Accumulates records into batches within the record and byte limits.
class Batcher {
 public:
  Batcher(const SegmentSyncOptions& o, std::vector<sdk::BatchField> fields, Dispatcher* out)
      : o_(o), fields_(std::move(fields)), out_(out) {
    Reset(false);
  }

  PendingBatch& current() { return batch_; }

  // Call after adding a record; sends the batch when full.
  bool RecordAdded(std::int64_t bytes) {
    batch_.bytes += bytes;
    if (static_cast<int>(batch_.records.size()) >= o_.max_records_per_batch ||
        batch_.bytes >= o_.max_bytes_per_batch) {
      return Flush();
    }
    return true;
  }

  bool Flush() {
    if (batch_.records.size() == 0) return true;
    bool removal = batch_.removal;
    bool ok = out_->Submit(std::move(batch_));
    Reset(removal);
    return ok;
  }

  void Reset(bool removal) {
    batch_ = PendingBatch();
    batch_.removal = removal;
    batch_.records.fields = fields_;
    size_t n = static_cast<size_t>(std::max(1, o_.max_records_per_batch));
    batch_.records.profile_ids.reserve(n);
    batch_.records.values.reserve(n * fields_.size());
  }

 private:
  const SegmentSyncOptions& o_;
  const std::vector<sdk::BatchField> fields_;
  Dispatcher* out_;
  PendingBatch batch_;
};

}  // namespace

std::uint64_t MappingFingerprint(const v1::Export& e, const v1::Segment& segment) {
  std::string text;
  for (const auto& m : e.mappings()) {
    absl::StrAppend(&text, m.destination_field(), "\x1f", m.profile_field(), "\x1e");
    for (const auto& f : segment.schema()) {
      if (f.name() == m.profile_field()) absl::StrAppend(&text, f.type(), "\x1d");
    }
  }
  return HashValues(text);
}

namespace {

// The stable hash of a canonical identifier; never 0, which means "none".
std::uint64_t IdentHash(absl::string_view canonical) {
  std::uint64_t h = StableHash64(canonical);
  return h == 0 ? 1 : h;
}

// The text a destination canonicalizes: strings as they are, numbers in
// decimal, nothing for other kinds.
std::string IdentifierText(const store::ValueView& v) {
  switch (v.kind) {
    case v1::Value::kStringValue: return std::string(v.string_value);
    case v1::Value::kIntValue: return absl::StrCat(v.int_value);
    default: return std::string();
  }
}
std::string IdentifierText(const sdk::Value& v) {
  if (v.is_null) return std::string();
  switch (v.type) {
    case sdk::FieldType::kString: return v.s;
    case sdk::FieldType::kInt: return absl::StrCat(v.i);
    default: return std::string();
  }
}

// Reads the snapshot's chunks on this thread and hands each to one of
// kScanThreads threads, which call `scan(seq, bytes)` (seq: the chunk's
// position, from 0). The first error of `scan` stops the reading and is
// returned; so is a reading error.
absl::Status ScanSnapshot(
    store::Store& store, const v1::Segment& segment, sdk::RunContext& ctx,
    const std::function<absl::Status(size_t seq, absl::string_view bytes)>& scan) {
  ChunkQueue queue(kScanQueueChunks);
  absl::Mutex error_mu;
  absl::Status scan_error;
  auto worker = [&] {
    QueuedChunk chunk;
    while (queue.Pop(chunk)) {
      absl::Status status = scan(chunk.seq, chunk.bytes);
      if (!status.ok()) {
        absl::MutexLock lock(&error_mu);
        if (scan_error.ok()) scan_error = std::move(status);
        queue.Abort();
        return;
      }
    }
  };
  std::vector<std::thread> scanners;
  for (int i = 0; i < kScanThreads; ++i) scanners.emplace_back(worker);
  size_t seq = 0;
  absl::Status read = store.ForEachChunkBytes(
      segment.id(), segment.snapshot_version(), [&](absl::string_view bytes) -> absl::Status {
        if (ctx.cancelled()) return absl::CancelledError("the run was canceled");
        if (!queue.Push({seq++, std::string(bytes.data(), bytes.size())})) {
          return absl::AbortedError("scan stopped");
        }
        return absl::OkStatus();
      });
  queue.Close();
  for (auto& t : scanners) t.join();
  absl::MutexLock lock(&error_mu);
  if (!scan_error.ok()) return scan_error;
  return read;
}

absl::Status DamagedChunk(const v1::Segment& segment, const store::ChunkReader& reader) {
  return absl::DataLossError(absl::StrCat("segment '", segment.name(),
                                          "' has a damaged snapshot chunk: ",
                                          reader.status().message()));
}

// A member held back by the scan: it shares its identifier with another
// member, or it moved to another identifier (sent after the old one's
// removal).
struct HeldMember {
  std::string profile_id;
  std::string identifier;
  std::string encoded;
  std::vector<sdk::Value> values;
  sync::Member member() const { return {profile_id, id_hash, ident_hash, value_hash}; }
  std::uint64_t id_hash = 0;
  std::uint64_t ident_hash = 0;
  std::uint64_t value_hash = 0;
  sync::Change change = sync::Change::kAdd;
  std::string note;  // Added to a rejection's message.
};

}  // namespace

absl::Status SyncSegment(const SegmentSyncOptions& o, store::Store& store, RunTracker& tracker,
                         sdk::RunContext& ctx) {
  const v1::Export& e = *o.export_;
  const v1::Segment& segment = *o.segment;

  // The mapped columns, resolved against this snapshot's schema, and the
  // mapping of the destination's identifier field (the first one), if any.
  std::vector<int> columns;
  std::vector<sdk::BatchField> fields;
  int ident = -1;
  for (const auto& m : e.mappings()) {
    int column = -1;
    for (int i = 0; i < segment.schema_size(); ++i) {
      if (segment.schema(i).name() == m.profile_field()) column = i;
    }
    if (column < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "export '", e.name(), "': mapping '", m.destination_field(), "' names profile field '",
          m.profile_field(), "', which segment '", segment.name(),
          "' no longer has; update the export's mapping"));
    }
    if (ident < 0 && o.destination != nullptr) {
      for (const auto& spec : o.destination->manifest().mapping_fields) {
        if (spec.identifier && spec.name == m.destination_field()) {
          ident = static_cast<int>(columns.size());
        }
      }
    }
    columns.push_back(column);
    fields.push_back({m.destination_field(), ToSdkType(segment.schema(column).type())});
  }
  const bool by_identifier = ident >= 0;
  auto canonical = [&](const std::string& text) {
    return o.destination->CanonicalIdentifier(fields[ident].name, text);
  };
  // The canonical identifier of a snapshot value; strings without a copy.
  auto canonical_value = [&](const store::ValueView& v) {
    if (v.kind == v1::Value::kStringValue) {
      return o.destination->CanonicalIdentifier(
          fields[ident].name, std::string_view(v.string_value.data(), v.string_value.size()));
    }
    return canonical(IdentifierText(v));
  };
  auto check_width = [&](const store::RowView& row) -> absl::Status {
    if (row.values.size() < static_cast<size_t>(segment.schema_size())) {
      return absl::DataLossError(absl::StrCat(
          "segment '", segment.name(), "': member '", row.profile_id, "' has ", row.values.size(),
          " values in the snapshot; its schema has ", segment.schema_size()));
    }
    return absl::OkStatus();
  };

  absl::Time started = absl::Now();
  // What was delivered before, and what this run already did (resume).
  sync::Differ differ({by_identifier, o.full, o.mirror});
  differ.Reserve(o.delivered_hint);
  auto read_delivered = [&] {
    return store.ForEachDelivered(e.id(), segment.id(), [&](const store::DeliveredView& row) {
      return differ.AddDelivered(row, row.run_id == o.run_id);
    });
  };
  absl::flat_hash_set<std::string> rejected_this_run;
  if (o.resuming) {
    std::string cursor;
    do {
      EXPORTD_ASSIGN_OR_RETURN(auto page,
                               store.ListRejections(o.run_id, {1000, cursor}, &cursor));
      for (const auto& r : page) {
        if (r.segment_id() == segment.id()) rejected_this_run.insert(r.profile_id());
      }
    } while (!cursor.empty());
  }

  // Pass 0 (destinations with an identifier): the snapshot's identifiers, so
  // that members sharing one are known before anything is sent. Each row's
  // hash is kept by chunk and row (0: no identifier), so that pass 1 need not
  // canonicalize again.
  absl::Mutex hashes_mu;
  std::vector<std::vector<std::uint64_t>> chunk_hashes;
  // It runs beside the reading of the delivered state (they share nothing).
  absl::Status delivered_read, identifiers_read;
  if (!by_identifier) {
    delivered_read = read_delivered();
  } else {
    std::thread reader([&] { delivered_read = read_delivered(); });
    identifiers_read =
        ScanSnapshot(store, segment, ctx, [&](size_t seq, absl::string_view bytes) {
          store::ChunkReader reader(bytes);
          store::RowView row;
          std::vector<std::uint64_t> hashes, present;
          while (reader.Next(row)) {
            EXPORTD_RETURN_IF_ERROR(check_width(row));
            std::string id = canonical_value(row.values[columns[ident]]);
            hashes.push_back(id.empty() ? 0 : IdentHash(id));
            if (!id.empty()) present.push_back(hashes.back());
          }
          if (!reader.status().ok()) return DamagedChunk(segment, reader);
          differ.AddIdentifiers(present);
          absl::MutexLock lock(&hashes_mu);
          if (chunk_hashes.size() <= seq) chunk_hashes.resize(seq + 1);
          chunk_hashes[seq] = std::move(hashes);
          return absl::OkStatus();
        });
    reader.join();
  }
  EXPORTD_RETURN_IF_ERROR(delivered_read);
  EXPORTD_RETURN_IF_ERROR(identifiers_read);
  differ.SealIdentifiers();

  absl::Time loaded = absl::Now();
  auto dispatcher = std::make_unique<Dispatcher>(o, tracker, ctx);
  auto batcher = std::make_unique<Batcher>(o, fields, dispatcher.get());
  auto retries = std::make_unique<Batcher>(o, fields, dispatcher.get());
  bool sending = !o.dry_run && o.connection != nullptr;
  bool stopped = false;
  // Stops the batches in flight on a failure.
  auto fail_with = [&](absl::Status status) {
    if (!status.ok()) dispatcher->Close().IgnoreError();
    return status;
  };

  // Pass 1: the snapshot. Chunks are read here and parsed and diffed by a
  // few threads (parsing is the cost); joins and changes are sent, members
  // held back (shared or moved identifiers) are sent after the removals.
  absl::Mutex out_mu;  // The batchers, `held` and `stopped`.
  std::vector<HeldMember> held;
  absl::Status scanned_status = ScanSnapshot(store, segment, ctx, [&](size_t seq,
                                                                         absl::string_view bytes) {
    store::ChunkReader reader(bytes);
    store::RowView row;
    std::string encoded;
    std::int64_t adds = 0, updates = 0, unchanged = 0;
    const std::vector<std::uint64_t>* hashes = nullptr;
    if (by_identifier) {
      absl::MutexLock lock(&hashes_mu);
      if (seq >= chunk_hashes.size()) {
        return absl::AbortedError(absl::StrCat("segment '", segment.name(),
                                               "': the snapshot changed during the run"));
      }
      hashes = &chunk_hashes[seq];
    }
    for (size_t index = 0; reader.Next(row); ++index) {
      EXPORTD_RETURN_IF_ERROR(check_width(row));
      encoded.clear();
      for (int column : columns) EncodeValue(row.values[column], encoded);
      std::uint64_t value_hash = HashValues(encoded);
      std::uint64_t id_hash = IdHash(row.profile_id);
      std::uint64_t ident_hash = 0;
      if (hashes != nullptr) {
        if (index >= hashes->size()) {
          return absl::AbortedError(absl::StrCat("segment '", segment.name(),
                                                 "': the snapshot changed during the run"));
        }
        ident_hash = (*hashes)[index];
      }
      // The canonical identifier itself only for what is sent or held.
      auto identifier = [&] {
        return by_identifier ? canonical_value(row.values[columns[ident]]) : std::string();
      };
      // Profile ids are unique in a snapshot, so each thread writes only
      // the entries of its own rows; the index itself does not change.
      sync::Change change = differ.Classify({row.profile_id, id_hash, ident_hash, value_hash});
      if (change == sync::Change::kDone) continue;  // Done before the interruption.
      if (change == sync::Change::kUnchanged) {
        ++unchanged;
        continue;
      }
      if (change == sync::Change::kDuplicate || change == sync::Change::kMove) {
        HeldMember h;
        h.profile_id.assign(row.profile_id.data(), row.profile_id.size());
        h.identifier = identifier();
        h.encoded = encoded;
        for (size_t f = 0; f < columns.size(); ++f) {
          h.values.emplace_back();
          ToSdkValue(row.values[columns[f]], fields[f].type, h.values.back());
        }
        h.id_hash = id_hash;
        h.ident_hash = ident_hash;
        h.value_hash = value_hash;
        h.change = change;
        absl::MutexLock lock(&out_mu);
        held.push_back(std::move(h));
        continue;
      }
      bool is_update = change == sync::Change::kUpdate;
      if (!rejected_this_run.empty() && rejected_this_run.contains(row.profile_id)) continue;
      ++(is_update ? updates : adds);
      if (!sending) continue;
      absl::MutexLock lock(&out_mu);
      if (stopped) return absl::AbortedError("stopped");
      Batcher& out =
          o.previously_rejected != nullptr && o.previously_rejected->contains(row.profile_id)
              ? *retries
              : *batcher;
      PendingBatch& batch = out.current();
      batch.records.profile_ids.emplace_back(row.profile_id.data(), row.profile_id.size());
      for (size_t f = 0; f < columns.size(); ++f) {
        batch.records.values.emplace_back();
        ToSdkValue(row.values[columns[f]], fields[f].type, batch.records.values.back());
      }
      batch.encoded.push_back(encoded);
      batch.id_hashes.push_back(id_hash);
      batch.hashes.push_back(value_hash);
      batch.is_update.push_back(is_update);
      if (by_identifier) {
        batch.identifiers.push_back(identifier());
        batch.ident_hashes.push_back(ident_hash);
      }
      if (!out.RecordAdded(
              static_cast<std::int64_t>(encoded.size() + row.profile_id.size() + 16))) {
        stopped = true;
        return absl::AbortedError("stopped");
      }
    }
    if (!reader.status().ok()) return DamagedChunk(segment, reader);
    tracker.Update(o.segment_index, [&](v1::SegmentProgress& p) {
      p.set_to_add(p.to_add() + adds);
      p.set_to_update(p.to_update() + updates);
      p.set_unchanged(p.unchanged() + unchanged);
    });
    return absl::OkStatus();
  });
  chunk_hashes = {};  // Only pass 1 needs them.
  if (!scanned_status.ok() && !stopped) return fail_with(scanned_status);
  if (!stopped) stopped = !batcher->Flush() || !retries->Flush();
  if (stopped) {
    // Only a failed batch stops the scan: the dispatcher has its error.
    absl::Status sent = dispatcher->Close();
    return sent.ok() ? absl::AbortedError("the sync stopped") : sent;
  }
  absl::Time scanned = absl::Now();

  // Members held back: duplicates are grouped by their exact identifier and
  // the greatest profile id wins; the others are reported, not sent.
  std::vector<HeldMember*> late;  // Sent after the removals.
  std::int64_t duplicates = 0;
  store::BatchCommit informational;
  informational.export_id = e.id();
  informational.segment_id = segment.id();
  {
    std::sort(held.begin(), held.end(), [](const HeldMember& a, const HeldMember& b) {
      return std::tie(a.identifier, a.profile_id) < std::tie(b.identifier, b.profile_id);
    });
    std::int64_t adds = 0, updates = 0, unchanged = 0;
    for (size_t i = 0; i < held.size();) {
      size_t j = i + 1;
      if (held[i].change == sync::Change::kDuplicate) {
        while (j < held.size() && held[j].change == sync::Change::kDuplicate &&
               held[j].identifier == held[i].identifier) {
          ++j;
        }
      }
      HeldMember* winner = &held[i];
      if (held[i].change == sync::Change::kDuplicate) {
        std::vector<sync::Member> group;
        for (size_t k = i; k < j; ++k) group.push_back(held[k].member());
        winner = &held[i + differ.ResolveDuplicates(group)];
        winner->change = differ.Classify(winner->member(), /*resolved=*/true);
        for (size_t k = i; k < j; ++k) {
          if (&held[k] == winner || rejected_this_run.contains(held[k].profile_id)) continue;
          ++duplicates;
          v1::Rejection r;
          r.set_run_id(o.run_id);
          r.set_segment_id(segment.id());
          r.set_profile_id(held[k].profile_id);
          r.set_field(fields[ident].name);
          r.set_reason_code("duplicate_identifier");
          r.set_message(absl::StrCat(
              "informational, not an error: profile '", held[k].profile_id,
              "' has the same ", fields[ident].name, " '", held[k].identifier, "' as profile '",
              winner->profile_id, "', which won (the greatest profile id is sent)"));
          informational.rejections.push_back(std::move(r));
        }
      }
      i = j;
      switch (winner->change) {
        case sync::Change::kDone: continue;
        case sync::Change::kUnchanged: ++unchanged; continue;
        case sync::Change::kUpdate: ++updates; break;
        default: ++adds; break;  // kAdd, kMove: a new identifier.
      }
      if (rejected_this_run.contains(winner->profile_id)) {
        --(winner->change == sync::Change::kUpdate ? updates : adds);
        continue;
      }
      late.push_back(winner);
    }
    tracker.Update(o.segment_index, [&](v1::SegmentProgress& p) {
      p.set_to_add(p.to_add() + adds);
      p.set_to_update(p.to_update() + updates);
      p.set_unchanged(p.unchanged() + unchanged);
    });
  }
  auto count_duplicates = [&](v1::SegmentProgress& p) {
    p.set_duplicates(p.duplicates() + duplicates);
  };
  if (!o.dry_run && !informational.rejections.empty()) {
    EXPORTD_RETURN_IF_ERROR(
        fail_with(tracker.Commit(o.segment_index, count_duplicates, informational)));
  } else if (duplicates > 0) {
    tracker.Update(o.segment_index, count_duplicates);
  }

  // Pass 2: delivered members whose identifier no current member maps to are
  // removed (mirror mode); rows whose identifier another member now holds
  // are forgotten. Their rows are read only when there are any.
  absl::flat_hash_set<std::string> old_removed;  // Moved members whose old identifier goes.
  std::vector<sync::Candidate> candidates = differ.RemovalCandidates();
  if (!candidates.empty()) {
    std::vector<absl::string_view> ids;
    ids.reserve(candidates.size());
    for (const auto& c : candidates) ids.push_back(c.profile_id);
    store::BatchCommit forget;
    forget.export_id = e.id();
    forget.segment_id = segment.id();
    std::int64_t to_remove = 0;
    size_t next = 0;
    batcher->Reset(/*removal=*/true);
    std::vector<sdk::Value> values;
    absl::Status removals = store.LookupDelivered(
        e.id(), segment.id(), ids, [&](const store::DeliveredRow& row) -> absl::Status {
          if (ctx.cancelled()) return absl::CancelledError("the run was canceled");
          while (next < candidates.size() && candidates[next].profile_id != row.profile_id) ++next;
          if (next == candidates.size()) return absl::OkStatus();
          const sync::Candidate& c = candidates[next];
          values.clear();
          EXPORTD_RETURN_IF_ERROR(DecodeValues(row.values, fields.size(), fields, values));
          std::uint64_t old_ident = row.ident_hash;
          if (by_identifier && old_ident == 0) {
            // Delivered before identifiers were kept: derived from the values sent.
            std::string id = canonical(IdentifierText(values[ident]));
            if (!id.empty()) old_ident = IdentHash(id);
          }
          switch (differ.Decide(c, old_ident)) {
            case sync::Fate::kKeep: return absl::OkStatus();
            case sync::Fate::kForget:
              forget.removed.push_back(row.profile_id);
              return absl::OkStatus();
            case sync::Fate::kRemove: break;
          }
          ++to_remove;
          if (c.why == sync::Candidate::Why::kMoved) old_removed.insert(row.profile_id);
          if (!sending) return absl::OkStatus();
          PendingBatch& batch = batcher->current();
          batch.records.profile_ids.push_back(row.profile_id);
          for (auto& v : values) batch.records.values.push_back(std::move(v));
          batch.encoded.emplace_back();
          batch.id_hashes.push_back(row.id_hash);
          batch.hashes.push_back(0);
          batch.is_update.push_back(false);
          if (!batcher->RecordAdded(static_cast<std::int64_t>(row.values.size() + 16))) {
            stopped = true;
            return absl::CancelledError("stopped");
          }
          return absl::OkStatus();
        });
    if (!removals.ok() && !stopped) return fail_with(removals);
    if (to_remove > 0) {
      tracker.Update(o.segment_index,
                     [&](v1::SegmentProgress& p) { p.set_to_remove(p.to_remove() + to_remove); });
    }
    if (!stopped) stopped = !batcher->Flush();
    if (!stopped && !o.dry_run && !forget.removed.empty()) {
      EXPORTD_RETURN_IF_ERROR(fail_with(
          tracker.Commit(o.segment_index, [](v1::SegmentProgress&) {}, forget)));
    }
  }

  // Pass 3: the held-back members, after every removal is committed (a moved
  // member's new row must not be deleted by its old identifier's removal).
  if (!late.empty() && sending && !stopped) {
    EXPORTD_RETURN_IF_ERROR(dispatcher->Close());
    dispatcher = std::make_unique<Dispatcher>(o, tracker, ctx);
    batcher = std::make_unique<Batcher>(o, fields, dispatcher.get());
    for (HeldMember* h : late) {
      PendingBatch& batch = batcher->current();
      batch.records.profile_ids.push_back(h->profile_id);
      for (auto& v : h->values) batch.records.values.push_back(std::move(v));
      batch.encoded.push_back(std::move(h->encoded));
      batch.id_hashes.push_back(h->id_hash);
      batch.hashes.push_back(h->value_hash);
      batch.is_update.push_back(h->change == sync::Change::kUpdate);
      batch.identifiers.push_back(h->identifier);
      batch.ident_hashes.push_back(h->ident_hash);
      batch.notes.resize(batch.records.profile_ids.size());
      if (old_removed.contains(h->profile_id)) {
        batch.notes.back() = absl::StrCat("its previous ", fields[ident].name,
                                          " was removed from the audience (mirror mode)");
      }
      if (!batcher->RecordAdded(static_cast<std::int64_t>(batch.encoded.back().size() +
                                                          h->profile_id.size() + 16))) {
        stopped = true;
        break;
      }
    }
    if (!stopped) batcher->Flush();
  }
  absl::Status sent = dispatcher->Close();
  ctx.Log(sdk::LogLevel::kInfo,
          absl::StrCat("segment '", segment.name(), "': delivered state of ",
                       differ.delivered_size(), " members",
                       by_identifier ? " and the snapshot's identifiers" : "", " read in ",
                       absl::FormatDuration(loaded - started), ", snapshot diffed in ",
                       absl::FormatDuration(scanned - loaded),
                       ", removals and last batches in ",
                       absl::FormatDuration(absl::Now() - scanned)));
  EXPORTD_RETURN_IF_ERROR(sent);
  if (ctx.cancelled()) return absl::CancelledError("the run was canceled");
  return absl::OkStatus();
}

}  // namespace exportd::engine
