#include "response_parser.h"

#include <limits>

#include "gtest/gtest.h"

namespace exportd::iterable {
namespace {

TEST(ParseEnvelope, ReadsCodeAndMsgAndToleratesGarbage) {
  Envelope e = ParseEnvelope(R"({"msg":"Invalid API key","code":"BadApiKey","params":{"x":1}})");
  EXPECT_TRUE(e.is_json);
  EXPECT_EQ(e.code, "BadApiKey");
  EXPECT_EQ(e.msg, "Invalid API key");
  e = ParseEnvelope(R"({"msg":5,"code":null})");
  EXPECT_TRUE(e.is_json);
  EXPECT_EQ(e.code, "");
  EXPECT_EQ(e.msg, "");
  for (const char* body : {"", "Rate limit exceeded. Please try again later.",
                           "<html><body>502</body></html>", "[1,2]", "{\"msg\":", "null"}) {
    EXPECT_FALSE(ParseEnvelope(body).is_json) << body;
  }
}

TEST(DescribeErrorAnswer, UsesTheEnvelopeOrTheStartOfTheText) {
  EXPECT_EQ(DescribeErrorAnswer(400, R"({"msg":"too many","code":"BatchTooLarge"})"),
            "HTTP 400 BatchTooLarge: too many");
  EXPECT_EQ(DescribeErrorAnswer(429, "Rate limit exceeded.\nPlease try again later."),
            "HTTP 429: Rate limit exceeded. Please try again later.");
  const std::string html(1000, 'h');
  EXPECT_EQ(DescribeErrorAnswer(502, html), "HTTP 502: " + std::string(200, 'h'));
  EXPECT_EQ(DescribeErrorAnswer(503, ""), "HTTP 503");
}

TEST(InvalidListIdIn, FindsTheMarkerEvenWithCodeSuccess) {
  const Envelope e = ParseEnvelope(
      R"j({"msg":"error.lists.invalidListId(10000000001)","code":"Success","params":null})j");
  EXPECT_EQ(e.code, "Success");
  ASSERT_TRUE(InvalidListIdIn(e.msg).has_value());
  EXPECT_EQ(*InvalidListIdIn(e.msg), 10'000'000'001);
  EXPECT_FALSE(InvalidListIdIn("Success").has_value());
  EXPECT_FALSE(InvalidListIdIn("").has_value());
  // Found by iterable_response_fuzz: an id past 64 bits is none of ours.
  EXPECT_EQ(*InvalidListIdIn("error.lists.invalidListId(9223372036854775807)"),
            9'223'372'036'854'775'807);
  EXPECT_FALSE(InvalidListIdIn("error.lists.invalidListId(9223372036854775808)").has_value());
  EXPECT_FALSE(InvalidListIdIn("error.lists.invalidListId(12481460529779325770)").has_value());
}

TEST(ParseLists, NumbersBeyondSixtyFourBitsAreNotIds) {
  // Found by iterable_response_fuzz (undefined behaviour before).
  auto lists = ParseLists(R"({"lists":[
      {"id":9.0072e+47,"name":"float too large"},
      {"id":18446744073709551615,"name":"unsigned too large"},
      {"id":-9223372036854775808,"name":"smallest"},
      {"id":17.0,"name":"integral float","createdAt":1e300}]})");
  ASSERT_TRUE(lists.ok()) << lists.status();
  ASSERT_EQ(lists->size(), 2u);
  EXPECT_EQ((*lists)[0].id, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ((*lists)[1].id, 17);
  EXPECT_EQ((*lists)[1].created_at, 0);
  EXPECT_FALSE(ParseCreatedListId(R"({"listId":1e19})").ok());
}

TEST(ParseLists, ReadsSixtyFourBitIdsAndSkipsBrokenEntries) {
  auto lists = ParseLists(R"({"lists":[
      {"id":10000000001,"name":"VIP","createdAt":1700000000123,"listType":"Standard"},
      {"id":"x","name":"bad id"},
      {"name":"no id"},
      {"id":3,"name":null},
      {"id":4,"name":"No createdAt"}, 7]})");
  ASSERT_TRUE(lists.ok()) << lists.status();
  ASSERT_EQ(lists->size(), 2u);
  EXPECT_EQ((*lists)[0].id, 10'000'000'001);
  EXPECT_EQ((*lists)[0].name, "VIP");
  EXPECT_EQ((*lists)[0].created_at, 1'700'000'000'123);
  EXPECT_EQ((*lists)[0].list_type, "Standard");
  EXPECT_EQ((*lists)[1].created_at, 0);
  EXPECT_TRUE(ParseLists(R"({"lists":[]})")->empty());
  EXPECT_EQ(ParseLists("<html>").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseLists(R"({"other":1})").status().code(), absl::StatusCode::kInternal);
}

TEST(ParseCreatedListId, ReadsListId) {
  EXPECT_EQ(*ParseCreatedListId(R"({"listId":10000000002})"), 10'000'000'002);
  EXPECT_FALSE(ParseCreatedListId(R"({"id":1})").ok());
  EXPECT_FALSE(ParseCreatedListId("ok").ok());
}

TEST(ParseListUpdateResponse, EveryFieldMayBeMissing) {
  ListUpdateResult r = ParseListUpdateResponse("{}");
  EXPECT_TRUE(r.is_json);
  EXPECT_FALSE(r.success_count.has_value());
  EXPECT_FALSE(r.fail_count.has_value());
  EXPECT_TRUE(r.failures.empty());
  r = ParseListUpdateResponse(R"({"successCount":2,"failCount":0})");
  EXPECT_EQ(*r.success_count, 2);
  EXPECT_EQ(*r.fail_count, 0);
  r = ParseListUpdateResponse("OK");
  EXPECT_FALSE(r.is_json);
  EXPECT_TRUE(r.failures.empty());
  r = ParseListUpdateResponse(R"({"failedUpdates":null,"invalidEmails":"x"})");
  EXPECT_TRUE(r.failures.empty());
}

TEST(ParseListUpdateResponse, CollectsEveryFailureArray) {
  const ListUpdateResult r = ParseListUpdateResponse(R"({
    "successCount":1,"failCount":6,
    "invalidEmails":["Bad@Example.com "],
    "failedUpdates":{
      "conflictEmails":["c@example.com"],"conflictUserIds":["u1"],
      "forgottenEmails":["f@example.com"],
      "invalidDataEmails":["d@example.com", 5],
      "invalidEmails":[],
      "notFoundEmails":["n@example.com"],
      "someNewKindEmails":["k@example.com"]}})");
  ASSERT_EQ(r.failures.size(), 7u);
  std::map<std::string, std::string> by_email, by_user_id;
  for (const IdentityFailure& f : r.failures) {
    (f.user_id ? by_user_id : by_email)[f.identity] = f.reason_code;
  }
  EXPECT_EQ(by_user_id, (std::map<std::string, std::string>{{"u1", "conflict"}}));
  EXPECT_EQ(by_email["bad@example.com"], "invalid_email");
  EXPECT_EQ(by_email["c@example.com"], "conflict");
  EXPECT_EQ(by_email["f@example.com"], "forgotten");
  EXPECT_EQ(by_email["d@example.com"], "invalid_data");
  EXPECT_EQ(by_email["n@example.com"], "not_found");
  EXPECT_EQ(by_email["k@example.com"], "some_new_kind");
  EXPECT_FALSE(ExplainFailure("conflict").empty());
}

TEST(ParseListUpdateResponse, CollectsUserIdArraysAsTheyWereSent) {
  const ListUpdateResult r = ParseListUpdateResponse(R"({
    "invalidUserIds":["bad id "],
    "failedUpdates":{"invalidUserIds":["bad id "],"forgottenUserIds":["Gone-1"],
      "invalidDataUserIds":["U2"],"notFoundUserIds":["u3"]}})");
  ASSERT_EQ(r.failures.size(), 5u);
  for (const IdentityFailure& f : r.failures) EXPECT_TRUE(f.user_id) << f.identity;
  EXPECT_EQ(r.failures[0].identity, "bad id ");
  EXPECT_EQ(r.failures[0].reason_code, "invalid_user_id");
  EXPECT_EQ(r.failures[0].source, "invalidUserIds");
  std::map<std::string, std::string> by_user_id;
  for (const IdentityFailure& f : r.failures) by_user_id[f.identity] = f.reason_code;
  EXPECT_EQ(by_user_id["Gone-1"], "forgotten");
  EXPECT_EQ(by_user_id["U2"], "invalid_data");
  EXPECT_EQ(by_user_id["u3"], "not_found");
}

}  // namespace
}  // namespace exportd::iterable

namespace exportd::iterable {
namespace {

TEST(RateLimitResetMillis, ReadsParamsOfJsonRateLimitAnswersOnly) {
  EXPECT_EQ(RateLimitResetMillis(R"({"msg":"slow down","code":"RateLimitExceeded",
      "params":{"rateLimitLimit":5,"rateLimitRemaining":0,"rateLimitReset":1700000000123}})"),
            1700000000123);
  EXPECT_EQ(RateLimitResetMillis(R"({"params":{"rateLimitReset":1.7e12}})"), 1700000000000);
  EXPECT_FALSE(RateLimitResetMillis("Rate limit exceeded. Please try again later.").has_value());
  EXPECT_FALSE(RateLimitResetMillis(R"({"params":null})").has_value());
  EXPECT_FALSE(RateLimitResetMillis(R"({"params":{"rateLimitReset":"soon"}})").has_value());
  EXPECT_FALSE(RateLimitResetMillis(R"({"params":{"rateLimitReset":-1}})").has_value());
}

}  // namespace
}  // namespace exportd::iterable
