// The HTTP/JSON API (docs/http-api.md) against a real exportd Server: every
// route with each role from the gRPC permission matrix's table, with the same
// codes and messages as gRPC; JSON errors, limits, Server-Sent Events, CSV and
// NDJSON uploads, the OpenAPI document, the console and TLS.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/exportctl.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/api/permission_matrix.h"
#include "server/api/rpc_support.h"
#include "server/http/connect_error.h"
#include "server/http/console.h"
#include "server/http/testing/http_client.h"
#include "tests/support/test_certificates.h"

namespace exportd::api {
namespace {

using ::exportd::http::testing::HttpClient;
using ::exportd::http::testing::HttpRequest;
using ::exportd::http::testing::HttpResult;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &json).ok());
  return json;
}

// The Connect error body of an answer as a grpc::Status; checks that the HTTP
// status and the code's name agree with the numeric code.
grpc::Status ErrorOf(const HttpResult& r) {
  nlohmann::json body = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("grpcCode")) {
    ADD_FAILURE() << "not a Connect error body: HTTP " << r.status << " " << r.body;
    return grpc::Status(grpc::UNKNOWN, r.body);
  }
  auto code = static_cast<grpc::StatusCode>(body["grpcCode"].get<int>());
  EXPECT_EQ(body["code"].get<std::string>(), http::ConnectCodeName(code)) << r.body;
  return grpc::Status(code, body["message"].get<std::string>());
}

// The events of a Server-Sent Events body: (event name, data), "message" for
// plain data events.
std::vector<std::pair<std::string, std::string>> Events(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> events;
  for (absl::string_view block : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    std::string name = "message", data;
    bool comment_only = true;
    for (absl::string_view line : absl::StrSplit(block, '\n')) {
      if (absl::StartsWith(line, "event: ")) name = std::string(line.substr(7));
      if (absl::StartsWith(line, "data: ")) data = std::string(line.substr(6));
      if (!absl::StartsWith(line, ":")) comment_only = false;
    }
    if (!comment_only) events.emplace_back(name, data);
  }
  return events;
}

class HttpApiTest : public PermissionMatrixTest {
 protected:
  void Configure(ServerOptions& options) override { options.http_listen = "127.0.0.1:0"; }

  HttpClient Client() const {
    return HttpClient(absl::StrCat("http://127.0.0.1:", server_->http_port()));
  }

  // The row's call over HTTP, as docs/http-api.md describes it, and how it
  // ended as a grpc::Status.
  grpc::Status CallHttp(const Row& row, const std::string& token, const Target& t) {
    const google::protobuf::MethodDescriptor* method = FindMethod(row.method);
    if (method == nullptr) return grpc::Status(grpc::UNIMPLEMENTED, row.method);
    Requests requests = row.requests(t);
    std::string body;
    std::string content_type = "application/json";
    if (method->client_streaming()) {
      content_type = "application/x-ndjson";
      for (const auto& request : requests) absl::StrAppend(&body, ToJson(*request), "\n");
    } else {
      body = ToJson(*requests.front());
    }
    HttpResult r = Client().Post("/v1" + row.method, body, token, content_type);
    if (r.status != 200) {
      grpc::Status status = ErrorOf(r);
      EXPECT_EQ(r.status, http::ConnectHttpStatus(status.error_code())) << row.method;
      return status;
    }
    if (!method->server_streaming()) return grpc::Status::OK;
    EXPECT_EQ(r.Header("content-type"), "text/event-stream");
    auto events = Events(r.body);
    if (events.empty()) return grpc::Status(grpc::UNKNOWN, "an empty event stream");
    if (events.back().first == "error") {
      HttpResult error;
      error.body = events.back().second;
      return ErrorOf(error);
    }
    EXPECT_EQ(events.back().first, "end") << r.body;
    return grpc::Status::OK;
  }

  v1::Run Run(const std::string& export_name) {
    v1::RunExportRequest req;
    req.set_export_(export_name);
    v1::Run run;
    EXPECT_TRUE(runs_->RunExport(As(kAdmin).get(), req, &run).ok());
    return run;
  }

  v1::Segment GetSegment(const std::string& name) {
    v1::GetSegmentRequest req;
    req.set_segment(name);
    v1::Segment segment;
    EXPECT_TRUE(segments_->GetSegment(As(kAdmin).get(), req, &segment).ok());
    return segment;
  }
};

