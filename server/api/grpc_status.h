// The one place where absl::Status becomes grpc::Status (at the RPC edge).
#ifndef EXPORTD_SERVER_API_GRPC_STATUS_H_
#define EXPORTD_SERVER_API_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace exportd {

// The most an error message takes in the `grpc-message` trailer, which carries
// bytes outside printable ASCII (and '%') percent-encoded, three bytes each.
// Well under the 8 KiB gRPC allows for all of a response's metadata by
// default, so a long message (one that quotes a long input) still reaches the
// client instead of failing the call.
inline constexpr std::size_t kMaxStatusMessageBytes = 4096;

// Same canonical code, same message, cut by CutStatusMessage.
grpc::Status ToGrpcStatus(const absl::Status& status);
// The reverse, for clients and tests.
absl::Status FromGrpcStatus(const grpc::Status& status);

// `message` itself when it takes at most kMaxStatusMessageBytes as it
// travels; otherwise its start, cut at a UTF-8 character boundary, followed
// by "… (N more bytes)", together within that size.
std::string CutStatusMessage(absl::string_view message);

}  // namespace exportd

#endif  // EXPORTD_SERVER_API_GRPC_STATUS_H_
