#include "server/engine/segment_sync.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/common/status_macros.h"
#include "server/engine/delivered_index.h"
#include "server/engine/record_codec.h"
#include "server/store/member_chunk.h"

namespace exportd::engine {
namespace {

// Members are keyed by this hash of their profile id in the delivered state.
std::uint64_t IdHash(absl::string_view id) { return StableHash64(id); }

// Threads that parse and diff snapshot chunks, and chunks read ahead.
constexpr int kScanThreads = 2;
constexpr size_t kScanQueueChunks = 8;

// A bounded queue of serialized chunks from the reader to the scan threads.
class ChunkQueue {
 public:
  explicit ChunkQueue(size_t capacity) : capacity_(capacity) {}
  // Blocks while full. False once aborted.
  bool Push(std::string bytes) {
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
  bool Pop(std::string& out) {
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
  std::deque<std::string> items_ ABSL_GUARDED_BY(mu_);
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
            commit.delivered.push_back({batch.id_hashes[i], std::move(id), batch.hashes[i],
                                        o_.run_id, std::move(batch.encoded[i])});
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

absl::Status SyncSegment(const SegmentSyncOptions& o, store::Store& store, RunTracker& tracker,
                         sdk::RunContext& ctx) {
  const v1::Export& e = *o.export_;
  const v1::Segment& segment = *o.segment;

  // The mapped columns, resolved against this snapshot's schema.
  std::vector<int> columns;
  std::vector<sdk::BatchField> fields;
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
    columns.push_back(column);
    fields.push_back({m.destination_field(), ToSdkType(segment.schema(column).type())});
  }

  absl::Time started = absl::Now();
  // What was delivered before, and what this run already did (resume).
  DeliveredIndex delivered;
  delivered.Reserve(o.delivered_hint);
  EXPORTD_RETURN_IF_ERROR(store.ForEachDelivered(
      e.id(), segment.id(), [&](const store::DeliveredView& row) {
        return delivered.Add(row, row.run_id == o.run_id);
      }));
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

  absl::Time loaded = absl::Now();
  Dispatcher dispatcher(o, tracker, ctx);
  Batcher batcher(o, fields, &dispatcher);
  Batcher retries(o, fields, &dispatcher);
  bool sending = !o.dry_run && o.connection != nullptr;
  bool stopped = false;

  // Pass 1: the snapshot. Chunks are read here and parsed and diffed by a
  // few threads (parsing is the cost); joins and changes are sent.
  ChunkQueue queue(kScanQueueChunks);
  absl::Mutex out_mu;  // The batchers and `stopped`.
  absl::Mutex error_mu;
  absl::Status scan_error;
  auto fail = [&](absl::Status status) {
    absl::MutexLock lock(&error_mu);
    if (scan_error.ok()) scan_error = std::move(status);
    queue.Abort();
  };
  auto scan_worker = [&] {
    store::RowView row;
    std::string bytes, encoded;
    while (queue.Pop(bytes)) {
      store::ChunkReader reader(bytes);
      std::int64_t adds = 0, updates = 0, unchanged = 0;
      while (reader.Next(row)) {
        if (row.values.size() < static_cast<size_t>(segment.schema_size())) {
          fail(absl::DataLossError(absl::StrCat("segment '", segment.name(), "': member '",
                                                row.profile_id, "' has ", row.values.size(),
                                                " values in the snapshot; its schema has ",
                                                segment.schema_size())));
          return;
        }
        encoded.clear();
        for (int column : columns) EncodeValue(row.values[column], encoded);
        std::uint64_t value_hash = HashValues(encoded);
        std::uint64_t id_hash = IdHash(row.profile_id);
        bool is_update = false;
        // Profile ids are unique in a snapshot, so each thread writes only
        // the entries of its own rows; the map itself does not change.
        if (DeliveredEntry* entry = delivered.Find(id_hash, row.profile_id)) {
          entry->seen = true;
          if (entry->this_run) continue;  // Done before the interruption.
          if (entry->value_hash == value_hash && !o.full) {
            ++unchanged;
            continue;
          }
          is_update = true;
        }
        if (!rejected_this_run.empty() && rejected_this_run.contains(row.profile_id)) continue;
        ++(is_update ? updates : adds);
        if (!sending) continue;
        absl::MutexLock lock(&out_mu);
        if (stopped) break;
        Batcher& out =
            o.previously_rejected != nullptr && o.previously_rejected->contains(row.profile_id)
                ? retries
                : batcher;
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
        if (!out.RecordAdded(
                static_cast<std::int64_t>(encoded.size() + row.profile_id.size() + 16))) {
          stopped = true;
          queue.Abort();
          break;
        }
      }
      if (!reader.status().ok()) {
        fail(absl::DataLossError(absl::StrCat("segment '", segment.name(),
                                              "' has a damaged snapshot chunk: ",
                                              reader.status().message())));
        return;
      }
      tracker.Update(o.segment_index, [&](v1::SegmentProgress& p) {
        p.set_to_add(p.to_add() + adds);
        p.set_to_update(p.to_update() + updates);
        p.set_unchanged(p.unchanged() + unchanged);
      });
    }
  };
  std::vector<std::thread> scanners;
  for (int i = 0; i < kScanThreads; ++i) scanners.emplace_back(scan_worker);
  absl::Status read = store.ForEachChunkBytes(
      segment.id(), segment.snapshot_version(), [&](absl::string_view bytes) -> absl::Status {
        if (ctx.cancelled()) return absl::CancelledError("the run was canceled");
        if (!queue.Push(std::string(bytes.data(), bytes.size()))) {
          return absl::AbortedError("scan stopped");
        }
        return absl::OkStatus();
      });
  queue.Close();
  for (auto& t : scanners) t.join();
  {
    absl::MutexLock lock(&error_mu);
    if (!scan_error.ok()) {
      dispatcher.Close().IgnoreError();
      return scan_error;
    }
  }
  if (!read.ok() && !stopped) {
    dispatcher.Close().IgnoreError();
    return read;
  }
  if (!stopped) stopped = !batcher.Flush() || !retries.Flush();
  absl::Time scanned = absl::Now();

  // Pass 2 (mirror mode): members who left are removed. Their rows are read
  // only when there are any.
  if (!stopped && o.mirror) {
    std::vector<absl::string_view> leavers = delivered.Unseen();
    if (!leavers.empty()) {
      tracker.Update(o.segment_index, [&](v1::SegmentProgress& p) {
        p.set_to_remove(p.to_remove() + static_cast<std::int64_t>(leavers.size()));
      });
    }
    if (!leavers.empty() && sending) {
      batcher.Reset(/*removal=*/true);
      absl::Status removals = store.LookupDelivered(
          e.id(), segment.id(), leavers, [&](const store::DeliveredRow& row) -> absl::Status {
            if (ctx.cancelled()) return absl::CancelledError("the run was canceled");
            PendingBatch& batch = batcher.current();
            batch.records.profile_ids.push_back(row.profile_id);
            EXPORTD_RETURN_IF_ERROR(
                DecodeValues(row.values, fields.size(), fields, batch.records.values));
            batch.encoded.emplace_back();
            batch.id_hashes.push_back(row.id_hash);
            batch.hashes.push_back(0);
            batch.is_update.push_back(false);
            if (!batcher.RecordAdded(static_cast<std::int64_t>(row.values.size() + 16))) {
              stopped = true;
              return absl::CancelledError("stopped");
            }
            return absl::OkStatus();
          });
      if (!removals.ok() && !stopped) {
        dispatcher.Close().IgnoreError();
        return removals;
      }
      if (!stopped) batcher.Flush();
    }
  }
  absl::Status sent = dispatcher.Close();
  ctx.Log(sdk::LogLevel::kInfo,
          absl::StrCat("segment '", segment.name(), "': delivered state of ", delivered.size(),
                       " members read in ", absl::FormatDuration(loaded - started),
                       ", snapshot diffed in ", absl::FormatDuration(scanned - loaded),
                       ", leavers and last batches in ", absl::FormatDuration(absl::Now() - scanned)));
  EXPORTD_RETURN_IF_ERROR(sent);
  if (ctx.cancelled()) return absl::CancelledError("the run was canceled");
  return absl::OkStatus();
}

}  // namespace exportd::engine
