#include "server/engine/cron.h"

#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Time zones come from /usr/share/zoneinfo (the tzdata package). A failure here
// is an environment problem: install tzdata (the project's setup script does).
CronSchedule MustParse(const std::string& expression, const std::string& zone = "UTC") {
  absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse(expression, zone);
  EXPECT_TRUE(schedule.ok()) << schedule.status()
                             << (zone == "UTC" ? "" : " (is the tzdata package installed?)");
  return *schedule;
}

// A local civil time in the schedule's zone. For a repeated local time this is
// the first occurrence (absl::FromCivil picks the pre-transition offset).
absl::Time Local(const CronSchedule& schedule, int y, int mo, int d, int h, int mi, int s = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), schedule.time_zone());
}

absl::Time Utc(int y, int mo, int d, int h, int mi, int s = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

// "2026-03-29 03:00 +0200": local time with the UTC offset, so DST shows.
std::string Format(const CronSchedule& schedule, absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M %z", t, schedule.time_zone());
}

// The next `count` firings after `from`, formatted.
std::vector<std::string> Firings(const CronSchedule& schedule, absl::Time from, int count) {
  std::vector<std::string> firings;
  for (int i = 0; i < count; ++i) {
    from = schedule.Next(from);
    firings.push_back(Format(schedule, from));
  }
  return firings;
}

std::string ParseError(const std::string& expression, const std::string& zone = "UTC") {
  absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse(expression, zone);
  if (schedule.ok()) return "parsed OK";
  EXPECT_EQ(schedule.status().code(), absl::StatusCode::kInvalidArgument) << schedule.status();
  return std::string(schedule.status().message());
}

// ---------------------------------------------------------------------------
// Parsing

TEST(CronParseTest, TimeZoneDataIsInstalled) {
  absl::TimeZone tz;
  for (const char* zone : {"Europe/Berlin", "America/New_York"}) {
    EXPECT_TRUE(absl::LoadTimeZone(zone, &tz))
        << zone << " did not load: install the tzdata package (/usr/share/zoneinfo)";
  }
}

TEST(CronParseTest, EmptyTimeZoneIsUtc) {
  CronSchedule schedule = MustParse("30 2 * * *", "");
  EXPECT_EQ(schedule.time_zone_name(), "UTC");
  EXPECT_EQ(schedule.Next(Utc(2026, 1, 15, 10, 0)), Utc(2026, 1, 16, 2, 30));
}

TEST(CronParseTest, KeepsExpressionAndZone) {
  CronSchedule schedule = MustParse("  */15 9-17 * * MON-FRI ", "Europe/Berlin");
  EXPECT_EQ(schedule.expression(), "*/15 9-17 * * MON-FRI");
  EXPECT_EQ(schedule.time_zone_name(), "Europe/Berlin");
}

TEST(CronParseTest, Wildcard) {
  CronSchedule schedule = MustParse("* * * * *");
  EXPECT_THAT(
      Firings(schedule, Utc(2026, 12, 31, 23, 58, 30), 3),
      ElementsAre("2026-12-31 23:59 +0000", "2027-01-01 00:00 +0000", "2027-01-01 00:01 +0000"));
}

TEST(CronParseTest, ListsAndBlanks) {
  CronSchedule schedule = MustParse("0\t8,12,18   * * *");
  EXPECT_THAT(Firings(schedule, Utc(2026, 1, 15, 9, 0), 4),
              ElementsAre("2026-01-15 12:00 +0000", "2026-01-15 18:00 +0000",
                          "2026-01-16 08:00 +0000", "2026-01-16 12:00 +0000"));
}

TEST(CronParseTest, Ranges) {
  // 2026-01-16 is a Friday.
  CronSchedule schedule = MustParse("0 9 * * 1-5");
  EXPECT_THAT(
      Firings(schedule, Utc(2026, 1, 16, 0, 0), 3),
      ElementsAre("2026-01-16 09:00 +0000", "2026-01-19 09:00 +0000", "2026-01-20 09:00 +0000"));
}

TEST(CronParseTest, Steps) {
  EXPECT_THAT(Firings(MustParse("*/15 * * * *"), Utc(2026, 1, 15, 10, 7), 4),
              ElementsAre("2026-01-15 10:15 +0000", "2026-01-15 10:30 +0000",
                          "2026-01-15 10:45 +0000", "2026-01-15 11:00 +0000"));
  EXPECT_THAT(
      Firings(MustParse("10-50/10 9 * * *"), Utc(2026, 1, 15, 9, 45), 3),
      ElementsAre("2026-01-15 09:50 +0000", "2026-01-16 09:10 +0000", "2026-01-16 09:20 +0000"));
  // A single value with a step runs from the value to the field's maximum.
  EXPECT_THAT(Firings(MustParse("5/20 * * * *"), Utc(2026, 1, 15, 10, 0), 4),
              ElementsAre("2026-01-15 10:05 +0000", "2026-01-15 10:25 +0000",
                          "2026-01-15 10:45 +0000", "2026-01-15 11:05 +0000"));
  // Steps over months: January, April, July, October.
  EXPECT_THAT(
      Firings(MustParse("0 0 1 */3 *"), Utc(2026, 1, 15, 0, 0), 3),
      ElementsAre("2026-04-01 00:00 +0000", "2026-07-01 00:00 +0000", "2026-10-01 00:00 +0000"));
}

TEST(CronParseTest, MonthAndWeekdayNamesAreCaseInsensitive) {
  EXPECT_THAT(Firings(MustParse("0 0 1 jan,Jul *"), Utc(2026, 1, 15, 0, 0), 2),
              ElementsAre("2026-07-01 00:00 +0000", "2027-01-01 00:00 +0000"));
  EXPECT_THAT(Firings(MustParse("0 0 1 FEB-apr *"), Utc(2026, 1, 15, 0, 0), 4),
              ElementsAre("2026-02-01 00:00 +0000", "2026-03-01 00:00 +0000",
                          "2026-04-01 00:00 +0000", "2027-02-01 00:00 +0000"));
  const absl::Time from = Utc(2026, 1, 1, 0, 0);
  EXPECT_EQ(Firings(MustParse("0 9 * * mon-FRI"), from, 10),
            Firings(MustParse("0 9 * * 1-5"), from, 10));
}

TEST(CronParseTest, SevenIsSunday) {
  const absl::Time from = Utc(2026, 1, 1, 0, 0);
  const std::vector<std::string> sundays = Firings(MustParse("0 0 * * 0"), from, 5);
  EXPECT_EQ(sundays.front(), "2026-01-04 00:00 +0000");  // a Sunday
  EXPECT_EQ(Firings(MustParse("0 0 * * 7"), from, 5), sundays);
  EXPECT_EQ(Firings(MustParse("0 0 * * SUN"), from, 5), sundays);
  // Friday to Sunday, written with 7.
  EXPECT_THAT(Firings(MustParse("0 0 * * 5-7"), from, 4),
              ElementsAre("2026-01-02 00:00 +0000", "2026-01-03 00:00 +0000",
                          "2026-01-04 00:00 +0000", "2026-01-09 00:00 +0000"));
}

TEST(CronParseTest, MacrosEqualTheirExpansions) {
  const absl::Time from = Utc(2026, 1, 15, 10, 30);
  const std::vector<std::pair<std::string, std::string>> macros = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"}, {"@DAILY", "0 0 * * *"},
  };
  for (const auto& [macro, expansion] : macros) {
    EXPECT_EQ(Firings(MustParse(macro), from, 5), Firings(MustParse(expansion), from, 5)) << macro;
  }
  EXPECT_EQ(MustParse("@daily").Next(from), Utc(2026, 1, 16, 0, 0));
}

