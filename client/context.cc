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

}  // namespace

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
                               OutputFormat format, cli::EnvLookup env)
    : out_(out),
      err_(err),
      in_(in),
      out_is_tty_(out_is_tty),
      server_(std::move(server)),
      token_(std::move(token)),
      format_(format),
      env_(std::move(env)) {}

std::shared_ptr<grpc::Channel> CommandContext::channel() {
  if (channel_ == nullptr) {
    grpc::ChannelArguments args;
    // Members come back in pages, but a page of wide rows can be large.
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(server_, grpc::InsecureChannelCredentials(), args);
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
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      if (token_.empty()) {
        err_ << "hint: no token was sent; pass --token, set EXPORTD_TOKEN or EXPORTD_TOKEN_FILE"
             << (IsLocalServer(server_) ? ", or run from the directory holding exportd-data/ "
                                          "(or set EXPORTD_DATA_DIR)"
                                        : "")
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
