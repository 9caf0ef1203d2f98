#include "server/api/uploaded_ids.h"

#include <functional>
#include <string_view>

namespace exportd::api {

std::uint64_t UploadedIds::DefaultHash(absl::string_view id) {
  return std::hash<std::string_view>()(std::string_view(id.data(), id.size()));
}

}  // namespace exportd::api
