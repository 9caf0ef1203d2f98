#include "tests/sandbox/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace exportd::sandbox {
namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kReadChunk = 256 * 1024;
// Bodies over the limit but under this size are read and thrown away so that the error
// response can be sent on a connection that stays usable; larger ones close the connection.
constexpr size_t kMaxDrainBytes = 256u * 1024 * 1024;

enum class ChunkedResult { kIncomplete, kDone, kError, kTooLarge };

// Decodes a complete chunked body starting at data[0]. On kDone, *consumed is the number of
// bytes of `data` the body (with trailers) used.
ChunkedResult DecodeChunked(absl::string_view data, size_t limit, std::string* out,
                            size_t* consumed) {
  out->clear();
  size_t pos = 0;
  while (true) {
    size_t line_end = data.find("\r\n", pos);
    if (line_end == absl::string_view::npos) {
      return line_end - pos > 32 && data.size() - pos > 32 ? ChunkedResult::kError
                                                           : ChunkedResult::kIncomplete;
    }
    absl::string_view size_text = data.substr(pos, line_end - pos);
    size_t semicolon = size_text.find(';');
    if (semicolon != absl::string_view::npos) size_text = size_text.substr(0, semicolon);
    size_text = absl::StripAsciiWhitespace(size_text);
    uint64_t chunk_size = 0;
    if (size_text.empty() || size_text.size() > 15 ||
        !absl::SimpleHexAtoi(size_text, &chunk_size)) {
      return ChunkedResult::kError;
    }
    pos = line_end + 2;
    if (chunk_size == 0) {
      // Optional trailers, then an empty line.
      if (data.size() - pos >= 2 && data.substr(pos, 2) == "\r\n") {
        *consumed = pos + 2;
        return ChunkedResult::kDone;
      }
      size_t end = data.find("\r\n\r\n", pos);
      if (end == absl::string_view::npos) return ChunkedResult::kIncomplete;
      *consumed = end + 4;
      return ChunkedResult::kDone;
    }
    if (out->size() + chunk_size > limit) return ChunkedResult::kTooLarge;
    if (data.size() - pos < chunk_size + 2) return ChunkedResult::kIncomplete;
    if (data.substr(pos + chunk_size, 2) != "\r\n") return ChunkedResult::kError;
    out->append(data.data() + pos, chunk_size);
    pos += chunk_size + 2;
  }
}

// Sends all of `parts`; false when the peer is gone.
bool SendAll(int fd, absl::string_view head, absl::string_view body) {
  iovec iov[2];
  iov[0].iov_base = const_cast<char*>(head.data());
  iov[0].iov_len = head.size();
  iov[1].iov_base = const_cast<char*>(body.data());
  iov[1].iov_len = body.size();
  int first = 0;
  while (first < 2) {
    if (iov[first].iov_len == 0) {
      ++first;
      continue;
    }
    msghdr message{};
    message.msg_iov = &iov[first];
    message.msg_iovlen = 2 - first;
    ssize_t sent = sendmsg(fd, &message, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    size_t left = static_cast<size_t>(sent);
    while (left > 0 && first < 2) {
      size_t step = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + step;
      iov[first].iov_len -= step;
      left -= step;
      if (iov[first].iov_len == 0) ++first;
    }
  }
  return true;
}

bool SendResponse(int fd, const HttpResponse& response, bool close_connection) {
  std::string head = absl::StrCat("HTTP/1.1 ", response.status, " ", ReasonPhrase(response.status),
                                  "\r\nContent-Type: ", response.content_type,
                                  "\r\nContent-Length: ", response.body.size(), "\r\n");
  for (const auto& [name, value] : response.headers)
    absl::StrAppend(&head, name, ": ", value, "\r\n");
  if (close_connection) head += "Connection: close\r\n";
  head += "\r\n";
  return SendAll(fd, head, response.body);
}

// Reads more bytes into *buffer. False on EOF, error or idle timeout.
bool ReadMore(int fd, std::string* buffer) {
  size_t old_size = buffer->size();
  buffer->resize(old_size + kReadChunk);
  while (true) {
    ssize_t got = recv(fd, buffer->data() + old_size, kReadChunk, 0);
    if (got > 0) {
      buffer->resize(old_size + static_cast<size_t>(got));
      return true;
    }
    if (got < 0 && errno == EINTR) continue;
    buffer->resize(old_size);
    return false;
  }
}

// Parses the request line and headers in `head` (without the final blank line).
bool ParseHead(absl::string_view head, HttpRequest* request, bool* http10) {
  size_t line_end = head.find("\r\n");
  absl::string_view request_line = head.substr(0, line_end);
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.rfind(' ');
  if (sp1 == absl::string_view::npos || sp2 == sp1) return false;
  request->method = std::string(request_line.substr(0, sp1));
  request->target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
  absl::string_view version = request_line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return false;
  *http10 = version == "HTTP/1.0";
  if (request->method.empty() || request->target.empty() || request->target[0] != '/') {
    return false;
  }
  size_t question = request->target.find('?');
  request->path = request->target.substr(0, question);
  request->query = question == std::string::npos ? "" : request->target.substr(question + 1);
  request->headers.clear();
  size_t pos = line_end == absl::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == absl::string_view::npos) end = head.size();
    absl::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos || colon == 0) return false;
    request->headers.emplace_back(absl::AsciiStrToLower(line.substr(0, colon)),
                                  std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return true;
}

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
  std::string host = options.host == "localhost" ? "127.0.0.1" : options.host;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(options.port));
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", options.port, " is out of range 0..65535"));
  }
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen host '", options.host, "' is not an IPv4 address (use 127.0.0.1)"));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket(): ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("bind ", host, ":", options.port, ": ", std::strerror(error)));
  }
  if (listen(fd, 1024) != 0) {
    int error = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("listen(): ", std::strerror(error)));
  }
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  int port = ntohs(address.sin_port);
  return std::unique_ptr<HttpServer>(
      new HttpServer(std::move(options), std::move(handler), fd, port));
}

