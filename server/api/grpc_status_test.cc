#include "server/api/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd {
namespace {

using ::testing::EndsWith;
using ::testing::StartsWith;

// Bytes of `s` as it travels in the grpc-message trailer.
std::size_t Encoded(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c >= 0x20 && c <= 0x7e && c != '%' ? 1 : 3;
  return n;
}

TEST(GrpcStatusTest, KeepsCodeAndShortMessages) {
  grpc::Status status = ToGrpcStatus(absl::NotFoundError("segment 'x' not found"));
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "segment 'x' not found");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  const std::string exactly(kMaxStatusMessageBytes, 'x');
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError(exactly)).error_message(), exactly);
}

TEST(GrpcStatusTest, LongMessagesAreCutAndSayHowMuchWasLeftOut) {
  const std::string message = "export 'x': " + std::string(10000, 'a');
  grpc::Status status = ToGrpcStatus(absl::InvalidArgumentError(message));
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  const std::string& cut = status.error_message();
  EXPECT_LE(Encoded(cut), kMaxStatusMessageBytes);
  EXPECT_THAT(cut, StartsWith("export 'x': aaaa"));
  const std::size_t kept = cut.find("\u2026");
  ASSERT_NE(kept, std::string::npos);
  EXPECT_EQ(cut.substr(0, kept), message.substr(0, kept));
  EXPECT_THAT(cut, EndsWith(absl::StrCat("\u2026 (", message.size() - kept, " more bytes)")));
  // One byte over is cut too.
  EXPECT_NE(CutStatusMessage(std::string(kMaxStatusMessageBytes + 1, 'x')),
            std::string(kMaxStatusMessageBytes + 1, 'x'));
}

TEST(GrpcStatusTest, CutsAtACharacterBoundaryAndCountsEncodedBytes) {
  // 'ü' is two bytes, each sent as three ("%C3%BC"): 1,500 of them do not fit.
  std::string message;
  for (int i = 0; i < 1500; ++i) message += "\xc3\xbc";
  const std::string cut = CutStatusMessage(message);
  EXPECT_LE(Encoded(cut), kMaxStatusMessageBytes);
  const std::size_t kept = cut.find("\u2026");
  ASSERT_NE(kept, std::string::npos);
  EXPECT_EQ(kept % 2, 0u) << "a character was split";
  EXPECT_EQ(cut.substr(0, kept), message.substr(0, kept));
  EXPECT_THAT(cut, EndsWith(absl::StrCat("(", message.size() - kept, " more bytes)")));
  // Three-byte characters after one ASCII byte: still whole characters.
  std::string odd = "x";
  for (int i = 0; i < 1000; ++i) odd += "\xe2\x82\xac";  // '€'
  const std::string odd_cut = CutStatusMessage(odd);
  EXPECT_EQ((odd_cut.find("\u2026") - 1) % 3, 0u);
  EXPECT_LE(Encoded(odd_cut), kMaxStatusMessageBytes);
}

}  // namespace
}  // namespace exportd
