#include "request_builder.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_batches.h"

namespace exportd::iterable {
namespace {

using nlohmann::json;
using sdk::OutcomeKind;
using namespace exportd::iterable::testing;

std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

TEST(AppendJsonString, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonString("plain"), "\"plain\"");
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString("l1\nl2\r\t\b\f"), "\"l1\\nl2\\r\\t\\b\\f\"");
  EXPECT_EQ(JsonString(std::string("nul\0x\x1f", 6)), "\"nul\\u0000x\\u001f\"");
  EXPECT_EQ(JsonString("/"), "\"/\"");
}

TEST(AppendJsonString, KeepsValidUtf8AndReplacesInvalid) {
  EXPECT_EQ(JsonString("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
  // Lone continuation byte, truncated sequence, overlong, surrogate.
  EXPECT_EQ(JsonString("a\x80z"), "\"a\xEF\xBF\xBDz\"");
  EXPECT_EQ(JsonString("a\xE2\x82"), "\"a\xEF\xBF\xBD\xEF\xBF\xBD\"");
  EXPECT_EQ(JsonString("\xC0\xAF"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
  EXPECT_EQ(JsonString("\xED\xA0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
  // Whatever the input, the output parses.
  std::string garbage;
  for (int i = 0; i < 256; ++i) garbage.push_back(static_cast<char>(i));
  EXPECT_EQ(json::parse(JsonString(garbage)).get<std::string>().size() > 0, true);
}

TEST(AppendJsonNumber, FormatsIntsAndDoubles) {
  std::string out;
  AppendJsonInt(std::numeric_limits<std::int64_t>::min(), &out);
  EXPECT_EQ(out, "-9223372036854775808");
  out.clear();
  AppendJsonDouble(0.1, &out);
  EXPECT_EQ(out, "0.1");
  out.clear();
  AppendJsonDouble(1e300, &out);
  EXPECT_DOUBLE_EQ(json::parse(out).get<double>(), 1e300);
  out.clear();
  AppendJsonDouble(std::nan(""), &out);
  EXPECT_EQ(out, "null");
  out.clear();
  AppendJsonDouble(-std::numeric_limits<double>::infinity(), &out);
  EXPECT_EQ(out, "null");
}

TEST(FormatIterableTimestamp, UsesIterableDateFormatInUtc) {
  EXPECT_EQ(FormatIterableTimestamp(0), "1970-01-01 00:00:00 +00:00");
  EXPECT_EQ(FormatIterableTimestamp(1'700'000'000'123'456), "2023-11-14 22:13:20 +00:00");
  EXPECT_EQ(FormatIterableTimestamp(951'782'400'000'000), "2000-02-29 00:00:00 +00:00");
  EXPECT_EQ(FormatIterableTimestamp(-1), "1969-12-31 23:59:59 +00:00");
  EXPECT_EQ(FormatIterableTimestamp(253'402'300'799'000'000), "9999-12-31 23:59:59 +00:00");
}

TEST(BuildListRequests, SubscribeBodyHasTypedDataFields) {
  sdk::RecordBatch batch;
  batch.fields = {{"email", sdk::FieldType::kString}, {"name", sdk::FieldType::kString},
                  {"age", sdk::FieldType::kInt},      {"score", sdk::FieldType::kDouble},
                  {"vip", sdk::FieldType::kBool},     {"joined", sdk::FieldType::kTimestamp},
                  {"gone", sdk::FieldType::kString},  {"signupDate", sdk::FieldType::kTimestamp}};
  batch.profile_ids = {"p1"};
  batch.values = {Str(" Ann@Example.com "),
                  Str("Ann \"A\"\n"),
                  Int(42),
                  Dbl(2.5),
                  Bool(true),
                  Time(0),
                  Null(),
                  Time(5)};
  ListRequestOptions options;
  options.list_id = 10'000'000'001;
  auto built = BuildListRequests(batch, options);
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_EQ(built->requests.size(), 1u);
  const ListRequest& request = built->requests[0];
  const json body = json::parse(request.body);
  EXPECT_EQ(body["listId"].get<std::int64_t>(), 10'000'000'001);
  EXPECT_FALSE(body.contains("updateExistingUsersOnly"));
  ASSERT_EQ(body["subscribers"].size(), 1u);
  const json& s = body["subscribers"][0];
  EXPECT_EQ(s["email"], "ann@example.com");
  EXPECT_EQ(s["dataFields"]["name"], "Ann \"A\"\n");
  EXPECT_EQ(s["dataFields"]["age"], 42);
  EXPECT_EQ(s["dataFields"]["score"], 2.5);
  EXPECT_EQ(s["dataFields"]["vip"], true);
  EXPECT_EQ(s["dataFields"]["joined"], "1970-01-01 00:00:00 +00:00");
  EXPECT_TRUE(s["dataFields"]["gone"].is_null());
  EXPECT_FALSE(s["dataFields"].contains("signupDate")) << "Iterable-managed fields are never sent";
  EXPECT_EQ(request.rows, std::vector<size_t>{0});
  EXPECT_EQ(request.email(0), "ann@example.com");
  EXPECT_EQ(built->outcomes[0].kind, OutcomeKind::kDelivered);
}

TEST(BuildListRequests, UnsubscribeSendsChannelUnsubscribeFalseAndNoData) {
  auto built = BuildListRequests(PeopleBatch(3), {ListOperation::kUnsubscribe, 7});
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_EQ(built->requests.size(), 1u);
  const json body = json::parse(built->requests[0].body);
  ASSERT_TRUE(body.contains("channelUnsubscribe"));
  EXPECT_EQ(body["channelUnsubscribe"], false);
  EXPECT_EQ(body["subscribers"][2], json({{"email", "user2@example.com"}}));
}

TEST(BuildListRequests, UpdateExistingUsersOnlyWhenAsked) {
  ListRequestOptions options;
  options.list_id = 1;
  options.update_existing_users_only = true;
  auto built = BuildListRequests(EmailBatch({"a@b.co"}), options);
  ASSERT_TRUE(built.ok());
  EXPECT_EQ(json::parse(built->requests[0].body)["updateExistingUsersOnly"], true);
}

TEST(BuildListRequests, RejectsMissingAndInvalidEmailsLocally) {
  sdk::RecordBatch batch = EmailBatch({"ok@example.com", "", "  ", "not-an-email", "x@y.z"});
  batch.profile_ids.push_back("null");
  batch.values.push_back(Null());
  batch.profile_ids.push_back("int");
  batch.values.push_back(Int(5));
  auto built = BuildListRequests(batch, {ListOperation::kSubscribe, 1});
  ASSERT_TRUE(built.ok());
  ASSERT_EQ(built->outcomes.size(), 7u);
  EXPECT_EQ(built->outcomes[0].kind, OutcomeKind::kDelivered);
  for (size_t row : {1, 2, 5}) {
    EXPECT_EQ(built->outcomes[row].kind, OutcomeKind::kRejected) << row;
    EXPECT_EQ(built->outcomes[row].reason_code, "missing_email") << row;
    EXPECT_EQ(built->outcomes[row].field, "email");
  }
  for (size_t row : {3, 4, 6}) {
    EXPECT_EQ(built->outcomes[row].kind, OutcomeKind::kRejected) << row;
    EXPECT_EQ(built->outcomes[row].reason_code, "invalid_email") << row;
    EXPECT_FALSE(built->outcomes[row].message.empty());
  }
  ASSERT_EQ(built->requests.size(), 1u);
  EXPECT_EQ(built->requests[0].rows, std::vector<size_t>{0});
  EXPECT_EQ(json::parse(built->requests[0].body)["subscribers"].size(), 1u);
}

TEST(BuildListRequests, AllInvalidMeansNoRequest) {
  auto built = BuildListRequests(EmailBatch({"bad", ""}), {ListOperation::kSubscribe, 1});
  ASSERT_TRUE(built.ok());
  EXPECT_TRUE(built->requests.empty());
  EXPECT_EQ(built->outcomes.size(), 2u);
}

TEST(BuildListRequests, NoEmailFieldIsAnError) {
  sdk::RecordBatch batch;
  batch.fields = {{"mail", sdk::FieldType::kString}};
  batch.profile_ids = {"p"};
  batch.values = {Str("a@b.co")};
  auto built = BuildListRequests(batch, {ListOperation::kSubscribe, 1});
  EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(built.status().message().find("'email'"), absl::string_view::npos);
}

TEST(BuildListRequests, SplitsBySubscriberCount) {
  ListRequestOptions options;
  options.list_id = 1;
  options.max_subscribers = 4;
  auto built = BuildListRequests(PeopleBatch(10), options);
  ASSERT_TRUE(built.ok());
  ASSERT_EQ(built->requests.size(), 3u);
  EXPECT_EQ(built->requests[0].rows.size(), 4u);
  EXPECT_EQ(built->requests[1].rows.size(), 4u);
  EXPECT_EQ(built->requests[2].rows.size(), 2u);
  size_t expected_row = 0;
  for (const ListRequest& r : built->requests) {
    const json body = json::parse(r.body);
    ASSERT_EQ(body["subscribers"].size(), r.rows.size());
    for (size_t i = 0; i < r.rows.size(); ++i) {
      EXPECT_EQ(r.rows[i], expected_row++);
      EXPECT_EQ(body["subscribers"][i]["email"], std::string(r.email(i)));
    }
  }
}

TEST(BuildListRequests, SplitsByBodyBytesAndKeepsEmailSpansRight) {
  ListRequestOptions options;
  options.list_id = 1;
  options.max_body_bytes = 600;
  auto built = BuildListRequests(PeopleBatch(40), options);
  ASSERT_TRUE(built.ok());
  ASSERT_GT(built->requests.size(), 3u);
  size_t expected_row = 0;
  for (const ListRequest& r : built->requests) {
    EXPECT_LE(r.body.size(), 600u);
    const json body = json::parse(r.body);  // Every piece is whole JSON.
    ASSERT_EQ(body["subscribers"].size(), r.rows.size());
    for (size_t i = 0; i < r.rows.size(); ++i) {
      EXPECT_EQ(r.rows[i], expected_row++);
      EXPECT_EQ(r.email(i), "user" + std::to_string(r.rows[i]) + "@example.com");
      EXPECT_EQ(body["subscribers"][i]["email"], std::string(r.email(i)));
    }
  }
  EXPECT_EQ(expected_row, 40u);
}

TEST(BuildListRequests, RecordLargerThanTheBodyLimitIsRejected) {
  sdk::RecordBatch batch = PeopleBatch(3);
  batch.values[1 * 5 + 1] = Str(std::string(2000, 'x'));  // Record 1's firstName.
  ListRequestOptions options;
  options.list_id = 1;
  options.max_body_bytes = 1024;
  auto built = BuildListRequests(batch, options);
  ASSERT_TRUE(built.ok());
  EXPECT_EQ(built->outcomes[1].kind, OutcomeKind::kRejected);
  EXPECT_EQ(built->outcomes[1].reason_code, "record_too_large");
  size_t sent = 0;
  for (const ListRequest& r : built->requests) {
    for (size_t row : r.rows) EXPECT_NE(row, 1u);
    sent += r.rows.size();
    const json body = json::parse(r.body);
    EXPECT_TRUE(body.is_object());
  }
  EXPECT_EQ(sent, 2u);
}

TEST(BuildListRequests, UserIdKeyedSubscribersCarryTheUserIdAndTheEmailWhenThereIsOne) {
  const std::string long_id(53, 'x');
  sdk::RecordBatch batch = UserIdBatch({{"u-1", " Ann@Example.com"},
                                        {"u\"2", ""},
                                        {"", "c@example.com"},
                                        {" u4", "d@example.com"},
                                        {long_id, ""},
                                        {"u6", "not an email"},
                                        {"u\x01", ""}});
  ListRequestOptions options;
  options.list_id = 5;
  options.key_field = "userId";
  auto built = BuildListRequests(batch, options);
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_EQ(built->requests.size(), 1u);
  const ListRequest& request = built->requests[0];
  const json body = json::parse(request.body);
  ASSERT_EQ(body["subscribers"].size(), 2u);
  EXPECT_EQ(body["subscribers"][0],
            json::parse(R"({"userId":"u-1","email":"ann@example.com","dataFields":{"plan":"plan0"}})"));
  EXPECT_EQ(body["subscribers"][1], json::parse(R"({"userId":"u\"2","dataFields":{"plan":"plan1"}})"));
  EXPECT_FALSE(body["subscribers"][0].contains("preferUserId"));
  EXPECT_EQ(request.rows, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(request.user_id(1), "u\"2");
  EXPECT_EQ(request.email(0), "ann@example.com");
  EXPECT_EQ(request.email(1), "");
  auto expect_rejected = [&](size_t row, const char* code, const char* field, const char* says) {
    const sdk::RecordOutcome& o = built->outcomes[row];
    EXPECT_EQ(o.kind, OutcomeKind::kRejected) << row;
    EXPECT_EQ(o.reason_code, code) << row;
    EXPECT_EQ(o.field, field) << row;
    EXPECT_NE(o.message.find(says), std::string::npos) << row << ": " << o.message;
  };
  expect_rejected(2, "missing_user_id", "userId", "no userId (empty)");
  expect_rejected(3, "invalid_user_id", "userId", "starts or ends with a space");
  expect_rejected(4, "invalid_user_id", "userId", "53 characters, more than 52");
  expect_rejected(5, "invalid_email", "email", "not a valid email");
  expect_rejected(6, "invalid_user_id", "userId", "not printable ASCII");
}

TEST(BuildListRequests, UnsubscribeByUserIdSendsOnlyTheUserId) {
  ListRequestOptions options{ListOperation::kUnsubscribe, 5};
  options.key_field = "userId";
  auto built = BuildListRequests(UserIdBatch({{"u1", "a@example.com"}}), options);
  ASSERT_TRUE(built.ok()) << built.status();
  const json body = json::parse(built->requests[0].body);
  EXPECT_EQ(body["subscribers"][0], json::parse(R"({"userId":"u1"})"));
}

TEST(BuildListRequests, EmailKeyedSubscribersCarryAMappedUserId) {
  ListRequestOptions options;
  options.list_id = 5;
  auto built = BuildListRequests(UserIdBatch({{"u1", "a@example.com"}, {"u2", ""}}), options);
  ASSERT_TRUE(built.ok()) << built.status();
  const json body = json::parse(built->requests[0].body);
  ASSERT_EQ(body["subscribers"].size(), 1u);
  EXPECT_EQ(body["subscribers"][0],
            json::parse(R"({"email":"a@example.com","userId":"u1","dataFields":{"plan":"plan0"}})"));
  EXPECT_EQ(built->outcomes[1].reason_code, "missing_email");
  EXPECT_EQ(BuildListRequests(UserIdBatch({}), ListRequestOptions{ListOperation::kSubscribe, 5,
                                                                  "phone"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace exportd::iterable
