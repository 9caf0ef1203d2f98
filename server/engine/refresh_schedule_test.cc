#include "server/engine/refresh_schedule.h"

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

// Zones come from the tzdata package; a load failure is an environment problem.
RefreshSchedule MustParse(const std::string& spec) {
  absl::StatusOr<RefreshSchedule> schedule = RefreshSchedule::Parse(spec);
  EXPECT_TRUE(schedule.ok()) << schedule.status() << " (is the tzdata package installed?)";
  return *schedule;
}

absl::TimeZone Zone(const std::string& name) {
  absl::TimeZone zone;
  EXPECT_TRUE(absl::LoadTimeZone(name, &zone)) << name << ": install the tzdata package";
  return zone;
}

absl::Time At(const std::string& zone, int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, 0), Zone(zone));
}

std::vector<std::string> Firings(const RefreshSchedule& schedule, absl::Time from, int count) {
  const absl::TimeZone zone = Zone(schedule.time_zone_name());
  std::vector<std::string> firings;
  for (int i = 0; i < count; ++i) {
    from = schedule.Next(from);
    firings.push_back(absl::FormatTime("%a %Y-%m-%d %H:%M %z", from, zone));
  }
  return firings;
}

std::string ParseError(const std::string& spec) {
  absl::StatusOr<RefreshSchedule> schedule = RefreshSchedule::Parse(spec);
  if (schedule.ok()) return "parsed OK";
  EXPECT_EQ(schedule.status().code(), absl::StatusCode::kInvalidArgument) << schedule.status();
  EXPECT_THAT(schedule.status().message(), HasSubstr("refresh schedule \"")) << spec;
  return std::string(schedule.status().message());
}

TEST(RefreshScheduleTest, DailyTwiceInBerlin) {
  RefreshSchedule schedule = MustParse("daily 02:00,14:00 Europe/Berlin");
  EXPECT_EQ(schedule.spec(), "daily 02:00,14:00 Europe/Berlin");
  EXPECT_EQ(schedule.time_zone_name(), "Europe/Berlin");
  ASSERT_EQ(schedule.cron_schedules().size(), 1u);  // same minute: one cron
  EXPECT_EQ(schedule.cron_schedules()[0].expression(), "0 2,14 * * *");
  EXPECT_THAT(Firings(schedule, At("Europe/Berlin", 2026, 1, 15, 10, 0), 3),
              ElementsAre("Thu 2026-01-15 14:00 +0100", "Fri 2026-01-16 02:00 +0100",
                          "Fri 2026-01-16 14:00 +0100"));
}

TEST(RefreshScheduleTest, WeeklyOnSeveralDays) {
  RefreshSchedule schedule = MustParse("weekly mon,thu 06:30 UTC");
  EXPECT_EQ(schedule.cron_schedules()[0].expression(), "30 6 * * 1,4");
  EXPECT_THAT(Firings(schedule, At("UTC", 2026, 1, 14, 12, 0), 4),
              ElementsAre("Thu 2026-01-15 06:30 +0000", "Mon 2026-01-19 06:30 +0000",
                          "Thu 2026-01-22 06:30 +0000", "Mon 2026-01-26 06:30 +0000"));
}

TEST(RefreshScheduleTest, TimesWithDifferentMinutesInterleave) {
  RefreshSchedule schedule = MustParse("daily 18:45,06:15,12:15 UTC");
  EXPECT_EQ(schedule.cron_schedules().size(), 2u);
  EXPECT_THAT(Firings(schedule, At("UTC", 2026, 1, 15, 7, 0), 4),
              ElementsAre("Thu 2026-01-15 12:15 +0000", "Thu 2026-01-15 18:45 +0000",
                          "Fri 2026-01-16 06:15 +0000", "Fri 2026-01-16 12:15 +0000"));
  EXPECT_EQ(schedule.Previous(At("UTC", 2026, 1, 15, 18, 44)), At("UTC", 2026, 1, 15, 12, 15));
}

TEST(RefreshScheduleTest, ZoneDefaultsToUtcAndWordsAreCaseInsensitive) {
  RefreshSchedule schedule = MustParse("  Weekly MONDAY,fri 7:05 ");
  EXPECT_EQ(schedule.time_zone_name(), "UTC");
  EXPECT_THAT(Firings(schedule, At("UTC", 2026, 1, 14, 12, 0), 2),
              ElementsAre("Fri 2026-01-16 07:05 +0000", "Mon 2026-01-19 07:05 +0000"));
}

TEST(RefreshScheduleTest, FourTimesAllowedFiveRejected) {
  EXPECT_EQ(ParseError("daily 00:00,06:00,12:00,18:00 UTC"), "parsed OK");
  const std::string message = ParseError("daily 00:00,04:00,08:00,12:00,16:00 UTC");
  EXPECT_THAT(message, HasSubstr("5 times of day given"));
  EXPECT_THAT(message, HasSubstr("at most four"));
}

