#include "audience_file.h"

#include <fstream>

#include "gtest/gtest.h"
#include "jsonl_test_util.h"

namespace exportd::jsonl {
namespace {

using testing::ReadLines;
using testing::TempDir;

TEST(AudienceFileNameTest, KeepsOrdinaryNames) {
  EXPECT_EQ(*AudienceFileName("VIP customers"), "VIP customers.jsonl");
  EXPECT_EQ(*AudienceFileName("Clientes año 2024"), "Clientes año 2024.jsonl");
}

TEST(AudienceFileNameTest, EscapesSeparatorsSoNamesCannotEscapeTheDirectory) {
  EXPECT_EQ(*AudienceFileName("VIP/EU"), "VIP%2FEU.jsonl");
  EXPECT_EQ(*AudienceFileName("../../etc/passwd"), "%2E.%2F..%2Fetc%2Fpasswd.jsonl");
  EXPECT_EQ(*AudienceFileName(".."), "%2E..jsonl");
  EXPECT_EQ(*AudienceFileName("a\\b"), "a%5Cb.jsonl");
  EXPECT_EQ(*AudienceFileName("100%"), "100%25.jsonl");
  EXPECT_EQ(*AudienceFileName(std::string("a\nb\0c", 5)), "a%0Ab%00c.jsonl");
  // Escaping is injective: "%2F" itself is escaped.
  EXPECT_NE(*AudienceFileName("a%2Fb"), *AudienceFileName("a/b"));
}

TEST(AudienceFileNameTest, RefusesEmptyAndOverlongNames) {
  EXPECT_EQ(AudienceFileName("").status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status too_long = AudienceFileName(std::string(300, 'x')).status();
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.message().find("too long for a file name"), absl::string_view::npos);
}

TEST(IsAudienceFileNameTest, AcceptsOnlyPlainJsonlNames) {
  EXPECT_TRUE(IsAudienceFileName("VIP.jsonl"));
  EXPECT_FALSE(IsAudienceFileName("../VIP.jsonl"));
  EXPECT_FALSE(IsAudienceFileName("a/VIP.jsonl"));
  EXPECT_FALSE(IsAudienceFileName(".jsonl"));
  EXPECT_FALSE(IsAudienceFileName("VIP.txt"));
}

TEST(MembersTest, PutReplacesInPlaceAndEraseRemoves) {
  Members m;
  m.Put("a", "A1");
  m.Put("b", "B1");
  m.Put("a", "A2");
  EXPECT_EQ(m.size(), 2u);
  ASSERT_EQ(m.Lines().size(), 2u);
  EXPECT_EQ(*m.Lines()[0], "A2");
  EXPECT_TRUE(m.Erase("a"));
  EXPECT_FALSE(m.Erase("a"));
  EXPECT_EQ(m.Find("a"), nullptr);
  EXPECT_EQ(*m.Find("b"), "B1");
  m.Put("a", "A3");
  ASSERT_EQ(m.Lines().size(), 2u);
  EXPECT_EQ(*m.Lines()[1], "A3");
}

TEST(ReadWriteMembersTest, RoundTripsAndLeavesNoTempFiles) {
  TempDir dir;
  const auto path = dir.path() / "s.jsonl";
  EXPECT_EQ(ReadMembers(path)->size(), 0u);  // Missing file: empty.
  Members m;
  m.Put("a", R"({"id":"a"})");
  m.Put("b", R"({"id":"b","x":1})");
  ASSERT_TRUE(WriteMembers(path, m, /*fsync=*/true).ok());
  EXPECT_EQ(ReadLines(path), (std::vector<std::string>{R"({"id":"a"})", R"({"id":"b","x":1})"}));
  auto read = ReadMembers(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read->Find("b"), R"({"id":"b","x":1})");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(ReadWriteMembersTest, CorruptLineIsDataLossNamingTheLine) {
  TempDir dir;
  const auto path = dir.path() / "s.jsonl";
  std::ofstream(path) << "{\"id\":\"a\"}\nnot json\n";
  absl::Status status = ReadMembers(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("line 2 is not a JSON object"), absl::string_view::npos)
      << status;
}

TEST(ReadWriteMembersTest, WriteIntoMissingDirectoryFails) {
  TempDir dir;
  absl::Status status = WriteMembers(dir.path() / "nope" / "s.jsonl", Members(), false);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
}

}  // namespace
}  // namespace exportd::jsonl
