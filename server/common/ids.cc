#include "server/common/ids.h"

#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace exportd {

std::string NewId(absl::string_view prefix) {
  unsigned char raw[6];
  RAND_bytes(raw, sizeof raw);
  return absl::StrCat(prefix, "-",
                      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(raw), 6)));
}

}  // namespace exportd
