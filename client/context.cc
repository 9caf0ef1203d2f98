#include "client/context.h"

#include <fstream>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/terminal_text.h"

namespace exportd::client {
namespace {

// Unary calls are cheap on the server; a minute covers a slow destination
// check (TestConnection) without hanging forever on a wedged server.
constexpr std::chrono::seconds kUnaryDeadline(60);

std::string HostOf(absl::string_view address) {
  // "[::1]:50051" → "::1"; "host:port" → "host"; "dns:///host:port" → "host".
  if (absl::StartsWith(address, "dns:///")) address.remove_prefix(7);
  if (absl::StartsWith(address, "ipv4:")) address.remove_prefix(5);
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    return std::string(address.substr(1, close == absl::string_view::npos ? address.npos : close - 1));
  }
  size_t colon = address.rfind(':');
  if (colon != absl::string_view::npos && address.find(':') == colon) {
    address = address.substr(0, colon);
  }
  return std::string(address);
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read token file '", path, "'"));
  }
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return std::string(absl::StripAsciiWhitespace(text));
}

// A flag's value, else its environment variable's.
std::string FlagOrEnv(absl::string_view flag_value, const char* variable,
                      const cli::EnvLookup& env) {
  if (!flag_value.empty()) return std::string(flag_value);
  std::optional<std::string> from_env = env(variable);
  return from_env.has_value() ? *from_env : std::string();
}

// The PEM text of a TLS file, checked to hold a block ending in `kind`.
absl::StatusOr<std::string> ReadPemFile(absl::string_view flag, const char* variable,
                                        const std::string& path, absl::string_view kind) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", flag, " (or $", variable, ") file '", path, "'"));
  }
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (!absl::StrContains(text, absl::StrCat(kind, "-----"))) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " (or $", variable, ") file '", path,
                                                   "' holds no PEM ", absl::AsciiStrToLower(kind),
                                                   " ('-----BEGIN ", kind, "-----')"));
  }
  return text;
}

}  // namespace

absl::StatusOr<ClientTls> ResolveTls(absl::string_view ca_flag, absl::string_view cert_flag,
                                     absl::string_view key_flag, absl::string_view server_name_flag,
                                     const cli::EnvLookup& env) {
  const std::string ca = FlagOrEnv(ca_flag, "EXPORTD_TLS_CA", env);
  const std::string cert = FlagOrEnv(cert_flag, "EXPORTD_TLS_CERT", env);
  const std::string key = FlagOrEnv(key_flag, "EXPORTD_TLS_KEY", env);
  ClientTls tls;
  tls.server_name = FlagOrEnv(server_name_flag, "EXPORTD_TLS_SERVER_NAME", env);
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError(
        cert.empty() ? "--tls-key (or $EXPORTD_TLS_KEY) needs --tls-cert, its certificate"
                     : "--tls-cert (or $EXPORTD_TLS_CERT) needs --tls-key, its private key");
  }
  if (ca.empty() && cert.empty()) {
    if (!tls.server_name.empty()) {
      return absl::InvalidArgumentError(
          "--tls-server-name (or $EXPORTD_TLS_SERVER_NAME) needs TLS: pass --tls-ca FILE");
    }
    return tls;
  }
  tls.enabled = true;
  if (!ca.empty()) {
    auto pem = ReadPemFile("--tls-ca", "EXPORTD_TLS_CA", ca, "CERTIFICATE");
    if (!pem.ok()) return pem.status();
    tls.ca_pem = *std::move(pem);
  }
  if (!cert.empty()) {
    auto cert_pem = ReadPemFile("--tls-cert", "EXPORTD_TLS_CERT", cert, "CERTIFICATE");
    if (!cert_pem.ok()) return cert_pem.status();
    auto key_pem = ReadPemFile("--tls-key", "EXPORTD_TLS_KEY", key, "PRIVATE KEY");
    if (!key_pem.ok()) return key_pem.status();
    tls.cert_pem = *std::move(cert_pem);
    tls.key_pem = *std::move(key_pem);
  }
  return tls;
}

std::string ResolveServerAddress(absl::string_view server_flag, const cli::EnvLookup& env) {
  if (!server_flag.empty()) return std::string(server_flag);
  std::optional<std::string> from_env = env("EXPORTD_SERVER");
  if (from_env.has_value() && !from_env->empty()) return *from_env;
  return kDefaultServer;
}

