#include "server/http/http_api.h"

#include <utility>

#include "absl/strings/match.h"
#include "server/http/console.h"

namespace exportd::http {

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(HttpApiOptions options,
                                                        std::shared_ptr<grpc::Channel> channel) {
  std::unique_ptr<HttpApi> api(new HttpApi());
  absl::StatusOr<std::unique_ptr<ApiGateway>> gateway =
      ApiGateway::Create(std::move(channel), options.services, std::move(options.gateway));
  if (!gateway.ok()) return gateway.status();
  api->gateway_ = *std::move(gateway);
  options.server.response_headers = SecurityHeaders();
  const ApiGateway* routes = api->gateway_.get();
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(std::move(options.server), [routes](HttpExchange& exchange) {
        if (exchange.path() == "/v1" || absl::StartsWith(exchange.path(), "/v1/")) {
          routes->Handle(exchange);
        } else {
          ServeConsole(exchange);
        }
      });
  if (!server.ok()) return server.status();
  api->server_ = *std::move(server);
  return api;
}

}  // namespace exportd::http
