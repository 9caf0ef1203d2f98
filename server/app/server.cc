#include "server/app/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/api/connection_service.h"
#include "server/app/health.h"
#include "server/api/destination_service.h"
#include "server/api/export_service.h"
#include "server/api/master_key.h"
#include "server/api/run_service.h"
#include "server/api/segment_service.h"
#include "server/api/server_service.h"
#include "server/api/tls_credentials.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/common/terminal_text.h"
#include "server/engine/engine.h"
#include "server/engine/lease.h"
#include "server/notify/notifier.h"
#include "server/http/http_api.h"
#include "server/observability/metrics.h"
#include "server/destinations/plugin_loader.h"
#include "server/store/data_dir.h"
#include "server/store/store_url.h"
#include "server/store/timed_store.h"

namespace exportd::app {
// The assembly wires the API layer's services; their names read as they do there.
using namespace ::exportd::api;  // NOLINT(build/namespaces)

namespace {

// The flag combinations that cannot serve safely, before anything is opened.
absl::Status CheckListenSecurity(const ServerOptions& o) {
  const bool tls = !o.tls_cert_file.empty() || !o.tls_key_file.empty();
  if (!o.tls_client_ca_file.empty() && !tls) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-client-ca '", o.tls_client_ca_file,
        "' needs --tls-cert and --tls-key: client certificates are checked only over TLS"));
  }
  if (!tls && !o.allow_insecure_listen && !o.http_listen.empty() &&
      !IsLoopbackListenAddress(o.http_listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http-listen '", o.http_listen,
        "' is reachable from other machines and exportd has no TLS certificate, so bearer "
        "tokens would cross the network in clear; pass --tls-cert FILE --tls-key FILE (the HTTP "
        "listener then serves HTTPS), listen on 127.0.0.1, or pass --allow-insecure-listen when a "
        "TLS proxy in front of exportd is the only way in"));
  }
  if (!tls && !o.allow_insecure_listen && !IsLoopbackListenAddress(o.listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen '", o.listen,
        "' is reachable from other machines and exportd has no TLS certificate, so bearer "
        "tokens would cross the network in clear; pass --tls-cert FILE --tls-key FILE, listen on "
        "127.0.0.1, or pass --allow-insecure-listen when a TLS proxy in front of exportd is the "
        "only way in"));
  }
  return absl::OkStatus();
}

// The full names of the services exportd serves, as the health service reports them.
std::vector<const char*> ServiceNames() {
  return {v1::ConnectionService::service_full_name(), v1::SegmentService::service_full_name(),
          v1::ExportService::service_full_name(),     v1::DestinationService::service_full_name(),
          v1::AuditService::service_full_name(),      v1::RunService::service_full_name(),
          v1::ServerService::service_full_name()};
}

}  // namespace

