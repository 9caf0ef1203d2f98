#include "server/api/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace exportd {
namespace {

// Bytes `c` takes in the grpc-message trailer (percent-encoding).
std::size_t EncodedSize(char c) { return c >= 0x20 && c <= 0x7e && c != '%' ? 1 : 3; }

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xc0) == 0x80; }

// "… (N more bytes)" takes at most this much encoded: the ellipsis 9 bytes,
// 20 digits and 14 characters of text.
constexpr std::size_t kSuffixReserve = 48;

}  // namespace

std::string CutStatusMessage(absl::string_view message) {
  std::size_t encoded = 0;
  std::size_t fits = 0;  // The longest prefix that leaves room for the suffix.
  for (std::size_t i = 0; i < message.size() && encoded <= kMaxStatusMessageBytes; ++i) {
    encoded += EncodedSize(message[i]);
    if (encoded <= kMaxStatusMessageBytes - kSuffixReserve) fits = i + 1;
  }
  if (encoded <= kMaxStatusMessageBytes) return std::string(message);
  // Back up to the first byte of a character, so no character is split.
  while (fits > 0 && fits < message.size() && IsContinuationByte(message[fits])) --fits;
  return absl::StrCat(message.substr(0, fits), "\u2026 (", message.size() - fits, " more bytes)");
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      CutStatusMessage(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace exportd