TEST(CronParseTest, ErrorsNameExpressionFieldTokenAndFix) {
  struct Case {
    std::string expression;
    std::vector<std::string> expected;  // substrings of the message
  };
  const std::vector<Case> cases = {
      {"60 * * * *", {"minute \"60\" is out of range", "minute must be 0-59"}},
      {"0 24 * * *", {"hour \"24\" is out of range", "hour must be 0-23"}},
      {"0 1,25 * * *", {"hour \"25\" is out of range", "hour must be 0-23"}},
      {"0 x * * *", {"hour \"x\"", "not a number", "hour must be 0-23"}},
      {"0 MON * * *", {"hour \"MON\"", "not a number", "hour must be 0-23"}},
      {"0 -1 * * *", {"hour \"-1\"", "missing a value", "hour must be 0-23"}},
      {"0 1x * * *", {"hour \"1x\"", "bad number", "hour must be 0-23"}},
      {"0 0 0 * *", {"day-of-month \"0\" is out of range", "day-of-month must be 1-31"}},
      {"0 0 32 * *", {"day-of-month \"32\"", "day-of-month must be 1-31"}},
      {"0 0 * 13 *", {"month \"13\" is out of range", "month must be 1-12 or JAN-DEC"}},
      {"0 0 * FOO *", {"month \"FOO\"", "neither a number nor a month name", "JAN-DEC"}},
      {"0 0 * JANUARY *", {"month \"JANUARY\"", "month must be 1-12 or JAN-DEC"}},
      {"0 0 * * 8",
       {"day-of-week \"8\" is out of range",
        "day-of-week must be 0-7 or SUN-SAT (0 and 7 are Sunday)"}},
      {"0 0 * * MONDAY", {"day-of-week \"MONDAY\"", "SUN-SAT"}},
      {"0 0 * * JAN", {"day-of-week \"JAN\"", "SUN-SAT"}},
      {"0 0 * * FRI-MON", {"day-of-week \"FRI-MON\" is a backwards range", "lower bound first"}},
      {"0 5-1 * * *", {"hour \"5-1\" is a backwards range", "hour must be 0-23"}},
      {"*/0 * * * *",
       {"minute \"*/0\" has a bad step \"0\"", "minute step after '/' must be 1-59"}},
      {"0 */ * * *", {"hour \"*/\" has a bad step", "hour step after '/' must be 1-23"}},
      {"0 0 */40 * *", {"day-of-month \"*/40\" has a bad step", "must be 1-31"}},
      {"0 1,,2 * * *", {"hour \"1,,2\" has an empty list item", "single commas"}},
      {"0 0 * * 1,", {"day-of-week \"1,\" has an empty list item"}},
      {"0 0 * *", {"has 4 fields; expected 5 (minute hour day-of-month month day-of-week"}},
      {"0 0 * * * *", {"has 6 fields; expected 5"}},
      {"", {"has 0 fields; expected 5"}},
      {"@reboot", {"@reboot is not supported"}},
      {"@often", {"unknown macro", "@daily"}},
      {"0 0 30 2 *", {"never matches", "February has at most 29 days"}},
      {"0 0 31 4,6,9,11 *", {"never matches"}},
  };
  for (const Case& c : cases) {
    const std::string message = ParseError(c.expression);
    EXPECT_THAT(message, HasSubstr("cron expression \"" + c.expression + "\"")) << message;
    for (const std::string& expected : c.expected) {
      EXPECT_THAT(message, HasSubstr(expected)) << c.expression;
    }
  }
}

