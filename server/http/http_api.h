// exportd's HTTP listener (--http-listen): the HTTP/JSON API under /v1/
// (api_gateway.h) and the web console under / (console.h), on one
// HttpServer, every response with the console's security headers.
//
//   HttpApiOptions options;
//   options.server.listen = "127.0.0.1:8080";
//   options.services = {"exportd.v1.RunService", ...};
//   EXPORTD_ASSIGN_OR_RETURN(auto http, HttpApi::Start(std::move(options),
//       grpc_server->InProcessChannel(grpc::ChannelArguments())));
//   ... http->port() ...
//   http->Stop();  // before the gRPC server shuts down
#ifndef EXPORTD_SERVER_HTTP_HTTP_API_H_
#define EXPORTD_SERVER_HTTP_HTTP_API_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/http/api_gateway.h"
#include "server/http/http_server.h"

namespace exportd::http {

struct HttpApiOptions {
  HttpServerOptions server;
  GatewayOptions gateway;
  // The gRPC services the API serves, by full name.
  std::vector<std::string> services;
};

class HttpApi {
 public:
  // `channel` reaches exportd's gRPC server; the in-process one.
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(HttpApiOptions options,
                                                        std::shared_ptr<grpc::Channel> channel);

  int port() const { return server_->port(); }
  bool tls() const { return server_->tls(); }
  // Stops serving; waits for the requests in flight. Idempotent.
  void Stop() { server_->Stop(); }

 private:
  HttpApi() = default;
  std::unique_ptr<ApiGateway> gateway_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace exportd::http

#endif  // EXPORTD_SERVER_HTTP_HTTP_API_H_
