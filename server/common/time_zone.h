// Time zones by IANA name, checked before the tz database is touched.
//
//   EXPORTD_ASSIGN_OR_RETURN(absl::TimeZone zone, LoadIanaTimeZone("Europe/Berlin"));
//
// absl::LoadTimeZone opens `<zoneinfo dir>/<name>` for any name it is given, so
// "../../etc/passwd", "/dev/stdin" or a FIFO would be opened (and a FIFO would
// block the caller). Every time zone exportd reads from outside (export
// schedules, cron schedules, the system refresh schedule) goes through
// LoadIanaTimeZone instead, which opens only what can be a tz database entry.
#ifndef EXPORTD_SERVER_COMMON_TIME_ZONE_H_
#define EXPORTD_SERVER_COMMON_TIME_ZONE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace exportd {

// Longer than any name in the tz database (the longest has 32 characters).
inline constexpr std::size_t kMaxTimeZoneNameLength = 64;

// Checks the form of an IANA time zone name without opening anything: "UTC",
// or `Area/Location[/Sub]` (e.g. "Europe/Berlin", "America/Argentina/Salta",
// "Etc/GMT+5"), each part starting with a letter and made of ASCII letters,
// digits, '_', '+' and '-'. Refuses (INVALID_ARGUMENT, saying why) absolute
// and relative paths, "..", NUL, backslashes, empty parts and anything else.
absl::Status CheckIanaTimeZoneName(absl::string_view name);

// Checks the name as above, then loads the zone from the tz database (the
// tzdata package). INVALID_ARGUMENT for a refused name and for a name that is
// not in the database ("unknown time zone ...").
absl::StatusOr<absl::TimeZone> LoadIanaTimeZone(absl::string_view name);

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_TIME_ZONE_H_
