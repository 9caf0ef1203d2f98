#include "server/common/sort_hashes.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace exportd {
namespace {

// Hashes spread like real ones, with repeats and some sharing their top bits.
std::vector<std::uint64_t> Hashes(size_t n) {
  std::vector<std::uint64_t> v;
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v.push_back(i > 0 && i % 97 == 0 ? v[i / 2] : x);  // Repeats.
    if (i % 89 == 0) v.push_back(x & 0xffff000000000000ULL);  // Only top bits set.
  }
  return v;
}

TEST(SortHashesTest, BothSortsAgreeWithStdSort) {
  for (size_t n : {0, 1, 100, 4095, 4096, 100000}) {
    std::vector<std::uint64_t> want = Hashes(n);
    std::vector<std::uint64_t> radix = want, in_place = want, buffer;
    std::sort(want.begin(), want.end());
    SortHashes(radix, buffer);
    SortHashesInPlace(in_place);
    EXPECT_EQ(radix, want) << n;
    EXPECT_EQ(in_place, want) << n;
  }
}

TEST(SortHashesTest, InPlaceSortHandlesBucketsThatNeverSplit) {
  // Every byte but the lowest equal, then every hash equal: the in-place
  // sort goes down all eight bytes.
  std::vector<std::uint64_t> low, same(5000, 0x0123456789abcdefULL);
  for (std::uint64_t i = 0; i < 50000; ++i) low.push_back(0xabcdef0123456700ULL | ((i * 37) & 0xff));
  for (std::vector<std::uint64_t>* v : {&low, &same}) {
    std::vector<std::uint64_t> want = *v;
    std::sort(want.begin(), want.end());
    SortHashesInPlace(*v);
    EXPECT_EQ(*v, want);
  }
}

}  // namespace
}  // namespace exportd
