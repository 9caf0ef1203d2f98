#include "server/engine/cron.h"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/status_macros.h"
#include "server/common/time_zone.h"

namespace exportd::engine {
namespace {

// One Gregorian cycle: the calendar (dates and weekdays) repeats every 400
// years, so a schedule that matches nothing in 400 years never matches.
constexpr absl::civil_year_t kSearchYears = 400;

constexpr std::array<absl::string_view, 12> kMonthNames = {
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<absl::string_view, 7> kWeekdayNames = {"SUN", "MON", "TUE", "WED",
                                                            "THU", "FRI", "SAT"};

struct FieldSpec {
  absl::string_view name;
  int min;
  int max;                         // upper end of `*` and of `N/step`
  int max_value;                   // largest value accepted (7 for day-of-week: Sunday again)
  absl::string_view allowed;       // how the fix is phrased: "hour must be 0-23"
  const absl::string_view* names;  // value names, names[i] is min + i; or null
  int name_count;
};

constexpr FieldSpec kMinute = {"minute", 0, 59, 59, "minute must be 0-59", nullptr, 0};
constexpr FieldSpec kHour = {"hour", 0, 23, 23, "hour must be 0-23", nullptr, 0};
constexpr FieldSpec kDayOfMonth = {"day-of-month", 1, 31, 31, "day-of-month must be 1-31",
                                   nullptr,        0};
constexpr FieldSpec kMonth = {
    "month", 1, 12, 12, "month must be 1-12 or JAN-DEC", kMonthNames.data(), 12};
constexpr FieldSpec kDayOfWeek = {
    "day-of-week",        0, 6, 7, "day-of-week must be 0-7 or SUN-SAT (0 and 7 are Sunday)",
    kWeekdayNames.data(), 7};

// "cron expression "0 25 * * *": hour "25" is out of range; hour must be 0-23"
absl::Status FieldError(absl::string_view expression, const FieldSpec& field,
                        absl::string_view token, absl::string_view problem,
                        absl::string_view fix = {}) {
  return absl::InvalidArgumentError(absl::StrCat("cron expression \"", expression,
                                                 "\": ", field.name, " \"", token, "\" ", problem,
                                                 "; ", fix.empty() ? field.allowed : fix));
}

// A value: digits, or a name when the field has names.
absl::StatusOr<int> ParseValue(absl::string_view expression, const FieldSpec& field,
                               absl::string_view item, absl::string_view text) {
  if (text.empty()) {
    return FieldError(expression, field, item, "is missing a value");
  }
  if (absl::ascii_isdigit(static_cast<unsigned char>(text[0]))) {
    int value = 0;
    for (char c : text) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
        return FieldError(expression, field, item, absl::StrCat("has a bad number \"", text, "\""));
      }
      value = value * 10 + (c - '0');
      if (value > 1000) break;  // out of range anyway; avoids overflow
    }
    if (value < field.min || value > field.max_value) {
      return FieldError(expression, field, item, "is out of range");
    }
    return value;
  }
  for (int i = 0; i < field.name_count; ++i) {
    if (absl::EqualsIgnoreCase(text, field.names[i])) return field.min + i;
  }
  return FieldError(expression, field, item,
                    field.names != nullptr
                        ? absl::StrCat("has \"", text, "\", which is neither a number nor a ",
                                       field.name, " name")
                        : absl::StrCat("has \"", text, "\", which is not a number"));
}

// One list item: `*`, `v`, `a-b`, each optionally followed by `/step`.
absl::Status ParseItem(absl::string_view expression, const FieldSpec& field, absl::string_view item,
                       std::uint64_t& bits) {
  absl::string_view base = item;
  int step = 1;
  bool has_step = false;
  if (size_t slash = item.find('/'); slash != absl::string_view::npos) {
    base = item.substr(0, slash);
    absl::string_view step_text = item.substr(slash + 1);
    bool digits = !step_text.empty() && step_text.size() <= 3;
    for (char c : step_text) digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(c));
    int parsed = 0;
    if (digits) {
      for (char c : step_text) parsed = parsed * 10 + (c - '0');
    }
    if (!digits || parsed < 1 || parsed > field.max) {
      return FieldError(expression, field, item, absl::StrCat("has a bad step \"", step_text, "\""),
                        absl::StrCat("the ", field.name, " step after '/' must be 1-", field.max,
                                     ", e.g. */15 or 10-50/10"));
    }
    step = parsed;
    has_step = true;
  }
  int low = 0;
  int high = 0;
  if (base == "*") {
    low = field.min;
    high = field.max;
  } else if (size_t dash = base.find('-'); dash != absl::string_view::npos) {
    EXPORTD_ASSIGN_OR_RETURN(low, ParseValue(expression, field, item, base.substr(0, dash)));
    EXPORTD_ASSIGN_OR_RETURN(high, ParseValue(expression, field, item, base.substr(dash + 1)));
    if (low > high) {
      return FieldError(expression, field, item, "is a backwards range",
                        absl::StrCat("write the lower bound first (e.g. 1-5); ranges do not wrap "
                                     "around, so list the two parts instead (e.g. 22-23,0-2); ",
                                     field.allowed));
    }
  } else {
    EXPORTD_ASSIGN_OR_RETURN(low, ParseValue(expression, field, item, base));
    // `5/20` means from 5 to the field's maximum in steps of 20.
    high = has_step ? std::max(low, field.max) : low;
  }
  for (int v = low; v <= high; v += step) bits |= std::uint64_t{1} << v;
  return absl::OkStatus();
}