TEST(RefreshScheduleTest, ErrorsNameTheBadWord) {
  struct Case {
    std::string spec;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"", "is empty; write e.g. \"daily 02:00,14:00 Europe/Berlin\""},
      {"hourly 02:00 UTC", "starts with \"hourly\"; it must start with \"daily\" or \"weekly\""},
      {"daily", "expected \"daily TIMES [ZONE]\""},
      {"daily 02:00 UTC extra", "expected \"daily TIMES [ZONE]\""},
      {"weekly 06:30 UTC", "day \"06:30\" is not a day of the week"},
      {"weekly mon", "expected \"weekly DAYS TIMES [ZONE]\""},
      {"weekly mo 06:30 UTC", "day \"mo\" is not a day of the week; use mon, tue"},
      {"weekly mon,,thu 06:30 UTC", "day \"\" is not a day of the week"},
      {"weekly mon,MON 06:30 UTC", "day \"MON\" is listed twice"},
      {"daily 24:00 UTC", "time \"24:00\" is not a time of day; write HH:MM in 24-hour form"},
      {"daily 12:60 UTC", "time \"12:60\" is not a time of day"},
      {"daily 2:5 UTC", "time \"2:5\" is not a time of day"},
      {"daily noon UTC", "time \"noon\" is not a time of day"},
      {"daily 02:00,,14:00 UTC", "time \"\" is not a time of day"},
      {"daily 02:00,2:00 UTC", "time \"2:00\" is listed twice"},
      {"daily 02:00 Europe/Berln", "unknown time zone \"Europe/Berln\"; use an IANA name"},
      {"daily 02:00 /etc/passwd",
       "time zone \"/etc/passwd\" is not an IANA name: it is an absolute path"},
      {"daily 02:00 ../../etc/passwd", "time zone \"../../etc/passwd\" is not an IANA name"},
      {"daily 02:00 Europe\\Berlin", "is not an IANA name: it contains a backslash"},
      {"weekly mon 06:30 Europe//Berlin", "is not an IANA name: it has an empty part"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseError(c.spec), HasSubstr(c.expected)) << c.spec;
  }
}

TEST(RefreshScheduleTest, SpringForwardGapFiresAtEndOfGap) {
  RefreshSchedule berlin = MustParse("daily 02:30 Europe/Berlin");
  EXPECT_THAT(Firings(berlin, At("Europe/Berlin", 2026, 3, 28, 12, 0), 2),
              ElementsAre("Sun 2026-03-29 03:00 +0200", "Mon 2026-03-30 02:30 +0200"));
  // Two times inside the gap collapse into one refresh at its end.
  RefreshSchedule both = MustParse("daily 02:00,02:30 Europe/Berlin");
  EXPECT_THAT(Firings(both, At("Europe/Berlin", 2026, 3, 28, 12, 0), 3),
              ElementsAre("Sun 2026-03-29 03:00 +0200", "Mon 2026-03-30 02:00 +0200",
                          "Mon 2026-03-30 02:30 +0200"));
  RefreshSchedule new_york = MustParse("weekly sun 02:15 America/New_York");
  EXPECT_THAT(Firings(new_york, At("America/New_York", 2026, 3, 1, 12, 0), 2),
              ElementsAre("Sun 2026-03-08 03:00 -0400", "Sun 2026-03-15 02:15 -0400"));
}

TEST(RefreshScheduleTest, FallBackOverlapFiresOnce) {
  RefreshSchedule new_york = MustParse("daily 01:30,14:00 America/New_York");
  EXPECT_THAT(Firings(new_york, At("America/New_York", 2026, 10, 31, 15, 0), 3),
              ElementsAre("Sun 2026-11-01 01:30 -0400", "Sun 2026-11-01 14:00 -0500",
                          "Mon 2026-11-02 01:30 -0500"));
  RefreshSchedule berlin = MustParse("daily 02:30 Europe/Berlin");
  EXPECT_THAT(Firings(berlin, At("Europe/Berlin", 2026, 10, 24, 12, 0), 2),
              ElementsAre("Sun 2026-10-25 02:30 +0200", "Mon 2026-10-26 02:30 +0100"));
}

TEST(RefreshScheduleTest, CatchUpAfterDowntimeGivesOneDueRun) {
  RefreshSchedule schedule = MustParse("daily 02:00,14:00 Europe/Berlin");
  const CatchUpPlan plan = CatchUp(schedule, At("Europe/Berlin", 2026, 1, 1, 2, 0),
                                   At("Europe/Berlin", 2026, 2, 10, 9, 0));
  ASSERT_TRUE(plan.due.has_value());
  EXPECT_EQ(*plan.due, At("Europe/Berlin", 2026, 2, 10, 2, 0));
  EXPECT_EQ(plan.next, At("Europe/Berlin", 2026, 2, 10, 14, 0));

  const CatchUpPlan none = CatchUp(schedule, At("Europe/Berlin", 2026, 2, 10, 2, 0),
                                   At("Europe/Berlin", 2026, 2, 10, 9, 0));
  EXPECT_FALSE(none.due.has_value());
  EXPECT_EQ(none.next, At("Europe/Berlin", 2026, 2, 10, 14, 0));
}

}  // namespace
}  // namespace exportd::engine
