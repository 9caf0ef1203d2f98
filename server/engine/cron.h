// Cron schedules for exports: standard five-field cron expressions evaluated in
// the local civil time of an IANA time zone, with daylight-saving time handled.
//
//   EXPORTD_ASSIGN_OR_RETURN(CronSchedule schedule,
//                            CronSchedule::Parse("30 2 * * MON-FRI", "Europe/Berlin"));
//   absl::Time next = schedule.Next(now);  // the next weekday at 02:30 Berlin time
//
//   // After a restart: run once for everything missed, then wait for `plan.next`.
//   CatchUpPlan plan = CatchUp(schedule, last_run, now);
//   if (plan.due.has_value()) StartRun(*plan.due);
//
// Syntax (fields separated by blanks):
//
//   minute  hour  day-of-month  month  day-of-week
//   0-59    0-23  1-31          1-12   0-7 (0 and 7 are Sunday)
//                               JAN-DEC  SUN-SAT (names are case-insensitive)
//
// Each field is `*` or a comma-separated list of items; an item is a value `5`, a
// range `1-5`, or either of those or `*` followed by a step: `*/15`, `10-50/10`,
// `5/20` (a single value with a step means "from the value to the field's
// maximum", as `5-59/20` for minutes). Ranges must not wrap (`FRI-MON` is an
// error; write `FRI-SAT,SUN-MON` or `0,1,5,6`).
//
// Macros: @yearly and @annually (`0 0 1 1 *`), @monthly (`0 0 1 * *`), @weekly
// (`0 0 * * 0`), @daily and @midnight (`0 0 * * *`), @hourly (`0 * * * *`).
//
// Day rule (Vixie cron): when both day-of-month and day-of-week are restricted,
// a day matches if EITHER matches (`0 0 1 * MON` fires on the 1st and on every
// Monday). As in Vixie cron, a field that begins with `*` (including `*/2`)
// counts as unrestricted for this rule, so the two fields are then AND-ed
// (`0 0 */2 * MON` fires on Mondays that fall on odd days of the month).
//
// Daylight-saving time. Matching is done on local civil minutes; each matching
// civil minute becomes one instant:
//   * A local time that does not exist (spring-forward gap, e.g. 02:30 on
//     2026-03-29 in Europe/Berlin) fires at the first instant after the gap
//     (03:00 local, the moment of the transition). The job is moved forward, not
//     dropped. Several slots that all fall in or at the end of the same gap
//     (02:00, 02:30 and 03:00) land on the same instant and fire once.
//   * A local time that occurs twice (fall-back overlap, e.g. 01:30 on 2026-11-01
//     in America/New_York) fires once, at its first occurrence (01:30 EDT). The
//     repeated local hour does not fire again, so `0 * * * *` has a two-hour gap
//     across the fall-back hour and `* * * * *` is idle during the second pass.
#ifndef EXPORTD_SERVER_ENGINE_CRON_H_
#define EXPORTD_SERVER_ENGINE_CRON_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace exportd::engine {

// A parsed cron expression bound to a time zone. Immutable, cheap to copy, and
// safe to use from several threads at once.
class CronSchedule {
 public:
  // Parses a five-field cron expression or macro (see the top of this file).
  // `time_zone` is an IANA name such as "Europe/Berlin"; empty means UTC.
  //
  // Returns INVALID_ARGUMENT naming the expression, the field, the offending
  // token and the allowed values, e.g.
  //   cron expression "0 25 * * *": hour "25" is out of range; hour must be 0-23
  // for an unknown time zone, and for an expression that never matches any date
  // (`0 0 30 2 *`: February has no 30th).
  static absl::StatusOr<CronSchedule> Parse(absl::string_view expression,
                                            absl::string_view time_zone);

  // The first firing strictly after `after`. Returns absl::InfiniteFuture() if
  // `after` is infinite or nothing fires within the search horizon (one
  // 400-year Gregorian cycle; Parse rejects expressions that never fire, so this
  // does not happen for finite times of this era).
  absl::Time Next(absl::Time after) const;

  // The latest firing at or before `at_or_before`, or absl::InfinitePast() if
  // `at_or_before` is infinite or nothing fired within the search horizon.
  absl::Time Previous(absl::Time at_or_before) const;

  // The expression as given to Parse (blanks trimmed).
  const std::string& expression() const { return expression_; }
  // The time zone name as given to Parse ("UTC" when it was empty).
  const std::string& time_zone_name() const { return time_zone_name_; }
  const absl::TimeZone& time_zone() const { return time_zone_; }

 private:
  CronSchedule() = default;

  // The first civil minute at or after `from` (resp. at or before) that matches
  // the fields, or nullopt once the search passes the year `limit`.
  std::optional<absl::CivilMinute> NextMatch(absl::CivilMinute from,
                                             absl::civil_year_t limit) const;
  std::optional<absl::CivilMinute> PreviousMatch(absl::CivilMinute from,
                                                 absl::civil_year_t limit) const;
  bool MonthMatches(int month) const;
  bool DayMatches(absl::CivilDay day) const;
  // Whether any date at all matches month, day-of-month and day-of-week.
  bool MatchesSomeDate() const;
  // The instant at which the matching civil minute fires (see the DST rules).
  absl::Time Resolve(absl::CivilMinute minute) const;

  std::string expression_;
  std::string time_zone_name_;
  absl::TimeZone time_zone_;
  std::uint64_t minutes_ = 0;        // bit m set: minute m matches (0-59)
  std::uint32_t hours_ = 0;          // bit h: hour h (0-23)
  std::uint32_t days_of_month_ = 0;  // bit d: day d (1-31)
  std::uint32_t months_ = 0;         // bit m: month m (1-12)
  std::uint32_t days_of_week_ = 0;   // bit d: weekday d, 0 = Sunday (0-6)
  bool day_or_ = false;              // Vixie rule: day-of-month OR day-of-week
};

// What to do on start-up for a schedule that may have fired while the service
// was down.
struct CatchUpPlan {
  // The latest firing in (last_run_or_saved, now], if any: run ONCE for it now.
  // Several missed firings collapse into this one run.
  std::optional<absl::Time> due;
  // The first firing strictly after `now`.
  absl::Time next;
};

// Plans the catch-up for `schedule` (a CronSchedule or a RefreshSchedule:
// anything with Previous(t) and Next(t)) given the time of the last run (or
// the time the schedule was saved, if it never ran) and the current time.
// Firings at or before `last_run_or_saved` are never due. The one catch-up
// rule: the Scheduler uses it for every export.
template <typename Schedule>
CatchUpPlan CatchUp(const Schedule& schedule, absl::Time last_run_or_saved, absl::Time now) {
  CatchUpPlan plan;
  const absl::Time latest = schedule.Previous(now);
  if (latest != absl::InfinitePast() && latest > last_run_or_saved) plan.due = latest;
  plan.next = schedule.Next(now);
  return plan;
}

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_CRON_H_
