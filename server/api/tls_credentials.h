// TLS for exportd's gRPC listener: the server certificate and key and, for
// mutual TLS, the CA that signs client certificates. The files are checked at
// start-up and can be re-read while the server runs (SIGHUP): connections
// already open keep the certificate they started with, new ones get the new
// one, and a file that fails its checks leaves the old certificate in place.
//
//   TlsFiles files;
//   files.cert_file = "server.pem";
//   files.key_file = "server.key";
//   files.client_ca_file = "clients-ca.pem";  // empty: no client certificates
//   EXPORTD_ASSIGN_OR_RETURN(auto tls, ServerTls::Create(files));
//   builder.AddListeningPort("0.0.0.0:50051", tls->credentials(), &port);
//   ...
//   absl::Status reloaded = tls->Reload();
#ifndef EXPORTD_SERVER_API_TLS_CREDENTIALS_H_
#define EXPORTD_SERVER_API_TLS_CREDENTIALS_H_

#include <grpc/grpc_security.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace exportd::api {

// Where the listener's certificate material lives (the exportd flags).
struct TlsFiles {
  // --tls-cert: PEM, the server's certificate first, then any intermediates.
  std::string cert_file;
  // --tls-key: PEM, the private key of that certificate.
  std::string key_file;
  // --tls-client-ca: PEM, one or more CA certificates. Empty: clients are not
  // asked for a certificate. Set: every client must present one signed by
  // these CAs (mutual TLS).
  std::string client_ca_file;
};

// The checked PEM contents of TlsFiles.
struct TlsMaterial {
  std::string cert_chain;
  std::string private_key;
  std::string client_ca;  // empty without a client CA file
};

// Reads the files and checks them: readable, PEM of the right kind, and the
// key belongs to the first certificate. INVALID_ARGUMENT naming the flag and
// the file otherwise.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files);

// True when `listen` (HOST:PORT, [HOST]:PORT, or unix:PATH) can only be
// reached from this machine: 127.0.0.0/8, ::1, localhost, or a Unix socket.
// 0.0.0.0, [::] and an empty host listen on every interface and are not.
bool IsLoopbackListenAddress(absl::string_view listen);

// The credentials of a TLS listener whose certificate can be replaced while
// it serves. Must outlive the grpc::Server it is used with.
class ServerTls {
 public:
  // Loads and checks the files (see LoadTlsMaterial).
  static absl::StatusOr<std::unique_ptr<ServerTls>> Create(TlsFiles files);
  ~ServerTls();
  ServerTls(const ServerTls&) = delete;
  ServerTls& operator=(const ServerTls&) = delete;

  // For grpc::ServerBuilder::AddListeningPort; one listener per ServerTls.
  const std::shared_ptr<grpc::ServerCredentials>& credentials() const { return credentials_; }
  const TlsFiles& files() const { return files_; }
  // Whether clients must present a certificate.
  bool mutual() const { return !files_.client_ca_file.empty(); }

  // Re-reads the files. On success the next handshake uses them; on error
  // the certificate served so far stays, and the error says which file failed.
  absl::Status Reload();

 private:
  explicit ServerTls(TlsFiles files);
  // gRPC asks before every handshake whether the certificate changed.
  static grpc_ssl_certificate_config_reload_status FetchConfig(
      void* self, grpc_ssl_server_certificate_config** config);
  void Stage(const TlsMaterial& material);

  const TlsFiles files_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  absl::Mutex mu_;
  // A checked certificate gRPC has not taken yet; owned until it does.
  grpc_ssl_server_certificate_config* pending_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_TLS_CREDENTIALS_H_