TEST(CronParseTest, UnknownTimeZone) {
  const std::string message = ParseError("0 0 * * *", "Europe/Berln");
  EXPECT_THAT(message, HasSubstr("unknown time zone \"Europe/Berln\""));
  EXPECT_THAT(message, HasSubstr("IANA name such as \"Europe/Berlin\""));
}

// Only IANA names reach the tz database: paths are refused before anything
// is opened (a FIFO would block, any file under the zoneinfo folder would be
// read).
TEST(CronParseTest, TimeZonePathsAreRefused) {
  for (const char* zone : {"/etc/passwd", "../../../etc/passwd", "Europe/../../etc/passwd",
                           "Europe\\Berlin", "Europe//Berlin", "localtime"}) {
    const std::string message = ParseError("0 0 * * *", zone);
    EXPECT_THAT(message, HasSubstr("cron expression \"0 0 * * *\": time zone \"")) << zone;
    EXPECT_THAT(message, HasSubstr("is not an IANA name")) << zone;
  }
  EXPECT_THAT(ParseError("0 0 * * *", std::string("UTC\0/x", 5)),
              HasSubstr("it contains a NUL byte"));
}

TEST(CronParseTest, RareButPossibleDatesAreAccepted) {
  EXPECT_EQ(ParseError("0 0 29 2 *"), "parsed OK");
  EXPECT_EQ(ParseError("0 0 31 1-12 *"), "parsed OK");
  // 30 February OR any Monday: the Vixie rule makes it fire on Mondays.
  EXPECT_EQ(ParseError("0 0 30 2 MON"), "parsed OK");
}

