#include "server/auth/failure_log.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/common/log.h"

namespace exportd::auth {
namespace {

std::string SuppressedLine(std::uint64_t suppressed) {
  return absl::StrCat(suppressed, " more failed authentication", suppressed == 1 ? "" : "s",
                      " suppressed");
}

}  // namespace

FailureLog::~FailureLog() {
  absl::MutexLock lock(&mu_);
  if (suppressed_ > 0) Write(SuppressedLine(suppressed_));
}

void FailureLog::Write(const std::string& line) {
  if (out_ == nullptr) {
    Log(LogLevel::kWarning, {"auth"}, line);
    return;
  }
  *out_ << "exportd: " << line << "\n" << std::flush;
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
  // Under the lock: at most two lines per interval.
  if (suppressed_ > 0) Write(SuppressedLine(suppressed_));
  // The peer comes from the transport; escaped anyway, so that no caller can
  // write a line of its own into the log.
  Write(absl::StrCat("authentication failed: ", reason, " (principal unknown) from ",
                     peer.empty() ? "an unknown peer" : absl::CHexEscape(peer)));
  suppressed_ = 0;
  last_line_ = now;
}

}  // namespace exportd::auth
