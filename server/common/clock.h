// Time helpers shared by the server components.
#ifndef EXPORTD_SERVER_COMMON_CLOCK_H_
#define EXPORTD_SERVER_COMMON_CLOCK_H_

#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace exportd {

inline std::int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_CLOCK_H_
