#include "server/common/log.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd {
namespace {

const absl::Time kTime = absl::FromUnixMicros(1764684332123456);

TEST(LogTest, TextKeepsTheLinesExportdAlwaysWrote) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kTime, LogLevel::kInfo,
                          {"engine", "run-1", "vip", "VIP"}, "delivered 10 records"),
            "exportd: run run-1: delivered 10 records");
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kTime, LogLevel::kWarning, {"server"}, "careful"),
            "exportd: careful");
}

TEST(LogTest, JsonIsOneObjectPerLineWithEveryField) {
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, kTime, LogLevel::kError,
                          {"engine", "run-1", "vip", "VIP"}, "said \"no\"\nthen\x01"),
            "{\"time\":\"2025-12-02T14:05:32.123456Z\",\"level\":\"error\","
            "\"component\":\"engine\",\"run_id\":\"run-1\",\"export\":\"vip\","
            "\"segment\":\"VIP\",\"message\":\"said \\\"no\\\"\\nthen\\u0001\"}");
  // Fields a line is not about are left out.
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, kTime, LogLevel::kInfo, {"server"}, "up"),
            "{\"time\":\"2025-12-02T14:05:32.123456Z\",\"level\":\"info\","
            "\"component\":\"server\",\"message\":\"up\"}");
}

TEST(LogTest, ParsesTheFormatFlag) {
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  absl::StatusOr<LogFormat> bad = ParseLogFormat("yaml");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("text (the default) or json"));
}

}  // namespace
}  // namespace exportd
