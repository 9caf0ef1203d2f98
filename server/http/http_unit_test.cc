// The pieces of the HTTP API that need no server: query strings, Connect's
// error mapping, the OpenAPI document of one service.
#include <grpcpp/support/status.h>

#include "exportd/v1/segment.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/http/connect_error.h"
#include "server/http/openapi.h"
#include "server/http/query.h"

namespace exportd::http {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(QueryTest, DecodesRepeatsAndKeepsMalformedEscapes) {
  QueryParameters query = ParseQuery(
      "segment=VIP+Customers&field=Age%3Aint&field=Since:timestamp&id-field=E%C3%A9&"
      "bad=%zz&empty&=x");
  EXPECT_EQ(query.Get("segment"), "VIP Customers");
  EXPECT_THAT(query.GetAll("field"), ElementsAre("Age:int", "Since:timestamp"));
  EXPECT_EQ(query.Get("id-field"), "E\xC3\xA9");
  EXPECT_EQ(query.Get("bad"), "%zz");
  EXPECT_EQ(query.Get("empty"), "");
  EXPECT_EQ(query.Get("missing"), "");
  EXPECT_TRUE(query.GetAll("missing").empty());
}

TEST(ConnectErrorTest, CodesMapToConnectsNamesAndStatuses) {
  EXPECT_EQ(ConnectCodeName(grpc::NOT_FOUND), "not_found");
  EXPECT_EQ(ConnectHttpStatus(grpc::NOT_FOUND), 404);
  EXPECT_EQ(ConnectHttpStatus(grpc::UNAUTHENTICATED), 401);
  EXPECT_EQ(ConnectHttpStatus(grpc::PERMISSION_DENIED), 403);
  EXPECT_EQ(ConnectHttpStatus(grpc::FAILED_PRECONDITION), 400);
  EXPECT_EQ(ConnectHttpStatus(grpc::RESOURCE_EXHAUSTED), 429);
  EXPECT_EQ(ConnectHttpStatus(grpc::CANCELLED), 499);
  EXPECT_EQ(ConnectCodeName(static_cast<grpc::StatusCode>(99)), "unknown");
  nlohmann::json body = nlohmann::json::parse(
      ConnectErrorJson(grpc::Status(grpc::ALREADY_EXISTS, "segment 'VIP' exists \xff")));
  EXPECT_EQ(body["code"], "already_exists");
  EXPECT_EQ(body["grpcCode"], 6);
  // A message that is not UTF-8 still makes a valid body.
  EXPECT_THAT(body["message"].get<std::string>(), HasSubstr("segment 'VIP' exists"));
}

TEST(OpenApiTest, DescribesStreamsOneofsAndMaps) {
  // Named through a message of its file, which links and registers it.
  const google::protobuf::ServiceDescriptor* service =
      v1::UploadMembersRequest::descriptor()->file()->FindServiceByName("SegmentService");
  ASSERT_NE(service, nullptr);
  nlohmann::json doc = nlohmann::json::parse(BuildOpenApiDocument({service}, "1.2.3"));
  EXPECT_EQ(doc["info"]["version"], "1.2.3");
  EXPECT_EQ(doc["paths"].size(), static_cast<size_t>(service->method_count()));
  const auto& upload = doc["components"]["schemas"]["exportd.v1.UploadMembersRequest"];
  EXPECT_THAT(upload["description"].get<std::string>(),
              HasSubstr("At most one of header, chunk, trailer is set"));
  const auto& row = doc["components"]["schemas"]["exportd.v1.MemberRow"]["properties"];
  EXPECT_EQ(row["profileId"]["type"], "string");
  EXPECT_EQ(row["values"]["type"], "array");
  EXPECT_EQ(doc["components"]["schemas"]["exportd.v1.FieldType"]["enum"][0],
            "FIELD_TYPE_UNSPECIFIED");
}

}  // namespace
}  // namespace exportd::http
