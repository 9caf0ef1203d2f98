// iterable-sandbox: runs the Iterable stand-in until SIGINT or SIGTERM.
//
// Prints exactly one line to stdout, "listening on 127.0.0.1:PORT", once it accepts
// connections; everything else goes to stderr. See --help and README.md.

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/sandbox/sandbox.h"

namespace exportd::sandbox {
namespace {

constexpr char kUsage[] = R"(usage: iterable-sandbox [flags]

An HTTP/1.1 stand-in for Iterable's list API (/api/lists, /api/lists/subscribe,
/api/lists/unsubscribe, DELETE /api/lists/{id}) with fault injection and an admin API under
/_sandbox/ (see tests/sandbox/README.md). Prints "listening on HOST:PORT" and serves until
SIGINT or SIGTERM.

  --listen HOST:PORT            address to listen on (default 127.0.0.1:0, 0 = free port)
  --api-key KEY                 accepted Api-Key; repeatable (default: sandbox-key-0123456789abcdef0123)
  --project-type TYPE           email, user_id or hybrid: how the project identifies users (default hybrid)
  --lean true|false             keep each user as two 64-bit digests, for 10M+ member benchmarks;
                                records cannot be read back (default false)
  --max-batch N                 subscribers per subscribe/unsubscribe call (default 10000)
  --max-body-bytes N            request body limit (default 4000000) -> 413 BatchTooLarge
  --threads N                   connections served at once, one thread each (default 256)
  --first-list-id N             first list id handed out (default 10000000001)
  --rate-limit ENDPOINT=N/s     token bucket per endpoint; repeatable. Endpoints: lists,
                                create_list, delete_list, subscribe, unsubscribe, all
  --rate-limit-body json|text   body of 429 answers (default json)
  --retry-after SECONDS         send Retry-After on 429 answers (default: no header)
  --rate-limit-reset true|false JSON 429 answers carry params.rateLimitReset (epoch ms)
  --fail-5xx-ratio R            share (0..1) of /api requests answered 500/502/503
  --fail-status CODE            use this status for injected failures instead
  --seed N                      seed for the ratios (default 1)
  --latency-ms N                delay before each /api answer
  --invalid-list-window-ms N    new lists are unknown to subscribe/unsubscribe for N ms
  --drop-ratio R                share (0..1) of /api requests closed without an answer
  --fail-next [ENDPOINT=]N      the next N requests (of ENDPOINT) answer 503
  --help                        this text
)";

absl::Status Usage(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(message, " (see --help)"));
}

template <typename T>
absl::Status ParseNumber(absl::string_view flag, absl::string_view text, T* out) {
  bool ok;
  if constexpr (std::is_floating_point_v<T>) {
    ok = absl::SimpleAtod(text, out);
  } else {
    ok = absl::SimpleAtoi(text, out);
  }
  if (!ok) return Usage(absl::StrCat(flag, " needs a number, got '", text, "'"));
  return absl::OkStatus();
}

