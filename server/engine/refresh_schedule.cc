#include "server/engine/refresh_schedule.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/common/status_macros.h"
#include "server/common/time_zone.h"

namespace exportd::engine {
namespace {

constexpr absl::string_view kExamples =
    "write e.g. \"daily 02:00,14:00 Europe/Berlin\" or \"weekly mon,thu 06:30 UTC\"";

absl::Status SpecError(absl::string_view spec, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("refresh schedule \"", spec, "\": ", problem));
}

bool AllDigits(absl::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

struct TimeOfDay {
  int hour;
  int minute;
  bool operator<(const TimeOfDay& other) const {
    return std::make_pair(hour, minute) < std::make_pair(other.hour, other.minute);
  }
};

absl::StatusOr<std::vector<TimeOfDay>> ParseTimes(absl::string_view spec, absl::string_view text) {
  std::vector<absl::string_view> items = absl::StrSplit(text, ',');
  if (items.size() > RefreshSchedule::kMaxTimesPerDay) {
    return SpecError(spec,
                     absl::StrCat(items.size(), " times of day given; at most four (",
                                  RefreshSchedule::kMaxTimesPerDay, ") times a day are allowed"));
  }
  std::vector<TimeOfDay> times;
  std::set<TimeOfDay> seen;
  for (absl::string_view item : items) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ':');
    int hour = -1;
    int minute = -1;
    if (parts.size() == 2 && parts[0].size() <= 2 && parts[1].size() == 2 && AllDigits(parts[0]) &&
        AllDigits(parts[1])) {
      // Cannot fail: at most two digits each.
      (void)absl::SimpleAtoi(parts[0], &hour);
      (void)absl::SimpleAtoi(parts[1], &minute);
    }
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59) {
      return SpecError(spec, absl::StrCat("time \"", item,
                                          "\" is not a time of day; write HH:MM in 24-hour "
                                          "form, 00:00-23:59, several separated by commas"));
    }
    if (!seen.insert({hour, minute}).second) {
      return SpecError(spec, absl::StrCat("time \"", item, "\" is listed twice; list it once"));
    }
    times.push_back({hour, minute});
  }
  return times;
}

// Cron day-of-week numbers (0 = Sunday).
absl::StatusOr<std::vector<int>> ParseDays(absl::string_view spec, absl::string_view text) {
  static constexpr std::array<std::pair<absl::string_view, absl::string_view>, 7> kDays = {{
      {"sun", "sunday"},
      {"mon", "monday"},
      {"tue", "tuesday"},
      {"wed", "wednesday"},
      {"thu", "thursday"},
      {"fri", "friday"},
      {"sat", "saturday"},
  }};
  std::vector<int> days;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    int day = -1;
    for (int i = 0; i < 7; ++i) {
      if (absl::EqualsIgnoreCase(item, kDays[i].first) ||
          absl::EqualsIgnoreCase(item, kDays[i].second)) {
        day = i;
      }
    }
    if (day < 0) {
      return SpecError(spec, absl::StrCat("day \"", item,
                                          "\" is not a day of the week; use mon, tue, wed, thu, "
                                          "fri, sat or sun, separated by commas"));
    }
    if (std::find(days.begin(), days.end(), day) != days.end()) {
      return SpecError(spec, absl::StrCat("day \"", item, "\" is listed twice; list it once"));
    }
    days.push_back(day);
  }
  return days;
}

}  // namespace

absl::StatusOr<RefreshSchedule> RefreshSchedule::Parse(absl::string_view spec) {
  spec = absl::StripAsciiWhitespace(spec);
  std::vector<absl::string_view> words =
      absl::StrSplit(spec, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (words.empty()) return SpecError(spec, absl::StrCat("is empty; ", kExamples));

  const bool daily = absl::EqualsIgnoreCase(words[0], "daily");
  const bool weekly = absl::EqualsIgnoreCase(words[0], "weekly");
  if (!daily && !weekly) {
    return SpecError(spec,
                     absl::StrCat("starts with \"", words[0],
                                  "\"; it must start with \"daily\" or \"weekly\"; ", kExamples));
  }
  const size_t times_index = daily ? 1 : 2;
  if (words.size() <= times_index || words.size() > times_index + 2) {
    return SpecError(spec, absl::StrCat(daily ? "expected \"daily TIMES [ZONE]\""
                                              : "expected \"weekly DAYS TIMES [ZONE]\"",
                                        "; ", kExamples));
  }
  std::string dow_field = "*";
  if (weekly) {
    EXPORTD_ASSIGN_OR_RETURN(std::vector<int> days, ParseDays(spec, words[1]));
    std::sort(days.begin(), days.end());
    dow_field = absl::StrJoin(days, ",");
  }
  EXPORTD_ASSIGN_OR_RETURN(std::vector<TimeOfDay> times, ParseTimes(spec, words[times_index]));
  const absl::string_view zone =
      words.size() > times_index + 1 ? words[times_index + 1] : absl::string_view("UTC");
  if (absl::StatusOr<absl::TimeZone> tz = LoadIanaTimeZone(zone); !tz.ok()) {
    return SpecError(spec, tz.status().message());
  }

  // Times sharing a minute-of-hour share one cron expression: 02:00 and 14:00
  // become "0 2,14 * * *".
  std::map<int, std::vector<int>> hours_by_minute;
  for (const TimeOfDay& t : times) hours_by_minute[t.minute].push_back(t.hour);
  std::vector<CronSchedule> crons;
  for (auto& [minute, hours] : hours_by_minute) {
    std::sort(hours.begin(), hours.end());
    const std::string expression =
        absl::StrCat(minute, " ", absl::StrJoin(hours, ","), " * * ", dow_field);
    EXPORTD_ASSIGN_OR_RETURN(CronSchedule cron, CronSchedule::Parse(expression, zone));
    crons.push_back(std::move(cron));
  }
  return RefreshSchedule(std::string(spec), std::move(crons));
}

absl::Time RefreshSchedule::Next(absl::Time after) const {
  absl::Time next = absl::InfiniteFuture();
  for (const CronSchedule& cron : crons_) next = std::min(next, cron.Next(after));
  return next;
}

absl::Time RefreshSchedule::Previous(absl::Time at_or_before) const {
  absl::Time previous = absl::InfinitePast();
  for (const CronSchedule& cron : crons_)
    previous = std::max(previous, cron.Previous(at_or_before));
  return previous;
}

}  // namespace exportd::engine