// ---------------------------------------------------------------------------
// Next

TEST(CronNextTest, IsStrictlyAfter) {
  CronSchedule schedule = MustParse("30 2 * * *");
  EXPECT_EQ(schedule.Next(Utc(2026, 1, 15, 2, 29, 59)), Utc(2026, 1, 15, 2, 30));
  EXPECT_EQ(schedule.Next(Utc(2026, 1, 15, 2, 30)), Utc(2026, 1, 16, 2, 30));
  EXPECT_EQ(schedule.Next(Utc(2026, 1, 15, 2, 30) - absl::Nanoseconds(1)), Utc(2026, 1, 15, 2, 30));
  EXPECT_EQ(schedule.Next(Utc(2026, 1, 15, 2, 30, 1)), Utc(2026, 1, 16, 2, 30));
}

TEST(CronNextTest, RollsOverDayMonthAndYear) {
  CronSchedule schedule = MustParse("45 23 * * *");
  EXPECT_THAT(Firings(schedule, Utc(2026, 12, 31, 23, 50), 2),
              ElementsAre("2027-01-01 23:45 +0000", "2027-01-02 23:45 +0000"));
}

TEST(CronNextTest, InTimeZone) {
  CronSchedule schedule = MustParse("0 9 * * *", "America/New_York");
  EXPECT_EQ(schedule.Next(Utc(2026, 1, 15, 13, 0)), Utc(2026, 1, 15, 14, 0));  // EST, -5
  EXPECT_EQ(schedule.Next(Utc(2026, 7, 15, 12, 0)), Utc(2026, 7, 15, 13, 0));  // EDT, -4
}

TEST(CronNextTest, MonthEndsSkipShortMonths) {
  EXPECT_THAT(
      Firings(MustParse("0 0 31 * *"), Utc(2026, 1, 31, 0, 0), 6),
      ElementsAre("2026-03-31 00:00 +0000", "2026-05-31 00:00 +0000", "2026-07-31 00:00 +0000",
                  "2026-08-31 00:00 +0000", "2026-10-31 00:00 +0000", "2026-12-31 00:00 +0000"));
  EXPECT_THAT(Firings(MustParse("0 0 30 * *"), Utc(2026, 1, 30, 0, 0), 2),
              ElementsAre("2026-03-30 00:00 +0000", "2026-04-30 00:00 +0000"));
}

TEST(CronNextTest, LeapDay) {
  CronSchedule schedule = MustParse("0 12 29 2 *");
  EXPECT_THAT(
      Firings(schedule, Utc(2026, 1, 1, 0, 0), 3),
      ElementsAre("2028-02-29 12:00 +0000", "2032-02-29 12:00 +0000", "2036-02-29 12:00 +0000"));
  // 2100 is not a leap year: eight years between leap days.
  EXPECT_EQ(Format(schedule, schedule.Next(Utc(2097, 1, 1, 0, 0))), "2104-02-29 12:00 +0000");
  // 2000 is.
  EXPECT_EQ(Format(schedule, schedule.Next(Utc(1997, 1, 1, 0, 0))), "2000-02-29 12:00 +0000");
}

