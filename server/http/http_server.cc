#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <link.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace exportd::http {
namespace {

// One request on a civetweb connection.
class CivetExchange final : public HttpExchange {
 public:
  CivetExchange(mg_connection* connection, const HttpHeaders& always)
      : connection_(connection), info_(mg_get_request_info(connection)), always_(always) {}

  absl::string_view method() const override { return info_->request_method; }
  absl::string_view path() const override {
    return info_->local_uri_raw != nullptr ? info_->local_uri_raw : "/";
  }
  absl::string_view query() const override {
    return info_->query_string != nullptr ? info_->query_string : "";
  }
  std::optional<absl::string_view> header(absl::string_view name) const override {
    for (int i = 0; i < info_->num_headers; ++i) {
      if (absl::EqualsIgnoreCase(info_->http_headers[i].name, name)) {
        return absl::string_view(info_->http_headers[i].value);
      }
    }
    return std::nullopt;
  }
  HttpHeaders headers() const override {
    HttpHeaders all;
    for (int i = 0; i < info_->num_headers; ++i) {
      all.emplace_back(info_->http_headers[i].name, info_->http_headers[i].value);
    }
    return all;
  }
  int64_t content_length() const override { return info_->content_length; }
  std::string peer() const override {
    return absl::StrCat("ipv4:", info_->remote_addr, ":", info_->remote_port);
  }
  std::string client_certificate_pem() const override {
    if (info_->client_cert == nullptr || info_->client_cert->peer_cert == nullptr) return "";
    BIO* bio = BIO_new(BIO_s_mem());
    std::string pem;
    if (PEM_write_bio_X509(bio, static_cast<X509*>(info_->client_cert->peer_cert)) == 1) {
      char* data = nullptr;
      long size = BIO_get_mem_data(bio, &data);
      pem.assign(data, static_cast<size_t>(size));
    }
    BIO_free(bio);
    return pem;
  }

  int64_t ReadBody(char* buffer, size_t size) override {
    if (!read_started_) {
      read_started_ = true;
      // civetweb does not answer "Expect: 100-continue" itself; the client waits for it
      // before it sends the body.
      std::optional<absl::string_view> expect = header("Expect");
      if (expect.has_value() && absl::EqualsIgnoreCase(*expect, "100-continue")) {
        absl::MutexLock lock(&mu_);
        mg_printf(connection_, "HTTP/1.1 100 Continue\r\n\r\n");
      }
    }
    return mg_read(connection_, buffer, size);
  }

  void Respond(int status, absl::string_view content_type, absl::string_view body,
               const HttpHeaders& headers) override {
    // One write: a head and a body in two segments would wait for the
    // client's delayed acknowledgement of the first (Nagle's algorithm).
    std::string response = Head(status, content_type, headers);
    absl::StrAppend(&response, "Content-Length: ", body.size(), "\r\n\r\n");
    if (method() != "HEAD") absl::StrAppend(&response, body);
    absl::MutexLock lock(&mu_);
    mg_write(connection_, response.data(), response.size());
  }

  bool StartStream(int status, absl::string_view content_type,
                   const HttpHeaders& headers) override {
    std::string head = Head(status, content_type, headers);
    absl::StrAppend(&head, "Transfer-Encoding: chunked\r\n\r\n");
    absl::MutexLock lock(&mu_);
    return mg_write(connection_, head.data(), head.size()) > 0;
  }
  bool WriteStream(absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    return mg_send_chunk(connection_, data.data(), static_cast<unsigned>(data.size())) > 0;
  }
  void EndStream() override {
    absl::MutexLock lock(&mu_);
    mg_write(connection_, "0\r\n\r\n", 5);
  }
  void CloseConnection() override {
    close_ = true;
    mg_disable_connection_keep_alive(connection_);
  }

  int status() const { return status_; }

 private:
  std::string Head(int status, absl::string_view content_type, const HttpHeaders& headers) {
    status_ = status;
    std::string head =
        absl::StrCat("HTTP/1.1 ", status, " ", mg_get_response_code_text(connection_, status),
                     "\r\n", "Content-Type: ", content_type, "\r\n");
    std::optional<absl::string_view> connection = header("Connection");
    if (close_ || (connection.has_value() && absl::EqualsIgnoreCase(*connection, "close"))) {
      absl::StrAppend(&head, "Connection: close\r\n");
    }
    for (const auto& [name, value] : always_) absl::StrAppend(&head, name, ": ", value, "\r\n");
    for (const auto& [name, value] : headers) absl::StrAppend(&head, name, ": ", value, "\r\n");
    return head;
  }

