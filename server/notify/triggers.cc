#include "server/notify/triggers.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/run_states.h"

namespace exportd::notify {

absl::StatusOr<NotifyTriggers> ParseNotifyOn(const std::vector<std::string>& values) {
  NotifyTriggers out;
  bool any = false;
  for (const std::string& value : values) {
    for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      part = absl::StripAsciiWhitespace(part);
      any = true;
      if (part == kFailed) {
        out.failed = true;
        continue;
      }
      if (part == kRecovered) {
        out.recovered = true;
        continue;
      }
      absl::string_view rest = part;
      double percent = 0;
      if (absl::ConsumePrefix(&rest, "rejections>")) {
        absl::ConsumeSuffix(&rest, "%");
        if (absl::SimpleAtod(rest, &percent) && percent >= 0 && percent < 100) {
          out.rejections_above_percent = percent;
          continue;
        }
        return absl::InvalidArgumentError(absl::StrCat(
            "notify_on: '", part, "' needs a percentage from 0 to below 100, e.g. rejections>5%"));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("notify_on: unknown trigger '", part,
                       "'; use failed, recovered or rejections>N% (comma-separated)"));
    }
  }
  if (!any) {
    out.failed = true;
    out.recovered = true;
  }
  return out;
}

std::vector<std::string> NotifyOnValues(const NotifyTriggers& triggers) {
  std::vector<std::string> out;
  if (triggers.failed) out.push_back(kFailed);
  if (triggers.recovered) out.push_back(kRecovered);
  if (triggers.rejections_above_percent.has_value()) {
    out.push_back(absl::StrCat("rejections>", *triggers.rejections_above_percent, "%"));
  }
  return out;
}

double RejectedPercent(const v1::Run& run) {
  std::int64_t delivered = 0, rejected = 0;
  for (const v1::SegmentProgress& p : run.segments()) {
    delivered += p.added() + p.updated() + p.removed();
    rejected += p.rejected();
  }
  if (delivered + rejected == 0) return 0;
  return 100.0 * static_cast<double>(rejected) / static_cast<double>(delivered + rejected);
}

std::vector<std::string> FiredTriggers(const NotifyTriggers& triggers, const v1::Run& run,
                                       std::optional<v1::RunState> previous_state) {
  std::vector<std::string> out;
  const v1::RunState state = run.state();
  if (run.dry_run() || !IsFinal(state)) return out;
  const bool succeeded =
      state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS;
  if (!succeeded && state != v1::RUN_STATE_FAILED) return out;  // Canceled, skipped.
  if (triggers.failed && state == v1::RUN_STATE_FAILED) out.push_back(kFailed);
  if (triggers.recovered && succeeded && previous_state == v1::RUN_STATE_FAILED) {
    out.push_back(kRecovered);
  }
  if (triggers.rejections_above_percent.has_value() &&
      RejectedPercent(run) > *triggers.rejections_above_percent) {
    out.push_back(kRejections);
  }
  return out;
}

}  // namespace exportd::notify
