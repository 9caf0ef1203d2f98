#include "server/api/tls_credentials.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace exportd::api {
namespace {

// gRPC's C++ API builds reloadable SSL server credentials only from a
// FileWatcherCertificateProvider, which polls the files on a timer and cannot
// report a bad file. The C core's certificate config fetcher is asked before
// every handshake instead, so a reload is in effect for the next connection
// and its errors surface where the reload was asked for. This wraps those C
// credentials for grpc::ServerBuilder.
class FetcherServerCredentials final : public grpc::ServerCredentials {
 public:
  FetcherServerCredentials(grpc_ssl_client_certificate_request_type request,
                           grpc_ssl_server_certificate_config_callback fetch, void* user_data)
      // Members are built after the base class, which initializes gRPC.
      : c_credentials_(grpc_ssl_server_credentials_create_with_options(
            grpc_ssl_server_credentials_create_options_using_config_fetcher(request, fetch,
                                                                            user_data))) {}
  ~FetcherServerCredentials() override { grpc_server_credentials_release(c_credentials_); }

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/) override {
    // exportd authenticates each call in its handlers (server/api/rpc_support.cc).
    Log(LogLevel::kError, {"server"}, "the TLS listener takes no AuthMetadataProcessor");
    std::abort();
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), c_credentials_);
  }

  grpc_server_credentials* const c_credentials_;
};

// The reason OpenSSL gave last, and an empty error queue.
std::string OpenSslReason() {
  const char* reason = ERR_reason_error_string(ERR_peek_last_error());
  ERR_clear_error();
  return reason == nullptr ? "" : reason;
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;
using Certificate = std::unique_ptr<X509, X509Deleter>;
using PrivateKey = std::unique_ptr<EVP_PKEY, KeyDeleter>;

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Never prompts for a passphrase: an encrypted key fails to load.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return 0; }

absl::StatusOr<std::string> ReadPemFile(absl::string_view flag, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " '", path, "': cannot read it: ", std::strerror(errno)));
  }
  std::string text;
  char buffer[8192];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " '", path, "': cannot read it: ", std::strerror(error)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > (1 << 20)) {
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " '", path, "': larger than 1 MiB; it should hold PEM text only"));
    }
  }
  ::close(fd);
  return text;
}

// The certificates of a PEM file, in file order; at least one.
absl::StatusOr<std::vector<Certificate>> ParseCertificates(absl::string_view flag,
                                                           const std::string& path,
                                                           const std::string& pem) {
  std::vector<Certificate> certificates;
  ERR_clear_error();
  Bio bio = MemoryBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) {
    certificates.emplace_back(cert);
  }
  // Reading stops with "no start line" after the last certificate; anything
  // else is a damaged certificate.
  unsigned long last = ERR_peek_last_error();
  bool damaged = last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE;
  std::string reason = OpenSslReason();
  if (damaged) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " '", path, "': a PEM certificate in it cannot be parsed (", reason,
                     "); check that the file was copied whole"));
  }
  if (certificates.empty()) {
    std::string hint = absl::StrContains(pem, "PRIVATE KEY-----")
                           ? " (it holds a private key: are --tls-cert and --tls-key swapped?)"
                           : "";
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " '", path,
        "': not a PEM certificate; expected a '-----BEGIN CERTIFICATE-----' block", hint));
  }
  return certificates;
}

