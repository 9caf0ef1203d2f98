#include "server/sync/delivered_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace exportd::sync {

DeliveredStream::DeliveredStream(store::Store& store, std::string export_id, std::string segment_id,
                                 std::string run_id, bool forget_identifiers)
    : store_(store),
      export_id_(std::move(export_id)),
      segment_id_(std::move(segment_id)),
      run_id_(std::move(run_id)),
      forget_identifiers_(forget_identifiers) {
  reader_ = std::thread([this] { Read(); });
}

DeliveredStream::~DeliveredStream() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  space_.SignalAll();
  reader_.join();
}

void DeliveredStream::Read() {
  DeliveredBundle page;
  std::string previous;
  bool first = true;
  absl::Status status = store_.ForEachDelivered(
      export_id_, segment_id_, [&](const store::DeliveredView& row) -> absl::Status {
        // The merge depends on the order: a store that breaks it must not
        // make members look as if they left.
        if (!first && !(previous < row.profile_id)) {
          return absl::InternalError(absl::StrCat(
              "the store returned the delivered state of segment '", segment_id_,
              "' out of profile-id order ('", row.profile_id, "' after '", previous, "')"));
        }
        first = false;
        previous.assign(row.profile_id.data(), row.profile_id.size());
        DeliveredEntry e;
        e.value_hash = row.value_hash;
        e.state = row.state;
        e.this_run = row.run_id == run_id_;
        e.ident_hash = forget_identifiers_ && !e.this_run ? 0 : row.ident_hash;
        e.row_hash = row.row_hash;
        page.Add(row.profile_id, e);
        if (page.size() >= kPageMembers) {
          if (!Push(std::move(page))) return absl::CancelledError("stopped");
          page = DeliveredBundle();
        }
        return absl::OkStatus();
      });
  if (status.ok() && !page.empty()) Push(std::move(page));
  absl::MutexLock lock(&mu_);
  done_ = true;
  status_ = std::move(status);
  filled_.Signal();
}

bool DeliveredStream::Push(DeliveredBundle page) {
  absl::MutexLock lock(&mu_);
  while (pages_.size() >= kPages && !stopped_) space_.Wait(&mu_);
  if (stopped_) return false;
  pages_.push_back(std::move(page));
  filled_.Signal();
  return true;
}

absl::StatusOr<bool> DeliveredStream::Refill() {
  if (next_ < page_.size()) return true;
  absl::MutexLock lock(&mu_);
  while (pages_.empty() && !done_) filled_.Wait(&mu_);
  if (pages_.empty()) {
    if (!status_.ok()) return status_;
    return false;
  }
  page_ = std::move(pages_.front());
  pages_.pop_front();
  space_.Signal();
  next_ = 0;
  return true;
}

absl::Status DeliveredStream::TakeThrough(std::optional<absl::string_view> last,
                                          DeliveredBundle& out) {
  out.Clear();
  while (true) {
    absl::StatusOr<bool> more = Refill();
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
    for (; next_ < page_.size(); ++next_) {
      if (last.has_value() && page_.id(next_) > *last) return absl::OkStatus();
      out.Add(page_.id(next_), page_.entry(next_));
      ++taken_;
    }
  }
}

}  // namespace exportd::sync
