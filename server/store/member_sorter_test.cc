#include "server/store/member_sorter.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "exportd/v1/segment.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/member_chunk.h"

namespace exportd::store {
namespace {

using Chunk = v1::UploadMembersRequest::Chunk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::MemberRow Row(const std::string& id, const std::string& value = "") {
  v1::MemberRow row;
  row.set_profile_id(id);
  row.add_values()->set_string_value(value.empty() ? id + "@example.com" : value);
  row.add_values()->set_int_value(static_cast<std::int64_t>(id.size()));
  return row;
}

std::string ChunkOf(const std::vector<v1::MemberRow>& rows) {
  Chunk chunk;
  for (const auto& row : rows) *chunk.add_rows() = row;
  return chunk.SerializeAsString();
}

// What Finish emitted: every row's MemberRow bytes and id, in order, and the
// chunks' sizes and row counts.
struct Emitted {
  std::vector<std::string> ids;
  std::vector<std::string> row_bytes;
  std::vector<size_t> chunk_sizes;
  std::vector<std::int64_t> chunk_rows;
};

absl::Status FinishInto(MemberSorter& sorter, Emitted& out) {
  return sorter.Finish([&](std::string bytes, std::int64_t rows) -> absl::Status {
    EXPECT_GT(rows, 0);
    ChunkReader reader(bytes);
    RowView row;
    std::int64_t read = 0;
    while (reader.Next(row)) {
      out.ids.emplace_back(row.profile_id);
      out.row_bytes.emplace_back(reader.last_row());
      ++read;
    }
    EXPECT_TRUE(reader.status().ok()) << reader.status();
    EXPECT_EQ(read, rows);
    // Protobuf agrees.
    Chunk parsed;
    EXPECT_TRUE(parsed.ParseFromString(bytes));
    EXPECT_EQ(parsed.rows_size(), rows);
    out.chunk_sizes.push_back(bytes.size());
    out.chunk_rows.push_back(rows);
    return absl::OkStatus();
  });
}

// Each test runs with rows held in memory and with a budget so small that
// (nearly) every row is a sorted run of its own on disk.
class MemberSorterTest : public ::testing::TestWithParam<size_t> {
 protected:
  MemberSorterOptions Options() {
    MemberSorterOptions options;
    options.memory_bytes = GetParam();
    options.chunk_bytes = 256;
    options.temp_dir = ::testing::TempDir();
    return options;
  }
  bool Spills() const { return GetParam() < 1024; }
};

TEST_P(MemberSorterTest, EmitsEveryRowByteIdenticalInProfileIdOrder) {
  // Ids that share 8-byte prefixes (and differ after them, or in length),
  // non-ASCII UTF-8 (which sorts after ASCII, bytewise), and plain ones.
  std::vector<std::string> ids = {
      "abcdefgh",  "abcdefgh0", "abcdefgh\x7f", "abcdefg",   "abcdefgi", "abcdefgh00",
      "z",         "Z",         "0",            "\xc3\xa9",  "e\xcc\x81", "\xe6\x97\xa5\xe6\x9c\xac",
      "\xf0\x9f\x98\x80", "a",  "a\x01",        "p10",       "p9",        "p100"};
  std::vector<v1::MemberRow> rows;
  for (const auto& id : ids) rows.push_back(Row(id));
  std::mt19937 random(7);
  std::shuffle(rows.begin(), rows.end(), random);

  MemberSorter sorter(Options());
  // In several chunks, one of them empty.
  ASSERT_TRUE(sorter.AddChunk(ChunkOf({rows.begin(), rows.begin() + 5})).ok());
  ASSERT_TRUE(sorter.AddChunk(ChunkOf({})).ok());
  ASSERT_TRUE(sorter.AddChunk(ChunkOf({rows.begin() + 5, rows.end()})).ok());
  EXPECT_EQ(sorter.rows(), static_cast<std::int64_t>(ids.size()));
  if (Spills()) {
    EXPECT_GT(sorter.spilled_runs(), 1);
  } else {
    EXPECT_EQ(sorter.spilled_runs(), 0);
  }
  Emitted out;
  ASSERT_TRUE(FinishInto(sorter, out).ok());

  std::vector<std::string> want = ids;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(out.ids, want);
  EXPECT_EQ(out.ids.front(), "0");
  EXPECT_EQ(out.ids.back(), "\xf0\x9f\x98\x80");
  // Every row as it was sent.
  std::vector<std::string> sent;
  for (const auto& row : rows) sent.push_back(row.SerializeAsString());
  std::vector<std::string> got = out.row_bytes;
  std::sort(sent.begin(), sent.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, sent);
}

TEST_P(MemberSorterTest, ManyRandomRows) {
  std::mt19937 random(11);
  std::vector<std::string> ids;
  std::uniform_int_distribution<int> length(0, 20), byte('0', 'z');
  for (int i = 0; i < 3000; ++i) {
    std::string id = "id";
    for (int n = length(random); n > 0; --n) id.push_back(static_cast<char>(byte(random)));
    ids.push_back(id + "-" + std::to_string(i));
  }
  MemberSorter sorter(Options());
  for (size_t i = 0; i < ids.size(); i += 100) {
    std::vector<v1::MemberRow> rows;
    for (size_t j = i; j < std::min(ids.size(), i + 100); ++j) rows.push_back(Row(ids[j]));
    ASSERT_TRUE(sorter.AddChunk(ChunkOf(rows)).ok());
  }
  Emitted out;
  ASSERT_TRUE(FinishInto(sorter, out).ok());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(out.ids, ids);
  // Chunks of about chunk_bytes: none empty, none much larger.
  for (size_t size : out.chunk_sizes) EXPECT_LE(size, 256u);
  EXPECT_GT(out.chunk_sizes.size(), 3000u * 30 / 256);
}

TEST_P(MemberSorterTest, ARepeatedIdNamesBothRows) {
  MemberSorter sorter(Options());
  ASSERT_TRUE(sorter.AddChunk(ChunkOf({Row("p1"), Row("p2"), Row("p3")})).ok());
  ASSERT_TRUE(sorter.AddChunk(ChunkOf({Row("p4"), Row("p2", "other")})).ok());
  Emitted out;
  absl::Status status = FinishInto(sorter, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "profile id 'p2' appears twice (rows 2 and 5); profile ids must be unique");
}

TEST_P(MemberSorterTest, ARepeatedIdInOneChunk) {
  MemberSorter sorter(Options());
  ASSERT_TRUE(sorter.AddChunk(ChunkOf({Row("b"), Row("a"), Row("b"), Row("b")})).ok());
  Emitted out;
  absl::Status status = FinishInto(sorter, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("profile id 'b' appears twice (rows 1 and 3)"));
}

TEST_P(MemberSorterTest, ARowLargerThanAChunkIsAChunkOfItsOwn) {
  MemberSorter sorter(Options());
  const std::string big(1000, 'x');
  ASSERT_TRUE(sorter.AddChunk(ChunkOf({Row("c"), Row("b", big), Row("a"), Row("d")})).ok());
  Emitted out;
  ASSERT_TRUE(FinishInto(sorter, out).ok());
  EXPECT_THAT(out.ids, ElementsAre("a", "b", "c", "d"));
  EXPECT_THAT(out.chunk_rows, ElementsAre(1, 1, 2));
  EXPECT_GT(out.chunk_sizes[1], 1000u);
}

TEST_P(MemberSorterTest, ZeroRowsEmitNothing) {
  MemberSorter sorter(Options());
  ASSERT_TRUE(sorter.AddChunk("").ok());
  Emitted out;
  ASSERT_TRUE(FinishInto(sorter, out).ok());
  EXPECT_TRUE(out.chunk_sizes.empty());
  EXPECT_EQ(sorter.rows(), 0);
}

TEST_P(MemberSorterTest, TheLastProfileIdOfARowCountsAndItsBytesStayAsSent) {
  // A row that carries profile_id twice (protobuf keeps the last), and an
  // empty id (uploads refuse those; the sorter puts it first).
  std::string twice = Row("zzz").SerializeAsString() + Row("b").SerializeAsString();
  v1::MemberRow parsed;
  ASSERT_TRUE(parsed.ParseFromString(twice));
  ASSERT_EQ(parsed.profile_id(), "b");
  std::string chunk = ChunkOf({Row("c"), Row("")});
  chunk.push_back('\x0a');
  chunk.push_back(static_cast<char>(twice.size()));
  chunk += twice;
  MemberSorter sorter(Options());
  ASSERT_TRUE(sorter.AddChunk(chunk).ok());
  Emitted out;
  ASSERT_TRUE(FinishInto(sorter, out).ok());
  EXPECT_THAT(out.ids, ElementsAre("", "b", "c"));
  EXPECT_EQ(out.row_bytes[1], twice);
}

TEST_P(MemberSorterTest, AnErrorFromEmitStopsFinish) {
  MemberSorter sorter(Options());
  ASSERT_TRUE(sorter.AddChunk(ChunkOf({Row("a", std::string(300, 'x')), Row("b")})).ok());
  int calls = 0;
  absl::Status status = sorter.Finish([&](std::string, std::int64_t) {
    ++calls;
    return absl::AbortedError("stop");
  });
  EXPECT_EQ(status, absl::AbortedError("stop"));
  EXPECT_EQ(calls, 1);
}

TEST_P(MemberSorterTest, AMalformedChunkIsDataLoss) {
  MemberSorter sorter(Options());
  EXPECT_EQ(sorter.AddChunk("\x0a\x05" "ab").code(), absl::StatusCode::kDataLoss);
}

INSTANTIATE_TEST_SUITE_P(MemoryBudgets, MemberSorterTest, ::testing::Values(64 << 20, 1, 200),
                         [](const auto& info) {
                           return info.param >= 1024 ? std::string("InMemory")
                                                     : "Spilling" + std::to_string(info.param);
                         });

TEST(MemberSorterTempDirTest, AnUnwritableTemporaryDirectoryIsNamed) {
  MemberSorterOptions options;
  options.memory_bytes = 1;
  options.temp_dir = ::testing::TempDir() + "/no/such/dir";
  MemberSorter sorter(options);
  absl::Status status = sorter.AddChunk(ChunkOf({Row("a"), Row("b")}));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("temporary file in '" + options.temp_dir + "'"));
  EXPECT_THAT(status.message(), HasSubstr("upload again"));
}

}  // namespace
}  // namespace exportd::store
