// Helpers shared by the plugin host's tests.
#ifndef EXPORTD_SERVER_PLUGIN_HOST_TEST_UTIL_H_
#define EXPORTD_SERVER_PLUGIN_HOST_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::plugin_host::testing {

// Matches an absl::Status (or StatusOr) with `code` whose message matches
// `message_matcher`.
MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status status = [&] {
    if constexpr (std::is_same_v<std::decay_t<arg_type>, absl::Status>) {
      return arg;
    } else {
      return arg.status();
    }
  }();
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

// A fresh directory under the test's temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "exportd_plugin_host_XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace exportd::plugin_host::testing

#endif  // EXPORTD_SERVER_PLUGIN_HOST_TEST_UTIL_H_
