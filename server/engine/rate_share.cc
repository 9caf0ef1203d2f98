#include "server/engine/rate_share.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/terminal_text.h"

namespace exportd::engine {

RateShares::RateShares(store::Store* store, std::string replica_id, const Clock* clock,
                       absl::Duration refresh)
    : store_(store), replica_id_(std::move(replica_id)), clock_(clock), refresh_(refresh) {}

RateShares::~RateShares() { Stop(); }

void RateShares::Start() {
  thread_ = std::thread([this] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), refresh_);
        if (stopping_) return;
      }
      RefreshNow();
    }
  });
}

void RateShares::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

RateShares::Handle RateShares::Join(const std::string& connection_id,
                                    std::shared_ptr<destinations::RateBudget> budget) {
  bool first = false;
  {
    absl::MutexLock lock(&mu_);
    Share& share = shares_[connection_id];
    first = share.runs++ == 0;
    share.budget = budget;
  }
  // Counted before the first batch goes, so the others slow down at their
  // next refresh.
  if (first) Renew(connection_id, *budget);
  return Handle(this, connection_id);
}

void RateShares::Leave(const std::string& connection_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = shares_.find(connection_id);
    if (it == shares_.end() || --it->second.runs > 0) return;
    shares_.erase(it);
  }
  absl::Status ended = store_->EndConnectionShare(connection_id, replica_id_);
  if (!ended.ok()) {
    // It expires on its own.
    Log(LogLevel::kWarning, {"engine"},
        absl::StrCat("connection ", connection_id, ": cannot end this replica's rate share: ",
                     EscapeForTerminal(ended.ToString())));
  }
}

void RateShares::RefreshNow() {
  std::vector<std::pair<std::string, std::shared_ptr<destinations::RateBudget>>> in_use;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, share] : shares_) in_use.emplace_back(id, share.budget);
  }
  // The store is written outside the lock (Join and Leave need not wait).
  for (const auto& [id, budget] : in_use) Renew(id, *budget);
}

void RateShares::Renew(const std::string& connection_id, destinations::RateBudget& budget) {
  const std::int64_t now = clock_->NowMicros();
  absl::StatusOr<int> replicas = store_->ShareConnection(
      connection_id, replica_id_, now, now + absl::ToInt64Microseconds(4 * refresh_));
  if (!replicas.ok()) {
    // Keep the share last known: better than sending at the whole rate.
    Log(LogLevel::kWarning, {"engine"},
        absl::StrCat("connection ", connection_id, ": cannot renew this replica's rate share: ",
                     EscapeForTerminal(replicas.status().ToString())));
    return;
  }
  budget.SetShare(*replicas);
}

}  // namespace exportd::engine
