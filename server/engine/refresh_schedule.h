// The system refresh schedule: when exportd refreshes every export, written in
// a small human form rather than cron.
//
//   EXPORTD_ASSIGN_OR_RETURN(RefreshSchedule refresh,
//                            RefreshSchedule::Parse("daily 02:00,14:00 Europe/Berlin"));
//   absl::Time next = refresh.Next(now);
//
// Grammar (words separated by blanks, keywords and day names case-insensitive):
//
//   daily  TIMES [ZONE]          e.g. "daily 02:00,14:00 Europe/Berlin"
//   weekly DAYS TIMES [ZONE]     e.g. "weekly mon,thu 06:30 UTC"
//
//   TIMES  one to four comma-separated local times HH:MM (24-hour, 00:00-23:59)
//   DAYS   comma-separated weekdays: mon tue wed thu fri sat sun (or full names)
//   ZONE   an IANA time zone name; UTC when omitted
//
// Daylight-saving time follows CronSchedule (the schedule compiles to one or
// more cron schedules): a time inside a spring-forward gap fires at the end of
// the gap, a time repeated by a fall-back overlap fires once, at its first
// occurrence.
#ifndef EXPORTD_SERVER_ENGINE_REFRESH_SCHEDULE_H_
#define EXPORTD_SERVER_ENGINE_REFRESH_SCHEDULE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/cron.h"

namespace exportd::engine {

class RefreshSchedule {
 public:
  // The most times of day a refresh schedule may list.
  static constexpr int kMaxTimesPerDay = 4;

  // Parses the form above. Returns INVALID_ARGUMENT naming the schedule and the
  // bad word, e.g. for more than four times ("at most four times a day"), a
  // time that is not HH:MM, an unknown day or time zone, or a repeated entry.
  static absl::StatusOr<RefreshSchedule> Parse(absl::string_view spec);

  // The first refresh strictly after `after`; absl::InfiniteFuture() if `after`
  // is infinite.
  absl::Time Next(absl::Time after) const;

  // The latest refresh at or before `at_or_before`; absl::InfinitePast() if
  // `at_or_before` is infinite.
  absl::Time Previous(absl::Time at_or_before) const;

  // The specification as given to Parse (blanks trimmed).
  const std::string& spec() const { return spec_; }
  // The time zone name ("UTC" when the specification names none).
  const std::string& time_zone_name() const { return crons_.front().time_zone_name(); }
  // The cron schedules this compiles to (one per distinct minute-of-hour).
  const std::vector<CronSchedule>& cron_schedules() const { return crons_; }

 private:
  RefreshSchedule(std::string spec, std::vector<CronSchedule> crons)
      : spec_(std::move(spec)), crons_(std::move(crons)) {}

  std::string spec_;
  std::vector<CronSchedule> crons_;  // never empty
};

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_REFRESH_SCHEDULE_H_
