// Resource ids: a prefix and 12 random hex digits, e.g. "run-3f9a0c1b22de".
#ifndef EXPORTD_SERVER_COMMON_IDS_H_
#define EXPORTD_SERVER_COMMON_IDS_H_

#include <string>

#include "absl/strings/string_view.h"

namespace exportd {

// A new random id with `prefix` ("conn", "seg", "exp", "run").
std::string NewId(absl::string_view prefix);

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_IDS_H_
