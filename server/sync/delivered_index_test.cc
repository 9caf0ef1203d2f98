#include "server/sync/delivered_index.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::sync {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

store::DeliveredView Row(std::uint64_t id_hash, absl::string_view id, std::uint64_t value_hash) {
  store::DeliveredView row;
  row.id_hash = id_hash;
  row.profile_id = id;
  row.value_hash = value_hash;
  return row;
}

TEST(DeliveredIndexTest, FindsMembersByHashAndIdAndNamesTheUnseen) {
  DeliveredIndex index;
  ASSERT_TRUE(index.Add(Row(1, "carol", 10), false).ok());
  ASSERT_TRUE(index.Add(Row(2, "alice", 20), true).ok());
  ASSERT_TRUE(index.Add(Row(3, "bob", 30), false).ok());
  index.Seal();
  EXPECT_EQ(index.size(), 3u);

  DeliveredEntry* alice = index.Find(2, "alice");
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->value_hash, 20u);
  EXPECT_TRUE(alice->this_run);
  EXPECT_EQ(index.Find(4, "dave"), nullptr);
  // The right hash with another id is not the member.
  EXPECT_EQ(index.Find(2, "alicia"), nullptr);

  EXPECT_THAT(index.Unseen(), ElementsAre("alice", "bob", "carol"));
  alice->seen = true;
  index.Find(1, "carol")->seen = true;
  EXPECT_THAT(index.Unseen(), ElementsAre("bob"));
  index.Find(3, "bob")->seen = true;
  EXPECT_THAT(index.Unseen(), IsEmpty());
}

TEST(DeliveredIndexTest, MembersWhoseIdHashesCollideStayApart) {
  DeliveredIndex index;
  ASSERT_TRUE(index.Add(Row(7, "first", 1), false).ok());
  ASSERT_TRUE(index.Add(Row(7, "second", 2), false).ok());
  ASSERT_TRUE(index.Add(Row(7, "third", 3), false).ok());
  index.Seal();
  EXPECT_EQ(index.size(), 3u);
  ASSERT_NE(index.Find(7, "first"), nullptr);
  ASSERT_NE(index.Find(7, "second"), nullptr);
  ASSERT_NE(index.Find(7, "third"), nullptr);
  EXPECT_EQ(index.Find(7, "first")->value_hash, 1u);
  EXPECT_EQ(index.Find(7, "second")->value_hash, 2u);
  EXPECT_EQ(index.Find(7, "third")->value_hash, 3u);
  EXPECT_EQ(index.Find(7, "fourth"), nullptr);

  index.Find(7, "second")->seen = true;
  EXPECT_THAT(index.Unseen(), ElementsAre("first", "third"));
}

TEST(DeliveredIndexTest, KeepsLongAndEmptyIdsIntact) {
  DeliveredIndex index;
  std::string long_id(100000, 'x');
  long_id += "end";
  ASSERT_TRUE(index.Add(Row(1, long_id, 1), false).ok());
  ASSERT_TRUE(index.Add(Row(2, "", 2), false).ok());
  ASSERT_TRUE(index.Add(Row(3, std::string(127, 'a'), 3), false).ok());
  ASSERT_TRUE(index.Add(Row(4, std::string(128, 'b'), 4), false).ok());
  index.Seal();
  EXPECT_NE(index.Find(1, long_id), nullptr);
  EXPECT_NE(index.Find(2, ""), nullptr);
  EXPECT_NE(index.Find(3, std::string(127, 'a')), nullptr);
  EXPECT_NE(index.Find(4, std::string(128, 'b')), nullptr);
  EXPECT_THAT(index.Unseen(),
              ElementsAre("", std::string(127, 'a'), std::string(128, 'b'), long_id));
}

TEST(DeliveredIndexTest, FindsEveryMemberOfALargeIndexAndNoOther) {
  // Enough members for many buckets, hashes spread like real ones, and a few
  // that collide fully and that share their top bits.
  DeliveredIndex index;
  std::vector<std::pair<std::uint64_t, std::string>> members;
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 50000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    members.emplace_back(x, "p" + std::to_string(i));
  }
  members.emplace_back(members[10].first, "collides-with-p10");
  members.emplace_back(members[20].first ^ 1, "shares-top-bits-with-p20");
  for (size_t i = 0; i < members.size(); ++i) {
    ASSERT_TRUE(index.Add(Row(members[i].first, members[i].second, i), false).ok());
  }
  index.Seal();
  for (size_t i = 0; i < members.size(); ++i) {
    DeliveredEntry* e = index.Find(members[i].first, members[i].second);
    ASSERT_NE(e, nullptr) << members[i].second;
    EXPECT_EQ(e->value_hash, i);
    EXPECT_EQ(index.Find(members[i].first ^ 2, members[i].second), nullptr);
  }
  EXPECT_EQ(index.Find(members[10].first, "p11"), nullptr);
}

}  // namespace
}  // namespace exportd::sync
