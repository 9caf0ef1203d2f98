// A webhook receiver for tests: an HTTP server on 127.0.0.1 (port 0) that
// records every request and answers with the statuses a test scripts (then
// 200).
//
//   EXPORTD_ASSIGN_OR_RETURN(auto receiver, WebhookReceiver::Start());
//   receiver->AnswerNext({500});  // the first request gets a 500, later ones 200
//   options.notify_url = receiver->url();
//   ASSERT_TRUE(receiver->WaitForRequests(2, absl::Seconds(30)));
//   EXPECT_EQ(receiver->requests()[1].Header("x-exportd-signature"), ...);
#ifndef EXPORTD_TESTS_SUPPORT_WEBHOOK_RECEIVER_H_
#define EXPORTD_TESTS_SUPPORT_WEBHOOK_RECEIVER_H_

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/http/http_server.h"

namespace exportd::testing {

class WebhookReceiver {
 public:
  struct Request {
    std::string method;
    std::string path;
    std::map<std::string, std::string> headers;  // Names lowercased.
    std::string body;
    int answered = 0;  // The status it was answered with.
    // The header's value, or "" when absent.
    std::string Header(const std::string& lowercase_name) const {
      auto it = headers.find(lowercase_name);
      return it == headers.end() ? std::string() : it->second;
    }
  };

  static absl::StatusOr<std::unique_ptr<WebhookReceiver>> Start();
  ~WebhookReceiver();

  // http://127.0.0.1:<port><path>
  std::string url(const std::string& path = "/hook") const;
  // The next requests are answered with these statuses, in order; then 200.
  void AnswerNext(std::vector<int> statuses);
  // Every request so far, in arrival order.
  std::vector<Request> requests() const;
  // Waits (polling a condition, not sleeping blindly) until at least `n`
  // requests arrived; false when `timeout` passed first.
  bool WaitForRequests(size_t n, absl::Duration timeout) const;
  // Stops serving: later requests find a closed port.
  void Stop();

 private:
  WebhookReceiver() = default;
  void Handle(http::HttpExchange& exchange);

  std::unique_ptr<http::HttpServer> server_;
  mutable absl::Mutex mu_;
  std::deque<int> statuses_ ABSL_GUARDED_BY(mu_);
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace exportd::testing

#endif  // EXPORTD_TESTS_SUPPORT_WEBHOOK_RECEIVER_H_
