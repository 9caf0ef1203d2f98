// Sorting 64-bit hashes: an LSD radix sort, 16 bits a pass, through one
// buffer of the same size. For uniformly spread hashes (a segment's profile id
// or identifier hashes) it takes about a quarter of std::sort's time. Used by
// the differ (identifier hashes) and the upload's repeated-id check.
#ifndef EXPORTD_SERVER_COMMON_SORT_HASHES_H_
#define EXPORTD_SERVER_COMMON_SORT_HASHES_H_

#include <algorithm>
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

inline void SortHashes(std::vector<std::uint64_t>& v) {
  std::vector<std::uint64_t> buffer;
  SortHashes(v, buffer);
}

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_SORT_HASHES_H_
