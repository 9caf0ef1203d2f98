#include "server/http/api_gateway.h"

#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/sync_stream.h>

#include <chrono>
#include <istream>
#include <streambuf>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "client/csv_reader.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "server/api/rpc_support.h"
#include "server/http/connect_error.h"
#include "server/http/openapi.h"
#include "server/http/query.h"

namespace exportd::http {
namespace {

using google::protobuf::Message;
using google::protobuf::MethodDescriptor;

constexpr char kUploadMembers[] = "/exportd.v1.SegmentService/UploadMembers";
constexpr char kDefaultCsvName[] = "upload.csv";

std::unique_ptr<Message> NewMessage(const google::protobuf::Descriptor* type) {
  return std::unique_ptr<Message>(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
}

// The media type of a Content-Type value, lowercased, without parameters.
std::string MediaType(const HttpExchange& exchange) {
  std::optional<absl::string_view> value = exchange.header("Content-Type");
  if (!value.has_value()) return "";
  absl::string_view type = value->substr(0, value->find(';'));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(type));
}

void RespondError(HttpExchange& exchange, const grpc::Status& status, int http_status = 0) {
  exchange.Respond(http_status != 0 ? http_status : ConnectHttpStatus(status.error_code()),
                   "application/json", ConnectErrorJson(status), {{"Cache-Control", "no-store"}});
}

std::string ToJson(const Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  // Printing a message that was parsed fine cannot fail.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// OK, or INVALID_ARGUMENT saying what the JSON was meant to be and why not.
grpc::Status FromJson(absl::string_view json, absl::string_view what, Message* message) {
  if (absl::StripAsciiWhitespace(json).empty()) return grpc::Status::OK;
  google::protobuf::util::JsonParseOptions options;
  auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (parsed.ok()) return grpc::Status::OK;
  return grpc::Status(
      grpc::INVALID_ARGUMENT,
      absl::StrCat(what, " is not a valid ", message->GetDescriptor()->full_name(),
                   " in protobuf's JSON mapping: ",
                   absl::string_view(parsed.message().data(), parsed.message().size())));
}

grpc::Status TooLarge(absl::string_view what, size_t limit) {
  return grpc::Status(grpc::RESOURCE_EXHAUSTED,
                      absl::StrCat(what, " is larger than ", limit,
                                   " bytes, the most exportd accepts in one message; send less "
                                   "per request (uploads: split the rows over more chunks)"));
}

// The whole body, up to `limit` bytes. On error the status to answer with,
// and the HTTP status (413 for a body over the limit).
struct Body {
  std::string text;
  grpc::Status status;
  int http_status = 0;
};

Body ReadWholeBody(HttpExchange& exchange, size_t limit) {
  Body body;
  const int64_t declared = exchange.content_length();
  if (declared > static_cast<int64_t>(limit)) {
    body.status = TooLarge("the request body", limit);
    body.http_status = 413;
    return body;
  }
  char buffer[1 << 14];
  for (;;) {
    int64_t n = exchange.ReadBody(buffer, sizeof(buffer));
    if (n < 0) {
      body.status = grpc::Status(grpc::CANCELLED, "the request body broke off");
      return body;
    }
    if (n == 0) break;
    body.text.append(buffer, static_cast<size_t>(n));
    if (body.text.size() > limit) {
      body.status = TooLarge("the request body", limit);
      body.http_status = 413;
      return body;
    }
  }
  if (declared >= 0 && body.text.size() != static_cast<size_t>(declared)) {
    body.status = grpc::Status(grpc::CANCELLED, "the request body broke off");
  }
  return body;
}

// The body as a std::istream for the CSV reader, read as it arrives. Tells a
// body that ended early (the connection broke, or fewer bytes than declared)
// from one that is complete.
class BodyStreamBuf final : public std::streambuf {
 public:
  explicit BodyStreamBuf(HttpExchange& exchange)
      : exchange_(exchange), declared_(exchange.content_length()) {}

  // True once the whole body was read and it was complete.
  bool broken() const { return broken_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (ended_) return traits_type::eof();
    int64_t n = exchange_.ReadBody(buffer_, sizeof(buffer_));
    if (n <= 0) {
      ended_ = true;
      broken_ = n < 0 || (declared_ >= 0 && received_ != declared_);
      return traits_type::eof();
    }
    received_ += n;
    setg(buffer_, buffer_, buffer_ + n);
    return traits_type::to_int_type(*gptr());
  }

 private:
  HttpExchange& exchange_;
  const int64_t declared_;
  int64_t received_ = 0;
  bool ended_ = false;
  bool broken_ = false;
  char buffer_[1 << 16];
};

}  // namespace

absl::StatusOr<std::unique_ptr<ApiGateway>> ApiGateway::Create(
    std::shared_ptr<grpc::Channel> channel, const std::vector<std::string>& services,
    GatewayOptions options) {
  std::unique_ptr<ApiGateway> gateway(new ApiGateway(std::move(channel), std::move(options)));
  std::vector<const google::protobuf::ServiceDescriptor*> descriptors;
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    if (service == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("service ", name, " is not in the generated descriptors"));
    }
    descriptors.push_back(service);
    for (int m = 0; m < service->method_count(); ++m) {
      const MethodDescriptor* method = service->method(m);
      auto [it, inserted] = gateway->routes_.try_emplace(
          absl::StrCat("/", service->full_name(), "/", method->name()));
      if (!inserted) continue;
      using Type = grpc::internal::RpcMethod::RpcType;
      const Type type =
          method->client_streaming()
              ? (method->server_streaming() ? Type::BIDI_STREAMING : Type::CLIENT_STREAMING)
              : (method->server_streaming() ? Type::SERVER_STREAMING : Type::NORMAL_RPC);
      it->second.method = method;
      it->second.rpc =
          std::make_unique<grpc::internal::RpcMethod>(it->first.c_str(), type, gateway->channel_);
    }
  }
  gateway->openapi_json_ = BuildOpenApiDocument(descriptors, gateway->options_.version);
  return gateway;
}