// Fills *options from argv; sets *help when --help was given.
absl::Status ParseFlags(int argc, char** argv, Options* options, bool* help) {
  FaultOptions& faults = options->faults;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    size_t equals = flag.find('=');
    bool inline_value = absl::StartsWith(flag, "--") && equals != std::string::npos;
    if (inline_value) {
      value = flag.substr(equals + 1);
      flag = flag.substr(0, equals);
    }
    if (flag == "--help" || flag == "-h") {
      *help = true;
      return absl::OkStatus();
    }
    if (!inline_value) {
      if (i + 1 >= argc) return Usage(absl::StrCat(flag, " needs a value"));
      value = argv[++i];
    }
    absl::Status status;
    if (flag == "--listen") {
      size_t colon = value.rfind(':');
      if (colon == std::string::npos) return Usage("--listen needs HOST:PORT");
      options->host = value.substr(0, colon);
      status = ParseNumber(flag, value.substr(colon + 1), &options->port);
    } else if (flag == "--api-key") {
      options->api_keys.push_back(value);
    } else if (flag == "--project-type") {
      std::optional<ProjectType> type = ParseProjectType(value);
      if (!type) return Usage("--project-type must be email, user_id or hybrid, got '" + value + "'");
      options->project_type = *type;
    } else if (flag == "--lean") {
      if (value != "true" && value != "false") return Usage("--lean is true or false");
      options->lean = value == "true";
    } else if (flag == "--max-batch") {
      status = ParseNumber(flag, value, &faults.max_batch);
    } else if (flag == "--max-body-bytes") {
      status = ParseNumber(flag, value, &faults.max_body_bytes);
    } else if (flag == "--threads") {
      status = ParseNumber(flag, value, &options->max_connections);
    } else if (flag == "--first-list-id") {
      status = ParseNumber(flag, value, &options->first_list_id);
    } else if (flag == "--rate-limit") {
      status = ParseRateLimitFlag(value, &faults);
    } else if (flag == "--rate-limit-body") {
      if (value != "json" && value != "text") return Usage("--rate-limit-body is json or text");
      faults.rate_limit_body = value == "json" ? RateLimitBody::kJson : RateLimitBody::kText;
    } else if (flag == "--rate-limit-reset") {
      if (value != "true" && value != "false") return Usage("--rate-limit-reset is true or false");
      faults.rate_limit_reset = value == "true";
    } else if (flag == "--retry-after") {
      status = ParseNumber(flag, value, &faults.retry_after_seconds);
    } else if (flag == "--fail-5xx-ratio") {
      status = ParseNumber(flag, value, &faults.fail_5xx_ratio);
    } else if (flag == "--fail-status") {
      status = ParseNumber(flag, value, &faults.fail_status);
    } else if (flag == "--seed") {
      status = ParseNumber(flag, value, &faults.seed);
    } else if (flag == "--latency-ms") {
      status = ParseNumber(flag, value, &faults.latency_ms);
    } else if (flag == "--invalid-list-window-ms") {
      status = ParseNumber(flag, value, &faults.invalid_list_window_ms);
    } else if (flag == "--drop-ratio") {
      status = ParseNumber(flag, value, &faults.drop_ratio);
    } else if (flag == "--fail-next") {
      size_t split = value.find('=');
      if (split != std::string::npos) {
        faults.fail_next_endpoint = value.substr(0, split);
        value = value.substr(split + 1);
      }
      status = ParseNumber(flag, value, &faults.fail_next);
    } else {
      return Usage(absl::StrCat("unknown flag '", flag, "'"));
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  Options options;
  bool help = false;
  if (absl::Status status = ParseFlags(argc, argv, &options, &help); !status.ok()) {
    std::cerr << "iterable-sandbox: " << status.message() << "\n";
    return 2;
  }
  if (help) {
    std::cout << kUsage;
    return 0;
  }
  // Block the stop signals in every thread (threads inherit the mask) and wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  bool default_key = options.api_keys.empty();
  absl::StatusOr<std::unique_ptr<Sandbox>> sandbox = Sandbox::Create(options);
  if (!sandbox.ok()) {
    std::cerr << "iterable-sandbox: " << sandbox.status().message() << "\n";
    return 1;
  }
  if (default_key) {
    std::cerr << "iterable-sandbox: no --api-key given; accepting the default key "
              << kDefaultApiKey << "\n";
  }
  std::string host = options.host == "localhost" ? "127.0.0.1" : options.host;
  std::printf("listening on %s:%d\n", host.c_str(), (*sandbox)->port());
  std::fflush(stdout);

  int received = 0;
  sigwait(&stop_signals, &received);
  std::cerr << "iterable-sandbox: signal " << received << ", shutting down\n";
  (*sandbox)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace exportd::sandbox

int main(int argc, char** argv) { return exportd::sandbox::Run(argc, argv); }