absl::StatusOr<std::uint64_t> ParseField(absl::string_view expression, const FieldSpec& field,
                                         absl::string_view text) {
  std::uint64_t bits = 0;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    if (item.empty()) {
      return FieldError(
          expression, field, text, "has an empty list item",
          absl::StrCat("separate values with single commas (e.g. 1,2); ", field.allowed));
    }
    EXPORTD_RETURN_IF_ERROR(ParseItem(expression, field, item, bits));
  }
  return bits;
}

absl::string_view ExpandMacro(absl::string_view macro) {
  struct Macro {
    absl::string_view name;
    absl::string_view fields;
  };
  static constexpr Macro kMacros[] = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
  };
  for (const Macro& m : kMacros) {
    if (absl::EqualsIgnoreCase(macro, m.name)) return m.fields;
  }
  return {};
}

bool Bit(std::uint64_t bits, int i) { return (bits >> i) & 1; }

// The first set bit in [from, max], or -1.
int NextSetBit(std::uint64_t bits, int from, int max) {
  for (int i = from; i <= max; ++i) {
    if (Bit(bits, i)) return i;
  }
  return -1;
}

// The last set bit in [0, from], or -1.
int PreviousSetBit(std::uint64_t bits, int from) {
  for (int i = from; i >= 0; --i) {
    if (Bit(bits, i)) return i;
  }
  return -1;
}

// absl::Weekday counts from Monday; cron counts from Sunday.
int CronWeekday(absl::CivilDay day) { return (static_cast<int>(absl::GetWeekday(day)) + 1) % 7; }

}  // namespace

