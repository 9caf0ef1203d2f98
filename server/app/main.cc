// exportd: the export service. See README.md and `exportd --help`.
#include <signal.h>

#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "exportd/sdk/destination.h"
#include "server/app/server.h"
#include "server/common/log.h"
#include "server/destinations/plugin_loader.h"

namespace {

constexpr char kUsage[] = R"(exportd: exports customer segments to marketing destinations.

Usage: exportd [flags]
  --listen HOST:PORT        where to serve gRPC (default 127.0.0.1:50051; port 0 picks one)
  --data-dir DIR            where the SQLite store, master key and admin token live
                            (default ./exportd-data)
  --store URL               sqlite:PATH (default DIR/exportd.db), or a PostgreSQL libpq
                            connection string (postgresql://USER@HOST:PORT/DB or
                            'host=HOST dbname=DB user=USER') that several exportd replicas
                            share; the password only from PGPASSWORD or a passfile
  --plugin-dir DIR          destination plugins to load (default: the build's plugins/
                            or the installed lib/exportd/plugins)
  --tokens-file FILE        callers, one '<token> <principal> <role>' per line (the token may be
                            sha256:<hex> or cert:<identity>), mode 0600; without it,
                            DIR/admin.token is created and accepted as the admin
  --master-key-file FILE    the key that encrypts secrets (default DIR/master.key)
  --tls-cert FILE           serve TLS with this PEM certificate (then its intermediates);
                            SIGHUP re-reads the TLS files, open connections stay
  --tls-key FILE            the PEM private key of --tls-cert
  --tls-client-ca FILE      require client certificates signed by this PEM CA (mutual TLS);
                            tokens-file lines 'cert:<identity> <principal> <role>' map them
  --allow-insecure-listen   serve plaintext on an address other than loopback (behind a TLS
                            proxy only: bearer tokens travel in clear)
  --run-workers N           exports run concurrently (default 2)
  --run-attempts N          run attempts of a run that fails for a retryable reason, the
                            first included (default 3; a plugin's request retries are its own)
  --run-retry-backoff D     wait before the second run attempt, doubled for each one after
                            (default 30s; e.g. 30s, 2m)
  --notify-attempts N       delivery attempts of one webhook notification (default 8)
  --notify-backoff D        wait after the first failed webhook delivery, doubled for each
                            one after, at most 30m (default 5s; docs/notifications.md)
  --replica-id ID           this exportd's name in run leases and in each run's replica
                            (default host:pid)
  --lease-seconds N         a claim on a run lasts N seconds unless renewed by the heartbeat;
                            another replica takes an expired run over (default 15)
  --system-refresh SPEC     the refresh schedule exports can follow, e.g.
                            "daily 02:00,14:00 Europe/Berlin" or "weekly mon,thu 06:30 UTC"
                            (exportctl --follow-system-refresh; without it such exports are
                            refused); the start-up log shows it and its next time
  --upload-idle-timeout D   abort an upload that sends nothing for D (default 60s)
  --upload-max-duration D   abort an upload that lasts longer than D (default 1h); durations
                            are written like 90s, 5m, 1h30m
  --http-listen HOST:PORT   serve the HTTP/JSON API under /v1/ and the web console under /
                            (docs/http-api.md; port 0 picks one; IPv4); off by default. HTTPS
                            with --tls-cert/--tls-key, client certificates with --tls-client-ca
  --http-threads N          HTTP requests served at once (default 32; an open WatchRun
                            stream holds one)
  --metrics-listen HOST:PORT
                            serve Prometheus metrics at http://HOST:PORT/metrics (port 0
                            picks one; docs/metrics.md lists them); off by default
  --log-format text|json    log lines as text (default) or as one JSON object per line
                            (time, level, component, run_id, export, segment, message)
  --version                 print the version and the plugin ABI version
  --help                    this text
)";

}  // namespace

