#include "client/csv_reader.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using exportd::v1::FieldType;
using exportd::v1::Value;

std::vector<std::vector<std::string>> ReadAll(const std::string& text) {
  std::istringstream in(text);
  CsvReader reader(in, "t.csv");
  std::vector<std::vector<std::string>> records;
  CsvRecord record;
  while (true) {
    absl::StatusOr<bool> more = reader.Next(record);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    records.push_back(record.cells);
  }
  return records;
}

absl::Status FirstError(const std::string& text) {
  std::istringstream in(text);
  CsvReader reader(in, "t.csv");
  CsvRecord record;
  while (true) {
    absl::StatusOr<bool> more = reader.Next(record);
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
  }
}

TEST(CsvReaderTest, PlainQuotedAndEmptyCells) {
  EXPECT_THAT(ReadAll("a,b,c\n1,,3\n"),
              ElementsAre(ElementsAre("a", "b", "c"), ElementsAre("1", "", "3")));
  EXPECT_THAT(ReadAll("\"x, y\",\"say \"\"hi\"\"\",\"\"\n"),
              ElementsAre(ElementsAre("x, y", "say \"hi\"", "")));
}

TEST(CsvReaderTest, CrlfLfAndNoTrailingNewline) {
  EXPECT_THAT(ReadAll("a,b\r\n1,2\r\n3,4"),
              ElementsAre(ElementsAre("a", "b"), ElementsAre("1", "2"), ElementsAre("3", "4")));
}

TEST(CsvReaderTest, EmbeddedNewlinesStayInTheCell) {
  EXPECT_THAT(ReadAll("id,note\r\n1,\"line one\r\nline two\"\r\n2,x\r\n"),
              ElementsAre(ElementsAre("id", "note"), ElementsAre("1", "line one\r\nline two"),
                          ElementsAre("2", "x")));
}

TEST(CsvReaderTest, ValuesAreNotTrimmedAndBlankLinesAreSkipped) {
  EXPECT_THAT(ReadAll("\xEF\xBB\xBFid, name \n\n 1 ,  Ann\n\n"),
              ElementsAre(ElementsAre("id", " name "), ElementsAre(" 1 ", "  Ann")));
}

TEST(CsvReaderTest, CellsLargerThanTheBuffer) {
  std::string big(200000, 'x');
  EXPECT_THAT(ReadAll("a,b\n\"" + big + "\"," + big + "\n"),
              ElementsAre(ElementsAre("a", "b"), ElementsAre(big, big)));
}

TEST(CsvReaderTest, UnterminatedQuoteNamesRowAndLine) {
  absl::Status status = FirstError("a,b\n1,\"open\nmore\n");
  EXPECT_EQ(status.message(), "t.csv: row 2, field 2: the quote opened on line 2 is never closed");
}

TEST(CsvReaderTest, TextAfterClosingQuoteIsAnError) {
  absl::Status status = FirstError("a,b\n\"x\"y,2\n");
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("t.csv: row 2, field 1: unexpected character 'y' after a closing quote"));
}

TEST(ConvertCellTest, TypedValues) {
  EXPECT_EQ(ConvertCell("42", false, FieldType::FIELD_TYPE_INT)->int_value(), 42);
  EXPECT_EQ(ConvertCell("+7", false, FieldType::FIELD_TYPE_INT)->int_value(), 7);
  EXPECT_EQ(ConvertCell("-9223372036854775808", false, FieldType::FIELD_TYPE_INT)->int_value(),
            INT64_MIN);
  EXPECT_DOUBLE_EQ(ConvertCell("2.5e3", false, FieldType::FIELD_TYPE_DOUBLE)->double_value(),
                   2500);
  EXPECT_TRUE(ConvertCell("Yes", false, FieldType::FIELD_TYPE_BOOL)->bool_value());
  EXPECT_FALSE(ConvertCell("0", false, FieldType::FIELD_TYPE_BOOL)->bool_value());
  EXPECT_EQ(ConvertCell(" keep ", false, FieldType::FIELD_TYPE_STRING)->string_value(), " keep ");
}

TEST(ConvertCellTest, EmptyUnquotedIsNullExceptForStrings) {
  for (FieldType type : {FieldType::FIELD_TYPE_INT, FieldType::FIELD_TYPE_DOUBLE,
                         FieldType::FIELD_TYPE_BOOL, FieldType::FIELD_TYPE_TIMESTAMP}) {
    absl::StatusOr<Value> value = ConvertCell("", false, type);
    ASSERT_TRUE(value.ok());
    EXPECT_EQ(value->kind_case(), Value::KIND_NOT_SET) << type;
  }
  EXPECT_EQ(ConvertCell("", false, FieldType::FIELD_TYPE_STRING)->kind_case(),
            Value::kStringValue);
  // A quoted "" is an explicit empty string, which is not an int.
  EXPECT_FALSE(ConvertCell("", true, FieldType::FIELD_TYPE_INT).ok());
}

