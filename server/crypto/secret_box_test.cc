#include "server/crypto/secret_box.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "exportd/sdk/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/crypto/secret_map.h"

namespace exportd::crypto {
namespace {

using ::testing::HasSubstr;

// A fresh directory, removed when the test program ends.
std::string TempDir() {
  static std::vector<std::unique_ptr<sdk::testing::TempDir>> dirs;
  dirs.push_back(std::make_unique<sdk::testing::TempDir>());
  return dirs.back()->path().string();
}

// Sealed by exportd before secrets were bound to their row (format 1), under
// the key std::string(32, 'k'): Seal("legacy-secret") and
// SealMap({{"token", "s3cr3t-value-xyz"}}).
constexpr char kUnboundSeal[] =
    "01c0947c5d222e9d35e4a941fafb75d481838ae124113696c786d7442e9de82fb5ac1bf61f61efd22c45";
constexpr char kUnboundMap[] =
    "019ab21569ee0e5a535850f64e552049a7b1a3f996d35c4c7512db4cd787d442bce490380d89b8f4fa320b5fa4"
    "20240095330643811ce5099e29";

TEST(SecretBoxTest, SealOpenRoundTripAndCiphertextHidesPlaintext) {
  auto box = SecretBox::FromKey(std::string(32, 'k'));
  ASSERT_TRUE(box.ok());
  auto sealed = (*box)->Seal("top-secret-api-key", "row-1");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->find("top-secret"), std::string::npos);
  EXPECT_EQ(SecretBox::Format(*sealed), SecretBox::kBoundFormat);
  auto opened = (*box)->Open(*sealed, "row-1");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "top-secret-api-key");
  // Two seals of the same text differ (fresh nonce).
  EXPECT_NE(*sealed, *(*box)->Seal("top-secret-api-key", "row-1"));
}

TEST(SecretBoxTest, TamperingWrongKeyAndWrongAdditionalDataAreDataLoss) {
  auto box = *SecretBox::FromKey(std::string(32, 'k'));
  std::string sealed = *box->Seal("secret", "row-1");
  EXPECT_EQ(box->Open(sealed, "row-2").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(box->Open(sealed, "").status().code(), absl::StatusCode::kDataLoss);
  auto other = *SecretBox::FromKey(std::string(32, 'x'));
  EXPECT_EQ(other->Open(sealed, "row-1").status().code(), absl::StatusCode::kDataLoss);
  // A bound value relabelled as unbound does not open either.
  std::string relabelled = sealed;
  relabelled[0] = SecretBox::kUnboundFormat;
  EXPECT_EQ(box->Open(relabelled, "row-1").status().code(), absl::StatusCode::kDataLoss);
  sealed[sealed.size() / 2] ^= 1;
  EXPECT_EQ(box->Open(sealed, "row-1").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(box->Open(std::string("\x07", 1) + std::string(40, 'a'), "row-1").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(SecretBoxTest, ValuesSealedInTheUnboundFormatStillOpen) {
  auto box = *SecretBox::FromKey(std::string(32, 'k'));
  std::string sealed = absl::HexStringToBytes(kUnboundSeal);
  EXPECT_EQ(SecretBox::Format(sealed), SecretBox::kUnboundFormat);
  auto opened = box->Open(sealed, "any row");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "legacy-secret");
}

TEST(SecretBoxTest, KeyFileIsCreatedWithMode0600AndReloaded) {
  std::string path = TempDir() + "/master.key";
  EXPECT_EQ(SecretBox::Load(path).status().code(), absl::StatusCode::kNotFound);
  auto first = SecretBox::Create(path);
  ASSERT_TRUE(first.ok()) << first.status();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  std::string sealed = *(*first)->Seal("hello", "a");
  auto second = SecretBox::Load(path);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*(*second)->Open(sealed, "a"), "hello");
  // Create never replaces a key.
  EXPECT_EQ(SecretBox::Create(path).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*(*SecretBox::Load(path))->Open(sealed, "a"), "hello");
}

TEST(SecretBoxTest, MalformedKeyFileIsAClearError) {
  std::string path = TempDir() + "/master.key";
  std::ofstream(path) << "not-hex";
  auto box = SecretBox::Load(path);
  EXPECT_EQ(box.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(box.status().message(), HasSubstr(path));
  std::ofstream(path) << std::string(64, 'a') << std::string(64, 'b');
  EXPECT_EQ(SecretBox::Load(path).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SecretBoxTest, CheckValueIdentifiesTheKeyWithoutRevealingIt) {
  auto box = *SecretBox::FromKey(std::string(32, 'k'));
  auto other = *SecretBox::FromKey(std::string(32, 'x'));
  const std::string check = box->CheckValue();
  EXPECT_THAT(check, ::testing::StartsWith("hmac-sha256:"));
  EXPECT_EQ(check.size(), std::string("hmac-sha256:").size() + 64);
  EXPECT_EQ(check, (*SecretBox::FromKey(std::string(32, 'k')))->CheckValue());
  EXPECT_NE(check, other->CheckValue());
  EXPECT_EQ(check.find(absl::BytesToHexString(std::string(32, 'k'))), std::string::npos);
  EXPECT_TRUE(box->MatchesCheckValue(check));
  EXPECT_FALSE(other->MatchesCheckValue(check));
  EXPECT_FALSE(box->MatchesCheckValue(""));
  EXPECT_FALSE(box->MatchesCheckValue(check.substr(0, check.size() - 1)));
}

TEST(SecretMapTest, RoundTripsEmptyAndBinaryValues) {
  auto box = *SecretBox::FromKey(std::string(32, 'k'));
  SecretMap secrets{{"api_key", "abc"}, {"bin", std::string("a\0b", 3)}, {"empty", ""}};
  auto sealed = SealMap(*box, "conn-1", secrets);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(*OpenMap(*box, "conn-1", *sealed), secrets);
  EXPECT_TRUE(OpenMap(*box, "conn-1", "")->empty());
}

TEST(SecretMapTest, SecretsCopiedToAnotherConnectionDoNotOpen) {
  auto box = *SecretBox::FromKey(std::string(32, 'k'));
  std::string sealed = *SealMap(*box, "conn-1", {{"api_key", "abc"}});
  auto moved = OpenMap(*box, "conn-2", sealed);
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(moved.status().message(), HasSubstr("connection 'conn-2'"));
  // A prefix of the id is another id, not the same one.
  EXPECT_EQ(OpenMap(*box, "conn-", sealed).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SecretMapTest, MapsSealedBeforeBindingOpenAndAreResealedBound) {
  auto box = *SecretBox::FromKey(std::string(32, 'k'));
  std::string legacy = absl::HexStringToBytes(kUnboundMap);
  auto opened = OpenMap(*box, "conn-1", legacy);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, (SecretMap{{"token", "s3cr3t-value-xyz"}}));
  std::string resealed = *SealMap(*box, "conn-1", *opened);
  EXPECT_EQ(SecretBox::Format(resealed), SecretBox::kBoundFormat);
  EXPECT_EQ(*OpenMap(*box, "conn-1", resealed), *opened);
  EXPECT_EQ(OpenMap(*box, "conn-2", resealed).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace exportd::crypto
