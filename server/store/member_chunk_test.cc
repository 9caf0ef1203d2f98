#include "server/store/member_chunk.h"

#include <cstring>
#include <random>
#include <string>

#include "exportd/v1/segment.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/unknown_field_set.h"
#include "gtest/gtest.h"

namespace exportd::store {
namespace {

using Chunk = v1::UploadMembersRequest::Chunk;

// What protobuf itself makes of a value, for comparison with ValueView.
void ExpectSameValue(const v1::Value& want, const ValueView& got, const std::string& where) {
  ASSERT_EQ(got.kind, want.kind_case()) << where;
  switch (want.kind_case()) {
    case v1::Value::kStringValue:
      EXPECT_EQ(got.string_value, want.string_value()) << where;
      break;
    case v1::Value::kIntValue:
      EXPECT_EQ(got.int_value, want.int_value()) << where;
      break;
    case v1::Value::kTimestampMicros:
      EXPECT_EQ(got.int_value, want.timestamp_micros()) << where;
      break;
    case v1::Value::kDoubleValue: {
      // Bit patterns, so NaNs compare too.
      double expected = want.double_value();
      EXPECT_EQ(std::memcmp(&got.double_value, &expected, 8), 0) << where;
      break;
    }
    case v1::Value::kBoolValue:
      EXPECT_EQ(got.bool_value, want.bool_value()) << where;
      break;
    default:
      break;
  }
}

// Reads every row of `bytes`; false when the reader stopped on an error.
bool ReadAll(absl::string_view bytes, std::vector<RowView>& rows) {
  ChunkReader reader(bytes);
  RowView row;
  rows.clear();
  while (reader.Next(row)) rows.push_back(row);
  return reader.status().ok();
}

void ExpectSameRows(const Chunk& want, const std::vector<RowView>& got) {
  ASSERT_EQ(got.size(), static_cast<size_t>(want.rows_size()));
  for (int r = 0; r < want.rows_size(); ++r) {
    const v1::MemberRow& row = want.rows(r);
    EXPECT_EQ(got[r].profile_id, row.profile_id());
    ASSERT_EQ(got[r].values.size(), static_cast<size_t>(row.values_size())) << "row " << r;
    for (int v = 0; v < row.values_size(); ++v) {
      ExpectSameValue(row.values(v), got[r].values[v],
                      "row " + std::to_string(r) + " value " + std::to_string(v));
    }
  }
}

std::string RandomText(std::mt19937_64& rng) {
  static const char* const kPieces[] = {"a", "Z", "0", "@", ".", " ", "é", "ß", "€", "😀", "\t", ""};
  std::string out;
  int n = static_cast<int>(rng() % 12);
  for (int i = 0; i < n; ++i) out += kPieces[rng() % (sizeof(kPieces) / sizeof(kPieces[0]))];
  return out;
}

Chunk RandomChunk(std::mt19937_64& rng, int rows) {
  Chunk chunk;
  for (int r = 0; r < rows; ++r) {
    v1::MemberRow* row = chunk.add_rows();
    row->set_profile_id("p" + std::to_string(rng()) + RandomText(rng));
    int values = static_cast<int>(rng() % 9);
    for (int v = 0; v < values; ++v) {
      v1::Value* value = row->add_values();
      switch (rng() % 6) {
        case 0:
          value->set_string_value(RandomText(rng));
          break;
        case 1:
          value->set_int_value(static_cast<std::int64_t>(rng()));
          break;
        case 2:
          value->set_double_value(static_cast<double>(rng()) / 3.0 - 1e18);
          break;
        case 3:
          value->set_bool_value(rng() % 2 == 0);
          break;
        case 4:
          value->set_timestamp_micros(-static_cast<std::int64_t>(rng() % 1000000));
          break;
        default:
          break;  // null
      }
    }
  }
  return chunk;
}

TEST(ChunkReaderTest, ReadsWhatProtobufWrites) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 200; ++round) {
    Chunk chunk = RandomChunk(rng, static_cast<int>(rng() % 20));
    std::string bytes = chunk.SerializeAsString();
    std::vector<RowView> rows;
    ASSERT_TRUE(ReadAll(bytes, rows)) << "round " << round;
    ExpectSameRows(chunk, rows);
  }
}

