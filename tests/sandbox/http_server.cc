#include "tests/sandbox/http_server.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace exportd::sandbox {
namespace {

constexpr size_t kReadChunk = 256 * 1024;
// Bodies over the limit but under this size are read and thrown away so that the error
// response can be sent on a connection that stays usable; larger ones close the connection.
constexpr size_t kMaxDrainBytes = 256u * 1024 * 1024;

}  // namespace

const std::string* HttpRequest::Header(absl::string_view lowercase_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lowercase_name) return &value;
  }
  return nullptr;
}

absl::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(Options options, Handler handler) {
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options), std::move(handler)));
  http::HttpServerOptions http_options;
  http_options.listen = absl::StrCat(server->options_.host, ":", server->options_.port);
  http_options.threads = server->options_.max_connections;
  http_options.keep_alive_timeout_ms = server->options_.idle_timeout_seconds * 1000;
  // The sandbox's handler is small: no hand-over to a thread with a larger stack.
  http_options.small_stack_handler = true;
  HttpServer* raw = server.get();
  absl::StatusOr<std::unique_ptr<http::HttpServer>> started = http::HttpServer::Start(
      std::move(http_options), [raw](http::HttpExchange& exchange) { raw->Serve(exchange); });
  if (!started.ok()) return started.status();
  server->server_ = *std::move(started);
  server->port_ = server->server_->port();
  return server;
}

HttpServer::HttpServer(Options options, Handler handler)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      max_body_bytes_(options_.max_body_bytes) {}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  if (server_ != nullptr) server_->Stop();
}

void HttpServer::Serve(http::HttpExchange& exchange) {
  HttpRequest request;
  request.method = std::string(exchange.method());
  request.path = std::string(exchange.path());
  request.query = std::string(exchange.query());
  request.target =
      request.query.empty() ? request.path : absl::StrCat(request.path, "?", request.query);
  for (auto& [name, value] : exchange.headers()) {
    request.headers.emplace_back(absl::AsciiStrToLower(name),
                                 std::string(absl::StripAsciiWhitespace(value)));
  }
  const size_t limit = max_body_bytes_.load();
  const int64_t declared = exchange.content_length();
  const std::string* expect = request.Header("expect");
  const bool expects_continue =
      expect != nullptr && absl::EqualsIgnoreCase(*expect, "100-continue");
  bool close = false;
  if (declared >= 0 && static_cast<size_t>(declared) > limit) {
    // Known too large: answer without reading. A client waiting for "100 Continue" never
    // sends the body, and one too large to drain is not read either: both connections close.
    request.body_too_large = true;
    request.declared_body_bytes = static_cast<size_t>(declared);
    close = expects_continue || static_cast<size_t>(declared) > kMaxDrainBytes;
  } else {
    // Content-Length within the limit, or chunked: read it, keeping at most `limit` bytes.
    std::string buffer(kReadChunk, '\0');
    size_t total = 0;
    for (;;) {
      int64_t n = exchange.ReadBody(buffer.data(), buffer.size());
      if (n <= 0) {
        if (n < 0) close = true;
        break;
      }
      total += static_cast<size_t>(n);
      if (total <= limit) {
        request.body.append(buffer.data(), static_cast<size_t>(n));
      } else if (!request.body_too_large) {
        request.body_too_large = true;
        request.body.clear();
      }
      if (total > kMaxDrainBytes) {
        close = true;
        break;
      }
    }
    request.declared_body_bytes = total;
  }
  HttpResponse response;
  handler_(request, &response);
  if (response.drop_connection) {
    exchange.CloseConnection();
    return;
  }
  if (close || response.close_connection) exchange.CloseConnection();
  exchange.Respond(response.status, response.content_type, response.body, response.headers);
}

}  // namespace exportd::sandbox
