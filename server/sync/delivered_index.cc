#include "server/sync/delivered_index.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>

namespace exportd::sync {

absl::Status DeliveredIndex::Add(const store::DeliveredView& row, bool this_run) {
  char length[10];
  size_t length_size = 0;
  std::uint64_t n = row.profile_id.size();
  do {
    length[length_size++] = static_cast<char>((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
    n >>= 7;
  } while (n != 0);
  const size_t need = length_size + row.profile_id.size();
  if (blocks_.empty() || used_ + need > kIdBlock) {
    if (blocks_.size() >= kMaxIdBlocks) {
      return absl::ResourceExhaustedError(
          "the delivered state's profile ids exceed 4 GiB; split the segment into smaller ones");
    }
    // A fresh block; an id longer than a block gets one of its own size.
    blocks_.push_back(std::make_unique<char[]>(std::max(kIdBlock, need)));
    used_ = 0;
  }
  Member m;
  m.id_hash = row.id_hash;
  m.entry.value_hash = row.value_hash;
  m.entry.ident_hash = row.ident_hash;
  m.entry.id_offset = static_cast<std::uint32_t>(((blocks_.size() - 1) << kIdBlockBits) | used_);
  m.entry.this_run = this_run;
  m.entry.state = static_cast<std::uint8_t>(row.state);
  char* out = blocks_.back().get() + used_;
  std::memcpy(out, length, length_size);
  std::memcpy(out + length_size, row.profile_id.data(), row.profile_id.size());
  used_ += need;
  if (members_.size() == members_.capacity()) {
    // Beyond the reserve: grow by a quarter, not twice the size (the array is
    // the delivered state's largest part).
    members_.reserve(members_.size() + members_.size() / 4 + 1024);
  }
  members_.push_back(m);
  return absl::OkStatus();
}

void DeliveredIndex::Seal() {
  std::sort(members_.begin(), members_.end(),
            [](const Member& a, const Member& b) { return a.id_hash < b.id_hash; });
  // About four members a bucket.
  int bits = 0;
  while (bits < 32 && (size_t{1} << (bits + 2)) < members_.size()) ++bits;
  shift_ = 64 - bits;
  const size_t count = size_t{1} << bits;
  buckets_.assign(count + 1, 0);
  size_t i = 0;
  for (size_t b = 0; b < count; ++b) {
    buckets_[b] = static_cast<std::uint32_t>(i);
    while (i < members_.size() && Bucket(members_[i].id_hash) == b) ++i;
  }
  buckets_[count] = static_cast<std::uint32_t>(members_.size());
}

DeliveredEntry* DeliveredIndex::Find(std::uint64_t id_hash, absl::string_view profile_id) {
  if (members_.empty()) return nullptr;
  const size_t b = Bucket(id_hash);
  for (std::uint32_t i = buckets_[b], end = buckets_[b + 1]; i < end; ++i) {
    Member& m = members_[i];
    if (m.id_hash < id_hash) continue;
    if (m.id_hash > id_hash) break;
    // Ids whose hashes collide sit side by side: the id tells them apart.
    if (IdAt(m.entry.id_offset) == profile_id) return &m.entry;
  }
  return nullptr;
}

std::vector<absl::string_view> DeliveredIndex::Unseen() const {
  std::vector<absl::string_view> out;
  ForEach([&](absl::string_view id, const DeliveredEntry& entry) {
    if (!entry.seen) out.push_back(id);
  });
  // In key order, the store reads them from neighbouring pages.
  std::sort(out.begin(), out.end());
  return out;
}

absl::string_view DeliveredIndex::IdAt(std::uint32_t offset) const {
  const char* p = blocks_[offset >> kIdBlockBits].get() + (offset & (kIdBlock - 1));
  std::uint64_t n = 0;
  for (int shift = 0;; shift += 7) {
    auto byte = static_cast<unsigned char>(*p++);
    n |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  return absl::string_view(p, static_cast<size_t>(n));
}

}  // namespace exportd::sync