TEST_F(HttpApiTest, EveryRouteWithEachRoleAnswersAsGrpcDoes) {
  ForEachCell([&](const Row& row, const Role& role, const Target& t, bool shared, Expect want) {
    grpc::Status status = CallHttp(row, role.token, t);
    const std::string cell = absl::StrCat(
        row.method, " over HTTP as ", role.name, " on a ", shared ? "shared" : "private",
        " connection: ", status.error_code(), " ", status.error_message());
    ExpectAnswer(status, want, cell);
    if (want != Expect::kAllowed) {
      // A refusal changes nothing, so gRPC on the same resources must answer
      // the same, word for word.
      auto ctx = As(role.token);
      grpc::Status over_grpc = CallGrpc(row, ctx.get(), t);
      EXPECT_EQ(status.error_code(), over_grpc.error_code()) << cell;
      EXPECT_EQ(status.error_message(), over_grpc.error_message()) << cell;
    }
    // Without a token: UNAUTHENTICATED, with gRPC's message.
    grpc::Status anonymous = CallHttp(row, "", t);
    auto ctx = As("");
    grpc::Status anonymous_grpc = CallGrpc(row, ctx.get(), t);
    EXPECT_EQ(anonymous.error_code(), grpc::UNAUTHENTICATED) << row.method;
    EXPECT_EQ(anonymous.error_message(), anonymous_grpc.error_message()) << row.method;
  });
}

TEST_F(HttpApiTest, TheOpenApiDocumentListsEveryRpcWithItsSchemas) {
  HttpResult r = Client().Get("/v1/openapi.json");
  ASSERT_EQ(r.status, 200) << r.error;
  nlohmann::json doc = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_TRUE(doc.is_object());
  EXPECT_THAT(doc["openapi"].get<std::string>(), StartsWith("3."));
  std::set<std::string> paths;
  for (const auto& [path, item] : doc["paths"].items()) paths.insert(path);
  EXPECT_EQ(paths, AllMethods());
  const auto& schemas = doc["components"]["schemas"];
  ASSERT_TRUE(schemas.contains("exportd.v1.Connection"));
  const auto& connection = schemas["exportd.v1.Connection"]["properties"];
  EXPECT_EQ(connection["displayName"]["type"], "string");
  EXPECT_EQ(connection["createdAtMicros"]["type"], "string");  // int64
  EXPECT_EQ(connection["settings"]["type"], "object");         // a map
  const auto& create = doc["paths"]["/exportd.v1.ConnectionService/CreateConnection"]["post"];
  EXPECT_EQ(create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/exportd.v1.CreateConnectionRequest");
  const auto& watch = doc["paths"]["/exportd.v1.RunService/WatchRun"]["post"];
  EXPECT_TRUE(watch["responses"]["200"]["content"].contains("text/event-stream"));
  const auto& upload = doc["paths"]["/exportd.v1.SegmentService/UploadMembers"]["post"];
  EXPECT_TRUE(upload["requestBody"]["content"].contains("text/csv"));
  EXPECT_TRUE(upload["requestBody"]["content"].contains("application/x-ndjson"));
}

// A viewer reads a run's log over HTTP, filtered by level, as the console
// does; the route and its schemas come from the descriptors.
TEST_F(HttpApiTest, AViewerReadsARunsLogOverHttp) {
  Target t = MakeTarget(/*shared=*/false);
  const std::string path = "/v1/exportd.v1.RunService/ListRunLog";
  HttpResult r = Client().Post(
      path, absl::StrCat(R"({"runId": ")", t.run_id, R"(", "minLevel": "RUN_LOG_LEVEL_INFO"})"),
      kViewer);
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json log = nlohmann::json::parse(r.body);
  ASSERT_TRUE(log["lines"].is_array()) << r.body;
  ASSERT_GE(log["lines"].size(), 2u) << r.body;
  EXPECT_EQ(log["nextAfterSeq"], "0");
  const nlohmann::json& first = log["lines"].front();
  EXPECT_EQ(first["seq"], "1");
  EXPECT_EQ(first["level"], "RUN_LOG_LEVEL_INFO");
  EXPECT_EQ(first["source"], "engine");
  EXPECT_THAT(first["message"].get<std::string>(), StartsWith("run started"));
  EXPECT_EQ(log["lines"].back()["message"], "run SUCCEEDED");
  EXPECT_TRUE(log["lines"].back()["atMicros"].is_string());

  HttpResult unknown = Client().Post(path, R"({"runId": "run-nope"})", kViewer);
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  HttpResult anonymous = Client().Post(path, absl::StrCat(R"({"runId": ")", t.run_id, R"("})"), "");
  EXPECT_EQ(anonymous.status, 401) << anonymous.body;

  HttpResult doc = Client().Get("/v1/openapi.json");
  ASSERT_EQ(doc.status, 200) << doc.error;
  nlohmann::json openapi = nlohmann::json::parse(doc.body);
  EXPECT_EQ(openapi["paths"][absl::StrCat("/exportd.v1.RunService/ListRunLog")]["post"]
                   ["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/exportd.v1.ListRunLogRequest");
  EXPECT_TRUE(openapi["components"]["schemas"].contains("exportd.v1.RunLogLine"));
}

TEST_F(HttpApiTest, JsonFollowsProtobufsMappingBothWays) {
  HttpResult created = Client().Post("/v1/exportd.v1.ConnectionService/CreateConnection",
                                     R"({"displayName": "Iterable EU", "destinationType": "fake",
                                         "settings": {"mode": "slow"},
                                         "secrets": {"token": "s3cr3t-value-xyz"},
                                         "accept_privacy_terms": true})",
                                     kAdmin);
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_EQ(created.Header("content-type"), "application/json");
  nlohmann::json connection = nlohmann::json::parse(created.body);
  EXPECT_EQ(connection["displayName"], "Iterable EU");
  EXPECT_TRUE(connection["createdAtMicros"].is_string());
  // Defaults are written too.
  EXPECT_EQ(connection["sharedWithContributors"], false);
  EXPECT_EQ(connection["secretNames"], nlohmann::json::array({"token"}));
  EXPECT_THAT(created.body, ::testing::Not(HasSubstr("s3cr3t")));
  HttpResult who = Client().Post("/v1/exportd.v1.AuditService/WhoAmI", "", kContributor);
  ASSERT_EQ(who.status, 200) << who.body;
  EXPECT_EQ(nlohmann::json::parse(who.body)["role"], "ROLE_CONTRIBUTOR");
}

