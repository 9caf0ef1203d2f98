// An HTTP/1.1 (and HTTPS) server on civetweb: a bounded pool of threads,
// keep-alive, timeouts, and one handler that sees each request as an
// HttpExchange (exchange.h).
//
//   HttpServerOptions options;
//   options.listen = "127.0.0.1:0";
//   EXPORTD_ASSIGN_OR_RETURN(auto server, HttpServer::Start(options,
//       [](HttpExchange& exchange) { exchange.Respond(200, "text/plain", "hi\n"); }));
//   ... server->port() ...
//   server->Stop();  // also done by the destructor
#ifndef EXPORTD_SERVER_HTTP_HTTP_SERVER_H_
#define EXPORTD_SERVER_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/http/exchange.h"

struct mg_connection;
struct mg_context;

namespace exportd::http {

struct HttpServerOptions {
  // HOST:PORT with an IPv4 address or "localhost"; port 0 picks a free one.
  std::string listen = "127.0.0.1:0";
  // Both set: HTTPS only. PEM files, as for the gRPC listener.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Set (with TLS): clients must present a certificate signed by this CA.
  std::string tls_client_ca_file;
  // Requests served at once; further connections wait in the backlog.
  int threads = 32;
  // A read or write on a connection that stalls this long ends the request.
  int request_timeout_ms = 30000;
  // An idle keep-alive connection is closed after this long.
  int keep_alive_timeout_ms = 30000;
  // Sent with every response (e.g. a Content-Security-Policy).
  HttpHeaders response_headers;
  // civetweb's threads have a 100 KiB stack, too little for a gRPC call (the
  // in-process transport may run the service on the caller's thread), so by
  // default the handler runs on a thread of the server's own with the usual
  // stack while civetweb's thread waits. A handler that needs little stack
  // (a test peer) may run on civetweb's thread and skip that hand-over.
  bool small_stack_handler = false;
};

class HttpServer {
 public:
  // Called on the server's threads, concurrently; must be thread-safe.
  using Handler = std::function<void(HttpExchange&)>;

  // Binds and starts serving. INVALID_ARGUMENT for a malformed listen address
  // or unusable TLS files, UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  bool tls() const { return !options_.tls_cert_file.empty(); }

  // Connections accepted since start.
  int64_t connections_accepted() const { return connections_accepted_.load(); }

  // Stops accepting and waits for the requests being served. Idempotent.
  void Stop();

 private:
  HttpServer(HttpServerOptions options, Handler handler)
      : options_(std::move(options)), handler_(std::move(handler)) {}

  static int HandleRequest(mg_connection* connection, void* self);
  static int InitSsl(void* ssl_context, void* self);
  // Runs `task` on one of workers_ and waits for it.
  void RunOnWorker(const std::function<void()>& task);
  void WorkerLoop();

  const HttpServerOptions options_;
  const Handler handler_;
  mg_context* context_ = nullptr;
  int port_ = 0;
  // An address of the listener to connect to (Stop() wakes it).
  std::string poke_host_;
  std::atomic<int64_t> connections_accepted_{0};
  // Where handlers run unless small_stack_handler.
  std::vector<std::thread> workers_;
  absl::Mutex mu_;
  std::deque<const std::function<void()>*> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace exportd::http

#endif  // EXPORTD_SERVER_HTTP_HTTP_SERVER_H_
