// The HTTP/JSON API (docs/http-api.md): every RPC of the given services as
// `POST /v1/<service>/<method>` in the Connect protocol's JSON form, answered
// by calling exportd's own gRPC server through a channel (its in-process
// channel), so that auth, permissions, validation and messages are gRPC's.
//
//   EXPORTD_ASSIGN_OR_RETURN(auto gateway, ApiGateway::Create(
//       grpc_server->InProcessChannel(args), {"exportd.v1.RunService", ...}, {}));
//   gateway->Handle(exchange);  // for a path under /v1/
//
// Routes come from the generated descriptors: a new RPC has one at once.
// Unary RPCs take and answer JSON; server-streaming ones answer Server-Sent
// Events; client-streaming ones take newline-delimited JSON messages, and
// SegmentService.UploadMembers also a CSV file (exportctl's CSV import).
// The caller's `Authorization` header travels as the `authorization` metadata;
// its address and verified client certificate as metadata that the gRPC side
// believes only from the in-process transport (rpc_support.h).
#ifndef EXPORTD_SERVER_HTTP_API_GATEWAY_H_
#define EXPORTD_SERVER_HTTP_API_GATEWAY_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/rpc_method.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "server/http/exchange.h"

namespace exportd::http {

struct GatewayOptions {
  // The largest unary request body and NDJSON line (the gRPC message limit).
  size_t max_message_bytes = 4 * 1024 * 1024;
  // A Server-Sent Events stream with nothing to say sends a comment this often,
  // which also finds out that the client went away.
  absl::Duration keep_alive_every = absl::Seconds(15);
  // exportd's version, for the OpenAPI document.
  std::string version = "0";
};

class ApiGateway {
 public:
  // `services` are full names ("exportd.v1.RunService") of services in the
  // generated descriptor pool; NOT_FOUND for one that is not.
  static absl::StatusOr<std::unique_ptr<ApiGateway>> Create(
      std::shared_ptr<grpc::Channel> channel, const std::vector<std::string>& services,
      GatewayOptions options);

  // Serves one request whose path is under /v1/. Thread-safe.
  void Handle(HttpExchange& exchange) const;

  // The OpenAPI document served at /v1/openapi.json.
  const std::string& openapi_json() const { return openapi_json_; }

 private:
  struct Route {
    const google::protobuf::MethodDescriptor* method;
    std::unique_ptr<grpc::internal::RpcMethod> rpc;
  };

  ApiGateway(std::shared_ptr<grpc::Channel> channel, GatewayOptions options)
      : channel_(std::move(channel)), options_(std::move(options)) {}

  class UploadCall;

  void PrepareContext(HttpExchange& exchange, grpc::ClientContext* context) const;
  // The JSON body as the route's request message; null after answering with
  // the error (wrong Content-Type, too large, not the message).
  std::unique_ptr<google::protobuf::Message> ReadRequest(HttpExchange& exchange,
                                                         const Route& route) const;
  void Unary(HttpExchange& exchange, const Route& route) const;
  void ServerStream(HttpExchange& exchange, const Route& route) const;
  void ClientStream(HttpExchange& exchange, const Route& route) const;
  void CsvUpload(HttpExchange& exchange, const Route& route) const;

  const std::shared_ptr<grpc::Channel> channel_;
  const GatewayOptions options_;
  // Keyed by "/exportd.v1.RunService/GetRun"; the keys also name the RPC for
  // grpc::internal::RpcMethod, which keeps only a pointer to them.
  std::map<std::string, Route, std::less<>> routes_;
  std::string openapi_json_;
};

}  // namespace exportd::http

#endif  // EXPORTD_SERVER_HTTP_API_GATEWAY_H_