HttpServer::HttpServer(Options options, Handler handler, int listen_fd, int port)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      listen_fd_(listen_fd),
      port_(port),
      max_body_bytes_(options_.max_body_bytes) {
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  stopping_.store(true);
  // Wakes a blocked accept() on Linux.
  ::shutdown(listen_fd_, SHUT_RDWR);
  {
    absl::MutexLock lock(&mu_);  // Wakes the accept loop if it waits for a free slot.
  }
  accept_thread_.join();
  close(listen_fd_);
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, connection] : connections_) {
      if (!connection.done) ::shutdown(connection.fd, SHUT_RDWR);
      threads.push_back(std::move(connection.thread));
    }
  }
  for (std::thread& thread : threads) thread.join();
  absl::MutexLock lock(&mu_);
  connections_.clear();
}

void HttpServer::ReapFinished() {
  std::vector<std::thread> finished;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->second.done) {
        finished.push_back(std::move(it->second.thread));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::thread& thread : finished) thread.join();
}

void HttpServer::AcceptLoop() {
  while (!stopping_.load()) {
    {
      absl::MutexLock lock(&mu_);
      auto has_slot = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_.load() || active_connections_ < options_.max_connections;
      };
      // Await re-evaluates on every unlock of mu_, so Shutdown() only has to touch mu_.
      mu_.Await(absl::Condition(&has_slot));
    }
    if (stopping_.load()) break;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_.load()) break;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // Out of descriptors or similar: back off briefly instead of spinning.
      usleep(10'000);
      continue;
    }
    ReapFinished();
    connections_accepted_.fetch_add(1);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval timeout{};
    timeout.tv_sec = options_.idle_timeout_seconds;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    absl::MutexLock lock(&mu_);
    if (stopping_.load()) {
      close(fd);
      break;
    }
    uint64_t id = next_connection_id_++;
    ++active_connections_;
    Connection& connection = connections_[id];
    connection.fd = fd;
    connection.thread = std::thread([this, id, fd] { ServeConnection(id, fd); });
  }
}

