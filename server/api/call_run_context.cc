#include "server/api/call_run_context.h"

#include <algorithm>

#include "server/common/log.h"
#include "server/common/plugin_log.h"
#include "server/common/terminal_text.h"

namespace exportd::api {

bool CallRunContext::cancelled() const { return ctx_ != nullptr && ctx_->IsCancelled(); }

bool CallRunContext::SleepFor(absl::Duration d) {
  absl::Time end = absl::Now() + d;
  while (absl::Now() < end) {
    if (cancelled()) return false;
    absl::SleepFor(std::min(absl::Milliseconds(50), end - absl::Now()));
  }
  return !cancelled();
}

void CallRunContext::RequestDone(std::string_view endpoint, int http_status,
                                 absl::Duration latency) {
  if (metrics_ == nullptr) return;
  metrics_->DestinationRequest(destination_, absl::string_view(endpoint.data(), endpoint.size()),
                               http_status, latency);
}

void CallRunContext::Log(sdk::LogLevel level, std::string_view message) {
  exportd::Log(PluginLogLevel(level), {"api"},
               EscapeForTerminal(absl::string_view(message.data(), message.size())));
}

}  // namespace exportd::api
