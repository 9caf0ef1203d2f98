#include "server/crypto/secret_box.h"
#include "server/crypto/secret_map.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace exportd::crypto {
namespace {

std::string TempDir() {
  std::string dir = std::filesystem::temp_directory_path() / "secret_box_testXXXXXX";
  return mkdtemp(dir.data());
}

TEST(SecretBoxTest, SealOpenRoundTripAndCiphertextHidesPlaintext) {
  auto box = SecretBox::FromKey(std::string(32, 'k'));
  ASSERT_TRUE(box.ok());
  auto sealed = (*box)->Seal("top-secret-api-key");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->find("top-secret"), std::string::npos);
  auto opened = (*box)->Open(*sealed);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "top-secret-api-key");
  // Two seals of the same text differ (fresh nonce).
  EXPECT_NE(*sealed, *(*box)->Seal("top-secret-api-key"));
}

TEST(SecretBoxTest, TamperingAndWrongKeyAreDataLoss) {
  auto box = *SecretBox::FromKey(std::string(32, 'k'));
  std::string sealed = *box->Seal("secret");
  sealed[sealed.size() / 2] ^= 1;
  EXPECT_EQ(box->Open(sealed).status().code(), absl::StatusCode::kDataLoss);
  auto other = *SecretBox::FromKey(std::string(32, 'x'));
  EXPECT_EQ(other->Open(*box->Seal("secret")).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SecretBoxTest, KeyFileIsCreatedWithMode0600AndReloaded) {
  std::string path = TempDir() + "/master.key";
  auto first = SecretBox::LoadOrCreate(path);
  ASSERT_TRUE(first.ok()) << first.status();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  std::string sealed = *(*first)->Seal("hello");
  auto second = SecretBox::LoadOrCreate(path);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*(*second)->Open(sealed), "hello");
}

TEST(SecretBoxTest, MalformedKeyFileIsAClearError) {
  std::string path = TempDir() + "/master.key";
  std::ofstream(path) << "not-hex";
  auto box = SecretBox::LoadOrCreate(path);
  EXPECT_EQ(box.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(box.status().message().find(path), std::string::npos);
}

TEST(SecretMapTest, RoundTripsEmptyAndBinaryValues) {
  auto box = *SecretBox::FromKey(std::string(32, 'k'));
  SecretMap secrets{{"api_key", "abc"}, {"bin", std::string("a\0b", 3)}, {"empty", ""}};
  auto sealed = SealMap(*box, secrets);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(*OpenMap(*box, *sealed), secrets);
  EXPECT_TRUE(OpenMap(*box, "")->empty());
}

}  // namespace
}  // namespace exportd::crypto
