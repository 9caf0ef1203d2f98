#include "server/sync/dispatcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace exportd::sync {

Dispatcher::Dispatcher(const DispatchOptions& o, Committer& committer, sdk::RunContext& ctx)
    : o_(o), committer_(committer), ctx_(ctx) {
  int workers = std::max(1, o_.max_parallel_batches);
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
}

Dispatcher::~Dispatcher() { Close().IgnoreError(); }

bool Dispatcher::Submit(PendingBatch batch) {
  absl::MutexLock lock(&mu_);
  while (queue_.size() >= threads_.size() && error_.ok()) space_.Wait(&mu_);
  if (!error_.ok()) return false;
  queue_.push_back(std::move(batch));
  work_.Signal();
  return true;
}

absl::Status Dispatcher::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  work_.SignalAll();
  for (auto& t : threads_) t.join();
  threads_.clear();
  absl::MutexLock lock(&mu_);
  return error_;
}

void Dispatcher::Work() {
  while (true) {
    PendingBatch batch;
    {
      absl::MutexLock lock(&mu_);
      while (queue_.empty() && !closed_) work_.Wait(&mu_);
      if (queue_.empty()) return;
      batch = std::move(queue_.front());
      queue_.pop_front();
      space_.Signal();
    }
    absl::Status status = Send(batch);
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      if (error_.ok()) error_ = status;
      queue_.clear();
      space_.SignalAll();
    }
  }
}

absl::StatusOr<std::vector<sdk::RecordOutcome>> Dispatcher::Deliver(const PendingBatch& batch) {
  const auto records = static_cast<std::int64_t>(batch.records.size());
  absl::StatusOr<std::vector<sdk::RecordOutcome>> outcomes;
  const absl::Status status = CallWithinBudget(
      o_.throttling, absl::StrCat("a batch of ", records, " records"), records, ctx_,
      [&](sdk::RunContext& call) {
        outcomes = batch.removal ? o_.connection->Remove(o_.audience, batch.records, call)
                                 : o_.connection->Upsert(o_.audience, batch.records, call);
        return outcomes.status();
      });
  if (!status.ok()) return status;
  return outcomes;
}

absl::Status Dispatcher::Send(PendingBatch& batch) {
  if (ctx_.cancelled()) return absl::CancelledError("the run was canceled");
  auto outcomes = Deliver(batch);
  if (!outcomes.ok()) return outcomes.status();
  return committer_.Commit(batch, *outcomes);
}

}  // namespace exportd::sync