bool IsLocalServer(absl::string_view address) {
  std::string host = absl::AsciiStrToLower(HostOf(address));
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

absl::StatusOr<std::string> ResolveToken(absl::string_view server, absl::string_view token_flag,
                                         absl::string_view token_file_flag,
                                         const cli::EnvLookup& env) {
  if (!token_flag.empty()) return std::string(token_flag);
  std::optional<std::string> token = env("EXPORTD_TOKEN");
  if (token.has_value() && !token->empty()) return *token;
  if (!token_file_flag.empty()) return ReadTokenFile(std::string(token_file_flag));
  std::optional<std::string> token_file = env("EXPORTD_TOKEN_FILE");
  if (token_file.has_value() && !token_file->empty()) return ReadTokenFile(*token_file);
  if (!IsLocalServer(server)) return std::string();
  std::optional<std::string> data_dir = env("EXPORTD_DATA_DIR");
  std::string path = absl::StrCat(data_dir.has_value() && !data_dir->empty() ? *data_dir
                                                                             : "./exportd-data",
                                  "/admin.token");
  std::ifstream probe(path);
  if (!probe) return std::string();  // no local admin token: go without
  return ReadTokenFile(path);
}

CommandContext::CommandContext(std::ostream& out, std::ostream& err, std::istream& in,
                               bool out_is_tty, std::string server, std::string token,
                               OutputFormat format, cli::EnvLookup env, ClientTls tls)
    : out_(out),
      err_(err),
      in_(in),
      out_is_tty_(out_is_tty),
      server_(std::move(server)),
      token_(std::move(token)),
      format_(format),
      env_(std::move(env)),
      tls_(std::move(tls)) {}

std::shared_ptr<grpc::Channel> CommandContext::channel() {
  if (channel_ == nullptr) {
    grpc::ChannelArguments args;
    // Members come back in pages, but a page of wide rows can be large.
    args.SetMaxReceiveMessageSize(64 << 20);
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (tls_.enabled) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = tls_.ca_pem;  // empty: the system's roots
      ssl.pem_cert_chain = tls_.cert_pem;
      ssl.pem_private_key = tls_.key_pem;
      credentials = grpc::SslCredentials(ssl);
      if (!tls_.server_name.empty()) args.SetSslTargetNameOverride(tls_.server_name);
    }
    channel_ = grpc::CreateCustomChannel(server_, credentials, args);
  }
  return channel_;
}

void CommandContext::PrepareUnary(grpc::ClientContext* context) const {
  PrepareStream(context);
  context->set_deadline(std::chrono::system_clock::now() + kUnaryDeadline);
}

void CommandContext::PrepareStream(grpc::ClientContext* context) const {
  if (!token_.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
}

int CommandContext::RpcError(const grpc::Status& status) {
  // gRPC and Abseil share the canonical code numbers and names.
  err_ << "error: " << absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()))
       << ": " << EscapeForTerminal(status.error_message()) << '\n';
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      err_ << "hint: is exportd running at " << server_
           << "? Choose the server with --server HOST:PORT or EXPORTD_SERVER.\n";
      if (tls_.enabled) {
        err_ << "hint: over TLS, --tls-ca must hold the CA that signed exportd's certificate, "
                "the certificate must name the host in --server (else pass --tls-server-name), "
                "and a server that asks for client certificates needs --tls-cert and "
                "--tls-key.\n";
      } else {
        err_ << "hint: if exportd serves TLS, pass --tls-ca FILE (or set EXPORTD_TLS_CA).\n";
      }
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      if (token_.empty()) {
        err_ << "hint: no token was sent; pass --token, set EXPORTD_TOKEN or EXPORTD_TOKEN_FILE"
             << (IsLocalServer(server_) ? ", or run from the directory holding exportd-data/ "
                                          "(or set EXPORTD_DATA_DIR)"
                                        : "")
             << (tls_.cert_pem.empty() ? ""
                                       : ", or have exportd's tokens file map this client "
                                         "certificate with a 'cert:' line")
             << ".\n";
      }
      break;
    default:
      break;
  }
  return kExitError;
}

int CommandContext::Fail(absl::string_view message) {
  err_ << "error: " << EscapeForTerminal(message) << '\n';
  return kExitError;
}

int CommandContext::UsageError(absl::string_view message) {
  err_ << "error: " << EscapeForTerminal(message) << '\n';
  err_ << "hint: see 'exportctl " << (command_.empty() ? "" : command_ + " ") << "--help'\n";
  return kExitUsage;
}

}  // namespace exportd::client