void ApiGateway::Handle(HttpExchange& exchange) const {
  const absl::string_view path = exchange.path();
  if (path == "/v1/openapi.json") {
    if (exchange.method() != "GET" && exchange.method() != "HEAD") {
      RespondError(exchange, grpc::Status(grpc::UNIMPLEMENTED, "/v1/openapi.json is read with GET"),
                   405);
      return;
    }
    exchange.Respond(200, "application/json", openapi_json_);
    return;
  }
  auto it = routes_.find(path.substr(3));
  if (!absl::StartsWith(path, "/v1/") || it == routes_.end()) {
    RespondError(exchange,
                 grpc::Status(grpc::UNIMPLEMENTED,
                              absl::StrCat("no RPC is served at ", path,
                                           "; the routes are POST /v1/<service>/<method>, "
                                           "listed in /v1/openapi.json")),
                 404);
    return;
  }
  if (exchange.method() != "POST") {
    exchange.Respond(405, "application/json",
                     ConnectErrorJson(grpc::Status(
                         grpc::UNIMPLEMENTED,
                         absl::StrCat(path, " is called with POST, not ", exchange.method()))),
                     {{"Allow", "POST"}});
    return;
  }
  const Route& route = it->second;
  if (route.method->client_streaming() && route.method->server_streaming()) {
    RespondError(exchange, grpc::Status(grpc::UNIMPLEMENTED,
                                        "bidirectional streaming RPCs are not served over HTTP"));
  } else if (route.method->client_streaming()) {
    ClientStream(exchange, route);
  } else if (route.method->server_streaming()) {
    ServerStream(exchange, route);
  } else {
    Unary(exchange, route);
  }
}

void ApiGateway::PrepareContext(HttpExchange& exchange, grpc::ClientContext* context) const {
  if (std::optional<absl::string_view> authorization = exchange.header("Authorization")) {
    // Metadata is printable ASCII; anything else reaches the authenticator as
    // a value it calls malformed, as it would over gRPC.
    const bool printable = std::all_of(authorization->begin(), authorization->end(),
                                       [](char c) { return c >= 0x20 && c < 0x7f; });
    context->AddMetadata("authorization", printable ? std::string(*authorization) : "malformed");
  }
  context->AddMetadata(api::kHttpGatewayKeyMetadata, api::InProcessGatewayKey());
  context->AddMetadata(std::string(api::kHttpPeerMetadata), exchange.peer());
  std::string certificate = exchange.client_certificate_pem();
  if (!certificate.empty()) {
    context->AddMetadata(std::string(api::kHttpClientCertificateMetadata), certificate);
  }
  int64_t timeout_ms = 0;
  if (std::optional<absl::string_view> timeout = exchange.header("Connect-Timeout-Ms");
      timeout.has_value() && absl::SimpleAtoi(*timeout, &timeout_ms) && timeout_ms > 0) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  }
}

std::unique_ptr<Message> ApiGateway::ReadRequest(HttpExchange& exchange, const Route& route) const {
  const std::string media = MediaType(exchange);
  if (media != "application/json") {
    RespondError(exchange,
                 grpc::Status(grpc::INVALID_ARGUMENT,
                              absl::StrCat("send the request as Content-Type: application/json "
                                           "(got '",
                                           media, "')")),
                 415);
    return nullptr;
  }
  Body body = ReadWholeBody(exchange, options_.max_message_bytes);
  if (!body.status.ok()) {
    RespondError(exchange, body.status, body.http_status);
    return nullptr;
  }
  std::unique_ptr<Message> request = NewMessage(route.method->input_type());
  grpc::Status parsed = FromJson(body.text, "the request body", request.get());
  if (!parsed.ok()) {
    RespondError(exchange, parsed);
    return nullptr;
  }
  return request;
}

