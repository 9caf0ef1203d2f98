// An HTTP/1.1 server for test peers, on exportd's civetweb server (server/http/http_server.h):
// buffered requests and responses for a simple handler, a body limit that still lets the
// handler answer, and a way for the handler to close a connection without answering (fault
// injection). civetweb does the protocol: keep-alive, pipelining, Content-Length and chunked
// request bodies, `Expect: 100-continue`. Loopback use only.
//
// Example:
//   HttpServer::Options options;  // 127.0.0.1, port 0
//   auto server = HttpServer::Create(options, [](const HttpRequest& request,
//                                                HttpResponse* response) {
//     response->body = "{\"path\":\"" + request.path + "\"}";
//   });
//   if (!server.ok()) return server.status();
//   int port = (*server)->port();
//   ...
//   (*server)->Shutdown();  // also done by the destructor

#ifndef EXPORTD_TESTS_SANDBOX_HTTP_SERVER_H_
#define EXPORTD_TESTS_SANDBOX_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/http/http_server.h"

namespace exportd::sandbox {

// One parsed request. Header names are lowercased; values are trimmed.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // As sent: "/api/lists?x=1".
  std::string path;    // Target without the query: "/api/lists".
  std::string query;   // Text after '?', without it; empty when absent.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // True when the declared body exceeded the server's body limit. `body` is then empty and the
  // handler should answer with an error (the server closes the connection when it could not
  // drain the body).
  bool body_too_large = false;
  // Declared body size (Content-Length, or the decoded size of a chunked body).
  size_t declared_body_bytes = 0;

  // The first header named `lowercase_name`, or nullptr.
  const std::string* Header(absl::string_view lowercase_name) const;
};

// The handler's answer. The server adds Content-Length (and Connection: close when needed).
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra headers, e.g. {"Retry-After", "3"}.
  std::vector<std::pair<std::string, std::string>> headers;
  // Close the connection after sending this response.
  bool close_connection = false;
  // Close the connection without sending anything (simulates a dropped request).
  bool drop_connection = false;
};

// Returns the standard reason phrase for `status` ("OK", "Too Many Requests", ...).
absl::string_view ReasonPhrase(int status);

class HttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, HttpResponse*)>;

  struct Options {
    // IPv4 address to bind; "localhost" is accepted as 127.0.0.1.
    std::string host = "127.0.0.1";
    // 0 picks a free port; read it back with port().
    int port = 0;
    // Largest accepted request body; larger ones reach the handler with body_too_large set.
    size_t max_body_bytes = 4'000'000;
    // At most this many requests are served at once (one thread each); further clients
    // wait in the listen backlog.
    int max_connections = 256;
    // A connection idle this long is closed.
    int idle_timeout_seconds = 120;
  };

  // Binds, listens and starts serving. `handler` is called concurrently from the server's
  // threads and must be thread-safe.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(Options options, Handler handler);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port.
  int port() const { return port_; }

  // Changes the body limit for requests whose headers arrive from now on.
  void SetMaxBodyBytes(size_t max_body_bytes) { max_body_bytes_.store(max_body_bytes); }

  // Number of connections accepted since start.
  int64_t connections_accepted() const { return server_->connections_accepted(); }

  // Stops accepting, closes every connection, joins all threads. Idempotent. A handler that
  // is still running is waited for, so handlers must not block indefinitely.
  void Shutdown();

 private:
  HttpServer(Options options, Handler handler);

  void Serve(http::HttpExchange& exchange);

  const Options options_;
  const Handler handler_;
  std::atomic<size_t> max_body_bytes_;
  std::unique_ptr<http::HttpServer> server_;
  int port_ = 0;
};

}  // namespace exportd::sandbox

#endif  // EXPORTD_TESTS_SANDBOX_HTTP_SERVER_H_