TEST(CronNextTest, DayOfMonthOrDayOfWeekWhenBothRestricted) {
  // The 1st of the month OR any Monday. 2026-03-01 is a Sunday.
  EXPECT_THAT(
      Firings(MustParse("0 0 1 * MON"), Utc(2026, 2, 27, 0, 0), 7),
      ElementsAre("2026-03-01 00:00 +0000", "2026-03-02 00:00 +0000", "2026-03-09 00:00 +0000",
                  "2026-03-16 00:00 +0000", "2026-03-23 00:00 +0000", "2026-03-30 00:00 +0000",
                  "2026-04-01 00:00 +0000"));
  // Friday OR the 13th; 2026-02-13 is both and fires once.
  EXPECT_THAT(Firings(MustParse("0 0 13 * 5"), Utc(2026, 2, 1, 0, 0), 4),
              ElementsAre("2026-02-06 00:00 +0000", "2026-02-13 00:00 +0000",
                          "2026-02-20 00:00 +0000", "2026-02-27 00:00 +0000"));
}

TEST(CronNextTest, DayFieldsAreAndedWhenOneIsUnrestricted) {
  // Only Mondays (day-of-month is *).
  EXPECT_THAT(Firings(MustParse("0 0 * * MON"), Utc(2026, 2, 27, 0, 0), 2),
              ElementsAre("2026-03-02 00:00 +0000", "2026-03-09 00:00 +0000"));
  // Vixie cron: a field starting with '*' counts as unrestricted, so this is
  // odd days of the month AND Monday.
  EXPECT_THAT(Firings(MustParse("0 0 */2 * MON"), Utc(2026, 3, 1, 0, 0), 4),
              ElementsAre("2026-03-09 00:00 +0000", "2026-03-23 00:00 +0000",
                          "2026-04-13 00:00 +0000", "2026-04-27 00:00 +0000"));
}

TEST(CronNextTest, RareDateFarAwayTerminates) {
  // 29 February AND a weekend day: 2048 (Saturday), then 2060 (Sunday), then
  // 27 years without one.
  CronSchedule schedule = MustParse("0 0 29 2 */6");
  EXPECT_THAT(
      Firings(schedule, Utc(2033, 1, 1, 0, 0), 3),
      ElementsAre("2048-02-29 00:00 +0000", "2060-02-29 00:00 +0000", "2076-02-29 00:00 +0000"));
  EXPECT_EQ(Format(schedule, schedule.Next(Utc(2089, 1, 1, 0, 0))), "2116-02-29 00:00 +0000");
  EXPECT_EQ(Format(schedule, schedule.Previous(Utc(2115, 1, 1, 0, 0))), "2088-02-29 00:00 +0000");
}

TEST(CronNextTest, InfiniteArguments) {
  CronSchedule schedule = MustParse("* * * * *");
  EXPECT_EQ(schedule.Next(absl::InfiniteFuture()), absl::InfiniteFuture());
  EXPECT_EQ(schedule.Next(absl::InfinitePast()), absl::InfiniteFuture());
  EXPECT_EQ(schedule.Previous(absl::InfinitePast()), absl::InfinitePast());
  EXPECT_EQ(schedule.Previous(absl::InfiniteFuture()), absl::InfinitePast());
}

// ---------------------------------------------------------------------------
// Daylight-saving time. 2026: the EU springs forward on 29 March (02:00 CET ->
// 03:00 CEST) and falls back on 25 October (03:00 CEST -> 02:00 CET); the US
// springs forward on 8 March (02:00 EST -> 03:00 EDT) and falls back on
// 1 November (02:00 EDT -> 01:00 EST).

