#include "server/http/connect_error.h"

#include "nlohmann/json.hpp"

namespace exportd::http {
namespace {

struct CodeInfo {
  const char* name;
  int http_status;
};

// Indexed by grpc::StatusCode (0 to 16), from connectrpc.com/docs/protocol.
constexpr CodeInfo kCodes[] = {
    {"ok", 200},
    {"canceled", 499},
    {"unknown", 500},
    {"invalid_argument", 400},
    {"deadline_exceeded", 504},
    {"not_found", 404},
    {"already_exists", 409},
    {"permission_denied", 403},
    {"resource_exhausted", 429},
    {"failed_precondition", 400},
    {"aborted", 409},
    {"out_of_range", 400},
    {"unimplemented", 501},
    {"internal", 500},
    {"unavailable", 503},
    {"data_loss", 500},
    {"unauthenticated", 401},
};

const CodeInfo& Info(grpc::StatusCode code) {
  const int index = static_cast<int>(code);
  if (index < 0 || index >= static_cast<int>(std::size(kCodes))) return kCodes[2];
  return kCodes[index];
}

}  // namespace

absl::string_view ConnectCodeName(grpc::StatusCode code) { return Info(code).name; }

int ConnectHttpStatus(grpc::StatusCode code) { return Info(code).http_status; }

std::string ConnectErrorJson(const grpc::Status& status) {
  nlohmann::json body = {{"code", Info(status.error_code()).name},
                         {"message", status.error_message()},
                         {"grpcCode", static_cast<int>(status.error_code())}};
  // A message that is not UTF-8 must not make the error itself fail.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace exportd::http
