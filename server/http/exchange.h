// One HTTP request and its response, as the API gateway sees it: the request
// line, headers, a body read as it arrives, and a response sent whole or as a
// stream. http_server.cc implements it on civetweb; tests may fake it.
#ifndef EXPORTD_SERVER_HTTP_EXCHANGE_H_
#define EXPORTD_SERVER_HTTP_EXCHANGE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace exportd::http {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  // "GET", "POST", ...
  virtual absl::string_view method() const = 0;
  // The path without the query, not URL-decoded: "/v1/exportd.v1.RunService/GetRun".
  virtual absl::string_view path() const = 0;
  // The text after '?', without it; empty when absent.
  virtual absl::string_view query() const = 0;
  // The first header of that name (case-insensitive), or nullopt.
  virtual std::optional<absl::string_view> header(absl::string_view name) const = 0;
  // Every header, in order, as sent.
  virtual HttpHeaders headers() const = 0;
  // The declared body size (Content-Length); -1 when not declared (chunked).
  virtual int64_t content_length() const = 0;
  // The caller's address as gRPC spells a peer: "ipv4:127.0.0.1:51234".
  virtual std::string peer() const = 0;
  // The PEM of the client certificate the TLS handshake verified; empty when
  // there is none (no TLS, or no client CA).
  virtual std::string client_certificate_pem() const = 0;

  // Reads up to `size` bytes of the body into `buffer`: the count, 0 at its
  // end, -1 when the connection failed.
  virtual int64_t ReadBody(char* buffer, size_t size) = 0;

  // Sends a whole response with a Content-Length.
  virtual void Respond(int status, absl::string_view content_type, absl::string_view body,
                       const HttpHeaders& headers = {}) = 0;

  // Starts a response whose body follows in pieces (chunked). False when the
  // client is gone.
  virtual bool StartStream(int status, absl::string_view content_type,
                           const HttpHeaders& headers = {}) = 0;
  // Sends one piece of a streamed body; safe to call from another thread
  // than StartStream's (calls are serialised). False when the client is gone.
  virtual bool WriteStream(absl::string_view data) = 0;
  // Ends a streamed body.
  virtual void EndStream() = 0;

  // Closes the connection after this exchange instead of keeping it for the
  // next request. An exchange that sends no response at all closes it too.
  virtual void CloseConnection() = 0;
};

}  // namespace exportd::http

#endif  // EXPORTD_SERVER_HTTP_EXCHANGE_H_