void ApiGateway::Unary(HttpExchange& exchange, const Route& route) const {
  std::unique_ptr<Message> request = ReadRequest(exchange, route);
  if (request == nullptr) return;
  std::unique_ptr<Message> response = NewMessage(route.method->output_type());
  grpc::ClientContext context;
  PrepareContext(exchange, &context);
  grpc::Status status = grpc::internal::BlockingUnaryCall<Message, Message>(
      channel_.get(), *route.rpc, &context, *request, response.get());
  if (!status.ok()) {
    RespondError(exchange, status);
    return;
  }
  exchange.Respond(200, "application/json", ToJson(*response), {{"Cache-Control", "no-store"}});
}

void ApiGateway::ServerStream(HttpExchange& exchange, const Route& route) const {
  std::unique_ptr<Message> request = ReadRequest(exchange, route);
  if (request == nullptr) return;
  grpc::ClientContext context;
  PrepareContext(exchange, &context);
  std::unique_ptr<grpc::ClientReader<Message>> reader(
      grpc::internal::ClientReaderFactory<Message>::Create(channel_.get(), *route.rpc, &context,
                                                           *request));
  std::unique_ptr<Message> message = NewMessage(route.method->output_type());
  // An error before the first message (auth, permission, not found) is an
  // ordinary error response, with its HTTP status.
  if (!reader->Read(message.get())) {
    grpc::Status status = reader->Finish();
    if (!status.ok()) {
      RespondError(exchange, status);
      return;
    }
    if (exchange.StartStream(200, "text/event-stream", {{"Cache-Control", "no-store"}})) {
      exchange.WriteStream("event: end\ndata: {}\n\n");
      exchange.EndStream();
    }
    return;
  }
  bool client_there = exchange.StartStream(
      200, "text/event-stream", {{"Cache-Control", "no-store"}, {"X-Accel-Buffering", "no"}});
  // Comments while nothing happens keep proxies from closing the stream and
  // find out that the client went away, which cancels the call.
  absl::Notification finished;
  std::thread keep_alive([&] {
    while (!finished.WaitForNotificationWithTimeout(options_.keep_alive_every)) {
      if (!exchange.WriteStream(": keep-alive\n\n")) {
        context.TryCancel();
        return;
      }
    }
  });
  do {
    if (client_there) {
      client_there = exchange.WriteStream(absl::StrCat("data: ", ToJson(*message), "\n\n"));
      if (!client_there) context.TryCancel();
    }
  } while (reader->Read(message.get()));
  grpc::Status status = reader->Finish();
  finished.Notify();
  keep_alive.join();
  if (!client_there) return;
  if (status.ok()) {
    exchange.WriteStream("event: end\ndata: {}\n\n");
  } else {
    exchange.WriteStream(absl::StrCat("event: error\ndata: ", ConnectErrorJson(status), "\n\n"));
  }
  exchange.EndStream();
}

// A client-streaming call through the channel, answered as JSON when it ends.
class ApiGateway::UploadCall {
 public:
  UploadCall(const ApiGateway& gateway, HttpExchange& exchange, const Route& route)
      : response_(NewMessage(route.method->output_type())) {
    gateway.PrepareContext(exchange, &context_);
    writer_.reset(grpc::internal::ClientWriterFactory<Message>::Create(
        gateway.channel_.get(), *route.rpc, &context_, response_.get()));
  }

  // Ends the call so that nothing commits.
  void Cancel() {
    context_.TryCancel();
    writer_->Finish().IgnoreError();
  }

  // Half-closes (when `stream_ok`), finishes and answers with the response or
  // the call's error.
  void Finish(HttpExchange& exchange, bool stream_ok) {
    if (stream_ok) writer_->WritesDone();
    grpc::Status status = writer_->Finish();
    if (!status.ok()) {
      RespondError(exchange, status);
      return;
    }
    exchange.Respond(200, "application/json", ToJson(*response_), {{"Cache-Control", "no-store"}});
  }

  bool Write(const Message& message) { return writer_->Write(message); }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<Message> response_;
  // Last: it goes before the context it uses.
  std::unique_ptr<grpc::ClientWriter<Message>> writer_;
};