TEST_F(HttpApiTest, BadRequestsGetConnectErrors) {
  const std::string who = "/v1/exportd.v1.AuditService/WhoAmI";
  HttpResult r =
      Client().Post("/v1/exportd.v1.SegmentService/GetSegment", "{\"segment\": ", kAdmin);
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(ErrorOf(r).error_message(),
              StartsWith("the request body is not a valid exportd.v1.GetSegmentRequest"));

  r = Client().Post("/v1/exportd.v1.SegmentService/GetSegment", R"({"segmnt": "x"})", kAdmin);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorOf(r).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(ErrorOf(r).error_message(), HasSubstr("segmnt"));

  r = Client().Post(who, "{}", kAdmin, "text/plain");
  EXPECT_EQ(r.status, 415);
  EXPECT_THAT(ErrorOf(r).error_message(), HasSubstr("application/json"));

  HttpRequest get;
  get.method = "GET";
  get.path = who;
  r = Client().Send(get);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("allow"), "POST");

  r = Client().Post("/v1/exportd.v1.AuditService/Nope", "{}", kAdmin);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorOf(r).error_code(), grpc::UNIMPLEMENTED);

  r = Client().Post("/v1/exportd.v1.SegmentService/GetSegment", R"({"segment": "nope"})", kAdmin);
  EXPECT_EQ(r.status, 404);
  v1::GetSegmentRequest req;
  req.set_segment("nope");
  v1::Segment segment;
  grpc::Status over_grpc = segments_->GetSegment(As(kAdmin).get(), req, &segment);
  EXPECT_EQ(ErrorOf(r).error_code(), over_grpc.error_code());
  EXPECT_EQ(ErrorOf(r).error_message(), over_grpc.error_message());
}