TEST(ConvertCellTest, BadValuesSayWhatWasExpected) {
  EXPECT_EQ(ConvertCell("4x", false, FieldType::FIELD_TYPE_INT).status().message(),
            "cannot parse '4x' as an int");
  EXPECT_EQ(ConvertCell(" 4", false, FieldType::FIELD_TYPE_INT).status().message(),
            "cannot parse ' 4' as an int");
  EXPECT_EQ(ConvertCell("99999999999999999999", false, FieldType::FIELD_TYPE_INT)
                .status()
                .message(),
            "'99999999999999999999' is out of range for an int (64-bit)");
  EXPECT_FALSE(ConvertCell("nan", false, FieldType::FIELD_TYPE_DOUBLE).ok());
  EXPECT_THAT(std::string(ConvertCell("maybe", false, FieldType::FIELD_TYPE_BOOL)
                              .status()
                              .message()),
              HasSubstr("cannot parse 'maybe' as a bool"));
}

TEST(TimestampTest, Iso8601Forms) {
  constexpr int64_t k20240501 = 1714521600LL * 1000000;  // 2024-05-01T00:00:00Z
  EXPECT_EQ(*ParseIso8601Micros("2024-05-01"), k20240501);
  EXPECT_EQ(*ParseIso8601Micros("2024-05-01T12:00:00Z"), k20240501 + 12LL * 3600 * 1000000);
  EXPECT_EQ(*ParseIso8601Micros("2024-05-01T14:00:00+02:00"), k20240501 + 12LL * 3600 * 1000000);
  EXPECT_EQ(*ParseIso8601Micros("2024-05-01T07:30:00-0430"), k20240501 + 12LL * 3600 * 1000000);
  EXPECT_EQ(*ParseIso8601Micros("2024-05-01 12:00"), k20240501 + 12LL * 3600 * 1000000);
  EXPECT_EQ(*ParseIso8601Micros("2024-05-01T00:00:00.25Z"), k20240501 + 250000);
  EXPECT_EQ(*ParseIso8601Micros("2024-05-01T00:00:00.123456789Z"), k20240501 + 123456);
  EXPECT_EQ(*ParseIso8601Micros("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseIso8601Micros("1969-12-31T23:59:59Z"), -1000000);
  EXPECT_EQ(*ParseIso8601Micros("2000-02-29"), 951782400LL * 1000000);
}

TEST(TimestampTest, RejectsMalformedAndOutOfRange) {
  for (const char* bad : {"2024-5-1", "2024-05-01T", "2024-05-01T12", "2024-05-01T12:00:00+2",
                          "01/05/2024", "2024-05-01T12:00:00Zjunk", "1714521600"}) {
    EXPECT_FALSE(ParseIso8601Micros(bad).ok()) << bad;
  }
  EXPECT_EQ(ParseIso8601Micros("2023-02-29").status().message(),
            "'2023-02-29' is not a valid date (month or day out of range)");
  EXPECT_FALSE(ParseIso8601Micros("2024-05-01T24:00:00Z").ok());
}

absl::StatusOr<std::unique_ptr<MemberCsvReader>> Open(std::istringstream& in,
                                                      CsvImportOptions options = {}) {
  return MemberCsvReader::Open(in, "people.csv", options);
}

TEST(MemberCsvReaderTest, SchemaFromHeaderIdFieldAndTypes) {
  std::istringstream in(
      "Email,Age,Vip,Joined\r\n"
      "ann@example.com,31,true,2024-05-01T12:00:00Z\r\n"
      "\"bob, jr@example.com\",,false,\r\n");
  CsvImportOptions options;
  options.id_field = "Email";
  options.field_types = {{"Age", FieldType::FIELD_TYPE_INT},
                         {"Vip", FieldType::FIELD_TYPE_BOOL},
                         {"Joined", FieldType::FIELD_TYPE_TIMESTAMP}};
  auto reader = Open(in, options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ((*reader)->schema().size(), 4u);
  EXPECT_EQ((*reader)->schema()[0].type(), FieldType::FIELD_TYPE_STRING);
  EXPECT_EQ((*reader)->schema()[1].type(), FieldType::FIELD_TYPE_INT);
  EXPECT_EQ((*reader)->id_field(), "Email");

  exportd::v1::UploadMembersRequest::Chunk chunk;
  absl::StatusOr<int> rows = (*reader)->ReadChunk(100, 1 << 20, &chunk);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(*rows, 2);
  EXPECT_EQ(chunk.rows(0).profile_id(), "ann@example.com");
  EXPECT_EQ(chunk.rows(0).values(1).int_value(), 31);
  EXPECT_TRUE(chunk.rows(0).values(2).bool_value());
  EXPECT_EQ(chunk.rows(0).values(3).timestamp_micros(), 1714564800LL * 1000000);
  EXPECT_EQ(chunk.rows(1).profile_id(), "bob, jr@example.com");
  EXPECT_EQ(chunk.rows(1).values(1).kind_case(), Value::KIND_NOT_SET);
  EXPECT_EQ(chunk.rows(1).values(3).kind_case(), Value::KIND_NOT_SET);
  EXPECT_EQ(*(*reader)->ReadChunk(100, 1 << 20, &chunk), 0);
  EXPECT_EQ(chunk.rows_size(), 0);
  EXPECT_EQ((*reader)->rows_read(), 2);
}

TEST(MemberCsvReaderTest, IdDefaultsToTheFirstColumn) {
  std::istringstream in("id,name\n7,Ann\n");
  auto reader = Open(in);
  ASSERT_TRUE(reader.ok());
  exportd::v1::UploadMembersRequest::Chunk chunk;
  ASSERT_EQ(*(*reader)->ReadChunk(10, 1 << 20, &chunk), 1);
  EXPECT_EQ(chunk.rows(0).profile_id(), "7");
  EXPECT_EQ(chunk.rows(0).values(0).string_value(), "7");
}

TEST(MemberCsvReaderTest, UnknownColumnsListTheHeader) {
  std::istringstream in1("Email,Age\n");
  CsvImportOptions typed;
  typed.field_types = {{"Agee", FieldType::FIELD_TYPE_INT}};
  EXPECT_EQ(Open(in1, typed).status().message(),
            "--field Agee:int: 'Agee' is not a column of people.csv (columns: Email, Age)");
  std::istringstream in2("Email,Age\n");
  CsvImportOptions id;
  id.id_field = "email";
  EXPECT_EQ(Open(in2, id).status().message(),
            "--id-field email: 'email' is not a column of people.csv (columns: Email, Age)");
}

TEST(MemberCsvReaderTest, BadHeaders) {
  std::istringstream empty("");
  EXPECT_THAT(std::string(Open(empty).status().message()), HasSubstr("people.csv is empty"));
  std::istringstream dup("a,b,a\n");
  EXPECT_EQ(Open(dup).status().message(),
            "people.csv: the header row names column 'a' twice (columns 1 and 3)");
  std::istringstream blank("a,,c\n");
  EXPECT_THAT(std::string(Open(blank).status().message()),
              HasSubstr("column 2 of the header row has no name"));
}

TEST(MemberCsvReaderTest, WrongValueCountNamesTheRow) {
  std::istringstream in("id,name\n1,Ann\n2,Bob,extra\n");
  auto reader = Open(in);
  ASSERT_TRUE(reader.ok());
  exportd::v1::UploadMembersRequest::Chunk chunk;
  EXPECT_EQ((*reader)->ReadChunk(10, 1 << 20, &chunk).status().message(),
            "people.csv: row 3: expected 2 values (one per header column), found 3");
}

TEST(MemberCsvReaderTest, TypeErrorNamesRowLineAndField) {
  std::istringstream in("id,note,age\n1,\"two\nlines\",30\n2,x,thirty\n");
  CsvImportOptions options;
  options.field_types = {{"age", FieldType::FIELD_TYPE_INT}};
  auto reader = Open(in, options);
  ASSERT_TRUE(reader.ok());
  exportd::v1::UploadMembersRequest::Chunk chunk;
  EXPECT_EQ((*reader)->ReadChunk(10, 1 << 20, &chunk).status().message(),
            "people.csv: row 3 (line 4), field 'age' (int): cannot parse 'thirty' as an int");
}

TEST(MemberCsvReaderTest, EmptyProfileIdIsAnError) {
  std::istringstream in("id,name\n,Ann\n");
  auto reader = Open(in);
  ASSERT_TRUE(reader.ok());
  exportd::v1::UploadMembersRequest::Chunk chunk;
  EXPECT_EQ((*reader)->ReadChunk(10, 1 << 20, &chunk).status().message(),
            "people.csv: row 2, field 'id': the profile id is empty (every row needs one)");
}

TEST(MemberCsvReaderTest, ChunksByRowsAndBytes) {
  std::string csv = "id,v\n";
  for (int i = 0; i < 25; ++i) csv += std::to_string(i) + ",value\n";
  std::istringstream in(csv);
  auto reader = Open(in);
  ASSERT_TRUE(reader.ok());
  exportd::v1::UploadMembersRequest::Chunk chunk;
  EXPECT_EQ(*(*reader)->ReadChunk(10, 1 << 20, &chunk), 10);
  EXPECT_EQ(chunk.rows(0).profile_id(), "0");
  // A tiny byte budget ends the chunk after the first row.
  EXPECT_EQ(*(*reader)->ReadChunk(10, 1, &chunk), 1);
  EXPECT_EQ(chunk.rows(0).profile_id(), "10");
  EXPECT_EQ(*(*reader)->ReadChunk(100, 1 << 20, &chunk), 14);
  EXPECT_EQ(chunk.rows(13).profile_id(), "24");
  EXPECT_EQ(*(*reader)->ReadChunk(100, 1 << 20, &chunk), 0);
}

}  // namespace
}  // namespace exportd::client
