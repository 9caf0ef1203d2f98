#include "server/sync/identifier_set.h"

#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::sync {
namespace {

using ::testing::HasSubstr;

// Hashes with repeats: every 7th repeats an earlier one, every 50th twice.
std::vector<std::uint64_t> Hashes(size_t n) {
  std::vector<std::uint64_t> v;
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v.push_back(i > 0 && i % 7 == 0 ? v[i / 3] : x);
    if (i > 0 && i % 50 == 0) v.push_back(v[i / 2]);
  }
  return v;
}

// The same questions answered in memory and with every bound that makes the
// set spill (one hash a run, a few, many).
TEST(IdentifierSetTest, AnswersTheSameInMemoryAndOnDisk) {
  const std::vector<std::uint64_t> hashes = Hashes(20000);
  std::multiset<std::uint64_t> all(hashes.begin(), hashes.end());
  std::vector<std::uint64_t> absent = {1, 2, 3, 0xffffffffffffffffULL};
  for (size_t bound : {size_t{1} << 20, size_t{1}, size_t{3}, size_t{1000}}) {
    IdentifierSetOptions options;
    options.memory_hashes = bound;
    options.temp_dir = ::testing::TempDir();
    IdentifierSet set(options);
    set.Reserve(static_cast<std::int64_t>(hashes.size()));
    // From two threads, in pieces, with zeros (never added).
    auto add = [&](size_t from, size_t to) {
      for (size_t i = from; i < to; i += 97) {
        std::vector<std::uint64_t> piece(hashes.begin() + i,
                                         hashes.begin() + std::min(to, i + 97));
        piece.push_back(0);
        ASSERT_TRUE(set.Add(piece).ok());
      }
    };
    std::thread other(add, 0, hashes.size() / 2);
    add(hashes.size() / 2, hashes.size());
    other.join();
    ASSERT_TRUE(set.Seal().ok());
    EXPECT_EQ(set.spilled(), bound < hashes.size()) << bound;

    // Half the questions prefetched, half answered from the file.
    std::vector<std::uint64_t> prefetch(hashes.begin(), hashes.begin() + 5000);
    prefetch.push_back(absent[0]);
    ASSERT_TRUE(set.Prefetch(prefetch).ok());
    for (std::uint64_t h : hashes) {
      ASSERT_TRUE(set.Contains(h)) << bound;
      ASSERT_EQ(set.IsDuplicate(h), all.count(h) > 1) << bound;
      ASSERT_EQ(set.DuplicateCount(h), all.count(h) > 1 ? static_cast<std::int64_t>(all.count(h)) : 0)
          << bound;
    }
    for (std::uint64_t h : absent) {
      EXPECT_FALSE(set.Contains(h)) << bound;
      EXPECT_FALSE(set.IsDuplicate(h)) << bound;
    }
    EXPECT_FALSE(set.Contains(0));
    EXPECT_TRUE(set.status().ok()) << set.status();
  }
}

TEST(IdentifierSetTest, AnEmptySetHasNothing) {
  for (size_t bound : {size_t{1}, size_t{1000}}) {
    IdentifierSetOptions options;
    options.memory_hashes = bound;
    IdentifierSet set(options);
    ASSERT_TRUE(set.Seal().ok());
    ASSERT_TRUE(set.Prefetch({5}).ok());
    EXPECT_FALSE(set.Contains(5));
    EXPECT_FALSE(set.IsDuplicate(5));
  }
}

TEST(IdentifierSetTest, ATemporaryDirectoryThatIsNotThereSaysWhereAndWhatToDo) {
  IdentifierSetOptions options;
  options.memory_hashes = 2;
  options.temp_dir = absl::StrCat(::testing::TempDir(), "/no-such-directory");
  IdentifierSet set(options);
  absl::Status added = set.Add({1, 2, 3, 4});
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(added.message(), HasSubstr("no-such-directory"));
  EXPECT_THAT(added.message(), HasSubstr("TMPDIR"));
  EXPECT_FALSE(set.Seal().ok());
}

}  // namespace
}  // namespace exportd::sync