void ApiGateway::ClientStream(HttpExchange& exchange, const Route& route) const {
  const std::string media = MediaType(exchange);
  if (media == "text/csv") {
    if (route.rpc->name() != absl::string_view(kUploadMembers)) {
      RespondError(exchange,
                   grpc::Status(grpc::INVALID_ARGUMENT,
                                absl::StrCat("only ", kUploadMembers + 1, " takes a CSV body")),
                   415);
      return;
    }
    CsvUpload(exchange, route);
    return;
  }
  if (media != "application/x-ndjson" && media != "application/json") {
    RespondError(exchange,
                 grpc::Status(grpc::INVALID_ARGUMENT,
                              absl::StrCat("send newline-delimited JSON messages as Content-Type: "
                                           "application/x-ndjson",
                                           route.rpc->name() == absl::string_view(kUploadMembers)
                                               ? ", or a CSV file as text/csv"
                                               : "",
                                           " (got '", media, "')")),
                 415);
    return;
  }
  UploadCall call(*this, exchange, route);
  std::unique_ptr<Message> message = NewMessage(route.method->input_type());
  // A refusal: the call is cancelled (nothing commits) and the answer says why.
  auto refuse = [&](const grpc::Status& status, int http_status) {
    call.Cancel();
    RespondError(exchange, status, http_status);
  };
  std::string pending;
  int64_t line_number = 0;
  bool stream_ok = true;
  // Sends one line; false after a refusal.
  auto send_line = [&](absl::string_view line) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || !stream_ok) return true;
    message->Clear();
    grpc::Status parsed =
        FromJson(line, absl::StrCat("line ", line_number, " of the body"), message.get());
    if (!parsed.ok()) {
      refuse(parsed, 0);
      return false;
    }
    stream_ok = call.Write(*message);
    return true;
  };
  const int64_t declared = exchange.content_length();
  int64_t received = 0;
  char buffer[1 << 16];
  for (;;) {
    int64_t n = exchange.ReadBody(buffer, sizeof(buffer));
    if (n < 0 || (n == 0 && declared >= 0 && received != declared)) {
      // The client is gone; the call must not commit what arrived.
      call.Cancel();
      return;
    }
    if (n == 0) break;
    received += n;
    pending.append(buffer, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
      if (!send_line(absl::string_view(pending).substr(start, end - start))) return;
    }
    pending.erase(0, start);
    if (pending.size() > options_.max_message_bytes) {
      refuse(TooLarge(absl::StrCat("line ", line_number + 1, " of the body"),
                      options_.max_message_bytes),
             413);
      return;
    }
    // Once the server ended the call, the rest of the body changes nothing.
    if (!stream_ok) break;
  }
  if (!send_line(pending)) return;
  call.Finish(exchange, stream_ok);
}

void ApiGateway::CsvUpload(HttpExchange& exchange, const Route& route) const {
  QueryParameters query = ParseQuery(exchange.query());
  const std::string segment = query.Get("segment");
  if (segment.empty()) {
    RespondError(exchange, grpc::Status(grpc::INVALID_ARGUMENT,
                                        "a CSV upload names its segment in the query: "
                                        "?segment=NAME_OR_ID (optional: id-field=COLUMN, "
                                        "field=NAME:TYPE, filename=NAME)"));
    return;
  }
  absl::StatusOr<client::CsvImportOptions> options =
      client::ParseCsvImportOptions(query.Get("id-field"), query.GetAll("field"));
  if (!options.ok()) {
    RespondError(exchange,
                 grpc::Status(grpc::INVALID_ARGUMENT, std::string(options.status().message())));
    return;
  }
  std::string filename = query.Get("filename");
  if (filename.empty()) filename = kDefaultCsvName;
  BodyStreamBuf body(exchange);
  std::istream in(&body);
  absl::StatusOr<std::unique_ptr<client::MemberCsvReader>> reader =
      client::MemberCsvReader::Open(in, filename, *options);
  if (!reader.ok()) {
    RespondError(exchange,
                 grpc::Status(grpc::INVALID_ARGUMENT, std::string(reader.status().message())));
    return;
  }
  UploadCall call(*this, exchange, route);
  bool stream_ok = false;
  absl::Status csv = client::WriteCsvUpload(
      **reader, segment,
      [&](const v1::UploadMembersRequest& request) {
        // A body that broke off must not commit the rows that did arrive.
        if (request.has_trailer() && body.broken()) return false;
        return call.Write(request);
      },
      &stream_ok);
  if (!csv.ok() || body.broken()) {
    call.Cancel();
    if (!body.broken()) {
      RespondError(exchange, grpc::Status(grpc::INVALID_ARGUMENT, std::string(csv.message())));
    }
    return;
  }
  call.Finish(exchange, stream_ok);
}

}  // namespace exportd::http
