// Throughput benchmark for iterable-sandbox: N client threads (libcurl, keep-alive) send
// subscribe requests of B subscribers each to an in-process sandbox (or to --url).
//
//   iterable_sandbox_bench [--requests 1000] [--batch 1000] [--clients 4] [--url URL]
//                          [--api-key KEY] [--no-fields]
//
// Bodies are generated before the clock starts, so the numbers measure the server plus
// libcurl, not JSON generation on the client.

#include <curl/curl.h>
#include <sys/resource.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/sandbox/sandbox.h"

namespace exportd::sandbox {
namespace {

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double ThreadCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return now.tv_sec + now.tv_nsec / 1e9;
}

size_t Collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// POSTs `body` to `url`; returns the HTTP status (0 on transport error).
long Post(CURL* curl, const std::string& url, const std::string& key, const std::string& body,
          std::string* response) {
  response->clear();
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, ("Api-Key: " + key).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, response);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  return status;
}

int Run(int argc, char** argv) {
  int requests = 1000;
  int batch = 1000;
  int clients = 4;
  bool fields = true;
  std::string url;
  std::string key = kDefaultApiKey;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    bool ok = true;
    if (flag == "--requests") {
      ok = absl::SimpleAtoi(next(), &requests);
    } else if (flag == "--batch") {
      ok = absl::SimpleAtoi(next(), &batch);
    } else if (flag == "--clients") {
      ok = absl::SimpleAtoi(next(), &clients);
    } else if (flag == "--url") {
      url = next();
    } else if (flag == "--api-key") {
      key = next();
    } else if (flag == "--no-fields") {
      fields = false;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: %s [--requests N] [--batch N] [--clients N] [--url URL] "
                   "[--api-key KEY] [--no-fields]\n",
                   argv[0]);
      return 2;
    }
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::unique_ptr<Sandbox> sandbox;
  if (url.empty()) {
    Options options;
    options.faults.max_batch = std::max(batch, 10000);
    auto created = Sandbox::Create(options);
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n", std::string(created.status().message()).c_str());
      return 1;
    }
    sandbox = std::move(*created);
    url = sandbox->base_url();
  }
  CURL* setup = curl_easy_init();
  std::string response;
  if (Post(setup, url + "/api/lists", key, "{\"name\":\"bench\"}", &response) != 200) {
    std::fprintf(stderr, "creating the list failed: %s\n", response.c_str());
    return 1;
  }
  curl_easy_cleanup(setup);
  int64_t list_id = nlohmann::json::parse(response)["listId"].get<int64_t>();

  std::vector<std::string> bodies(requests);
  for (int r = 0; r < requests; ++r) {
    std::string& body = bodies[r];
    body.reserve(static_cast<size_t>(batch) * 100);
    absl::StrAppend(&body, "{\"listId\":", list_id, ",\"subscribers\":[");
    for (int s = 0; s < batch; ++s) {
      int64_t n = static_cast<int64_t>(r) * batch + s;
      if (s > 0) body += ',';
      absl::StrAppend(&body, "{\"email\":\"user", n, "@example.com\"");
      if (fields) {
        absl::StrAppend(&body, ",\"dataFields\":{\"firstName\":\"Name", n % 997,
                        "\",\"score\":", n % 1000, ",\"vip\":", n % 2 == 0 ? "true" : "false", "}");
      }
      body += '}';
    }
    body += "]}";
  }
  size_t body_bytes = bodies.empty() ? 0 : bodies[0].size();

  std::atomic<int> next_request{0};
  std::atomic<int> failures{0};
  std::atomic<int64_t> client_cpu_micros{0};
  double cpu_start = ProcessCpuSeconds();
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      double thread_start = ThreadCpuSeconds();
      CURL* curl = curl_easy_init();
      std::string reply;
      int r;
      while ((r = next_request.fetch_add(1)) < requests) {
        if (Post(curl, url + "/api/lists/subscribe", key, bodies[r], &reply) != 200) {
          failures.fetch_add(1);
        }
      }
      curl_easy_cleanup(curl);
      client_cpu_micros.fetch_add(static_cast<int64_t>((ThreadCpuSeconds() - thread_start) * 1e6));
    });
  }
  for (std::thread& thread : threads) thread.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double cpu = ProcessCpuSeconds() - cpu_start;
  double client_cpu = client_cpu_micros.load() / 1e6;
  std::printf("requests=%d batch=%d clients=%d body_bytes=%zu fields=%s failures=%d\n", requests,
              batch, clients, body_bytes, fields ? "yes" : "no", failures.load());
  std::printf("elapsed=%.3fs  %.1f requests/s  %.0f subscribers/s\n", seconds, requests / seconds,
              static_cast<double>(requests) * batch / seconds);
  if (sandbox) {
    // In-process: everything but the client threads is the server.
    double server_cpu = cpu - client_cpu;
    std::printf(
        "cpu: total=%.2fs client=%.2fs server=%.2fs -> server %.2f ms/request, "
        "%.0f requests per server CPU-second (%.0f subscribers)\n",
        cpu, client_cpu, server_cpu, server_cpu * 1e3 / requests, requests / server_cpu,
        requests * static_cast<double>(batch) / server_cpu);
    std::printf("with 2 dedicated cores shared by client and server: ~%.0f requests/s\n",
                2 * requests / cpu);
    nlohmann::json stats = sandbox->StatsJson();
    std::printf(
        "server: users=%lld subscribe 200s=%lld\n",
        static_cast<long long>(stats["users"].get<int64_t>()),
        static_cast<long long>(stats["requests"]
                                   .value("POST /api/lists/subscribe", nlohmann::json::object())
                                   .value("200", int64_t{0})));
    sandbox->Shutdown();
  }
  curl_global_cleanup();
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace exportd::sandbox

int main(int argc, char** argv) { return exportd::sandbox::Run(argc, argv); }
