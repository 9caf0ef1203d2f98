#include "server/auth/failure_log.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace exportd::auth {
namespace {

std::string SuppressedLine(std::uint64_t suppressed) {
  return absl::StrCat("exportd: ", suppressed, " more failed authentication",
                      suppressed == 1 ? "" : "s", " suppressed\n");
}

}  // namespace

FailureLog::~FailureLog() {
  absl::MutexLock lock(&mu_);
  if (suppressed_ > 0) out_ << SuppressedLine(suppressed_) << std::flush;
}

void FailureLog::Record(absl::string_view reason, absl::string_view peer) {
  count_.fetch_add(1, std::memory_order_relaxed);
  const absl::Time now = now_();
  absl::MutexLock lock(&mu_);
  // A clock that went back logs at once rather than falling silent until it catches up.
  if (now >= last_line_ && now - last_line_ < interval_) {
    ++suppressed_;
    return;
  }
  std::string text;
  if (suppressed_ > 0) text = SuppressedLine(suppressed_);
  // The peer comes from the transport; escaped anyway, so that no caller can
  // write a line of its own into the log.
  absl::StrAppend(&text, "exportd: authentication failed: ", reason, " (principal unknown) from ",
                  peer.empty() ? "an unknown peer" : absl::CHexEscape(peer), "\n");
  // One write per event, under the lock: at most two lines per interval.
  out_ << text << std::flush;
  suppressed_ = 0;
  last_line_ = now;
}

}  // namespace exportd::auth
