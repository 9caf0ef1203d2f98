#include "tests/support/webhook_receiver.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace exportd::testing {

absl::StatusOr<std::unique_ptr<WebhookReceiver>> WebhookReceiver::Start() {
  std::unique_ptr<WebhookReceiver> receiver(new WebhookReceiver());
  http::HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.threads = 4;
  options.small_stack_handler = true;
  WebhookReceiver* self = receiver.get();
  absl::StatusOr<std::unique_ptr<http::HttpServer>> server = http::HttpServer::Start(
      options, [self](http::HttpExchange& exchange) { self->Handle(exchange); });
  if (!server.ok()) return server.status();
  receiver->server_ = std::move(*server);
  return receiver;
}

WebhookReceiver::~WebhookReceiver() { Stop(); }

void WebhookReceiver::Stop() {
  if (server_ != nullptr) server_->Stop();
}

std::string WebhookReceiver::url(const std::string& path) const {
  return absl::StrCat("http://127.0.0.1:", server_->port(), path);
}

void WebhookReceiver::AnswerNext(std::vector<int> statuses) {
  absl::MutexLock lock(&mu_);
  statuses_.insert(statuses_.end(), statuses.begin(), statuses.end());
}

std::vector<WebhookReceiver::Request> WebhookReceiver::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

bool WebhookReceiver::WaitForRequests(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto arrived = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return requests_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&arrived), timeout);
}

void WebhookReceiver::Handle(http::HttpExchange& exchange) {
  Request request;
  request.method = std::string(exchange.method());
  request.path = std::string(exchange.path());
  for (const auto& [name, value] : exchange.headers()) {
    request.headers[absl::AsciiStrToLower(name)] = value;
  }
  char buffer[16384];
  while (true) {
    const int64_t got = exchange.ReadBody(buffer, sizeof buffer);
    if (got <= 0) break;
    request.body.append(buffer, static_cast<size_t>(got));
  }
  int status = 200;
  {
    absl::MutexLock lock(&mu_);
    if (!statuses_.empty()) {
      status = statuses_.front();
      statuses_.pop_front();
    }
    request.answered = status;
  }
  // Answered before it is recorded: a test that saw the request also sees
  // the sender's reaction to the answer soon after, never before it.
  exchange.Respond(status, "text/plain", status == 200 ? "ok\n" : "failing\n");
  absl::MutexLock lock(&mu_);
  requests_.push_back(std::move(request));
}

}  // namespace exportd::testing
