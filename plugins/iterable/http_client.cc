#include "http_client.h"

#include <curl/curl.h>

#include <array>
#include <cstring>
#include <mutex>

#include "absl/status/status.h"

namespace exportd::iterable {

// CURLSH with one lock per shared data kind, as libcurl asks for threaded use.
struct HttpClient::Share {
  CURLSH* handle = nullptr;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;

  ~Share() {
    if (handle != nullptr) curl_share_cleanup(handle);
  }
};

namespace {

void LockShare(CURL*, curl_lock_data data, curl_lock_access, void* user) {
  static_cast<std::array<std::mutex, CURL_LOCK_DATA_LAST>*>(user)->at(data).lock();
}

void UnlockShare(CURL*, curl_lock_data data, void* user) {
  static_cast<std::array<std::mutex, CURL_LOCK_DATA_LAST>*>(user)->at(data).unlock();
}

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  constexpr size_t kMaxBody = 64 << 20;  // A list of lists is large, but not this large.
  if (body->size() + size * count > kMaxBody) return 0;  // Aborts the transfer.
  body->append(data, size * count);
  return size * count;
}

size_t ReadHeader(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  const std::string_view line(data, size * count);
  constexpr std::string_view kRetryAfter = "retry-after:";
  if (line.size() > kRetryAfter.size() &&
      strncasecmp(line.data(), kRetryAfter.data(), kRetryAfter.size()) == 0) {
    response->retry_after = std::string(line.substr(kRetryAfter.size()));
  } else if (line.rfind("HTTP/", 0) == 0) {
    response->retry_after.reset();  // A new response (after a redirect or 100).
  }
  return size * count;
}

std::string HostOf(std::string_view url) {
  const size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  const size_t end = rest.find_first_of("/?#");
  return std::string(rest.substr(0, end));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(Options options) {
  for (char c : options.api_key) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          "the Iterable API key contains a control character; paste the key again");
    }
  }
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();

  static std::once_flag init_once;
  static CURLcode init_result = CURLE_OK;
  std::call_once(init_once, [] { init_result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (init_result != CURLE_OK) {
    return absl::InternalError(std::string("cannot initialize libcurl: ") +
                               curl_easy_strerror(init_result));
  }

  auto share = std::make_unique<Share>();
  share->handle = curl_share_init();
  if (share->handle == nullptr) return absl::InternalError("cannot create a libcurl share");
  curl_share_setopt(share->handle, CURLSHOPT_LOCKFUNC, LockShare);
  curl_share_setopt(share->handle, CURLSHOPT_UNLOCKFUNC, UnlockShare);
  curl_share_setopt(share->handle, CURLSHOPT_USERDATA, &share->locks);
  curl_share_setopt(share->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(share->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt(share->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);

  std::unique_ptr<HttpClient> client(new HttpClient(std::move(options), std::move(share)));
  const std::string key_header = "Api-Key: " + client->options_.api_key;
  curl_slist* headers = nullptr;
  for (const char* h : {key_header.c_str(), "Content-Type: application/json",
                        "Accept: application/json", "Expect:"}) {
    curl_slist* next = curl_slist_append(headers, h);
    if (next == nullptr) {
      curl_slist_free_all(headers);
      return absl::InternalError("out of memory building HTTP headers");
    }
    headers = next;
  }
  client->headers_ = headers;
  return client;
}

HttpClient::HttpClient(Options options, std::unique_ptr<Share> share)
    : options_(std::move(options)), host_(HostOf(options_.base_url)), share_(std::move(share)) {}

HttpClient::~HttpClient() {
  {
    absl::MutexLock lock(&mu_);
    for (void* handle : idle_handles_) curl_easy_cleanup(static_cast<CURL*>(handle));
    idle_handles_.clear();
  }
  curl_slist_free_all(static_cast<curl_slist*>(headers_));
}

void* HttpClient::AcquireHandle() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_handles_.empty()) {
      void* handle = idle_handles_.back();
      idle_handles_.pop_back();
      return handle;
    }
  }
  return curl_easy_init();
}

void HttpClient::ReleaseHandle(void* handle) {
  absl::MutexLock lock(&mu_);
  idle_handles_.push_back(handle);
}

absl::StatusOr<HttpResponse> HttpClient::Send(std::string_view method, std::string_view path,
                                              std::string_view body) {
  CURL* curl = static_cast<CURL*>(AcquireHandle());
  if (curl == nullptr) return absl::ResourceExhaustedError("cannot create a libcurl handle");
  // Reset clears options but keeps the handle's live connections.
  curl_easy_reset(curl);

  const std::string url = options_.base_url + std::string(path);
  HttpResponse response;
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_SHARE, share_->handle);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(headers_));
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.total_timeout)));
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // Whatever libcurl can decode.
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);   // Never resend the key elsewhere.
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, ReadHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  const std::string method_string(method);  // Must outlive curl_easy_perform.
  if (method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    if (method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
    } else {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method_string.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }

  const CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);  // `error` goes out of scope.
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, nullptr);
  ReleaseHandle(curl);

  if (code != CURLE_OK) {
    const std::string detail = error[0] != 0 ? std::string(error) : curl_easy_strerror(code);
    const std::string message = "cannot reach Iterable at " + host_ + ": " + detail +
                                " (curl error " + std::to_string(static_cast<int>(code)) + ")";
    if (code == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(message);
    return absl::UnavailableError(message);
  }
  response.status = static_cast<int>(status);
  return response;
}

}  // namespace exportd::iterable