void HttpServer::ServeConnection(uint64_t id, int fd) {
  std::string buffer;
  HttpRequest request;
  HttpResponse response;
  bool keep_going = true;
  bool unread_input = false;  // The last request's body was not consumed.
  while (keep_going && !stopping_.load()) {
    // Headers.
    size_t head_end;
    while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (buffer.size() > kMaxHeaderBytes) {
        HttpResponse too_big;
        too_big.status = 431;
        too_big.content_type = "text/plain";
        too_big.body = "Request headers too large";
        SendResponse(fd, too_big, true);
        keep_going = false;
        break;
      }
      if (!ReadMore(fd, &buffer)) {
        keep_going = false;
        break;
      }
    }
    if (!keep_going) break;
    bool http10 = false;
    if (!ParseHead(absl::string_view(buffer).substr(0, head_end), &request, &http10)) {
      HttpResponse bad;
      bad.status = 400;
      bad.content_type = "text/plain";
      bad.body = "Malformed HTTP request";
      SendResponse(fd, bad, true);
      break;
    }
    bool close_after = http10;
    if (const std::string* connection = request.Header("connection")) {
      std::string value = absl::AsciiStrToLower(*connection);
      if (value.find("close") != std::string::npos) close_after = true;
      if (http10 && value.find("keep-alive") != std::string::npos) close_after = false;
    }
    const std::string* expect = request.Header("expect");
    bool wants_continue = expect != nullptr && absl::AsciiStrToLower(*expect) == "100-continue";
    bool sent_continue = false;
    auto send_continue = [&]() {
      if (wants_continue && !sent_continue) {
        sent_continue = true;
        return SendAll(fd, "HTTP/1.1 100 Continue\r\n\r\n", "");
      }
      return true;
    };
    const size_t limit = max_body_bytes_.load();
    const size_t body_start = head_end + 4;
    size_t request_end = body_start;
    request.body.clear();
    request.body_too_large = false;
    request.declared_body_bytes = 0;
    bool must_close = false;  // Set when the body could not be consumed.

    const std::string* transfer_encoding = request.Header("transfer-encoding");
    if (transfer_encoding != nullptr && absl::AsciiStrToLower(*transfer_encoding) != "identity") {
      if (absl::AsciiStrToLower(*transfer_encoding) != "chunked") {
        HttpResponse bad;
        bad.status = 501;
        bad.content_type = "text/plain";
        bad.body = "Only chunked transfer encoding is supported";
        SendResponse(fd, bad, true);
        break;
      }
      if (!send_continue()) break;
      ChunkedResult result;
      size_t consumed = 0;
      while ((result = DecodeChunked(absl::string_view(buffer).substr(body_start), limit,
                                     &request.body, &consumed)) == ChunkedResult::kIncomplete) {
        if (!ReadMore(fd, &buffer)) {
          keep_going = false;
          break;
        }
      }
      if (!keep_going) break;
      if (result == ChunkedResult::kError) {
        HttpResponse bad;
        bad.status = 400;
        bad.content_type = "text/plain";
        bad.body = "Malformed chunked body";
        SendResponse(fd, bad, true);
        break;
      }
      if (result == ChunkedResult::kTooLarge) {
        request.body.clear();
        request.body_too_large = true;
        request.declared_body_bytes = limit + 1;
        must_close = true;
      } else {
        request.declared_body_bytes = request.body.size();
        request_end = body_start + consumed;
      }
    } else {
      size_t content_length = 0;
      if (const std::string* length_text = request.Header("content-length")) {
        uint64_t parsed = 0;
        if (!absl::SimpleAtoi(*length_text, &parsed)) {
          HttpResponse bad;
          bad.status = 400;
          bad.content_type = "text/plain";
          bad.body = "Malformed Content-Length";
          SendResponse(fd, bad, true);
          break;
        }
        content_length = static_cast<size_t>(parsed);
      }
      request.declared_body_bytes = content_length;
      if (content_length > limit) {
        request.body_too_large = true;
        if (wants_continue || content_length > kMaxDrainBytes) {
          // The client waits for our verdict (or the body is absurd): answer and close.
          must_close = true;
        } else {
          // Read and discard the body so the connection stays in sync.
          size_t have = buffer.size() - body_start;
          size_t left = content_length > have ? content_length - have : 0;
          buffer.erase(0, std::min(buffer.size(), body_start + content_length));
          while (left > 0 && keep_going) {
            buffer.clear();
            if (!ReadMore(fd, &buffer)) {
              keep_going = false;
              break;
            }
            size_t take = std::min(left, buffer.size());
            left -= take;
            buffer.erase(0, take);
          }
          if (!keep_going) break;
          request_end = 0;  // Already erased.
        }
      } else {
        if (buffer.size() - body_start < content_length) {
          if (!send_continue()) break;
          buffer.reserve(body_start + content_length);
          while (buffer.size() - body_start < content_length) {
            if (!ReadMore(fd, &buffer)) {
              keep_going = false;
              break;
            }
          }
          if (!keep_going) break;
        }
        request.body.assign(buffer, body_start, content_length);
        request_end = body_start + content_length;
      }
    }
    if (!must_close) buffer.erase(0, request_end);
    unread_input = must_close;

    response = HttpResponse();
    handler_(request, &response);
    if (response.drop_connection) break;
    close_after = close_after || must_close || response.close_connection;
    if (!SendResponse(fd, response, close_after)) break;
    if (close_after) break;
  }
  ::shutdown(fd, SHUT_WR);
  if (unread_input) {
    // Closing with unread input makes the kernel send RST, which can destroy the response the
    // client has not read yet: drain for a moment (Shutdown() cuts this short).
    timeval timeout{};
    timeout.tv_sec = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    char sink[16384];
    size_t drained = 0;
    while (drained < kMaxDrainBytes) {
      ssize_t got = recv(fd, sink, sizeof(sink), 0);
      if (got <= 0) break;
      drained += static_cast<size_t>(got);
    }
  }
  absl::MutexLock lock(&mu_);
  close(fd);
  --active_connections_;
  auto it = connections_.find(id);
  if (it != connections_.end()) it->second.done = true;
}

}  // namespace exportd::sandbox
