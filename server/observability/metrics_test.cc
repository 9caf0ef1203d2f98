#include "server/observability/metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/observability/testing/exposition.h"

namespace exportd::observability {
namespace {

using testing::HttpGet;
using testing::ParseExposition;
using ::testing::HasSubstr;

TEST(MetricsTest, ServesTheExpositionOnTheBoundPort) {
  Metrics metrics("1.2.3", 7);
  metrics.RunStarted("vip");
  metrics.RunFinished("vip", "succeeded", absl::Seconds(3));
  metrics.Records("vip", "fake", RecordOutcome::kDelivered, 40);
  metrics.Records("vip", "fake", RecordOutcome::kRejected, 2);
  metrics.PluginCall("fake", "upsert", "OK", absl::Milliseconds(20));
  metrics.DestinationRequest("fake", "/api/lists/subscribe", 200, absl::Milliseconds(30));
  metrics.DestinationRequest("fake", "/api/lists/subscribe", 429, absl::Milliseconds(10));
  metrics.DestinationRequest("fake", "/api/lists", 0, absl::Seconds(10));
  metrics.Throttled("fake");
  metrics.LimiterRate("conn \"a\"", 2.5);
  metrics.Queue(3, absl::Seconds(90));
  metrics.Upload(10, 512);
  metrics.StoreOperation("CommitBatch", absl::Milliseconds(4));
  metrics.Plugins(2, 1);
  auto port = metrics.Serve("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.status();
  ASSERT_GT(*port, 0);
  auto body = HttpGet(*port, "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  auto e = ParseExposition(*body);
  ASSERT_TRUE(e.ok()) << e.status() << "\n" << *body;
  EXPECT_EQ(e->types.at("exportd_runs_started_total"), "counter");
  EXPECT_EQ(e->types.at("exportd_run_duration_seconds"), "histogram");
  EXPECT_EQ(e->Value("exportd_build_info", {{"version", "1.2.3"}, {"abi", "7"}}), 1);
  EXPECT_EQ(e->Value("exportd_runs_finished_total", {{"export", "vip"}, {"state", "succeeded"}}),
            1);
  EXPECT_EQ(e->Value("exportd_run_duration_seconds_sum", {{"export", "vip"}}), 3);
  EXPECT_EQ(e->Value("exportd_records_total", {{"outcome", "delivered"}}), 40);
  EXPECT_EQ(e->Value("exportd_records_total", {{"outcome", "rejected"}}), 2);
  EXPECT_EQ(e->Value("exportd_destination_calls_total",
                     {{"destination", "fake"}, {"call", "upsert"}, {"status", "OK"}}),
            1);
  EXPECT_EQ(e->Value("exportd_destination_call_duration_seconds_count"), 1);
  for (const char* status : {"200", "429"}) {
    EXPECT_EQ(e->Value("exportd_destination_requests_total",
                       {{"destination", "fake"},
                        {"endpoint", "/api/lists/subscribe"},
                        {"status", status}}),
              1)
        << status;
  }
  EXPECT_EQ(e->Value("exportd_destination_requests_total",
                     {{"endpoint", "/api/lists"}, {"status", "0"}}),
            1);
  EXPECT_EQ(e->Value("exportd_destination_request_duration_seconds_count",
                     {{"endpoint", "/api/lists/subscribe"}}),
            2);
  EXPECT_NEAR(e->Value("exportd_destination_request_duration_seconds_sum",
                       {{"endpoint", "/api/lists/subscribe"}}),
              0.04, 1e-9);
  EXPECT_EQ(e->Value("exportd_destination_throttled_total"), 1);
  // Label values are escaped and read back as they were.
  EXPECT_EQ(e->Value("exportd_connection_rate_limit_requests_per_second",
                     {{"connection", "conn \"a\""}}),
            2.5);
  EXPECT_EQ(e->Value("exportd_runs_queued"), 3);
  EXPECT_EQ(e->Value("exportd_oldest_queued_run_age_seconds"), 90);
  EXPECT_EQ(e->Value("exportd_upload_rows_total"), 10);
  EXPECT_EQ(e->Value("exportd_upload_bytes_total"), 512);
  EXPECT_EQ(e->Value("exportd_store_operation_duration_seconds_count",
                     {{"operation", "CommitBatch"}}),
            1);
  EXPECT_EQ(e->Value("exportd_plugins_loaded"), 2);
  EXPECT_EQ(e->Value("exportd_plugins_refused"), 1);
  // What the endpoint serves is what Text() says (the registry is the one owner).
  EXPECT_THAT(metrics.Text(), HasSubstr("exportd_records_total"));
}

TEST(MetricsTest, AnAddressThatCannotBeBoundIsUnavailable) {
  Metrics first("1", 1);
  auto port = first.Serve("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.status();
  Metrics second("1", 1);
  auto taken = second.Serve("127.0.0.1:" + std::to_string(*port));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(taken.status().message()), HasSubstr("--metrics-listen"));
}

TEST(ParseExpositionTest, RefusesMalformedText) {
  EXPECT_FALSE(ParseExposition("undeclared 1\n").ok());
  EXPECT_FALSE(ParseExposition("# TYPE a counter\na{x=\"1\" 1\n").ok());
  EXPECT_FALSE(ParseExposition("# TYPE a counter\na one\n").ok());
  EXPECT_TRUE(ParseExposition("# TYPE a counter\na{x=\"1\"} 1\n").ok());
}

}  // namespace
}  // namespace exportd::observability