  mg_connection* const connection_;
  const mg_request_info* const info_;
  const HttpHeaders& always_;
  int status_ = 0;
  bool close_ = false;
  bool read_started_ = false;
  // Serialises writes: a streamed body is also written by a keep-alive thread.
  absl::Mutex mu_;
};

// Debian 12's civetweb 1.15 loads OpenSSL with dlopen and looks its functions
// up by name into a table of {name, flags, function} entries. OpenSSL 3 no
// longer exports SSL_get_peer_certificate (it is a macro for
// SSL_get1_peer_certificate now), so that entry stays null and civetweb calls
// it for every HTTPS connection, which crashes. This fills the gap: it finds
// the entry naming that function in libcivetweb's memory and, only when its
// function is null, writes OpenSSL 3's. A civetweb that found the function
// itself (or names its table otherwise) is left alone.
struct CivetwebSegments {
  std::vector<std::pair<uintptr_t, size_t>> read_only, writable;
};

int CollectCivetwebSegments(dl_phdr_info* info, size_t, void* out) {
  if (info->dlpi_name == nullptr || std::strstr(info->dlpi_name, "libcivetweb.so") == nullptr) {
    return 0;
  }
  auto* segments = static_cast<CivetwebSegments*>(out);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& header = info->dlpi_phdr[i];
    if (header.p_type != PT_LOAD) continue;
    auto& list = (header.p_flags & PF_W) != 0 ? segments->writable : segments->read_only;
    list.emplace_back(info->dlpi_addr + header.p_vaddr, header.p_memsz);
  }
  return 1;
}

X509* PeerCertificate(const SSL* ssl) { return SSL_get1_peer_certificate(ssl); }

void FillCivetwebTlsGap() {
  CivetwebSegments segments;
  dl_iterate_phdr(&CollectCivetwebSegments, &segments);
  static constexpr char kName[] = "SSL_get_peer_certificate";
  struct Entry {
    const char* name;
    int flags;
    void* function;
  };
  for (const auto& [start, size] : segments.read_only) {
    const char* begin = reinterpret_cast<const char*>(start);
    for (const char* at = begin; at + sizeof(kName) <= begin + size; ++at) {
      if (std::memcmp(at, kName, sizeof(kName)) != 0 || (at != begin && at[-1] != '\0')) continue;
      for (const auto& [data, data_size] : segments.writable) {
        for (uintptr_t slot = data; slot + sizeof(Entry) <= data + data_size;
             slot += alignof(Entry)) {
          auto* entry = reinterpret_cast<Entry*>(slot);
          if (entry->name == at && entry->function == nullptr) {
            entry->function = reinterpret_cast<void*>(&PeerCertificate);
          }
        }
      }
    }
  }
}

// Opens and closes a TCP connection to host:port, IPv4.
void WakeListener(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) == 1) {
    connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  }
  close(fd);
}

