#include "server/common/private_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd {
namespace {

using ::testing::HasSubstr;

class PrivateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = std::filesystem::temp_directory_path() / "private_file_testXXXXXX";
    dir_ = mkdtemp(dir.data());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WriteFile(const std::string& name, mode_t mode) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "secret\n";
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  std::string dir_;
};

TEST_F(PrivateFileTest, OwnerOnlyFilesPass) {
  EXPECT_TRUE(CheckPrivateFile(WriteFile("rw", 0600), "--tokens-file").ok());
  EXPECT_TRUE(CheckPrivateFile(WriteFile("r", 0400), "--tokens-file").ok());
}

TEST_F(PrivateFileTest, GroupOrOthersReadableIsRefusedWithTheChmodToRun) {
  std::string path = WriteFile("tokens", 0644);
  absl::Status status = CheckPrivateFile(path, "--tokens-file");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("--tokens-file '" + path + "'"));
  EXPECT_THAT(status.message(), HasSubstr("readable by group or others (mode 0644)"));
  EXPECT_THAT(status.message(), HasSubstr("run 'chmod 600 " + path + "'"));

  absl::Status group = CheckPrivateFile(WriteFile("group", 0640), "admin token file");
  EXPECT_EQ(group.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(group.message(), HasSubstr("admin token file"));
  EXPECT_THAT(group.message(), HasSubstr("(mode 0640)"));
}

TEST_F(PrivateFileTest, GroupWritableIsRefusedToo) {
  absl::Status status = CheckPrivateFile(WriteFile("w", 0620), "--master-key-file");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("writable by group or others (mode 0620)"));
}

TEST_F(PrivateFileTest, MissingFileIsNotFoundAndADirectoryIsRefused) {
  absl::Status missing = CheckPrivateFile(dir_ + "/none", "--master-key-file");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("'" + dir_ + "/none' does not exist"));
  absl::Status directory = CheckPrivateFile(dir_, "--tokens-file");
  EXPECT_EQ(directory.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(directory.message(), HasSubstr("not a regular file"));
}

}  // namespace
}  // namespace exportd
