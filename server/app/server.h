// The exportd server: store, secrets, auth, plugins, engine and the gRPC
// services, wired together. main.cc and the tests both use it.
//
//   ServerOptions options;
//   options.listen = "127.0.0.1:0";
//   options.data_dir = "/tmp/x";
//   EXPORTD_ASSIGN_OR_RETURN(auto server, Server::Start(std::move(options)));
//   ... server->port() ...
//   server->Shutdown();
#ifndef EXPORTD_SERVER_APP_SERVER_H_
#define EXPORTD_SERVER_APP_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "exportd/sdk/destination.h"
#include "server/api/limits.h"
#include "server/api/segment_service.h"

namespace exportd::app {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";
  std::string data_dir = "./exportd-data";
  // --store: empty or sqlite:PATH (SQLite; empty is DATA_DIR/exportd.db), or a
  // libpq connection string for PostgreSQL, which several exportd replicas
  // may share (server/store/store_url.h). The data-dir lock applies to SQLite
  // only.
  std::string store;
  // Empty: no plugin directory is loaded.
  std::string plugin_dir;
  // Empty: `<data_dir>/admin.token` is created on first start and used.
  std::string tokens_file;
  // Empty: `<data_dir>/master.key`. Created only for a store that has no
  // secrets and no key check value yet.
  std::string master_key_file;
  // Destinations registered in-process, before the plugin directory (tests).
  std::vector<std::unique_ptr<sdk::Destination>> extra_destinations;
  // Largest message a client may send.
  int max_receive_message_bytes = 4 * 1024 * 1024;
  // Concurrent runs of different exports.
  int run_workers = 2;
  // Run attempts of a run that fails for a retryable reason (--run-attempts),
  // and the backoff before the second (--run-retry-backoff; doubles after).
  int run_attempts = 3;
  absl::Duration run_retry_backoff = absl::Seconds(30);
  // Delivery attempts of one webhook notification (--notify-attempts), and
  // the backoff after the first (--notify-backoff; doubles after, at most
  // 30 minutes).
  int notify_attempts = 8;
  absl::Duration notify_backoff = absl::Seconds(5);
  // This exportd's id in run leases and Run.replica (--replica-id); "host:pid"
  // when empty.
  std::string replica_id;
  // How long a replica's claim on a run lasts unless its heartbeat renews it
  // (--lease-seconds).
  int lease_seconds = 15;
  // The system refresh schedule, e.g. "daily 02:00,14:00 Europe/Berlin".
  std::string system_refresh;
  // An upload that sends nothing for this long is aborted (positive).
  absl::Duration upload_idle_timeout = api::kDefaultUploadIdleTimeout;
  // The memory an upload's rows may take while they are sorted by profile id;
  // beyond, sorted runs go to a temporary file in $TMPDIR (tests make it
  // small to force that; see store::MemberSorter).
  size_t upload_sort_memory_bytes = api::UploadLimits().sort_memory_bytes;
  // An upload that lasts longer than this is aborted (positive).
  absl::Duration upload_max_duration = api::kDefaultUploadMaxDuration;
  // TLS on `listen` (--tls-cert, --tls-key, --tls-client-ca); see
  // tls_credentials.h. Without a certificate the listener is plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Set: clients must present a certificate signed by this CA (mutual TLS).
  std::string tls_client_ca_file;
  // Plaintext on an address other than loopback is refused (bearer tokens
  // would cross the network in clear) unless this is set.
  bool allow_insecure_listen = false;
  // Serve Prometheus metrics at http://HOST:PORT/metrics (--metrics-listen;
  // port 0 picks one). Empty: metrics are counted but not served.
  std::string metrics_listen;
  // Serve the HTTP/JSON API and the web console here (--http-listen; port 0
  // picks one; docs/http-api.md). Empty: no HTTP listener. It has TLS when
  // `listen` has, and the same loopback rule.
  std::string http_listen;
  // HTTP requests served at once (--http-threads).
  int http_threads = 32;
  // How often a quiet Server-Sent Events stream sends a keep-alive comment
  // (tests shorten it).
  absl::Duration http_keep_alive_every = absl::Seconds(15);
  // How often the health service checks that the store answers, and (tests)
  // what it calls instead of reading the store.
  absl::Duration health_probe_every = absl::Seconds(5);
  std::function<absl::Status()> probe_store_for_testing;
};

class Server {
 public:
  // Opens everything and starts serving. Errors say which option is wrong.
  // The data directory is locked for the Server's life: a second Server or
  // exportd on it fails here with FAILED_PRECONDITION, as does a master key
  // other than the one the store's secrets were sealed with.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  ~Server();

  int port() const;
  // The port /metrics is served on; 0 without --metrics-listen.
  int metrics_port() const;
  // The port of the HTTP API and console; 0 without --http-listen.
  int http_port() const;
  // Where the admin token lives when no tokens file is used; empty otherwise.
  const std::string& admin_token_path() const;
  // A summary for the start-up log: address, TLS, data dir, plugins, and a
  // warning when tokens travel in clear beyond this machine.
  std::string Describe() const;
  // Re-reads the TLS certificate, key and client CA (on SIGHUP). New
  // connections get them; open ones keep working. On error the previous
  // certificate stays. Logs the outcome to stderr. FAILED_PRECONDITION when
  // the server runs without TLS.
  absl::Status ReloadCertificates();
  // Stops accepting calls and finishes running work. The store is closed
  // and the data directory unlocked when the Server is destroyed.
  void Shutdown();
  void Wait();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace exportd::app

#endif  // EXPORTD_SERVER_APP_SERVER_H_