absl::StatusOr<CronSchedule> CronSchedule::Parse(absl::string_view expression,
                                                 absl::string_view time_zone) {
  expression = absl::StripAsciiWhitespace(expression);
  CronSchedule schedule;
  schedule.expression_ = std::string(expression);

  absl::string_view fields_text = expression;
  if (absl::StartsWith(expression, "@")) {
    if (absl::EqualsIgnoreCase(expression, "@reboot")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cron expression \"", expression,
          "\": @reboot is not supported; exports run at times of day, use e.g. @daily"));
    }
    fields_text = ExpandMacro(expression);
    if (fields_text.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cron expression \"", expression, "\": unknown macro; use @yearly, ",
                       "@annually, @monthly, @weekly, @daily, @midnight or @hourly"));
    }
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(fields_text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (fields.size() != 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cron expression \"", expression, "\": has ", fields.size(),
        " fields; expected 5 (minute hour day-of-month month day-of-week, e.g. \"30 2 * * *\") "
        "or a macro such as @daily"));
  }
  EXPORTD_ASSIGN_OR_RETURN(schedule.minutes_, ParseField(expression, kMinute, fields[0]));
  EXPORTD_ASSIGN_OR_RETURN(std::uint64_t hours, ParseField(expression, kHour, fields[1]));
  EXPORTD_ASSIGN_OR_RETURN(std::uint64_t dom, ParseField(expression, kDayOfMonth, fields[2]));
  EXPORTD_ASSIGN_OR_RETURN(std::uint64_t months, ParseField(expression, kMonth, fields[3]));
  EXPORTD_ASSIGN_OR_RETURN(std::uint64_t dow, ParseField(expression, kDayOfWeek, fields[4]));
  if (Bit(dow, 7)) dow = (dow | 1) & ~(std::uint64_t{1} << 7);  // 7 is Sunday, as 0
  schedule.hours_ = static_cast<std::uint32_t>(hours);
  schedule.days_of_month_ = static_cast<std::uint32_t>(dom);
  schedule.months_ = static_cast<std::uint32_t>(months);
  schedule.days_of_week_ = static_cast<std::uint32_t>(dow);
  // Vixie cron: a day field that starts with '*' does not restrict the day.
  schedule.day_or_ = !absl::StartsWith(fields[2], "*") && !absl::StartsWith(fields[4], "*");

  if (!schedule.MatchesSomeDate()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cron expression \"", expression,
        "\": never matches: no date has this day-of-month in these months (e.g. February has at "
        "most 29 days, April, June, September and November 30); pick a day that exists"));
  }

  schedule.time_zone_name_ = time_zone.empty() ? "UTC" : std::string(time_zone);
  absl::StatusOr<absl::TimeZone> zone = LoadIanaTimeZone(schedule.time_zone_name_);
  if (!zone.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cron expression \"", expression, "\": ", zone.status().message()));
  }
  schedule.time_zone_ = *zone;
  return schedule;
}

bool CronSchedule::MonthMatches(int month) const { return Bit(months_, month); }

bool CronSchedule::DayMatches(absl::CivilDay day) const {
  const bool dom = Bit(days_of_month_, day.day());
  const bool dow = Bit(days_of_week_, CronWeekday(day));
  return day_or_ ? (dom || dow) : (dom && dow);
}

bool CronSchedule::MatchesSomeDate() const {
  // Checked over a whole 400-year cycle so that rare combinations such as
  // "29 February that is a Sunday" count as possible. Stops at the first match,
  // which for ordinary expressions is within days.
  const absl::CivilMonth start(2000, 1);
  for (absl::CivilMonth month = start; month < start + 12 * kSearchYears; ++month) {
    if (!MonthMatches(month.month())) continue;
    for (absl::CivilDay day(month); absl::CivilMonth(day) == month; ++day) {
      if (DayMatches(day)) return true;
    }
  }
  return false;
}

std::optional<absl::CivilMinute> CronSchedule::NextMatch(absl::CivilMinute c,
                                                         absl::civil_year_t limit) const {
  while (c.year() <= limit) {
    if (!MonthMatches(c.month())) {
      c = absl::CivilMinute(absl::CivilMonth(c) + 1);
      continue;
    }
    if (!DayMatches(absl::CivilDay(c))) {
      c = absl::CivilMinute(absl::CivilDay(c) + 1);
      continue;
    }
    if (!Bit(hours_, c.hour())) {
      const int hour = NextSetBit(hours_, c.hour() + 1, 23);
      c = hour < 0 ? absl::CivilMinute(absl::CivilDay(c) + 1)
                   : absl::CivilMinute(c.year(), c.month(), c.day(), hour, 0);
      continue;
    }
    if (!Bit(minutes_, c.minute())) {
      const int minute = NextSetBit(minutes_, c.minute() + 1, 59);
      c = minute < 0 ? absl::CivilMinute(absl::CivilHour(c) + 1)
                     : absl::CivilMinute(c.year(), c.month(), c.day(), c.hour(), minute);
      continue;
    }
    return c;
  }
  return std::nullopt;
}

