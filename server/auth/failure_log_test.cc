#include "server/auth/failure_log.h"

#include <sstream>
#include <string>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace exportd::auth
