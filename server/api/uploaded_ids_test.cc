#include "server/api/uploaded_ids.h"

#include <functional>
#include <set>
#include <vector>
#include <string>

#include "gtest/gtest.h"

namespace exportd::api {
namespace {

// A hash under which every id of the same length collides.
std::uint64_t LengthHash(absl::string_view id) { return id.size(); }

TEST(UploadedIdsTest, NewIdsAreNewAndRepeatsAreNot) {
  UploadedIds ids;
  std::set<std::string> accepted;
  auto seen = [&](absl::string_view id) -> absl::StatusOr<bool> {
    return accepted.count(std::string(id)) > 0;
  };
  for (const char* id : {"p1", "p2", "p3"}) {
    EXPECT_EQ(*ids.Insert(id, seen), true);
    accepted.insert(id);
  }
  EXPECT_EQ(*ids.Insert("p2", seen), false);
  EXPECT_EQ(ids.hash_collisions_checked(), 1);
}

TEST(UploadedIdsTest, IdsThatHashAlikeAreBothAccepted) {
  UploadedIds ids(&LengthHash);
  std::set<std::string> accepted;
  auto seen = [&](absl::string_view id) -> absl::StatusOr<bool> {
    return accepted.count(std::string(id)) > 0;
  };
  EXPECT_EQ(*ids.Insert("ab", seen), true);
  accepted.insert("ab");
  // Same hash, another id: the rows say it is new.
  EXPECT_EQ(*ids.Insert("cd", seen), true);
  accepted.insert("cd");
  EXPECT_EQ(ids.hash_collisions_checked(), 1);
  // Same hash, same id: a real repeat.
  EXPECT_EQ(*ids.Insert("ab", seen), false);
  EXPECT_EQ(ids.hash_collisions_checked(), 2);
}

TEST(UploadedIdsTest, AFailedLookupIsReported) {
  UploadedIds ids(&LengthHash);
  auto fails = [](absl::string_view) -> absl::StatusOr<bool> {
    return absl::UnavailableError("database is locked");
  };
  ASSERT_TRUE(ids.Insert("ab", fails).ok());  // New hash: no lookup.
  absl::StatusOr<bool> again = ids.Insert("cd", fails);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable);
}

// The ids of a large upload, as FindRepeated reads them back from the rows.
UploadedIds::ForEachId IdsOf(const std::vector<std::string>& rows) {
  return [&rows](const std::function<void(absl::string_view)>& fn) {
    for (const auto& id : rows) fn(id);
    return absl::OkStatus();
  };
}

TEST(UploadedIdsTest, BeyondMemoryARepeatIsFoundAtTheEndAcrossRuns) {
  // 3 ids in memory, runs of 4: the ids are spread over several sorted runs.
  UploadedIds ids(&UploadedIds::DefaultHash, 3, 4);
  std::vector<std::string> rows;
  auto never = [](absl::string_view) -> absl::StatusOr<bool> { return false; };
  for (int i = 0; i < 20; ++i) {
    rows.push_back("p" + std::to_string(i));
    ASSERT_EQ(*ids.Insert(rows.back(), never), true);
  }
  EXPECT_TRUE(ids.spilled());
  // p1 again, long after it went to a run: Insert cannot tell, the end can.
  rows.push_back("p1");
  EXPECT_EQ(*ids.Insert("p1", never), true);
  absl::StatusOr<std::optional<std::string>> repeated = ids.FindRepeated(IdsOf(rows));
  ASSERT_TRUE(repeated.ok()) << repeated.status();
  EXPECT_EQ(repeated->value_or("none"), "p1");
}

TEST(UploadedIdsTest, BeyondMemoryIdsThatHashAlikeAreNotARepeat) {
  UploadedIds ids(&LengthHash, 0, 2);
  std::vector<std::string> rows = {"aa", "bb", "cc", "d", "e"};
  auto never = [](absl::string_view) -> absl::StatusOr<bool> { return false; };
  ASSERT_EQ(*ids.Insert("aa", never), true);
  // Nothing is kept in memory: every id is accepted for now.
  for (size_t i = 1; i < rows.size(); ++i) ASSERT_EQ(*ids.Insert(rows[i], never), true);
  absl::StatusOr<std::optional<std::string>> repeated = ids.FindRepeated(IdsOf(rows));
  ASSERT_TRUE(repeated.ok()) << repeated.status();
  EXPECT_FALSE(repeated->has_value()) << **repeated;
  EXPECT_EQ(ids.hash_collisions_checked(), 2) << "two hashes repeat: lengths 2 and 1";
}

TEST(UploadedIdsTest, WithinMemoryNothingIsLeftForTheEnd) {
  UploadedIds ids;
  auto never = [](absl::string_view) -> absl::StatusOr<bool> { return false; };
  ASSERT_EQ(*ids.Insert("p1", never), true);
  bool read = false;
  absl::StatusOr<std::optional<std::string>> repeated =
      ids.FindRepeated([&](const std::function<void(absl::string_view)>&) {
        read = true;
        return absl::OkStatus();
      });
  ASSERT_TRUE(repeated.ok());
  EXPECT_FALSE(repeated->has_value());
  EXPECT_FALSE(read) << "the rows are read only when hashes repeat";
  EXPECT_FALSE(ids.spilled());
}

}  // namespace
}  // namespace exportd::api