TEST(ChunkReaderTest, EmptyChunkHasNoRows) {
  std::vector<RowView> rows;
  EXPECT_TRUE(ReadAll("", rows));
  EXPECT_TRUE(rows.empty());
}

TEST(ChunkReaderTest, SkipsUnknownFieldsAtEveryLevel) {
  Chunk chunk;
  v1::MemberRow* row = chunk.add_rows();
  row->set_profile_id("p1");
  row->add_values()->set_string_value("a@example.com");
  row->add_values()->set_int_value(7);
  row->mutable_values(0)
      ->GetReflection()
      ->MutableUnknownFields(row->mutable_values(0))
      ->AddVarint(9, 1);
  row->GetReflection()->MutableUnknownFields(row)->AddLengthDelimited(7, "junk");
  row->GetReflection()->MutableUnknownFields(row)->AddFixed32(8, 3);
  chunk.GetReflection()->MutableUnknownFields(&chunk)->AddFixed64(5, 11);
  chunk.add_rows()->set_profile_id("p2");
  std::string bytes = chunk.SerializeAsString();
  std::vector<RowView> rows;
  ASSERT_TRUE(ReadAll(bytes, rows));
  ExpectSameRows(chunk, rows);
}

// Builds wire bytes by hand: tag, then payload.
std::string Tag(int field, int wire_type) {
  std::string out;
  std::uint64_t tag = (static_cast<std::uint64_t>(field) << 3) | wire_type;
  while (tag >= 0x80) {
    out.push_back(static_cast<char>((tag & 0x7f) | 0x80));
    tag >>= 7;
  }
  out.push_back(static_cast<char>(tag));
  return out;
}
std::string Len(int field, const std::string& payload) {
  return Tag(field, 2) + static_cast<char>(payload.size()) + payload;
}

TEST(ChunkReaderTest, LastOneofMemberWinsAndWrongWireTypesAreUnknown) {
  // Value: int 5, then string "x" (wins); a "string" sent as a varint is unknown.
  std::string value = Tag(2, 0) + "\x05" + Len(1, "x") + Tag(1, 0) + "\x01";
  std::string row = Len(1, "first") + Len(1, "second") + Len(2, value);
  std::string bytes = Len(1, row);
  Chunk parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  std::vector<RowView> rows;
  ASSERT_TRUE(ReadAll(bytes, rows));
  ExpectSameRows(parsed, rows);
  EXPECT_EQ(rows[0].profile_id, "second");
  EXPECT_EQ(rows[0].values[0].string_value, "x");
}

TEST(ChunkReaderTest, RejectsInvalidUtf8LikeProtobuf) {
  google::protobuf::LogSilencer quiet;  // protobuf logs each bad string
  for (const std::string& bad : {std::string("\xff"), std::string("a\xc3"),
                                 std::string("\xed\xa0\x80"), std::string("\xc0\xaf")}) {
    std::string in_id = Len(1, Len(1, bad));
    std::string in_value = Len(1, Len(1, "p") + Len(2, Len(1, bad)));
    for (const std::string& bytes : {in_id, in_value}) {
      Chunk parsed;
      EXPECT_FALSE(parsed.ParseFromString(bytes));
      std::vector<RowView> rows;
      EXPECT_FALSE(ReadAll(bytes, rows));
    }
  }
}

TEST(ChunkReaderTest, KnowsWhereEachRowBegins) {
  std::mt19937_64 rng(3);
  Chunk chunk = RandomChunk(rng, 6);
  std::string bytes = chunk.SerializeAsString();
  ChunkReader reader(bytes);
  RowView row;
  for (int r = 0; r < 6; ++r) {
    ASSERT_TRUE(reader.Next(row));
    // The bytes before the row hold exactly the rows before it.
    std::vector<RowView> before;
    std::string prefix = bytes.substr(0, reader.last_row_offset());
    ASSERT_TRUE(ReadAll(prefix, before));
    EXPECT_EQ(before.size(), static_cast<size_t>(r));
    EXPECT_EQ(reader.rows_read(), r + 1);
  }
}