absl::StatusOr<PrivateKey> ParsePrivateKey(const std::string& path, const std::string& pem) {
  ERR_clear_error();
  Bio bio = MemoryBio(pem);
  PrivateKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  std::string reason = OpenSslReason();
  if (key == nullptr) {
    if (absl::StrContains(pem, "ENCRYPTED")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tls-key '", path,
          "': the key is encrypted; exportd needs it unencrypted (openssl pkey -in KEY -out "
          "PLAIN_KEY), readable only by exportd's user"));
    }
    std::string hint = absl::StrContains(pem, "BEGIN CERTIFICATE")
                           ? " (it holds a certificate: are --tls-cert and --tls-key swapped?)"
                           : "";
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key '", path,
                     "': not a PEM private key; expected a '-----BEGIN PRIVATE KEY-----' "
                     "block",
                     hint, reason.empty() ? "" : absl::StrCat(" (", reason, ")")));
  }
  return key;
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files) {
  if (files.cert_file.empty() || files.key_file.empty()) {
    return absl::InvalidArgumentError(
        files.cert_file.empty()
            ? "--tls-key needs --tls-cert, the certificate of that key"
            : "--tls-cert needs --tls-key, the private key of that certificate");
  }
  TlsMaterial material;
  EXPORTD_ASSIGN_OR_RETURN(material.cert_chain, ReadPemFile("--tls-cert", files.cert_file));
  EXPORTD_ASSIGN_OR_RETURN(material.private_key, ReadPemFile("--tls-key", files.key_file));
  EXPORTD_ASSIGN_OR_RETURN(std::vector<Certificate> chain,
                           ParseCertificates("--tls-cert", files.cert_file, material.cert_chain));
  EXPORTD_ASSIGN_OR_RETURN(PrivateKey key, ParsePrivateKey(files.key_file, material.private_key));
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    OpenSslReason();
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key '", files.key_file,
                     "' does not match the certificate in --tls-cert '", files.cert_file,
                     "'; give the key the certificate was issued for, and put the server's "
                     "own certificate first in the file"));
  }
  if (!files.client_ca_file.empty()) {
    EXPORTD_ASSIGN_OR_RETURN(material.client_ca,
                             ReadPemFile("--tls-client-ca", files.client_ca_file));
    EXPORTD_RETURN_IF_ERROR(
        ParseCertificates("--tls-client-ca", files.client_ca_file, material.client_ca).status());
  }
  return material;
}

bool IsLoopbackListenAddress(absl::string_view listen) {
  if (absl::StartsWith(listen, "unix:") || absl::StartsWith(listen, "unix-abstract:")) {
    return true;
  }
  absl::string_view host = listen;
  if (absl::StartsWith(host, "[")) {
    size_t close = host.find(']');
    if (close == absl::string_view::npos) return false;
    host = host.substr(1, close - 1);
  } else if (size_t colon = host.rfind(':');
             colon != absl::string_view::npos && host.find(':') == colon) {
    host = host.substr(0, colon);
  }
  std::string name = absl::AsciiStrToLower(host);
  if (name == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, name.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, name.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

ServerTls::ServerTls(TlsFiles files) : files_(std::move(files)) {}

ServerTls::~ServerTls() {
  absl::MutexLock lock(&mu_);
  if (pending_ != nullptr) grpc_ssl_server_certificate_config_destroy(pending_);
}

absl::StatusOr<std::unique_ptr<ServerTls>> ServerTls::Create(TlsFiles files) {
  EXPORTD_ASSIGN_OR_RETURN(TlsMaterial material, LoadTlsMaterial(files));
  std::unique_ptr<ServerTls> tls(new ServerTls(std::move(files)));
  // gRPC takes this first certificate when the listening port is added.
  tls->Stage(material);
  tls->credentials_ = std::make_shared<FetcherServerCredentials>(
      tls->mutual() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                    : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
      &ServerTls::FetchConfig, tls.get());
  return tls;
}

absl::Status ServerTls::Reload() {
  EXPORTD_ASSIGN_OR_RETURN(TlsMaterial material, LoadTlsMaterial(files_));
  Stage(material);
  return absl::OkStatus();
}

void ServerTls::Stage(const TlsMaterial& material) {
  grpc_ssl_pem_key_cert_pair pair = {material.private_key.c_str(), material.cert_chain.c_str()};
  // gRPC asserts that a fetched config has client CA certificates even when it
  // asks for no client certificate. Without --tls-client-ca they are never used
  // (no certificate is requested, nothing verified), so the server's own chain
  // stands in. The config copies the strings.
  const std::string& client_ca =
      material.client_ca.empty() ? material.cert_chain : material.client_ca;
  grpc_ssl_server_certificate_config* config =
      grpc_ssl_server_certificate_config_create(client_ca.c_str(), &pair, 1);
  absl::MutexLock lock(&mu_);
  if (pending_ != nullptr) grpc_ssl_server_certificate_config_destroy(pending_);
  pending_ = config;
}

grpc_ssl_certificate_config_reload_status ServerTls::FetchConfig(
    void* self, grpc_ssl_server_certificate_config** config) {
  ServerTls* tls = static_cast<ServerTls*>(self);
  absl::MutexLock lock(&tls->mu_);
  if (tls->pending_ == nullptr) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  // gRPC owns the config from here on.
  *config = std::exchange(tls->pending_, nullptr);
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

}  // namespace exportd::api
