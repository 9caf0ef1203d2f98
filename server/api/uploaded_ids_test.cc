#include "server/api/uploaded_ids.h"

#include <set>
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

}  // namespace
}  // namespace exportd::api