TEST(ChunkReaderTest, SaysWhichRowAndValueIsWrong) {
  std::string good = Len(1, Len(1, "p1") + Len(2, Len(1, "ok")));
  std::string bad_value = Len(1, Len(1, "p2") + Len(2, Len(1, "ok")) + Len(2, Len(1, "\xff")));
  std::string bad_id = Len(1, Len(1, "\xc3"));
  std::string truncated = Len(1, Len(1, "p3") + Len(2, Tag(2, 0)));  // a varint without bytes

  std::string bytes = good + bad_value;
  ChunkReader reader(bytes);
  RowView row;
  ASSERT_TRUE(reader.Next(row));
  EXPECT_FALSE(reader.Next(row));
  EXPECT_EQ(reader.rows_read(), 1);
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(reader.status().message(), "value 2 is not valid UTF-8");

  ChunkReader id_reader(bad_id);
  EXPECT_FALSE(id_reader.Next(row));
  EXPECT_EQ(id_reader.status().message(), "the profile id is not valid UTF-8");

  ChunkReader truncated_reader(truncated);
  EXPECT_FALSE(truncated_reader.Next(row));
  EXPECT_EQ(truncated_reader.status().message(),
            "value 1 is malformed (truncated, or a protobuf group)");
}

TEST(ChunkReaderTest, ReadsOneValueOnlyWhenAskedAndLeavesTheOthersToTheFullRead) {
  // Value 2 is not UTF-8; a read of value 1 alone neither parses nor checks it.
  std::string bytes =
      Len(1, Len(1, "p1") + Len(2, Len(1, "a@x.com")) + Len(2, Len(1, "\xff")) + Len(2, Tag(3, 0) + "\x07"));
  ChunkReader one(bytes);
  RowView row;
  ASSERT_TRUE(one.Next(row, 0));
  EXPECT_EQ(row.profile_id, "p1");
  ASSERT_EQ(row.values.size(), 3u);  // The row's width all the same.
  EXPECT_EQ(row.values[0].kind, v1::Value::kStringValue);
  EXPECT_EQ(row.values[0].string_value, "a@x.com");
  EXPECT_EQ(row.values[1].kind, v1::Value::KIND_NOT_SET);
  EXPECT_EQ(row.values[2].kind, v1::Value::KIND_NOT_SET);
  EXPECT_FALSE(one.Next(row, 0));
  EXPECT_TRUE(one.status().ok()) << one.status();

  ChunkReader full(bytes);
  EXPECT_FALSE(full.Next(row));
  EXPECT_EQ(full.status().message(), "value 2 is not valid UTF-8");
}

TEST(ChunkReaderTest, ReadsTheMarkedValuesOnly) {
  // Value 2 is not UTF-8: a read of values 1 and 3 leaves it alone.
  std::string bytes =
      Len(1, Len(1, "p1") + Len(2, Len(1, "a@x.com")) + Len(2, Len(1, "\xff")) + Len(2, Tag(2, 0) + "\x07"));
  ChunkReader reader(bytes);
  RowView row;
  ASSERT_TRUE(reader.Next(row, std::vector<bool>{true, false, true}));
  ASSERT_EQ(row.values.size(), 3u);
  EXPECT_EQ(row.values[0].string_value, "a@x.com");
  EXPECT_EQ(row.values[1].kind, v1::Value::KIND_NOT_SET);
  EXPECT_EQ(row.values[2].kind, v1::Value::kIntValue);
  EXPECT_EQ(row.values[2].int_value, 7);

  // Values past the mask's end are not read either; a marked bad one is.
  ChunkReader short_mask(bytes);
  ASSERT_TRUE(short_mask.Next(row, std::vector<bool>{true}));
  EXPECT_EQ(row.values[2].kind, v1::Value::KIND_NOT_SET);
  ChunkReader bad(bytes);
  EXPECT_FALSE(bad.Next(row, std::vector<bool>{false, true}));
  EXPECT_EQ(bad.status().message(), "value 2 is not valid UTF-8");
}

