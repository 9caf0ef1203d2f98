// One HTTP POST of a notification to a webhook, with libcurl: no redirects
// followed, http and https only, certificates verified, a bounded time.
//
//   WebhookRequest request{url, {{"Content-Type", "application/json"}}, body, absl::Seconds(10)};
//   absl::StatusOr<int> status = PostWebhook(request);  // the HTTP status code
#ifndef EXPORTD_SERVER_NOTIFY_WEBHOOK_CLIENT_H_
#define EXPORTD_SERVER_NOTIFY_WEBHOOK_CLIENT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace exportd::notify {

struct WebhookRequest {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The whole request, connecting included.
  absl::Duration timeout = absl::Seconds(10);
};

// The HTTP status code the webhook answered (any, 2xx or not), or
// UNAVAILABLE (cannot connect, connection dropped) / DEADLINE_EXCEEDED
// (timed out) naming the host only: a webhook's path may carry a token.
absl::StatusOr<int> PostWebhook(const WebhookRequest& request);

// The host (and port) of `url`, for messages.
std::string WebhookHost(absl::string_view url);

}  // namespace exportd::notify

#endif  // EXPORTD_SERVER_NOTIFY_WEBHOOK_CLIENT_H_
