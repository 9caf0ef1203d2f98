// Which run endings an export's webhook hears about (Export.notify_on), and
// the one decision of which of them a finished run fires.
//
//   EXPORTD_ASSIGN_OR_RETURN(NotifyTriggers triggers, ParseNotifyOn({"failed", "rejections>5%"}));
//   for (const std::string& why : FiredTriggers(triggers, run, previous_state)) ...
#ifndef EXPORTD_SERVER_NOTIFY_TRIGGERS_H_
#define EXPORTD_SERVER_NOTIFY_TRIGGERS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "exportd/v1/run.pb.h"

namespace exportd::notify {

// The trigger names, as notify_on, the outbox and the body spell them.
inline constexpr char kFailed[] = "failed";
inline constexpr char kRecovered[] = "recovered";
inline constexpr char kRejections[] = "rejections";

struct NotifyTriggers {
  // A run failed for good (FAILED; not FAILED_RETRYING, not CANCELED).
  bool failed = false;
  // A run succeeded and the export's previous finished run had failed.
  bool recovered = false;
  // A run's rejected / (delivered + rejected) records, in percent, above
  // this; unset: not watched.
  std::optional<double> rejections_above_percent;
};

// Parses notify_on values: "failed", "recovered", "rejections>N%" (0 <= N <
// 100; the % is optional), each value possibly a comma-separated list.
// Empty: failed and recovered. INVALID_ARGUMENT naming the value otherwise.
absl::StatusOr<NotifyTriggers> ParseNotifyOn(const std::vector<std::string>& values);

// The canonical notify_on values of `triggers` ("failed", "recovered",
// "rejections>5%"), as exports store and show them.
std::vector<std::string> NotifyOnValues(const NotifyTriggers& triggers);

// rejected / (added + updated + removed + rejected) of the run, in percent
// (0 when nothing was sent).
double RejectedPercent(const v1::Run& run);

// The triggers `run`, which just reached a final state, fires (kFailed,
// kRecovered, kRejections, in that order). `previous_state` is the final
// state of the export's previous finished run (not a dry run), if any. Dry
// runs, canceled and skipped runs fire nothing.
std::vector<std::string> FiredTriggers(const NotifyTriggers& triggers, const v1::Run& run,
                                       std::optional<v1::RunState> previous_state);

}  // namespace exportd::notify

#endif  // EXPORTD_SERVER_NOTIFY_TRIGGERS_H_
