// The one place where absl::Status becomes grpc::Status (at the RPC edge).
#ifndef EXPORTD_SERVER_COMMON_GRPC_STATUS_H_
#define EXPORTD_SERVER_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace exportd {

// Same canonical code, same message.
grpc::Status ToGrpcStatus(const absl::Status& status);
// The reverse, for clients and tests.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_GRPC_STATUS_H_
