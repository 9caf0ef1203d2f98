// Helpers shared by the plugin host's tests.
#ifndef EXPORTD_SERVER_DESTINATIONS_TEST_UTIL_H_
#define EXPORTD_SERVER_DESTINATIONS_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "exportd/sdk/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace exportd::destinations::testing {

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

using ::exportd::sdk::testing::TempDir;

}  // namespace exportd::destinations::testing

#endif  // EXPORTD_SERVER_DESTINATIONS_TEST_UTIL_H_
