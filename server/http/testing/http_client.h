// A blocking HTTP client for tests of exportd's HTTP listener, on libcurl.
//
//   HttpClient client("http://127.0.0.1:" + std::to_string(port));
//   HttpResult r = client.Post("/v1/exportd.v1.AuditService/WhoAmI", "{}", kAdmin);
//   EXPECT_EQ(r.status, 200) << r.body;
//   EXPECT_EQ(r.Header("content-type"), "application/json");
#ifndef EXPORTD_SERVER_HTTP_TESTING_HTTP_CLIENT_H_
#define EXPORTD_SERVER_HTTP_TESTING_HTTP_CLIENT_H_

#include <curl/curl.h>

#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace exportd::http::testing {

struct HttpResult {
  // 0 when no answer came (connection refused, TLS handshake failed).
  long status = 0;
  std::string body;
  // Lowercased names.
  std::multimap<std::string, std::string> headers;
  // curl's message when the transfer failed.
  std::string error;

  std::string Header(const std::string& lowercase_name) const {
    auto it = headers.find(lowercase_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct HttpRequest {
  std::string method = "POST";
  std::string path;
  std::string content_type = "application/json";
  std::string body;
  // Empty: no Authorization header.
  std::string token;
  std::vector<std::string> headers;  // "Name: value"
  // Set: the body is read from here as it is sent (chunked), piece by piece;
  // return 0 at the end.
  std::function<size_t(char* buffer, size_t size)> read_body;
  // Set: the answer's body is passed here as it arrives (not kept in the
  // result); return false to hang up.
  std::function<bool(absl::string_view data)> write_body;
};

// TLS settings for an https:// base URL.
struct HttpTls {
  std::string ca_file;
  std::string client_cert_file;
  std::string client_key_file;
};

class HttpClient {
 public:
  explicit HttpClient(std::string base_url, HttpTls tls = {})
      : base_url_(std::move(base_url)), tls_(std::move(tls)) {}

  HttpResult Send(const HttpRequest& request) const {
    HttpResult result;
    CURL* curl = curl_easy_init();
    const std::string url = base_url_ + request.path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (getenv("HTTP_CLIENT_VERBOSE")) curl_easy_setopt(curl, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_slist* headers = nullptr;
    if (!request.token.empty()) {
      headers = curl_slist_append(headers, ("Authorization: Bearer " + request.token).c_str());
    }
    if (!request.content_type.empty()) {
      headers = curl_slist_append(headers, ("Content-Type: " + request.content_type).c_str());
    }
    // No "Expect: 100-continue" pause.
    headers = curl_slist_append(headers, "Expect:");
    for (const std::string& h : request.headers) headers = curl_slist_append(headers, h.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (request.method == "GET") {
      curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else if (request.read_body) {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, &HttpClient::Read);
      curl_easy_setopt(curl, CURLOPT_READDATA, &request.read_body);
      headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    } else {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    }
    if (!tls_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, tls_.ca_file.c_str());
    if (!tls_.client_cert_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSLCERT, tls_.client_cert_file.c_str());
      curl_easy_setopt(curl, CURLOPT_SSLKEY, tls_.client_key_file.c_str());
    }
    if (request.write_body) {
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &HttpClient::WriteTo);
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &request.write_body);
    } else {
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &HttpClient::Write);
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
    }
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &HttpClient::HeaderLine);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result.headers);
    CURLcode code = curl_easy_perform(curl);
    if (code != CURLE_OK) {
      result.error = curl_easy_strerror(code);
    } else {
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return result;
  }

  HttpResult Post(const std::string& path, const std::string& body, const std::string& token,
                  const std::string& content_type = "application/json") const {
    HttpRequest request;
    request.path = path;
    request.body = body;
    request.token = token;
    request.content_type = content_type;
    return Send(request);
  }

  HttpResult Get(const std::string& path) const {
    HttpRequest request;
    request.method = "GET";
    request.path = path;
    request.content_type.clear();
    return Send(request);
  }

 private:
  static size_t Write(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }
  static size_t WriteTo(char* data, size_t size, size_t n, void* sink) {
    auto& write = *static_cast<const std::function<bool(absl::string_view)>*>(sink);
    return write(absl::string_view(data, size * n)) ? size * n : 0;
  }
  static size_t Read(char* buffer, size_t size, size_t n, void* source) {
    return (*static_cast<std::function<size_t(char*, size_t)>*>(source))(buffer, size * n);
  }
  static size_t HeaderLine(char* data, size_t size, size_t n, void* out) {
    std::string line(data, size * n);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      static_cast<std::multimap<std::string, std::string>*>(out)->emplace(
          absl::AsciiStrToLower(line.substr(0, colon)),
          std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
    }
    return size * n;
  }

  std::string base_url_;
  HttpTls tls_;
};

}  // namespace exportd::http::testing

#endif  // EXPORTD_SERVER_HTTP_TESTING_HTTP_CLIENT_H_