struct Server::Impl {
  // First, so that it is released last, after the store is closed.
  std::unique_ptr<store::DataDirLock> data_dir_lock;
  ServerOptions options;
  // Before everything that counts in it, so that it goes last.
  std::unique_ptr<observability::Metrics> metrics;
  int metrics_port = 0;
  std::string admin_token_path;
  store::StoreUrl store_url;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<crypto::SecretBox> secrets;
  std::unique_ptr<auth::Authenticator> authenticator;
  std::unique_ptr<destinations::DestinationRegistry> registry;
  std::unique_ptr<ConnectionService> connections;
  std::unique_ptr<SegmentService> segments;
  std::unique_ptr<ExportService> exports;
  std::unique_ptr<DestinationService> destinations;
  std::unique_ptr<AuditService> audit;
  // Before engine, which wakes it when a run queued notifications.
  std::unique_ptr<notify::Notifier> notifier;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<RunService> runs;
  std::unique_ptr<ServerService> server_status;
  // Before grpc_server: gRPC asks it for the certificate until the server is gone.
  std::unique_ptr<ServerTls> tls;
  std::unique_ptr<grpc::Server> grpc_server;
  // After grpc_server: it calls into it through the in-process channel.
  std::unique_ptr<http::HttpApi> http;
  // After grpc_server: it reports to the server's health service.
  std::unique_ptr<HealthReporter> health;
  int port = 0;
  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  s.options = std::move(options);
  const ServerOptions& o = s.options;
  EXPORTD_RETURN_IF_ERROR(CheckListenSecurity(o));
  s.metrics = std::make_unique<observability::Metrics>(EXPORTD_VERSION, sdk::kAbiVersion);
  if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
    TlsFiles files;
    files.cert_file = o.tls_cert_file;
    files.key_file = o.tls_key_file;
    files.client_ca_file = o.tls_client_ca_file;
    EXPORTD_ASSIGN_OR_RETURN(s.tls, ServerTls::Create(std::move(files)));
  }
  for (const auto& [flag, value] : {std::pair<const char*, absl::Duration>(
                                        "--upload-idle-timeout", o.upload_idle_timeout),
                                    {"--upload-max-duration", o.upload_max_duration}}) {
    if (value <= absl::ZeroDuration() || value == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", absl::FormatDuration(value),
                       ": must be a positive, finite duration such as 60s, 5m or 1h"));
    }
  }
  EXPORTD_ASSIGN_OR_RETURN(s.store_url, store::ParseStoreUrl(o.store, o.data_dir));
  const bool sqlite = s.store_url.kind == store::StoreUrl::Kind::kSqlite;
  EXPORTD_ASSIGN_OR_RETURN(std::string warning, store::PrepareDataDir(o.data_dir));
  if (!warning.empty()) Log(LogLevel::kWarning, {"server"}, absl::StrCat("warning: ", warning));
  if (sqlite) {
    // Before anything in the directory is opened: two exportd on one SQLite
    // store would run the same schedules twice. On PostgreSQL, replicas are
    // expected: the store's leases keep them apart.
    EXPORTD_ASSIGN_OR_RETURN(s.data_dir_lock, store::DataDirLock::Acquire(o.data_dir));
  }
  EXPORTD_ASSIGN_OR_RETURN(s.store, store::OpenStore(s.store_url));
  if (!o.metrics_listen.empty()) {
    // Every store operation's latency, for every store, measured in one place.
    observability::Metrics* metrics = s.metrics.get();
    s.store = store::TimeStore(std::move(s.store),
                               [metrics](absl::string_view operation, absl::Duration took) {
                                 metrics->StoreOperation(operation, took);
                               });
  }
  // Every replica of one store must share the key: one with another key is
  // refused here (the key's check value is in the store).
  EXPORTD_ASSIGN_OR_RETURN(
      s.secrets,
      OpenMasterKey(*s.store,
                    o.master_key_file.empty() ? o.data_dir + "/master.key" : o.master_key_file,
                    s.store_url.name));
  if (o.tokens_file.empty()) {
    s.admin_token_path = o.data_dir + "/admin.token";
    EXPORTD_ASSIGN_OR_RETURN(s.authenticator,
                             auth::Authenticator::FromAdminTokenFile(s.admin_token_path));
  } else {
    EXPORTD_ASSIGN_OR_RETURN(s.authenticator, auth::Authenticator::FromTokensFile(o.tokens_file));
  }
  s.registry = std::make_unique<destinations::DestinationRegistry>();
  for (auto& destination : s.options.extra_destinations) {
    EXPORTD_RETURN_IF_ERROR(s.registry->Register(std::move(destination), ""));
  }
  s.options.extra_destinations.clear();
  if (!o.plugin_dir.empty()) {
    EXPORTD_RETURN_IF_ERROR(destinations::LoadPluginDirectory(o.plugin_dir, *s.registry));
  }
  s.metrics->Plugins(static_cast<std::int64_t>(s.registry->List().size()),
                     static_cast<std::int64_t>(s.registry->refused().size()));

  notify::NotifierOptions notifier_options;
  notifier_options.replica_id = o.replica_id.empty() ? engine::DefaultReplicaId() : o.replica_id;
  notifier_options.max_attempts = o.notify_attempts;
  notifier_options.backoff_base = o.notify_backoff;
  notifier_options.metrics = s.metrics.get();
  EXPORTD_ASSIGN_OR_RETURN(s.notifier, notify::Notifier::Create(s.store.get(), s.secrets.get(),
                                                                std::move(notifier_options)));
  s.notifier->Start();

  engine::EngineOptions engine_options;
  engine_options.notifications_queued = [notifier = s.notifier.get()] { notifier->Wake(); };
  engine_options.workers = o.run_workers;
  engine_options.max_attempts = o.run_attempts;
  engine_options.retry_base = o.run_retry_backoff;
  engine_options.replica_id = o.replica_id;
  engine_options.lease = absl::Seconds(o.lease_seconds);
  // SQLite: the data directory is locked, so no other exportd shares this
  // store and the leases in it are a previous process's; its runs resume at
  // once. PostgreSQL: only this replica id's own leases are.
  engine_options.only_replica = sqlite;
  engine_options.metrics = s.metrics.get();
  engine_options.principal_role = [auth = s.authenticator.get()](const std::string& principal) {
    return auth->RoleOf(principal);
  };
  if (!o.system_refresh.empty()) {
    auto refresh = engine::RefreshSchedule::Parse(o.system_refresh);
    if (!refresh.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--system-refresh: ", refresh.status().message()));
    }
    engine_options.system_refresh = *refresh;
  }
  EXPORTD_ASSIGN_OR_RETURN(
      s.engine, engine::Engine::Create(s.store.get(), s.secrets.get(), s.registry.get(),
                                       std::move(engine_options)));
  EXPORTD_RETURN_IF_ERROR(s.engine->Start());

  ServiceDeps deps;
  deps.engine = s.engine.get();
  deps.store = s.store.get();
  deps.secrets = s.secrets.get();
  deps.authenticator = s.authenticator.get();
  deps.registry = s.registry.get();
  deps.metrics = s.metrics.get();
  s.connections = std::make_unique<ConnectionService>(deps);
  s.segments = std::make_unique<SegmentService>(
      deps, UploadLimits{o.upload_idle_timeout, o.upload_max_duration, o.upload_sort_memory_bytes});
  s.exports = std::make_unique<ExportService>(deps);
  s.destinations = std::make_unique<DestinationService>(deps);
  s.audit = std::make_unique<AuditService>(deps);
  s.runs = std::make_unique<RunService>(deps);
  ServerIdentity identity;
  identity.version = EXPORTD_VERSION;
  identity.store_kind = sqlite ? "sqlite" : "postgresql";
  // StoreUrl::name: the SQLite path, or "DBNAME on HOST:PORT" without the user.
  identity.store_location = s.store_url.name;
  s.server_status = std::make_unique<ServerService>(deps, std::move(identity));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      o.listen, s.tls != nullptr ? s.tls->credentials() : grpc::InsecureServerCredentials(),
      &s.port);
  builder.SetMaxReceiveMessageSize(o.max_receive_message_bytes);
  builder.RegisterService(s.connections.get());
  builder.RegisterService(s.segments.get());
  builder.RegisterService(s.exports.get());
  builder.RegisterService(s.destinations.get());
  builder.RegisterService(s.audit.get());
  builder.RegisterService(s.runs.get());
  builder.RegisterService(s.server_status.get());
  s.grpc_server = builder.BuildAndStart();
  if (s.grpc_server == nullptr || s.port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on --listen '", o.listen,
        "': the address is in use or invalid; use HOST:PORT, e.g. 127.0.0.1:50051"));
  }
  // A plugin library that was refused leaves the destinations (and so
  // exportd) NOT_SERVING until it is fixed and exportd restarted.
  HealthOptions health;
  for (const char* name : ServiceNames()) health.services.push_back(name);
  health.destination_service = v1::DestinationService::service_full_name();
  health.plugins_loaded = s.registry->refused().empty();
  store::Store* probed = s.store.get();
  health.probe_store = o.probe_store_for_testing
                           ? o.probe_store_for_testing
                           : std::function<absl::Status()>([probed] {
                               auto read = probed->GetMeta("health_probe");
                               return read.ok() || absl::IsNotFound(read.status())
                                          ? absl::OkStatus()
                                          : read.status();
                             });
  health.probe_every = o.health_probe_every;
  s.health = std::make_unique<HealthReporter>(s.grpc_server->GetHealthCheckService(),
                                              std::move(health));
  s.health->Start();
  if (!o.metrics_listen.empty()) {
    EXPORTD_ASSIGN_OR_RETURN(s.metrics_port, s.metrics->Serve(o.metrics_listen));
  }
  if (!o.http_listen.empty()) {
    http::HttpApiOptions http_options;
    http_options.server.listen = o.http_listen;
    http_options.server.threads = o.http_threads;
    http_options.server.tls_cert_file = o.tls_cert_file;
    http_options.server.tls_key_file = o.tls_key_file;
    http_options.server.tls_client_ca_file = o.tls_client_ca_file;
    http_options.gateway.max_message_bytes = static_cast<size_t>(o.max_receive_message_bytes);
    http_options.gateway.version = EXPORTD_VERSION;
    http_options.gateway.keep_alive_every = o.http_keep_alive_every;
    for (const char* name : ServiceNames()) http_options.services.push_back(name);
    grpc::ChannelArguments channel_args;
    // The server limits what callers send; answers may be as large as they are.
    channel_args.SetMaxReceiveMessageSize(-1);
    EXPORTD_ASSIGN_OR_RETURN(
        s.http, http::HttpApi::Start(std::move(http_options),
                                     s.grpc_server->InProcessChannel(channel_args)));
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

int Server::port() const { return impl_->port; }

int Server::metrics_port() const { return impl_->metrics_port; }

int Server::http_port() const { return impl_->http != nullptr ? impl_->http->port() : 0; }

const std::string& Server::admin_token_path() const { return impl_->admin_token_path; }

std::string Server::Describe() const {
  std::vector<std::string> loaded;
  for (const auto& d : impl_->registry->List()) {
    loaded.push_back(absl::StrCat(d.manifest->name, " ", d.manifest->version));
  }
  std::string host = impl_->options.listen.substr(0, impl_->options.listen.rfind(':'));
  std::string text = absl::StrCat(
      "exportd listening on ", host, ":", impl_->port, "\n", "data directory: ",
      std::filesystem::absolute(impl_->options.data_dir).string(), "\n",
      "store: ", impl_->store_url.description, "\n",
      "destinations: ", loaded.empty() ? "none" : absl::StrJoin(loaded, ", "));
  // Exports that follow the system refresh run only when there is one.
  if (const auto& refresh = impl_->engine->system_refresh(); refresh.has_value()) {
    absl::StrAppend(&text, "\nsystem refresh: ", refresh->spec(), " (next ",
                    absl::FormatTime("%Y-%m-%d %H:%M %Z", refresh->Next(absl::Now()),
                                     absl::UTCTimeZone()),
                    ")");
  } else {
    absl::StrAppend(&text,
                    "\nsystem refresh: none (exports cannot follow it; start with "
                    "--system-refresh SPEC, e.g. \"daily 02:00,14:00 Europe/Berlin\")");
  }
  if (impl_->metrics_port != 0) {
    const std::string& m = impl_->options.metrics_listen;
    absl::StrAppend(&text, "\nmetrics: http://", m.substr(0, m.rfind(':')), ":",
                    impl_->metrics_port, "/metrics");
  }
  if (impl_->http != nullptr) {
    const std::string& h = impl_->options.http_listen;
    std::string http_host = h.substr(0, h.rfind(':'));
    if (http_host.empty() || http_host == "0.0.0.0") http_host = "127.0.0.1";
    absl::StrAppend(&text, "\nconsole and HTTP API: ", impl_->http->tls() ? "https" : "http",
                    "://", http_host, ":", impl_->http->port(), "/ (API under /v1/)");
  }
  const ServerTls* tls = impl_->tls.get();
  if (tls != nullptr) {
    absl::StrAppend(&text, "\nTLS: certificate ", tls->files().cert_file,
                    tls->mutual() ? absl::StrCat("; client certificates signed by ",
                                                 tls->files().client_ca_file, " required")
                                  : "; no client certificates asked for",
                    " (SIGHUP re-reads the files)");
  } else if (!IsLoopbackListenAddress(impl_->options.listen)) {
    absl::StrAppend(&text, "\nwarning: --listen ", impl_->options.listen,
                    " serves plaintext beyond this machine (--allow-insecure-listen): bearer "
                    "tokens travel in clear; pass --tls-cert and --tls-key unless a TLS proxy "
                    "is the only way in");
  }
  for (const auto& r : impl_->registry->refused()) {
    // A file name or a plugin's message must not forge a line of its own.
    absl::StrAppend(&text, "\nrefused plugin ", EscapeForTerminal(r.library_path), ": ",
                    EscapeForTerminal(r.reason));
  }
  if (!impl_->admin_token_path.empty()) {
    absl::StrAppend(&text, "\nadmin token: ",
                    std::filesystem::absolute(impl_->admin_token_path).string(),
                    " (exportctl reads it when it talks to a local server)");
  }
  return text;
}

absl::Status Server::ReloadCertificates() {
  if (impl_->tls == nullptr) {
    absl::Status status = absl::FailedPreconditionError(
        "exportd serves without TLS, so there is no certificate to reload; start it with "
        "--tls-cert FILE --tls-key FILE");
    Log(LogLevel::kError, {"server"}, status.message());
    return status;
  }
  absl::Status status = impl_->tls->Reload();
  if (status.ok()) {
    Log(LogLevel::kInfo, {"server"},
        absl::StrCat("reloaded TLS certificate ", impl_->tls->files().cert_file));
  } else {
    status = absl::Status(
        status.code(),
        absl::StrCat(status.message(), "; exportd keeps serving the previous certificate"));
    Log(LogLevel::kError, {"server"},
        absl::StrCat("cannot reload TLS certificate: ", status.message()));
  }
  return status;
}

void Server::Shutdown() {
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->shut_down) return;
    impl_->shut_down = true;
  }
  // Health watchers learn first that exportd is going away.
  if (impl_->health != nullptr) impl_->health->Stop();
  // The server first (its calls use the engine), then the engine. The HTTP
  // listener after the gRPC server: its requests wait on gRPC calls, which
  // the shutdown ends.
  impl_->grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (impl_->http != nullptr) impl_->http->Stop();
  impl_->engine->Shutdown();
  // Last: the engine's final runs may have queued notifications; what is not
  // delivered now stays in the outbox for the next start (or another replica).
  impl_->notifier->Shutdown();
}

void Server::Wait() { impl_->grpc_server->Wait(); }

}  // namespace exportd::app
