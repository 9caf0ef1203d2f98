#include "audience_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jsonl_test_util.h"

namespace exportd::jsonl {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using testing::ReadLines;
using testing::TempDir;

std::vector<std::string> FileNames(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A file outside the audience directory that a planted link points at.
class PlantedLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    victim_ = outside_.path() / "victim";
    std::ofstream(victim_) << "precious\n";
  }
  void ExpectVictimUntouched() {
    EXPECT_EQ(ReadLines(victim_), std::vector<std::string>{"precious"});
  }
  TempDir dir_;
  TempDir outside_;
  std::filesystem::path victim_;
};

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

TEST(ReadWriteMembersTest, LinesAcrossReadBuffersAndALastLineWithoutNewline) {
  TempDir dir;
  const auto path = dir.path() / "s.jsonl";
  Members m;
  for (int i = 0; i < 5000; ++i) {
    m.Put("p" + std::to_string(i),
          R"({"id":"p)" + std::to_string(i) + R"(","pad":")" + std::string(i % 300, 'x') + "\"}");
  }
  ASSERT_TRUE(WriteMembers(path, m, /*fsync=*/false).ok());
  std::ofstream(path, std::ios::app) << R"({"id":"last"})";  // No newline.
  auto read = ReadMembers(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), 5001u);
  EXPECT_EQ(*read->Find("p4999"), *m.Find("p4999"));
  EXPECT_EQ(*read->Find("p1234"), *m.Find("p1234"));
  EXPECT_EQ(*read->Find("last"), R"({"id":"last"})");
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

TEST(ReadWriteMembersTest, FilesAreWrittenWithMode0600WhateverTheUmask) {
  TempDir dir;
  const auto path = dir.path() / "s.jsonl";
  const mode_t old_mask = ::umask(0);
  absl::Status written = WriteMembers(path, Members(), /*fsync=*/false);
  ::umask(old_mask);
  ASSERT_TRUE(written.ok()) << written;
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST(TemporaryPathTest, IsHiddenInTheSameDirectoryWithARandomSuffix) {
  const std::filesystem::path path = "/data/out/VIP.jsonl";
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto tmp = internal::TemporaryPath(path);
    ASSERT_TRUE(tmp.ok()) << tmp.status();
    EXPECT_EQ(tmp->parent_path(), path.parent_path());
    EXPECT_THAT(tmp->filename().string(), MatchesRegex("\\.VIP\\.jsonl\\.tmp\\.[0-9a-f]{16}"));
    seen.insert(tmp->string());
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST_F(PlantedLinkTest, ALinkAtTheTemporaryNameIsRefusedNotFollowed) {
  const auto tmp = dir_.path() / ".s.jsonl.tmp.0123456789abcdef";
  std::filesystem::create_symlink(victim_, tmp);
  absl::StatusOr<int> fd = internal::CreateExclusive(tmp);
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fd.status().message(), HasSubstr("'" + tmp.string() + "'"));
  ExpectVictimUntouched();
  // A dangling link is refused too (O_CREAT alone would create its target).
  const auto dangling_target = outside_.path() / "created-through-link";
  const auto dangling = dir_.path() / ".s.jsonl.tmp.fedcba9876543210";
  std::filesystem::create_symlink(dangling_target, dangling);
  EXPECT_EQ(internal::CreateExclusive(dangling).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(dangling_target));
  // And a plain file planted there is not opened either.
  const auto planted = dir_.path() / ".s.jsonl.tmp.aaaaaaaaaaaaaaaa";
  std::ofstream(planted) << "planted\n";
  EXPECT_EQ(internal::CreateExclusive(planted).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadLines(planted), std::vector<std::string>{"planted"});
}

TEST_F(PlantedLinkTest, AnAudienceFileThatIsALinkIsNeitherReadNorReplaced) {
  const auto path = dir_.path() / "s.jsonl";
  std::filesystem::create_symlink(victim_, path);
  absl::StatusOr<Members> read = ReadMembers(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(read.status().message(), HasSubstr("'" + path.string() + "' is a symbolic link"));

  Members m;
  m.Put("a", R"({"id":"a"})");
  absl::Status written = WriteMembers(path, m, /*fsync=*/true);
  EXPECT_EQ(written.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(written.message(), HasSubstr("'" + path.string() + "' is a symbolic link"));
  ExpectVictimUntouched();
  EXPECT_TRUE(std::filesystem::is_symlink(path));
  EXPECT_EQ(FileNames(dir_.path()), std::vector<std::string>{"s.jsonl"});  // No temp file left.

  // A dangling link is not written through either.
  const auto dangling_target = outside_.path() / "created-through-link";
  const auto dangling = dir_.path() / "d.jsonl";
  std::filesystem::create_symlink(dangling_target, dangling);
  EXPECT_EQ(WriteMembers(dangling, m, false).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(dangling_target));
}

TEST(ReadWriteMembersTest, AnAudiencePathThatIsNotARegularFileIsRefused) {
  TempDir dir;
  const auto fifo = dir.path() / "f.jsonl";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Refused without blocking on the FIFO.
  absl::Status read = ReadMembers(fifo).status();
  EXPECT_EQ(read.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(read.message(), HasSubstr("'" + fifo.string() + "' is not a regular file"));
  std::filesystem::create_directory(dir.path() / "d.jsonl");
  absl::Status written = WriteMembers(dir.path() / "d.jsonl", Members(), false);
  EXPECT_EQ(written.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(written.message(), HasSubstr("is not a regular file"));
}

}  // namespace
}  // namespace exportd::jsonl