TEST_F(HttpApiTest, ABodyOverTheMessageLimitIsRefused) {
  std::string big = absl::StrCat(R"({"name": ")", std::string(4 * 1024 * 1024, 'x'), R"("})");
  HttpResult r = Client().Post("/v1/exportd.v1.SegmentService/CreateSegment", big, kAdmin);
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(ErrorOf(r).error_code(), grpc::RESOURCE_EXHAUSTED);
  // The connection and the server are fine afterwards.
  EXPECT_EQ(Client().Post("/v1/exportd.v1.AuditService/WhoAmI", "{}", kAdmin).status, 200);
}

TEST_F(HttpApiTest, WatchRunStreamsServerSentEventsToTheFinalState) {
  Target t = MakeTarget(true);
  v1::Run run = Run(t.export_name);
  HttpResult r = Client().Post("/v1/exportd.v1.RunService/WatchRun",
                               absl::StrCat(R"({"runId": ")", run.id(), R"("})"), kViewer);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("content-type"), "text/event-stream");
  auto events = Events(r.body);
  ASSERT_GE(events.size(), 2u) << r.body;
  EXPECT_EQ(events.back().first, "end");
  const auto& last_run = events[events.size() - 2];
  EXPECT_EQ(last_run.first, "message");
  nlohmann::json final_run = nlohmann::json::parse(last_run.second);
  EXPECT_EQ(final_run["id"], run.id());
  EXPECT_EQ(final_run["state"], "RUN_STATE_SUCCEEDED") << last_run.second;

  // An error before the first event is an ordinary error answer.
  r = Client().Post("/v1/exportd.v1.RunService/WatchRun", R"({"runId": "run_nope"})", kViewer);
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(ErrorOf(r).error_code(), grpc::NOT_FOUND);
}

class HttpKeepAliveTest : public HttpApiTest {
 protected:
  void Configure(ServerOptions& options) override {
    HttpApiTest::Configure(options);
    options.http_keep_alive_every = absl::Milliseconds(20);
  }
};

TEST_F(HttpKeepAliveTest, AQuietWatchSendsKeepAliveComments) {
  Target t = MakeTarget(true);
  // An upload held open keeps the next run of the export queued.
  auto upload_ctx = As(kAdmin);
  v1::UploadMembersResponse uploaded;
  auto upload = segments_->UploadMembers(upload_ctx.get(), &uploaded);
  v1::UploadMembersRequest header;
  header.mutable_header()->set_segment(t.segment);
  ASSERT_TRUE(upload->Write(header));
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!GetSegment(t.segment).upload_in_progress() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  v1::Run run = Run(t.export_name);
  ASSERT_EQ(run.state(), v1::RUN_STATE_QUEUED);

  // The watcher reads until two keep-alive comments came, then goes away.
  std::string received;
  HttpRequest watch;
  watch.path = "/v1/exportd.v1.RunService/WatchRun";
  watch.body = absl::StrCat(R"({"runId": ")", run.id(), R"("})");
  watch.token = kViewer;
  watch.write_body = [&](absl::string_view data) {
    received.append(data.data(), data.size());
    size_t first = received.find(": keep-alive\n\n");
    return first == std::string::npos ||
           received.find(": keep-alive\n\n", first + 1) == std::string::npos;
  };
  Client().Send(watch);  // ends when the watcher hangs up
  auto events = Events(received);
  ASSERT_GE(events.size(), 1u) << received;
  EXPECT_EQ(nlohmann::json::parse(events.front().second)["state"], "RUN_STATE_QUEUED");
  EXPECT_THAT(received, HasSubstr(": keep-alive\n\n"));

  v1::UploadMembersRequest trailer;
  trailer.mutable_trailer()->set_row_count(0);
  ASSERT_TRUE(upload->Write(trailer));
  upload->WritesDone();
  EXPECT_TRUE(upload->Finish().ok());
  WaitUntilFinal(run.id());
}

// A CSV of `rows` people: Email,Age,Name.
std::string PeopleCsv(int rows, int bad_row = 0) {
  std::string csv = "Email,Age,Name\n";
  for (int i = 1; i <= rows; ++i) {
    absl::StrAppend(&csv, "user", i, "@example.com,", i == bad_row ? "old" : absl::StrCat(i % 90),
                    ",\"Person, number ", i, "\"\n");
  }
  return csv;
}