std::optional<absl::CivilMinute> CronSchedule::PreviousMatch(absl::CivilMinute c,
                                                             absl::civil_year_t limit) const {
  // Mirror of NextMatch: on a mismatch, go to the last minute of the previous
  // month / day / matching hour / matching minute.
  while (c.year() >= limit) {
    if (!MonthMatches(c.month())) {
      c = absl::CivilMinute(absl::CivilMonth(c)) - 1;
      continue;
    }
    if (!DayMatches(absl::CivilDay(c))) {
      c = absl::CivilMinute(absl::CivilDay(c)) - 1;
      continue;
    }
    if (!Bit(hours_, c.hour())) {
      const int hour = PreviousSetBit(hours_, c.hour() - 1);
      c = hour < 0 ? absl::CivilMinute(absl::CivilDay(c)) - 1
                   : absl::CivilMinute(c.year(), c.month(), c.day(), hour, 59);
      continue;
    }
    if (!Bit(minutes_, c.minute())) {
      const int minute = PreviousSetBit(minutes_, c.minute() - 1);
      c = minute < 0 ? absl::CivilMinute(absl::CivilHour(c)) - 1
                     : absl::CivilMinute(c.year(), c.month(), c.day(), c.hour(), minute);
      continue;
    }
    return c;
  }
  return std::nullopt;
}

absl::Time CronSchedule::Resolve(absl::CivilMinute minute) const {
  const absl::TimeZone::TimeInfo info = time_zone_.At(absl::CivilSecond(minute));
  switch (info.kind) {
    case absl::TimeZone::TimeInfo::SKIPPED:
      // In a spring-forward gap: fire when the gap ends.
      return info.trans;
    case absl::TimeZone::TimeInfo::REPEATED:
      // In a fall-back overlap: fire at the first occurrence only.
      return info.pre;
    case absl::TimeZone::TimeInfo::UNIQUE:
      break;
  }
  return info.pre;
}

// Resolve() is non-decreasing in civil time, so the firings are exactly the
// resolved matching minutes in civil order, and the minutes firing at or before
// a given instant form a prefix of civil time. Next() starts at the argument's
// civil minute and skips the few matches that fired earlier (the repeated hour
// of an overlap, when `after` is in its second pass).
absl::Time CronSchedule::Next(absl::Time after) const {
  if (after == absl::InfiniteFuture() || after == absl::InfinitePast()) {
    return absl::InfiniteFuture();
  }
  absl::CivilMinute from = absl::CivilMinute(time_zone_.At(after).cs) + 1;
  const absl::civil_year_t limit = from.year() + kSearchYears;
  while (std::optional<absl::CivilMinute> match = NextMatch(from, limit)) {
    const absl::Time t = Resolve(*match);
    if (t > after) return t;
    from = *match + 1;
  }
  return absl::InfiniteFuture();
}

absl::Time CronSchedule::Previous(absl::Time at_or_before) const {
  if (at_or_before == absl::InfiniteFuture() || at_or_before == absl::InfinitePast()) {
    return absl::InfinitePast();
  }
  absl::CivilMinute from = absl::CivilMinute(time_zone_.At(at_or_before).cs);
  // In the second pass of a fall-back overlap, every minute of the overlap has
  // already fired (at its first occurrence), including those that are later on
  // the wall clock than `at_or_before`: search back from the overlap's end.
  const absl::TimeZone::TimeInfo info = time_zone_.At(absl::CivilSecond(from));
  if (info.kind == absl::TimeZone::TimeInfo::REPEATED && at_or_before >= info.trans) {
    from = absl::CivilMinute(time_zone_.At(info.trans - absl::Nanoseconds(1)).cs);
  }
  const absl::civil_year_t limit = from.year() - kSearchYears;
  while (std::optional<absl::CivilMinute> match = PreviousMatch(from, limit)) {
    const absl::Time t = Resolve(*match);
    if (t <= at_or_before) return t;
    from = *match - 1;
  }
  return absl::InfinitePast();
}

}  // namespace exportd::engine
