// What an operator's probes see of the assembled server: the gRPC health
// service by service name, and /metrics with --metrics-listen.
#include <grpcpp/generic/generic_stub.h>

#include <atomic>
#include <memory>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/api_test_fixture.h"
#include "server/observability/testing/exposition.h"

namespace exportd::api {
namespace {

constexpr int kServing = 1;
constexpr int kNotServing = 2;

class HealthTest : public ApiTest {
 protected:
  // grpc.health.v1.Health/Check for `service`, encoded by hand (Debian ships
  // no generated health stubs): the status, or the call's error.
  absl::StatusOr<int> Check(const std::string& service) {
    std::string request;
    if (!service.empty()) {
      request.push_back(0x0a);  // field 1, length-delimited
      request.push_back(static_cast<char>(service.size()));
      request += service;
    }
    grpc::Slice slice(request);
    grpc::ByteBuffer in(&slice, 1), out;
    grpc::GenericStub stub(channel_);
    grpc::ClientContext ctx;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in, &out,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    std::vector<grpc::Slice> slices;
    if (!out.Dump(&slices).ok()) return absl::DataLossError("unreadable answer");
    std::string answer;
    for (const auto& s : slices) answer.append(reinterpret_cast<const char*>(s.begin()), s.size());
    if (answer.empty()) return 0;  // UNKNOWN, the default value
    if (answer.size() != 2 || answer[0] != 0x08) return absl::DataLossError("unexpected answer");
    return static_cast<int>(answer[1]);
  }
};

TEST_F(HealthTest, EachServiceAndExportdAsAWholeAreServing) {
  for (const char* name : {"", "exportd.v1.ConnectionService", "exportd.v1.SegmentService",
                           "exportd.v1.ExportService", "exportd.v1.DestinationService",
                           "exportd.v1.AuditService", "exportd.v1.RunService",
                           "exportd.v1.ServerService"}) {
    absl::StatusOr<int> status = Check(name);
    ASSERT_TRUE(status.ok()) << "'" << name << "': " << status.status();
    EXPECT_EQ(*status, kServing) << "'" << name << "'";
  }
  EXPECT_EQ(Check("exportd.v1.NoSuchService").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(HealthTest, ARefusedPluginLeavesTheDestinationsAndExportdNotServing) {
  StopServer();
  const std::string plugins = dir_ + "/plugins";
  std::filesystem::create_directories(plugins);
  std::ofstream(plugins + "/libbroken.so") << "not a shared library";
  StartServer([&](ServerOptions& o) { o.plugin_dir = plugins; });
  EXPECT_EQ(*Check(""), kNotServing);
  EXPECT_EQ(*Check("exportd.v1.DestinationService"), kNotServing);
  EXPECT_EQ(*Check("exportd.v1.RunService"), kServing) << "what works keeps serving";
}

TEST_F(HealthTest, NotServingWhileTheStoreDoesNotAnswer) {
  StopServer();
  auto store_down = std::make_shared<std::atomic<bool>>(false);
  StartServer([store_down](ServerOptions& o) {
    o.health_probe_every = absl::Milliseconds(10);
    o.probe_store_for_testing = [store_down] {
      return *store_down ? absl::UnavailableError("disk I/O error") : absl::OkStatus();
    };
  });
  ASSERT_EQ(*Check(""), kServing);
  // Polled with a deadline: the probe runs on its own thread.
  auto wait_for = [&](const std::string& name, int want) {
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    absl::StatusOr<int> got;
    do {
      got = Check(name);
      if (got.ok() && *got == want) return true;
      absl::SleepFor(absl::Milliseconds(5));
    } while (absl::Now() < deadline);
    return false;
  };
  *store_down = true;
  EXPECT_TRUE(wait_for("", kNotServing));
  EXPECT_TRUE(wait_for("exportd.v1.RunService", kNotServing));
  *store_down = false;
  EXPECT_TRUE(wait_for("", kServing));
  EXPECT_TRUE(wait_for("exportd.v1.RunService", kServing));
}

TEST_F(HealthTest, MetricsListenServesTheServersMetrics) {
  EXPECT_EQ(server_->metrics_port(), 0) << "off unless asked for";
  StopServer();
  StartServer([](ServerOptions& o) { o.metrics_listen = "127.0.0.1:0"; });
  ASSERT_GT(server_->metrics_port(), 0);
  EXPECT_THAT(server_->Describe(),
              ::testing::HasSubstr("metrics: http://127.0.0.1:" +
                                   std::to_string(server_->metrics_port()) + "/metrics"));
  // Committed uploads count; one refused for a bad row does not.
  v1::Segment segment;
  ASSERT_TRUE(CreateSegment("VIP", {"Email", "FirstName"}, &segment).ok());
  v1::UploadMembersResponse resp;
  ASSERT_TRUE(Upload("VIP", 25, &resp).ok());
  ASSERT_FALSE(Upload("VIP", 10, &resp, /*bad_row=*/3).ok());
  auto body = observability::testing::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  auto e = observability::testing::ParseExposition(*body);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->Has("exportd_build_info"));
  EXPECT_EQ(e->Value("exportd_plugins_loaded"), 1) << "the fake destination";
  EXPECT_EQ(e->Value("exportd_plugins_refused"), 0);
  EXPECT_EQ(e->Value("exportd_upload_rows_total"), 25);
  EXPECT_GT(e->Value("exportd_upload_bytes_total"), 25 * 20) << "at least the emails";
}

// With metrics on, every store operation is timed by its Store method's name,
// and the requests a plugin reports while a connection is tested count.
TEST_F(HealthTest, MetricsTimeEveryStoreOperationAndCountTheRequestsOfAConnectionTest) {
  StopServer();
  StartServer([](ServerOptions& o) { o.metrics_listen = "127.0.0.1:0"; });
  v1::Connection connection;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("c"), &connection).ok());
  v1::TestConnectionRequest test;
  test.set_connection("c");
  v1::TestConnectionResponse tested;
  ASSERT_TRUE(connections_->TestConnection(As(kAdmin).get(), test, &tested).ok());
  ASSERT_TRUE(tested.ok()) << tested.message();
  v1::Segment segment;
  ASSERT_TRUE(CreateSegment("VIP", {"k", "extra"}, &segment).ok());
  v1::UploadMembersResponse uploaded;
  ASSERT_TRUE(Upload("VIP", 30, &uploaded).ok());
  v1::CreateExportRequest create;
  create.set_name("vip");
  create.set_connection("c");
  create.add_segments("VIP");
  auto* mapping = create.add_mappings();
  mapping->set_destination_field("key");
  mapping->set_profile_field("k");
  v1::Export created;
  ASSERT_TRUE(exports_->CreateExport(As(kAdmin).get(), create, &created).ok());
  v1::RunExportRequest run_request;
  run_request.set_export_("vip");
  v1::Run run;
  ASSERT_TRUE(runs_->RunExport(As(kAdmin).get(), run_request, &run).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (run.state() != v1::RUN_STATE_SUCCEEDED && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
    v1::GetRunRequest get;
    get.set_run_id(run.id());
    ASSERT_TRUE(runs_->GetRun(As(kAdmin).get(), get, &run).ok());
  }
  ASSERT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.DebugString();
  // A read that always reaches the store (GetRun may answer from the engine's
  // live view of the run).
  v1::ListRunsRequest list;
  list.set_export_("vip");
  v1::ListRunsResponse listed;
  ASSERT_TRUE(runs_->ListRuns(As(kAdmin).get(), list, &listed).ok());

  auto body = observability::testing::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  auto e = observability::testing::ParseExposition(*body);
  ASSERT_TRUE(e.ok()) << e.status();
  for (const char* operation :
       {"CreateConnection", "GetConnection", "CreateSegment", "BeginSnapshot",
        "SnapshotWriter.Commit", "CreateExport", "CreateRun", "ClaimNextRun", "UpdateLeasedRun",
        "PutAudienceState", "ForEachDelivered", "CommitBatch", "ListRuns", "AppendAudit"}) {
    EXPECT_GE(e->Value("exportd_store_operation_duration_seconds_count",
                       {{"operation", operation}}),
              1)
        << operation << "\n"
        << *body;
  }
  EXPECT_EQ(e->Value("exportd_store_operation_duration_seconds_count",
                     {{"operation", "DeleteExport"}}),
            0)
      << "only what ran is counted";
  EXPECT_EQ(e->Value("exportd_destination_requests_total",
                     {{"destination", "fake"}, {"endpoint", "/fake/check"}, {"status", "200"}}),
            1);
  EXPECT_GE(e->Value("exportd_destination_requests_total",
                     {{"destination", "fake"}, {"endpoint", "/fake/upsert"}, {"status", "200"}}),
            1);
}

TEST_F(HealthTest, AMetricsAddressInUseFailsTheStart) {
  StopServer();
  StartServer([](ServerOptions& o) { o.metrics_listen = "127.0.0.1:0"; });
  const int taken = server_->metrics_port();
  ServerOptions second;
  second.listen = "127.0.0.1:0";
  second.data_dir = dir_ + "/data2";
  second.tokens_file = dir_ + "/tokens";
  second.metrics_listen = "127.0.0.1:" + std::to_string(taken);
  auto server = Server::Start(std::move(second));
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(server.status().message()), ::testing::HasSubstr("--metrics-listen"));
}

}  // namespace
}  // namespace exportd::api