// civetweb is initialised once per process, with TLS.
void InitCivetweb() {
  static const bool initialised = [] {
    mg_init_library(MG_FEATURES_TLS);
    FillCivetwebTlsGap();
    return true;
  }();
  (void)initialised;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                              Handler handler) {
  const size_t colon = options.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(options.listen).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen '", options.listen, "': use HOST:PORT, e.g. 127.0.0.1:8080"));
  }
  std::string host = options.listen.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty()) host = "0.0.0.0";
  const bool tls = !options.tls_cert_file.empty();
  if (tls && options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("HTTPS needs both --tls-cert and --tls-key");
  }
  InitCivetweb();
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options), std::move(handler)));
  const HttpServerOptions& o = server->options_;
  const std::string ports = absl::StrCat(host, ":", port, tls ? "s" : "");
  const std::string threads = absl::StrCat(o.threads);
  const std::string request_timeout = absl::StrCat(o.request_timeout_ms);
  const std::string keep_alive_timeout = absl::StrCat(o.keep_alive_timeout_ms);
  std::vector<const char*> config = {
      "listening_ports",
      ports.c_str(),
      "num_threads",
      threads.c_str(),
      "request_timeout_ms",
      request_timeout.c_str(),
      "keep_alive_timeout_ms",
      keep_alive_timeout.c_str(),
      "enable_keep_alive",
      "yes",
      // Streamed pieces (Server-Sent Events) go out at once.
      "tcp_nodelay",
      "1",
      "enable_directory_listing",
      "no",
      // TLS 1.2 and later.
      "ssl_protocol_version",
      "4",
  };
  config.push_back(nullptr);
  mg_callbacks callbacks{};
  callbacks.init_ssl = &HttpServer::InitSsl;
  callbacks.init_connection = [](const mg_connection* connection, void**) {
    static_cast<HttpServer*>(mg_get_user_data(mg_get_context(connection)))
        ->connections_accepted_.fetch_add(1);
    return 0;
  };
  // civetweb's own log lines (a failed handshake, a client that went away)
  // are not exportd's business.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  char error_text[256] = {0};
  unsigned error_code = 0;
  mg_error_data error{&error_code, error_text, sizeof(error_text)};
  mg_init_data init{&callbacks, server.get(), config.data()};
  server->context_ = mg_start2(&init, &error);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on --http-listen '",
                                               server->options_.listen, "': ", error_text));
  }
  for (int i = 0; i < o.threads; ++i)
    server->workers_.emplace_back([s = server.get()] { s->WorkerLoop(); });
  // Also after the start: a civetweb that another user (the metrics exposer)
  // initialised without TLS loads OpenSSL only now.
  if (tls) FillCivetwebTlsGap();
  mg_set_request_handler(server->context_, "/", &HttpServer::HandleRequest, server.get());
  mg_server_port bound[1];
  if (mg_get_server_ports(server->context_, 1, bound) < 1) {
    return absl::UnavailableError(
        absl::StrCat("--http-listen '", server->options_.listen, "': no port is open"));
  }
  server->port_ = bound[0].port;
  server->poke_host_ = host == "0.0.0.0" ? "127.0.0.1" : host;
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (context_ != nullptr) {
    // civetweb's listener thread notices the stop only when its poll() ends,
    // after up to two seconds; a connection to the listener ends it at once.
    std::atomic<bool> stopped{false};
    std::thread stopper([&] {
      mg_stop(context_);
      stopped = true;
    });
    while (!stopped) {
      WakeListener(poke_host_, port_);
      absl::SleepFor(absl::Milliseconds(5));
    }
    stopper.join();
    context_ = nullptr;
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

void HttpServer::RunOnWorker(const std::function<void()>& task) {
  absl::Notification done;
  std::function<void()> run = [&] {
    task();
    done.Notify();
  };
  {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(&run);
  }
  done.WaitForNotification();
}

void HttpServer::WorkerLoop() {
  for (;;) {
    const std::function<void()>* task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](HttpServer* s)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->stopping_ || !s->tasks_.empty(); },
          this));
      if (tasks_.empty()) return;
      task = tasks_.front();
      tasks_.pop_front();
    }
    (*task)();
  }
}

int HttpServer::HandleRequest(mg_connection* connection, void* self) {
  HttpServer* server = static_cast<HttpServer*>(self);
  CivetExchange exchange(connection, server->options_.response_headers);
  if (server->options_.small_stack_handler) {
    server->handler_(exchange);
  } else {
    server->RunOnWorker([&] { server->handler_(exchange); });
  }
  // A handler that answered nothing (it lost the client) leaves a connection
  // that must not be reused.
  if (exchange.status() == 0) mg_disable_connection_keep_alive(connection);
  return exchange.status() != 0 ? exchange.status() : 500;
}

int HttpServer::InitSsl(void* ssl_context, void* self) {
  const HttpServerOptions& o = static_cast<HttpServer*>(self)->options_;
  SSL_CTX* ctx = static_cast<SSL_CTX*>(ssl_context);
  if (SSL_CTX_use_certificate_chain_file(ctx, o.tls_cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, o.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return -1;
  }
  if (!o.tls_client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, o.tls_client_ca_file.c_str(), nullptr) != 1) return -1;
    SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(o.tls_client_ca_file.c_str()));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return 1;
}

}  // namespace exportd::http
