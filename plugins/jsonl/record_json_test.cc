#include "record_json.h"

#include "gtest/gtest.h"
#include "jsonl_test_util.h"
#include "nlohmann/json.hpp"

namespace exportd::jsonl {
namespace {

using testing::Int;
using testing::Null;
using testing::Str;

TEST(FormatTimestampTest, IsoUtc) {
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTimestamp(1'709'294'400'250'000), "2024-03-01T12:00:00.25Z");
  EXPECT_EQ(FormatTimestamp(-1'000'000), "1969-12-31T23:59:59Z");
}

TEST(RecordToJsonLineTest, KeepsTypes) {
  sdk::RecordBatch b;
  b.fields = {{"email", sdk::FieldType::kString}, {"age", sdk::FieldType::kInt},
              {"score", sdk::FieldType::kDouble}, {"vip", sdk::FieldType::kBool},
              {"seen", sdk::FieldType::kTimestamp}, {"phone", sdk::FieldType::kString}};
  b.profile_ids = {"p1"};
  sdk::Value score;
  score.type = sdk::FieldType::kDouble;
  score.is_null = false;
  score.d = 2.5;
  sdk::Value vip = Int(1);
  vip.type = sdk::FieldType::kBool;
  sdk::Value seen = Int(0);
  seen.type = sdk::FieldType::kTimestamp;
  b.values = {Str("a@example.com"), Int(42), score, vip, seen, Null(sdk::FieldType::kString)};
  auto line = RecordToJsonLine(b, 0);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(nlohmann::json::parse(*line), nlohmann::json::parse(R"({
    "id": "p1", "email": "a@example.com", "age": 42, "score": 2.5, "vip": true,
    "seen": "1970-01-01T00:00:00Z", "phone": null})"));
}

TEST(RecordToJsonLineTest, NonFiniteDoubleIsNull) {
  sdk::RecordBatch b;
  b.fields = {{"x", sdk::FieldType::kDouble}};
  b.profile_ids = {"p"};
  sdk::Value v;
  v.type = sdk::FieldType::kDouble;
  v.is_null = false;
  v.d = 1.0 / 0.0;
  b.values = {v};
  EXPECT_EQ(*RecordToJsonLine(b, 0), R"({"id":"p","x":null})");
}

TEST(RecordToJsonLineTest, InvalidUtf8NamesTheField) {
  sdk::RecordBatch b;
  b.fields = {{"ok", sdk::FieldType::kString}, {"bad", sdk::FieldType::kString}};
  b.profile_ids = {"p"};
  b.values = {Str("fine"), Str("\xff\xfe")};
  absl::Status status = RecordToJsonLine(b, 0).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "field 'bad' is not valid UTF-8");
}

}  // namespace
}  // namespace exportd::jsonl
