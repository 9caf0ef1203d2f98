// Errors in the Connect protocol's JSON form (docs/http-api.md, "Errors"):
// the canonical gRPC code in Connect's snake_case spelling, Connect's HTTP
// status for it, and the error body, which also carries the numeric code.
//
//   grpc::Status status(grpc::NOT_FOUND, "export 'vip' does not exist");
//   ConnectHttpStatus(status.error_code());  // 404
//   ConnectErrorJson(status);
//   // {"code":"not_found","message":"export 'vip' does not exist","grpcCode":5}
#ifndef EXPORTD_SERVER_HTTP_CONNECT_ERROR_H_
#define EXPORTD_SERVER_HTTP_CONNECT_ERROR_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/strings/string_view.h"

namespace exportd::http {

// "not_found", "invalid_argument", ...; "unknown" for a code out of range.
absl::string_view ConnectCodeName(grpc::StatusCode code);
// Connect's HTTP status for the code: 404 for not_found, 401 for unauthenticated, ...
int ConnectHttpStatus(grpc::StatusCode code);
// {"code":"...","message":"...","grpcCode":N}
std::string ConnectErrorJson(const grpc::Status& status);

}  // namespace exportd::http

#endif  // EXPORTD_SERVER_HTTP_CONNECT_ERROR_H_
