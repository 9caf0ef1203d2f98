#include "server/sync/delivered_index.h"

#include <algorithm>
#include <limits>

namespace exportd::sync {

absl::Status DeliveredIndex::Add(const store::DeliveredView& row, bool this_run) {
  if (ids_.size() + row.profile_id.size() + 10 > std::numeric_limits<std::uint32_t>::max()) {
    return absl::ResourceExhaustedError(
        "the delivered state's profile ids exceed 4 GiB; split the segment into smaller ones");
  }
  DeliveredEntry entry;
  entry.value_hash = row.value_hash;
  entry.ident_hash = row.ident_hash;
  entry.id_offset = static_cast<std::uint32_t>(ids_.size());
  entry.this_run = this_run;
  std::uint64_t n = row.profile_id.size();
  do {
    ids_.push_back(static_cast<char>((n & 0x7f) | (n >= 0x80 ? 0x80 : 0)));
    n >>= 7;
  } while (n != 0);
  ids_.append(row.profile_id.data(), row.profile_id.size());
  if (!by_hash_.try_emplace(row.id_hash, entry).second) {
    collided_.insert_or_assign(std::string(row.profile_id), entry);
  }
  return absl::OkStatus();
}

DeliveredEntry* DeliveredIndex::Find(std::uint64_t id_hash, absl::string_view profile_id) {
  auto it = by_hash_.find(id_hash);
  if (it == by_hash_.end()) return nullptr;
  if (IdAt(it->second.id_offset) == profile_id) return &it->second;
  if (collided_.empty()) return nullptr;
  auto other = collided_.find(profile_id);
  return other == collided_.end() ? nullptr : &other->second;
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
  const char* p = ids_.data() + offset;
  std::uint64_t n = 0;
  for (int shift = 0;; shift += 7) {
    auto byte = static_cast<unsigned char>(*p++);
    n |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  return absl::string_view(p, static_cast<size_t>(n));
}

}  // namespace exportd::sync
