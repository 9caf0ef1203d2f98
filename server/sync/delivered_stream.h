// The delivered state of one (export, segment) as a stream in profile-id
// order, read ahead by a thread of its own in bounded memory (a few pages of
// a few thousand members), so that the diff can merge it with the snapshot
// (stored in the same order) instead of holding either side whole.
//
//   DeliveredStream delivered(store, export_id, segment_id, run_id);
//   DeliveredBundle bundle;
//   for (each snapshot chunk, in order) {
//     EXPORTD_RETURN_IF_ERROR(delivered.TakeThrough(chunk's last profile id, bundle));
//     merge the chunk's rows with bundle's members
//   }
//   EXPORTD_RETURN_IF_ERROR(delivered.TakeThrough(std::nullopt, bundle));  // the rest left
#ifndef EXPORTD_SERVER_SYNC_DELIVERED_STREAM_H_
#define EXPORTD_SERVER_SYNC_DELIVERED_STREAM_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"
#include "server/sync/differ.h"

namespace exportd::sync {

// Consecutive delivered members: their profile ids packed in one buffer, and
// their entries.
class DeliveredBundle {
 public:
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  absl::string_view id(size_t i) const {
    const size_t begin = i == 0 ? 0 : ends_[i - 1];
    return absl::string_view(ids_).substr(begin, ends_[i] - begin);
  }
  DeliveredEntry& entry(size_t i) { return entries_[i]; }
  void Add(absl::string_view id, const DeliveredEntry& e) {
    ids_.append(id.data(), id.size());
    ends_.push_back(ids_.size());
    entries_.push_back(e);
  }
  void Clear() {
    ids_.clear();
    ends_.clear();
    entries_.clear();
  }

 private:
  std::string ids_;
  std::vector<size_t> ends_;
  std::vector<DeliveredEntry> entries_;
};

class DeliveredStream {
 public:
  // Starts reading. `run_id`: entries this run delivered are marked this_run.
  // `forget_identifiers`: the identifier hashes of entries other runs
  // delivered are reported as 0 (unknown): they were computed under another
  // keying (SegmentSyncOptions::rekeyed).
  DeliveredStream(store::Store& store, std::string export_id, std::string segment_id,
                  std::string run_id, bool forget_identifiers = false);
  // Stops the reading (if not read to the end) and waits for its thread.
  ~DeliveredStream();
  DeliveredStream(const DeliveredStream&) = delete;
  DeliveredStream& operator=(const DeliveredStream&) = delete;

  // Replaces `out` with the next delivered members whose profile ids are at
  // most `last` (bytewise), or with all the rest when `last` is nullopt. The
  // store's error, or INTERNAL when its rows came out of order.
  absl::Status TakeThrough(std::optional<absl::string_view> last, DeliveredBundle& out);

  // Members taken so far.
  std::int64_t taken() const { return taken_; }

 private:
  static constexpr size_t kPageMembers = 4096;
  static constexpr size_t kPages = 8;

  void Read();
  bool Push(DeliveredBundle page);  // False once stopped.
  // Makes `page_` hold unread members, waiting for the reader. False at the end.
  absl::StatusOr<bool> Refill();

  store::Store& store_;
  const std::string export_id_, segment_id_, run_id_;
  const bool forget_identifiers_;
  // Condition variables, not Mutex::Await: Await's conditions are evaluated on
  // the releasing thread and read the waiter's stack, an order ThreadSanitizer
  // cannot see.
  absl::Mutex mu_;
  absl::CondVar filled_, space_;  // A page was pushed (or the end); one was taken (or stop).
  std::deque<DeliveredBundle> pages_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  // The consumer's side (one thread).
  DeliveredBundle page_;
  size_t next_ = 0;
  std::int64_t taken_ = 0;
  std::thread reader_;
};

}  // namespace exportd::sync

#endif  // EXPORTD_SERVER_SYNC_DELIVERED_STREAM_H_
