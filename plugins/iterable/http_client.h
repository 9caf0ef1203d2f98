// A small thread-safe HTTP client over libcurl for Iterable's JSON API.
//
// Each request borrows a CURL easy handle from a pool (one handle per
// in-flight request); the handles share DNS, TLS sessions and the connection
// cache, so keep-alive connections are reused across threads. TLS peer and
// host verification stay on, proxy environment variables are honoured (the
// libcurl default), `Expect: 100-continue` is disabled, and every request has
// a connect and a total timeout. Nothing here throws.
//
// The API key travels only in the `Api-Key` header: never in a URL, and the
// client never logs or returns header values.
//
//   HttpClient::Options options;
//   options.base_url = "https://api.iterable.com";
//   options.api_key = key;
//   ITERABLE_ASSIGN_OR_RETURN(auto client, HttpClient::Create(options));
//   absl::StatusOr<HttpResponse> response = client->Send("GET", "/api/lists", "");
#ifndef EXPORTD_PLUGINS_ITERABLE_HTTP_CLIENT_H_
#define EXPORTD_PLUGINS_ITERABLE_HTTP_CLIENT_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace exportd::iterable {

struct HttpResponse {
  int status = 0;
  std::string body;
  // The raw Retry-After header value, when present.
  std::optional<std::string> retry_after;
};

class HttpClient {
 public:
  struct Options {
    // Scheme, host and optional port/path prefix, without a trailing slash.
    std::string base_url;
    std::string api_key;
    absl::Duration connect_timeout = absl::Seconds(10);
    absl::Duration total_timeout = absl::Seconds(30);
    std::string user_agent = "exportd-iterable";
  };

  // INVALID_ARGUMENT when the key holds characters that cannot go in a
  // header; INTERNAL when libcurl cannot be initialized.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(Options options);
  ~HttpClient();

  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `method` (GET, POST, DELETE) to base_url + `path` with `body` as
  // JSON (POST only). Any HTTP answer is a response, whatever its status;
  // transport failures are UNAVAILABLE (DEADLINE_EXCEEDED on timeout) naming
  // the host and libcurl's error.
  absl::StatusOr<HttpResponse> Send(std::string_view method, std::string_view path,
                                    std::string_view body);

  const std::string& base_url() const { return options_.base_url; }
  // The host part of base_url, for messages.
  const std::string& host() const { return host_; }

 private:
  struct Share;
  HttpClient(Options options, std::unique_ptr<Share> share);

  void* AcquireHandle();
  void ReleaseHandle(void* handle);

  const Options options_;
  std::string host_;
  std::unique_ptr<Share> share_;
  // Pre-built header list: Api-Key, Content-Type, Accept, "Expect:".
  void* headers_ = nullptr;
  absl::Mutex mu_;
  std::vector<void*> idle_handles_ ABSL_GUARDED_BY(mu_);
};

}  // namespace exportd::iterable

#endif  // EXPORTD_PLUGINS_ITERABLE_HTTP_CLIENT_H_
