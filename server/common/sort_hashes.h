// Sorting 64-bit hashes: an LSD radix sort, 16 bits a pass, through one
// buffer of the same size. For uniformly spread hashes (a segment's profile id
// or identifier hashes) it takes about a quarter of std::sort's time. Used by
// the differ (identifier hashes).
#ifndef EXPORTD_SERVER_COMMON_SORT_HASHES_H_
#define EXPORTD_SERVER_COMMON_SORT_HASHES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace exportd {

// Sorts `v` ascending. `buffer` is scratch space (resized to v's size), so
// that callers sorting repeatedly reuse one allocation.
inline void SortHashes(std::vector<std::uint64_t>& v, std::vector<std::uint64_t>& buffer) {
  if (v.size() < 4096) {
    std::sort(v.begin(), v.end());
    return;
  }
  buffer.resize(v.size());
  std::vector<size_t> offsets(1 << 16);
  for (int shift = 0; shift < 64; shift += 16) {
    std::fill(offsets.begin(), offsets.end(), 0);
    for (std::uint64_t x : v) ++offsets[(x >> shift) & 0xffff];
    size_t total = 0;
    for (size_t& o : offsets) {
      size_t n = o;
      o = total;
      total += n;
    }
    for (std::uint64_t x : v) buffer[offsets[(x >> shift) & 0xffff]++] = x;
    v.swap(buffer);
  }
}

// Sorts `v` ascending in place, without a second buffer: one in-place
// distribution by the top 16 bits (an American flag sort pass), then each of
// the 65,536 buckets (a few hundred hashes each for a 10M-member segment)
// with std::sort. For when the buffer would be the largest allocation, e.g.
// a segment's identifier hashes.
inline void SortHashesInPlace(std::vector<std::uint64_t>& v) {
  if (v.size() < 4096) {
    std::sort(v.begin(), v.end());
    return;
  }
  constexpr size_t kBuckets = size_t{1} << 16;
  auto bucket = [](std::uint64_t x) { return static_cast<size_t>(x >> 48); };
  std::vector<size_t> begin(kBuckets + 1, 0);
  for (std::uint64_t x : v) ++begin[bucket(x) + 1];
  for (size_t b = 0; b < kBuckets; ++b) begin[b + 1] += begin[b];
  std::vector<size_t> next(begin.begin(), begin.end() - 1);
  for (size_t b = 0; b < kBuckets; ++b) {
    // Swap each misplaced hash of bucket b to where its own bucket fills up.
    while (next[b] < begin[b + 1]) {
      std::uint64_t x = v[next[b]];
      size_t home = bucket(x);
      if (home == b) {
        ++next[b];
      } else {
        std::swap(x, v[next[home]++]);
        v[next[b]] = x;
      }
    }
  }
  for (size_t b = 0; b < kBuckets; ++b) {
    std::sort(v.begin() + static_cast<std::ptrdiff_t>(begin[b]),
              v.begin() + static_cast<std::ptrdiff_t>(begin[b + 1]));
  }
}

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_SORT_HASHES_H_