TEST(CronDstTest, BerlinSpringForwardGapFiresAtEndOfGap) {
  CronSchedule schedule = MustParse("30 2 * * *", "Europe/Berlin");
  EXPECT_THAT(
      Firings(schedule, Local(schedule, 2026, 3, 28, 12, 0), 3),
      ElementsAre("2026-03-29 03:00 +0200", "2026-03-30 02:30 +0200", "2026-03-31 02:30 +0200"));
  EXPECT_EQ(schedule.Next(Local(schedule, 2026, 3, 28, 12, 0)), Utc(2026, 3, 29, 1, 0));
}

TEST(CronDstTest, BerlinSlotsInAndAtEndOfGapFireOnce) {
  // 02:00, 02:30 and 03:00 all land on 03:00 CEST.
  CronSchedule half_hourly = MustParse("0,30 * * * *", "Europe/Berlin");
  EXPECT_THAT(
      Firings(half_hourly, Local(half_hourly, 2026, 3, 29, 1, 0), 3),
      ElementsAre("2026-03-29 01:30 +0100", "2026-03-29 03:00 +0200", "2026-03-29 03:30 +0200"));
  CronSchedule hourly = MustParse("@hourly", "Europe/Berlin");
  EXPECT_THAT(
      Firings(hourly, Local(hourly, 2026, 3, 29, 0, 30), 3),
      ElementsAre("2026-03-29 01:00 +0100", "2026-03-29 03:00 +0200", "2026-03-29 04:00 +0200"));
}

TEST(CronDstTest, NewYorkSpringForwardGapFiresAtEndOfGap) {
  CronSchedule schedule = MustParse("30 2 * * *", "America/New_York");
  EXPECT_THAT(
      Firings(schedule, Local(schedule, 2026, 3, 7, 12, 0), 3),
      ElementsAre("2026-03-08 03:00 -0400", "2026-03-09 02:30 -0400", "2026-03-10 02:30 -0400"));
  // Times just outside the gap are unaffected.
  CronSchedule before = MustParse("59 1 * * *", "America/New_York");
  EXPECT_EQ(Format(before, before.Next(Local(before, 2026, 3, 8, 0, 0))), "2026-03-08 01:59 -0500");
  CronSchedule after = MustParse("1 3 * * *", "America/New_York");
  EXPECT_EQ(Format(after, after.Next(Local(after, 2026, 3, 8, 0, 0))), "2026-03-08 03:01 -0400");
}

TEST(CronDstTest, NewYorkFallBackOverlapFiresOnce) {
  CronSchedule schedule = MustParse("30 1 * * *", "America/New_York");
  EXPECT_THAT(
      Firings(schedule, Local(schedule, 2026, 10, 31, 12, 0), 3),
      ElementsAre("2026-11-01 01:30 -0400", "2026-11-02 01:30 -0500", "2026-11-03 01:30 -0500"));
  // From inside the second pass (01:10 EST) the next firing is the next day.
  const absl::Time second_pass = Utc(2026, 11, 1, 6, 10);  // 01:10 EST
  EXPECT_EQ(Format(schedule, second_pass), "2026-11-01 01:10 -0500");
  EXPECT_EQ(Format(schedule, schedule.Next(second_pass)), "2026-11-02 01:30 -0500");
  // Exactly at the first occurrence: strictly after means the next day.
  EXPECT_EQ(Format(schedule, schedule.Next(Utc(2026, 11, 1, 5, 30))), "2026-11-02 01:30 -0500");
}

TEST(CronDstTest, NewYorkRepeatedHourDoesNotFireTwice) {
  CronSchedule schedule = MustParse("*/30 * * * *", "America/New_York");
  EXPECT_THAT(Firings(schedule, Local(schedule, 2026, 11, 1, 0, 45), 4),
              ElementsAre("2026-11-01 01:00 -0400", "2026-11-01 01:30 -0400",
                          "2026-11-01 02:00 -0500", "2026-11-01 02:30 -0500"));
}