TEST(ChunkReaderTest, ReadsARowForItsIdAloneThenItsValuesOnRequest) {
  // Row 1's value 2 is not UTF-8; row 2's value 1 is malformed.
  std::string bytes =
      Len(1, Len(1, "p1") + Len(2, Len(1, "a@x.com")) + Len(2, Len(1, "\xff"))) +
      Len(1, Len(1, "p2") + Len(2, Tag(2, 0)) + Len(2, Len(1, "b@x.com")));
  const std::vector<bool> none;
  ChunkReader reader(bytes);
  RowView row;
  ASSERT_TRUE(reader.Next(row, none));  // Neither value is parsed nor checked.
  EXPECT_EQ(row.profile_id, "p1");
  ASSERT_EQ(row.values.size(), 2u);
  EXPECT_EQ(row.values[0].kind, v1::Value::KIND_NOT_SET);
  ASSERT_TRUE(reader.Reparse(row, std::vector<bool>{true}));
  EXPECT_EQ(row.profile_id, "p1");
  ASSERT_EQ(row.values.size(), 2u);
  EXPECT_EQ(row.values[0].string_value, "a@x.com");
  EXPECT_EQ(row.values[1].kind, v1::Value::KIND_NOT_SET);

  ASSERT_TRUE(reader.Next(row, none));
  EXPECT_EQ(row.profile_id, "p2");
  ASSERT_TRUE(reader.Reparse(row, std::vector<bool>{false, true}));
  EXPECT_EQ(row.values[1].string_value, "b@x.com");
  EXPECT_FALSE(reader.Reparse(row, std::vector<bool>{true, true}));
  EXPECT_EQ(reader.status().message(), "value 1 is malformed (truncated, or a protobuf group)");
  EXPECT_FALSE(reader.Next(row, none));  // The reader stops at the error.
}

TEST(ChunkReaderTest, ChecksTheProfileIdUnlessToldAnotherPassDoes) {
  std::string bytes = Len(1, Len(1, "p\xff") + Len(2, Len(1, "a@x.com")));
  RowView row;
  ChunkReader checked(bytes);
  EXPECT_FALSE(checked.Next(row, 0));
  EXPECT_EQ(checked.status().message(), "the profile id is not valid UTF-8");
  ChunkReader unchecked(bytes);
  ASSERT_TRUE(unchecked.Next(row, 0, ChunkReader::ProfileId::kUnchecked));
  EXPECT_EQ(row.values[0].string_value, "a@x.com");
}

TEST(ChunkReaderTest, RejectsTruncatedBytes) {
  google::protobuf::LogSilencer quiet;  // prefixes can cut a character in two
  std::mt19937_64 rng(7);
  std::string bytes = RandomChunk(rng, 5).SerializeAsString();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string prefix = bytes.substr(0, n);
    Chunk parsed;
    bool protobuf_ok = parsed.ParseFromString(prefix);
    std::vector<RowView> rows;
    EXPECT_EQ(ReadAll(prefix, rows), protobuf_ok) << "prefix of " << n << " bytes";
    if (protobuf_ok) ExpectSameRows(parsed, rows);
  }
}

// Random corruptions of chunks are compared with protobuf by
// tests/fuzz/member_chunk_fuzz.cc (in the suite as member_chunk_fuzz).

TEST(ChunkOfUploadRequestTest, FindsALoneChunkOnly) {
  v1::UploadMembersRequest request;
  request.mutable_chunk()->add_rows()->set_profile_id("p1");
  std::string bytes = request.SerializeAsString();
  auto chunk = ChunkOfUploadRequest(bytes);
  ASSERT_TRUE(chunk.has_value());
  EXPECT_EQ(*chunk, request.chunk().SerializeAsString());

  v1::UploadMembersRequest header;
  header.mutable_header()->set_segment("s");
  EXPECT_FALSE(ChunkOfUploadRequest(header.SerializeAsString()).has_value());
  v1::UploadMembersRequest trailer;
  trailer.mutable_trailer()->set_row_count(1);
  EXPECT_FALSE(ChunkOfUploadRequest(trailer.SerializeAsString()).has_value());
  // Two chunk fields merge in protobuf: left to the ordinary parser.
  EXPECT_FALSE(ChunkOfUploadRequest(bytes + bytes).has_value());
  EXPECT_FALSE(ChunkOfUploadRequest("").has_value());
}

TEST(Utf8Test, AcceptsWellFormedAndRejectsTheRest) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("Zürich €uro 😀 \xf4\x8f\xbf\xbf"));
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated €
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xed\xbf\xbf"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("abcdefgh\xfe"));      // after the ASCII fast path
}

}  // namespace
}  // namespace exportd::store