int main(int argc, char** argv) {
  exportd::app::ServerOptions options;
  bool plugin_dir_set = false;
  bool json_log = false;
  // Flags are read before the log is set up (--log-format may come last), so
  // --help, --version and bad flags answer on stdout/stderr directly, as a
  // command line tool does; every line after start-up goes through the log
  // (server/common/log.h), so --log-format json holds for it.
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    auto take = [&](const char* name, std::string& out) {
      std::string prefix = std::string(name) + "=";
      if (arg == name && i + 1 < argc) {
        out = argv[++i];
        return true;
      }
      if (absl::StartsWith(arg, prefix)) {
        out = arg.substr(prefix.size());
        return true;
      }
      return false;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--version") {
      std::cout << "exportd " << EXPORTD_VERSION << " (plugin ABI " << exportd::sdk::kAbiVersion
                << ")\n";
      return 0;
    } else if (take("--listen", options.listen) || take("--data-dir", options.data_dir) ||
               take("--store", options.store) ||
               take("--tokens-file", options.tokens_file) ||
               take("--master-key-file", options.master_key_file) ||
               take("--system-refresh", options.system_refresh) ||
               take("--tls-cert", options.tls_cert_file) ||
               take("--tls-key", options.tls_key_file) ||
               take("--tls-client-ca", options.tls_client_ca_file) ||
               take("--metrics-listen", options.metrics_listen) ||
               take("--http-listen", options.http_listen)) {
    } else if (arg == "--allow-insecure-listen") {
      options.allow_insecure_listen = true;
    } else if (take("--plugin-dir", options.plugin_dir)) {
      plugin_dir_set = true;
    } else if (take("--upload-idle-timeout", value) || take("--upload-max-duration", value)) {
      const bool idle = absl::StartsWith(arg, "--upload-idle-timeout");
      absl::Duration& out = idle ? options.upload_idle_timeout : options.upload_max_duration;
      if (!absl::ParseDuration(value, &out)) {
        std::cerr << "exportd: " << (idle ? "--upload-idle-timeout" : "--upload-max-duration")
                  << " '" << value << "' is not a duration; write e.g. 60s, 5m or 1h\n";
        return 2;
      }
    } else if (take("--run-attempts", value) || take("--lease-seconds", value)) {
      const bool attempts = absl::StartsWith(arg, "--run-attempts");
      int& out = attempts ? options.run_attempts : options.lease_seconds;
      if (!absl::SimpleAtoi(value, &out) || out < 1) {
        std::cerr << "exportd: " << (attempts ? "--run-attempts" : "--lease-seconds")
                  << " must be a whole number of at least 1, got '" << value << "'\n";
        return 2;
      }
    } else if (take("--notify-attempts", value)) {
      if (!absl::SimpleAtoi(value, &options.notify_attempts) || options.notify_attempts < 1) {
        std::cerr << "exportd: --notify-attempts must be a whole number of at least 1, got '"
                  << value << "'\n";
        return 2;
      }
    } else if (take("--notify-backoff", value)) {
      if (!absl::ParseDuration(value, &options.notify_backoff) ||
          options.notify_backoff < absl::ZeroDuration() ||
          options.notify_backoff == absl::InfiniteDuration()) {
        std::cerr << "exportd: --notify-backoff '" << value
                  << "' is not a duration; write e.g. 5s or 1m\n";
        return 2;
      }
    } else if (take("--run-retry-backoff", value)) {
      if (!absl::ParseDuration(value, &options.run_retry_backoff) ||
          options.run_retry_backoff < absl::ZeroDuration() ||
          options.run_retry_backoff == absl::InfiniteDuration()) {
        std::cerr << "exportd: --run-retry-backoff '" << value
                  << "' is not a duration; write e.g. 30s or 2m\n";
        return 2;
      }
    } else if (take("--replica-id", options.replica_id)) {
      if (options.replica_id.empty()) {
        std::cerr << "exportd: --replica-id must not be empty; leave it out for host:pid\n";
        return 2;
      }
    } else if (take("--log-format", value)) {
      absl::StatusOr<exportd::LogFormat> format = exportd::ParseLogFormat(value);
      if (!format.ok()) {
        std::cerr << "exportd: " << format.status().message() << "\n";
        return 2;
      }
      exportd::SetLogFormat(*format);
      json_log = *format == exportd::LogFormat::kJson;
    } else if (take("--http-threads", value)) {
      if (!absl::SimpleAtoi(value, &options.http_threads) || options.http_threads < 1) {
        std::cerr << "exportd: --http-threads must be a whole number of at least 1, got '"
                  << value << "'\n";
        return 2;
      }
    } else if (take("--run-workers", value)) {
      options.run_workers = std::atoi(value.c_str());
      if (options.run_workers < 1) {
        std::cerr << "exportd: --run-workers must be at least 1, got '" << value << "'\n";
        return 2;
      }
    } else {
      std::cerr << "exportd: unknown flag '" << arg << "'\n\n" << kUsage;
      return 2;
    }
  }
  if (!plugin_dir_set) options.plugin_dir = exportd::destinations::DefaultPluginDir(argv[0]).string();

  // Signals are taken by a thread of their own; block them everywhere else.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = exportd::app::Server::Start(std::move(options));
  const exportd::LogFields fields{"server"};
  if (!server.ok()) {
    exportd::Log(exportd::LogLevel::kError, fields, server.status().message());
    return 1;
  }
  if (json_log) {
    for (absl::string_view line : absl::StrSplit((*server)->Describe(), '\n')) {
      exportd::Log(exportd::LogLevel::kInfo, fields, line);
    }
  } else {
    // The text log's start-up block, as exportd always printed it: one write.
    std::cerr << (*server)->Describe() << std::endl;
  }
  std::thread waiter([&] {
    int signal = 0;
    // SIGHUP re-reads the TLS certificate (ReloadCertificates logs how it went);
    // SIGINT and SIGTERM stop the server.
    while (sigwait(&signals, &signal) == 0 && signal == SIGHUP) {
      (*server)->ReloadCertificates().IgnoreError();
    }
    exportd::Log(exportd::LogLevel::kInfo, fields,
                 absl::StrCat(strsignal(signal), ", shutting down"));
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  return 0;
}
