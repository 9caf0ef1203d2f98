// A fresh directory under the test's temporary directory, removed (with
// everything in it) when the object goes away.
//
//   exportd::sdk::testing::TempDir dir;
//   settings["directory"] = dir.path().string();
#ifndef EXPORTD_SDK_TESTING_TEMP_DIR_H_
#define EXPORTD_SDK_TESTING_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace exportd::sdk::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "exportd_test_XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace exportd::sdk::testing

#endif  // EXPORTD_SDK_TESTING_TEMP_DIR_H_