TEST(CronDstTest, BerlinFallBackOverlapFiresOnce) {
  CronSchedule schedule = MustParse("30 2 * * *", "Europe/Berlin");
  EXPECT_THAT(
      Firings(schedule, Local(schedule, 2026, 10, 24, 12, 0), 3),
      ElementsAre("2026-10-25 02:30 +0200", "2026-10-26 02:30 +0100", "2026-10-27 02:30 +0100"));
  CronSchedule hourly = MustParse("0 * * * *", "Europe/Berlin");
  EXPECT_THAT(Firings(hourly, Local(hourly, 2026, 10, 25, 0, 30), 4),
              ElementsAre("2026-10-25 01:00 +0200", "2026-10-25 02:00 +0200",
                          "2026-10-25 03:00 +0100", "2026-10-25 04:00 +0100"));
}

TEST(CronDstTest, NextAndPreviousAgreeAcrossTransitions) {
  // For every probe t: Previous(t) <= t < Next(t), Next(t) is itself a firing,
  // and nothing fires strictly between Previous(t) and Next(t).
  const std::vector<std::pair<std::string, std::string>> schedules = {
      {"*/15 * * * *", "Europe/Berlin"}, {"30 2 * * *", "Europe/Berlin"},
      {"0 * * * *", "America/New_York"}, {"*/20 1-3 * * *", "America/New_York"},
      {"* * * * *", "America/New_York"},
  };
  const std::vector<absl::Time> days = {Utc(2026, 3, 28, 20, 0), Utc(2026, 10, 24, 20, 0),
                                        Utc(2026, 3, 7, 20, 0), Utc(2026, 10, 31, 20, 0)};
  for (const auto& [expression, zone] : schedules) {
    CronSchedule schedule = MustParse(expression, zone);
    for (absl::Time day : days) {
      for (absl::Time t = day; t < day + absl::Hours(36); t += absl::Minutes(7)) {
        const absl::Time next = schedule.Next(t);
        const absl::Time previous = schedule.Previous(t);
        ASSERT_GT(next, t) << expression << " " << Format(schedule, t);
        ASSERT_LE(previous, t) << expression << " " << Format(schedule, t);
        ASSERT_EQ(schedule.Previous(next), next) << expression << " " << Format(schedule, t);
        ASSERT_EQ(schedule.Next(previous), next) << expression << " " << Format(schedule, t);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Previous and CatchUp

TEST(CronPreviousTest, IsAtOrBefore) {
  CronSchedule schedule = MustParse("30 2 * * *");
  EXPECT_EQ(schedule.Previous(Utc(2026, 1, 15, 2, 30)), Utc(2026, 1, 15, 2, 30));
  EXPECT_EQ(schedule.Previous(Utc(2026, 1, 15, 2, 29, 59)), Utc(2026, 1, 14, 2, 30));
  EXPECT_EQ(schedule.Previous(Utc(2026, 3, 1, 0, 0)), Utc(2026, 2, 28, 2, 30));
  EXPECT_EQ(MustParse("0 0 29 2 *").Previous(Utc(2031, 6, 1, 0, 0)), Utc(2028, 2, 29, 0, 0));
}

TEST(CronPreviousTest, DstGapAndOverlap) {
  CronSchedule berlin = MustParse("30 2 * * *", "Europe/Berlin");
  EXPECT_EQ(Format(berlin, berlin.Previous(Local(berlin, 2026, 3, 29, 12, 0))),
            "2026-03-29 03:00 +0200");
  CronSchedule new_york = MustParse("30 1 * * *", "America/New_York");
  // 01:45 EST, the second pass: the day's only firing was 01:30 EDT.
  EXPECT_EQ(Format(new_york, new_york.Previous(Utc(2026, 11, 1, 6, 45))), "2026-11-01 01:30 -0400");
  // 02:01 CET, the second pass in Berlin: 02:15-02:45 CEST are later on the wall
  // clock but already fired.
  CronSchedule quarterly = MustParse("*/15 * * * *", "Europe/Berlin");
  EXPECT_EQ(Format(quarterly, quarterly.Previous(Utc(2026, 10, 25, 1, 1))),
            "2026-10-25 02:45 +0200");
  EXPECT_EQ(Format(quarterly, quarterly.Next(Utc(2026, 10, 25, 1, 1))), "2026-10-25 03:00 +0100");
}

TEST(CronCatchUpTest, LongDowntimeGivesOneDueRun) {
  CronSchedule schedule = MustParse("0 * * * *");
  // Down from New Year until the middle of March: ~1800 missed hourly firings.
  const CatchUpPlan plan = CatchUp(schedule, Utc(2026, 1, 1, 0, 0), Utc(2026, 3, 15, 10, 30));
  ASSERT_TRUE(plan.due.has_value());
  EXPECT_EQ(*plan.due, Utc(2026, 3, 15, 10, 0));
  EXPECT_EQ(plan.next, Utc(2026, 3, 15, 11, 0));
}

TEST(CronCatchUpTest, YearsOfDowntimeOnADailySchedule) {
  CronSchedule schedule = MustParse("30 2 * * *", "Europe/Berlin");
  const CatchUpPlan plan =
      CatchUp(schedule, Local(schedule, 2020, 5, 1, 2, 30), Local(schedule, 2026, 3, 29, 12, 0));
  ASSERT_TRUE(plan.due.has_value());
  EXPECT_EQ(Format(schedule, *plan.due), "2026-03-29 03:00 +0200");  // the DST-gap firing
  EXPECT_EQ(Format(schedule, plan.next), "2026-03-30 02:30 +0200");
}

TEST(CronCatchUpTest, NothingMissed) {
  CronSchedule schedule = MustParse("0 * * * *");
  const CatchUpPlan plan = CatchUp(schedule, Utc(2026, 3, 15, 10, 0), Utc(2026, 3, 15, 10, 59));
  EXPECT_FALSE(plan.due.has_value());
  EXPECT_EQ(plan.next, Utc(2026, 3, 15, 11, 0));
  // Saved after the last firing: nothing is due either.
  EXPECT_FALSE(CatchUp(schedule, Utc(2026, 3, 15, 10, 5), Utc(2026, 3, 15, 10, 59)).due);
  // A clock that went backwards is not a reason to run.
  EXPECT_FALSE(CatchUp(schedule, Utc(2026, 3, 15, 12, 0), Utc(2026, 3, 15, 10, 59)).due);
}

TEST(CronCatchUpTest, FiringExactlyAtNowIsDue) {
  CronSchedule schedule = MustParse("0 * * * *");
  const CatchUpPlan plan = CatchUp(schedule, Utc(2026, 3, 15, 9, 0), Utc(2026, 3, 15, 11, 0));
  ASSERT_TRUE(plan.due.has_value());
  EXPECT_EQ(*plan.due, Utc(2026, 3, 15, 11, 0));
  EXPECT_EQ(plan.next, Utc(2026, 3, 15, 12, 0));
}

TEST(CronCatchUpTest, NeverRanUsesTheSavedTime) {
  CronSchedule schedule = MustParse("@daily");
  // Saved at 10:00, service down until two days later: one run for the latest
  // midnight.
  const CatchUpPlan plan = CatchUp(schedule, Utc(2026, 3, 13, 10, 0), Utc(2026, 3, 15, 10, 0));
  ASSERT_TRUE(plan.due.has_value());
  EXPECT_EQ(*plan.due, Utc(2026, 3, 15, 0, 0));
  EXPECT_EQ(plan.next, Utc(2026, 3, 16, 0, 0));
}

}  // namespace
}  // namespace exportd::engine
