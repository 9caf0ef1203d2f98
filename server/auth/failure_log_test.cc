#include "server/auth/failure_log.h"

#include <sstream>
#include <string>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/log.h"

namespace exportd::auth {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> Lines(const std::ostringstream& out) {
  return absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
}

class FailureLogTest : public ::testing::Test {
 protected:
  FailureLog::Clock Clock() {
    return [this] { return now_; };
  }
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  std::ostringstream out_;
};

TEST_F(FailureLogTest, OneLinePerSecondThenHowManyWereSuppressed) {
  FailureLog log(out_, Clock());
  log.Record("unknown token", "ipv4:10.0.0.7:51234");
  for (int i = 0; i < 1000; ++i) {
    now_ += absl::Microseconds(500);
    log.Record("unknown token", "ipv4:10.0.0.7:51234");
  }
  EXPECT_EQ(log.count(), 1001u);
  EXPECT_THAT(Lines(out_), ElementsAre("exportd: authentication failed: unknown token (principal "
                                       "unknown) from ipv4:10.0.0.7:51234"));
  now_ += absl::Seconds(1);
  log.Record("no token", "");
  EXPECT_THAT(Lines(out_),
              ElementsAre("exportd: authentication failed: unknown token (principal unknown) "
                          "from ipv4:10.0.0.7:51234",
                          "exportd: 1000 more failed authentications suppressed",
                          "exportd: authentication failed: no token (principal unknown) from an "
                          "unknown peer"));
  EXPECT_EQ(log.count(), 1002u);
}

TEST_F(FailureLogTest, TheLastSuppressedCountIsPrintedAtShutdown) {
  {
    FailureLog log(out_, Clock());
    log.Record("unknown token", "ipv4:10.0.0.7:1");
    log.Record("unknown token", "ipv4:10.0.0.7:2");
  }
  EXPECT_THAT(Lines(out_), ElementsAre("exportd: authentication failed: unknown token (principal "
                                       "unknown) from ipv4:10.0.0.7:1",
                                       "exportd: 1 more failed authentication suppressed"));
}

TEST_F(FailureLogTest, NothingFailedNothingPrinted) {
  { FailureLog log(out_, Clock()); }
  EXPECT_THAT(Lines(out_), IsEmpty());
}

TEST_F(FailureLogTest, APeerCannotWriteALineOfItsOwn) {
  FailureLog log(out_, Clock());
  log.Record("unknown token", "ipv4:1.2.3.4:5\nexportd: forged");
  EXPECT_THAT(Lines(out_), ElementsAre("exportd: authentication failed: unknown token (principal "
                                       "unknown) from ipv4:1.2.3.4:5\\nexportd: forged"));
}

TEST_F(FailureLogTest, AClockThatWentBackLogsAtOnce) {
  FailureLog log(out_, Clock());
  log.Record("unknown token", "a");
  now_ -= absl::Hours(1);
  log.Record("unknown token", "b");
  EXPECT_EQ(Lines(out_).size(), 2u);
}

// By default the lines go through exportd's log, so --log-format json holds.
TEST(FailureLogDefaultTest, WritesThroughExportdsLogInItsFormat) {
  SetLogFormat(LogFormat::kJson);
  ::testing::internal::CaptureStderr();
  {
    FailureLog log;
    log.Record("unknown token", "ipv4:127.0.0.1:5");
  }
  const std::string logged = ::testing::internal::GetCapturedStderr();
  SetLogFormat(LogFormat::kText);
  EXPECT_THAT(logged, ::testing::StartsWith("{\"time\":"));
  EXPECT_THAT(logged, ::testing::HasSubstr(
                          "\"level\":\"warning\",\"component\":\"auth\",\"message\":"
                          "\"authentication failed: unknown token (principal unknown) from "
                          "ipv4:127.0.0.1:5\"}\n"));
}

}  // namespace
}  // namespace exportd::auth
