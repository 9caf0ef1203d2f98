#include "server/store/store.h"

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace exportd::store {

absl::Status NotFoundError(absl::string_view kind, absl::string_view id_or_name) {
  return absl::NotFoundError(absl::StrCat(kind, " '", id_or_name,
                                          "' does not exist; list them with 'exportctl ", kind,
                                          " list'"));
}

absl::Status DuplicateNameError(absl::string_view kind, absl::string_view name) {
  return absl::AlreadyExistsError(
      absl::StrCat(absl::StrContains("aeiou", kind.substr(0, 1)) ? "an " : "a ", kind,
                   " named '", name, "' already exists; choose another name"));
}

int PageLimit(const PageRequest& page) {
  return page.limit <= 0 ? 50 : std::min(page.limit, 1000);
}

void ShowLease(v1::Run& run, absl::string_view holder, std::int64_t expires_micros) {
  if (!holder.empty()) run.set_replica(std::string(holder));
  run.set_lease_expires_at_micros(expires_micros);
}

absl::Status Store::ForEachChunk(
    absl::string_view segment_id, std::int64_t version,
    const std::function<absl::Status(const v1::UploadMembersRequest::Chunk&)>& fn) {
  v1::UploadMembersRequest::Chunk chunk;
  return ForEachChunkBytes(segment_id, version, [&](absl::string_view bytes) {
    if (!chunk.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(
          absl::StrCat("segment '", segment_id, "' snapshot ", version, " has a damaged chunk"));
    }
    return fn(chunk);
  });
}

}  // namespace exportd::store