TEST_F(HttpApiTest, ACsvUploadIsStreamedThroughExportctlsReader) {
  v1::Segment segment;
  ASSERT_TRUE(CreateSegment("people", {}, &segment).ok());
  const std::string csv = PeopleCsv(30000);
  const size_t half = csv.size() / 2;
  size_t sent = 0;
  bool saw_upload_in_progress = false;
  HttpRequest request;
  request.path =
      "/v1/exportd.v1.SegmentService/UploadMembers?segment=people&id-field=Email&field=Age%3Aint"
      "&filename=people.csv";
  request.content_type = "text/csv";
  request.token = kContributor;
  request.read_body = [&](char* buffer, size_t size) -> size_t {
    if (sent == half && !saw_upload_in_progress) {
      // The first half is out: the server must already be storing it, which
      // it can only be when the body is streamed, not read whole first.
      absl::Time deadline = absl::Now() + absl::Seconds(20);
      while (!saw_upload_in_progress && absl::Now() < deadline) {
        saw_upload_in_progress = GetSegment("people").upload_in_progress();
        if (!saw_upload_in_progress) absl::SleepFor(absl::Milliseconds(5));
      }
    }
    // Pieces of at most 16 KiB, and a stop at the half.
    size_t end = std::min(
        {csv.size(), sent + std::min<size_t>(size, 16 * 1024), sent < half ? half : csv.size()});
    std::memcpy(buffer, csv.data() + sent, end - sent);
    size_t n = end - sent;
    sent = end;
    return n;
  };
  HttpResult r = Client().Send(request);
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_TRUE(saw_upload_in_progress);
  nlohmann::json response = nlohmann::json::parse(r.body);
  EXPECT_EQ(response["rowsReceived"], "30000");
  v1::Segment people = GetSegment("people");
  EXPECT_EQ(people.member_count(), 30000);
  ASSERT_EQ(people.schema_size(), 3);
  EXPECT_EQ(people.schema(1).name(), "Age");
  EXPECT_EQ(people.schema(1).type(), v1::FIELD_TYPE_INT);
  v1::ListMembersRequest list;
  list.set_segment("people");
  list.set_page_size(1);
  v1::ListMembersResponse members;
  ASSERT_TRUE(segments_->ListMembers(As(kAdmin).get(), list, &members).ok());
  ASSERT_EQ(members.rows_size(), 1);
  EXPECT_THAT(members.rows(0).profile_id(), HasSubstr("@example.com"));
}

TEST_F(HttpApiTest, ABadCsvRowGivesExportctlsErrorAndCommitsNothing) {
  v1::Segment segment;
  ASSERT_TRUE(CreateSegment("people", {}, &segment).ok());
  const std::string csv = PeopleCsv(12000, /*bad_row=*/11000);
  HttpResult r = Client().Post(
      "/v1/exportd.v1.SegmentService/UploadMembers?segment=people&field=Age:int"
      "&filename=people.csv",
      csv, kAdmin, "text/csv");
  ASSERT_EQ(r.status, 400) << r.body;
  grpc::Status error = ErrorOf(r);
  EXPECT_EQ(error.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(GetSegment("people").member_count(), 0);
  EXPECT_EQ(GetSegment("people").snapshot_version(), 0);
  // The answer comes at once; the server ends the canceled upload a moment
  // later (as over gRPC), so wait for it before the next upload.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (GetSegment("people").upload_in_progress() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_FALSE(GetSegment("people").upload_in_progress());

  // exportctl, on the same file: the same message.
  const std::string file = dir_ + "/people.csv";
  std::ofstream(file) << csv;
  std::ostringstream out, err;
  int code = client::RunExportctl(
      {"exportctl", "--server", absl::StrCat("127.0.0.1:", server_->port()), "--token", kAdmin,
       "segment", "upload", "people", "--from-csv", file, "--field", "Age:int"},
      out, err);
  EXPECT_NE(code, 0);
  // exportctl names the file by its path; the upload by its filename.
  std::string expected = error.error_message();
  absl::StrReplaceAll({{"people.csv:", file + ":"}}, &expected);
  EXPECT_THAT(err.str(), HasSubstr("\nerror: " + expected + "\n"));
  EXPECT_THAT(expected, HasSubstr("row 11001"));

  // A header problem: the same rule as exportctl's --id-field.
  r = Client().Post("/v1/exportd.v1.SegmentService/UploadMembers?segment=people&id-field=email",
                    csv, kAdmin, "text/csv");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorOf(r).error_message(),
            "--id-field email: 'email' is not a column of upload.csv (columns: Email, Age, Name)");
  // No segment named.
  r = Client().Post("/v1/exportd.v1.SegmentService/UploadMembers", csv, kAdmin, "text/csv");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(ErrorOf(r).error_message(), HasSubstr("?segment="));
  // A viewer may not upload: the gRPC refusal.
  r = Client().Post("/v1/exportd.v1.SegmentService/UploadMembers?segment=people", csv, kViewer,
                    "text/csv");
  EXPECT_EQ(r.status, 403) << r.body;
}

