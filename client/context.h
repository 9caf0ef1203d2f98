// What every exportctl command works with: where the server is and how to
// authenticate (resolved from flags, the environment and the local admin
// token file), the output streams and format, and one place that turns errors
// into messages and exit codes.
//
// Exit codes: 0 success; 1 the server or the input failed (the message names
// the gRPC status code, e.g. "error: FAILED_PRECONDITION: ..."); 2 a usage
// error (with a hint to the command's --help); 3 a watched run ended FAILED or
// CANCELED.
#ifndef EXPORTD_CLIENT_CONTEXT_H_
#define EXPORTD_CLIENT_CONTEXT_H_

#include <chrono>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli.h"
#include "client/output.h"
#include "grpcpp/grpcpp.h"

namespace exportd::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitRunFailed = 3;

inline constexpr char kDefaultServer[] = "127.0.0.1:50051";

// --server, else $EXPORTD_SERVER, else 127.0.0.1:50051.
std::string ResolveServerAddress(absl::string_view server_flag, const cli::EnvLookup& env);

// True for 127.0.0.1, localhost and ::1, with or without a port.
bool IsLocalServer(absl::string_view address);

// Where the token comes from, first match wins: --token; $EXPORTD_TOKEN; the
// file named by --token-file or $EXPORTD_TOKEN_FILE; for a local server, the
// admin token the server writes on first start ($EXPORTD_DATA_DIR/admin.token,
// else ./exportd-data/admin.token) if that file exists. Returns "" when there
// is none (the server then answers UNAUTHENTICATED). Token files are read
// without surrounding whitespace; a named file that cannot be read is an error.
absl::StatusOr<std::string> ResolveToken(absl::string_view server, absl::string_view token_flag,
                                         absl::string_view token_file_flag,
                                         const cli::EnvLookup& env);

// How the channel to exportd is secured. Without a CA file and a certificate
// the channel is plaintext (exportd's default on 127.0.0.1).
struct ClientTls {
  // PEM contents, read from the files.
  std::string ca_pem;    // the CA that signed exportd's certificate
  std::string cert_pem;  // this client's certificate, for mutual TLS
  std::string key_pem;   // its private key
  // The name checked against exportd's certificate instead of the host in
  // --server (e.g. the server connects by IP, the certificate names a host).
  std::string server_name;
  bool enabled = false;
};

// Each value comes from its flag, else its environment variable:
// --tls-ca / $EXPORTD_TLS_CA, --tls-cert / $EXPORTD_TLS_CERT, --tls-key /
// $EXPORTD_TLS_KEY, --tls-server-name / $EXPORTD_TLS_SERVER_NAME. TLS is on
// when a CA or a client certificate is given (without a CA, the system's
// roots are trusted). A certificate needs its key and the other way round; a
// file that cannot be read or holds no PEM of its kind is an error naming the
// flag and the file.
absl::StatusOr<ClientTls> ResolveTls(absl::string_view ca_flag, absl::string_view cert_flag,
                                     absl::string_view key_flag, absl::string_view server_name_flag,
                                     const cli::EnvLookup& env);

class CommandContext {
 public:
  CommandContext(std::ostream& out, std::ostream& err, std::istream& in, bool out_is_tty,
                 std::string server, std::string token, OutputFormat format, cli::EnvLookup env,
                 ClientTls tls = {});

  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }
  std::istream& in() { return in_; }
  bool out_is_tty() const { return out_is_tty_; }
  bool json() const { return format_ == OutputFormat::kJson; }
  const std::string& server() const { return server_; }
  const cli::EnvLookup& env() const { return env_; }

  // The command being run, e.g. "segment create", for hints.
  void set_command(std::string command) { command_ = std::move(command); }

  // One channel per invocation, created on first use; TLS when configured.
  std::shared_ptr<grpc::Channel> channel();

  // Adds the bearer token and, for unary calls, a deadline.
  void PrepareUnary(grpc::ClientContext* context) const;
  // Adds the bearer token only: uploads and watches may take long.
  void PrepareStream(grpc::ClientContext* context) const;

  // Prints "error: CODE: message" (plus a hint for connectivity and
  // authentication problems) and returns kExitError. Messages are escaped
  // (EscapeForTerminal): they quote names and values from outside.
  int RpcError(const grpc::Status& status);
  // Prints "error: message" and returns kExitError.
  int Fail(absl::string_view message);
  // Prints "error: message" and a hint to --help; returns kExitUsage.
  int UsageError(absl::string_view message);

 private:
  std::ostream& out_;
  std::ostream& err_;
  std::istream& in_;
  bool out_is_tty_;
  std::string server_;
  std::string token_;
  OutputFormat format_;
  cli::EnvLookup env_;
  ClientTls tls_;
  std::string command_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Calls a unary RPC with a prepared context:
//   exportd::v1::Segment segment;
//   grpc::Status status = Invoke(ctx, stub.get(), &SegmentService::Stub::GetSegment,
//                                request, &segment);
//   if (!status.ok()) return ctx.RpcError(status);
template <typename Stub, typename Request, typename Response>
grpc::Status Invoke(CommandContext& ctx, Stub* stub,
                    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response) {
  grpc::ClientContext context;
  ctx.PrepareUnary(&context);
  return (stub->*method)(&context, request, response);
}

}  // namespace exportd::client

#endif  // EXPORTD_CLIENT_CONTEXT_H_
