// Fuzzes the cron parser (schedules typed by users): any text either parses
// or is refused with INVALID_ARGUMENT, and a schedule that parses fires
// consistently: the next firing after t lies after t, and nothing fires
// between t and it.
#include <string_view>

#include "server/engine/cron.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first byte picks a time zone (never a path from the input), the
  // rest is the expression.
  static const char* const kZones[] = {
      "",         "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
      "Not/AZone"};
  if (size == 0) return 0;
  const char* zone = kZones[data[0] % (sizeof(kZones) / sizeof(kZones[0]))];
  absl::string_view expression(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (expression.size() > 200) return 0;  // Long inputs test nothing new.

  auto schedule = exportd::engine::CronSchedule::Parse(expression, zone);
  if (!schedule.ok()) {
    FUZZ_CHECK(schedule.status().code() == absl::StatusCode::kInvalidArgument) << schedule.status();
    return 0;
  }
  for (absl::Time t : {absl::FromUnixSeconds(1'700'000'000),         // 2023-11-14
                       absl::FromUnixSeconds(1'711'846'800 - 30),    // a DST change in Europe
                       absl::FromUnixSeconds(1'730'595'600 + 7)}) {  // one in America
    absl::Time next = schedule->Next(t);
    FUZZ_CHECK(next > t) << expression << " in '" << zone << "'";
    if (next == absl::InfiniteFuture()) continue;
    if (next - absl::Seconds(1) > t) {
      FUZZ_CHECK(schedule->Next(next - absl::Seconds(1)) == next)
          << expression << " in '" << zone << "' fires before its next firing";
    }
  }
  return 0;
}