TEST_F(HttpApiTest, AnNdjsonUploadIsTheGrpcStream) {
  v1::Segment segment;
  ASSERT_TRUE(CreateSegment("vip", {"email"}, &segment).ok());
  std::string body = "{\"header\": {\"segment\": \"vip\"}}\n\n";
  for (int c = 0; c < 3; ++c) {
    v1::UploadMembersRequest chunk;
    for (int i = 0; i < 100; ++i) {
      auto* row = chunk.mutable_chunk()->add_rows();
      row->set_profile_id(absl::StrCat("p", c, "-", i));
      row->add_values()->set_string_value(absl::StrCat("p", c, "-", i, "@example.com"));
    }
    absl::StrAppend(&body, ToJson(chunk), "\r\n");
  }
  absl::StrAppend(&body, R"({"trailer": {"rowCount": "300"}})");
  HttpResult r = Client().Post("/v1/exportd.v1.SegmentService/UploadMembers", body, kAdmin,
                               "application/x-ndjson");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["rowsReceived"], "300");
  EXPECT_EQ(GetSegment("vip").member_count(), 300);

  // A line that is not a message: refused, nothing committed.
  r = Client().Post("/v1/exportd.v1.SegmentService/UploadMembers",
                    "{\"header\": {\"segment\": \"vip\"}}\n{\"chunk\": 7}\n", kAdmin,
                    "application/x-ndjson");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(ErrorOf(r).error_message(), StartsWith("line 2 of the body is not a valid"));
  EXPECT_EQ(GetSegment("vip").snapshot_version(), 1);
}

TEST_F(HttpApiTest, TheConsoleIsServedWithItsSecurityHeaders) {
  for (const char* path : {"/", "/index.html", "/runs/run_123"}) {
    HttpResult r = Client().Get(path);
    ASSERT_EQ(r.status, 200) << path << " " << r.error;
    EXPECT_THAT(r.Header("content-type"), StartsWith("text/html")) << path;
    EXPECT_EQ(r.Header("content-security-policy"), http::kContentSecurityPolicy) << path;
    EXPECT_THAT(r.Header("content-security-policy"), HasSubstr("script-src 'self';"));
    EXPECT_EQ(r.Header("x-content-type-options"), "nosniff") << path;
    EXPECT_THAT(r.body, HasSubstr("<html"));
  }
  HttpResult api = Client().Post("/v1/exportd.v1.AuditService/WhoAmI", "{}", kAdmin);
  EXPECT_EQ(api.Header("x-content-type-options"), "nosniff");
  HttpRequest post;
  post.path = "/";
  EXPECT_EQ(Client().Send(post).status, 405);
}

TEST_F(HttpApiTest, AFailedAuthenticationIsLoggedWithTheHttpCallersAddress) {
  ::testing::internal::CaptureStderr();
  HttpResult r = Client().Post("/v1/exportd.v1.AuditService/WhoAmI", "{}",
                               "not-a-token-0000000000000000000000000");
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(log, HasSubstr("unknown token"));
  EXPECT_THAT(log, HasSubstr("from ipv4:127.0.0.1:"));
  EXPECT_THAT(log, HasSubstr("(HTTP)"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("not-a-token")));
}

TEST_F(HttpApiTest, NetworkCallersCannotClaimTheGatewaysMetadata) {
  // A gRPC caller that sends the gateway's metadata without its key is a
  // network caller like any other: its claimed address is not believed.
  auto ctx = As("not-a-token-0000000000000000000000000");
  ctx->AddMetadata(kHttpPeerMetadata, "ipv4:10.9.8.7:1");
  ctx->AddMetadata(kHttpGatewayKeyMetadata, "guess");
  ::testing::internal::CaptureStderr();
  v1::WhoAmIResponse who;
  grpc::Status status = audit_->WhoAmI(ctx.get(), v1::WhoAmIRequest(), &who);
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(status.error_code(), grpc::UNAUTHENTICATED);
  EXPECT_THAT(log, ::testing::Not(HasSubstr("10.9.8.7")));
  EXPECT_THAT(log, HasSubstr("from ipv4:127.0.0.1:"));
}

TEST_F(HttpApiTest, PlaintextBeyondLoopbackIsRefused) {
  StopServer();
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.http_listen = "0.0.0.0:0";
  options.data_dir = dir_ + "/data2";
  options.tokens_file = dir_ + "/tokens";
  auto server = Server::Start(std::move(options));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()),
              StartsWith("--http-listen '0.0.0.0:0' is reachable from other machines"));
}

class HttpsApiTest : public HttpApiTest {
 protected:
  void SetUp() override {
    auto ca = testing::TestCa::Create(CertDir(), "team");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_file_ = ca->cert_file();
    auto server = ca->Issue("server", testing::ServerCertificate());
    ASSERT_TRUE(server.ok()) << server.status();
    server_cert_ = *server;
    auto client = ca->Issue("reporting", testing::ClientCertificate("/CN=reporting"));
    ASSERT_TRUE(client.ok()) << client.status();
    client_cert_ = *client;
    HttpApiTest::SetUp();
  }
  void TearDown() override {
    HttpApiTest::TearDown();
    std::filesystem::remove_all(CertDir());
  }
  std::string CertDir() {
    if (cert_dir_.empty()) {
      std::string dir = std::filesystem::temp_directory_path() / "https_testXXXXXX";
      cert_dir_ = mkdtemp(dir.data());
    }
    return cert_dir_;
  }
  void Configure(ServerOptions& options) override {
    HttpApiTest::Configure(options);
    options.tls_cert_file = server_cert_.cert_file;
    options.tls_key_file = server_cert_.key_file;
    if (mutual_) options.tls_client_ca_file = ca_file_;
  }
  HttpClient Https(bool with_client_cert) const {
    http::testing::HttpTls tls;
    tls.ca_file = ca_file_;
    if (with_client_cert) {
      tls.client_cert_file = client_cert_.cert_file;
      tls.client_key_file = client_cert_.key_file;
    }
    return HttpClient(absl::StrCat("https://127.0.0.1:", server_->http_port()), tls);
  }

  std::string cert_dir_;
  std::string ca_file_;
  testing::IssuedCertificate server_cert_, client_cert_;
  bool mutual_ = false;
};

TEST_F(HttpsApiTest, TheListenerServesHttpsWithExportdsCertificate) {
  HttpResult r = Https(false).Post("/v1/exportd.v1.AuditService/WhoAmI", "{}", kAdmin);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(nlohmann::json::parse(r.body)["principal"], "alice");
  EXPECT_EQ(Https(false).Get("/").status, 200);
  // Plain HTTP gets no answer on the HTTPS port.
  HttpResult plain = Client().Post("/v1/exportd.v1.AuditService/WhoAmI", "{}", kAdmin);
  EXPECT_NE(plain.status, 200);
}

TEST_F(HttpsApiTest, WithAClientCaOnlyClientsWithACertificateGetIn) {
  StopServer();
  std::ofstream(dir_ + "/tokens", std::ios::app) << "cert:subject=CN=reporting reporting viewer\n";
  mutual_ = true;
  StartServer();
  // No certificate: the handshake fails.
  HttpResult refused = Https(false).Post("/v1/exportd.v1.AuditService/WhoAmI", "{}", kAdmin);
  EXPECT_EQ(refused.status, 0);
  EXPECT_FALSE(refused.error.empty());
  // With one, a token still decides when sent...
  HttpResult r = Https(true).Post("/v1/exportd.v1.AuditService/WhoAmI", "{}", kAdmin);
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["principal"], "alice");
  // ...and without one the certificate names the caller, as over gRPC.
  r = Https(true).Post("/v1/exportd.v1.AuditService/WhoAmI", "{}", "");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["principal"], "reporting");
  EXPECT_EQ(nlohmann::json::parse(r.body)["role"], "ROLE_VIEWER");
}

}  // namespace
}  // namespace exportd::api
