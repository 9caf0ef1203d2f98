#include "server/common/run_states.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace exportd {

bool IsFinal(v1::RunState state) {
  switch (state) {
    case v1::RUN_STATE_SUCCEEDED:
    case v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS:
    case v1::RUN_STATE_FAILED:
    case v1::RUN_STATE_CANCELED:
    case v1::RUN_STATE_SKIPPED:
      return true;
    default:
      return false;
  }
}

bool IsSuccess(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS ||
         state == v1::RUN_STATE_SKIPPED;
}

bool CanTransition(v1::RunState from, v1::RunState to) {
  switch (from) {
    case v1::RUN_STATE_QUEUED:
      return to == v1::RUN_STATE_RUNNING || to == v1::RUN_STATE_SKIPPED ||
             to == v1::RUN_STATE_CANCELED;
    case v1::RUN_STATE_RUNNING:
      return to == v1::RUN_STATE_SUCCEEDED || to == v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS ||
             to == v1::RUN_STATE_FAILED || to == v1::RUN_STATE_FAILED_RETRYING ||
             to == v1::RUN_STATE_CANCELED || to == v1::RUN_STATE_QUEUED;
    case v1::RUN_STATE_FAILED_RETRYING:
      return to == v1::RUN_STATE_QUEUED || to == v1::RUN_STATE_FAILED ||
             to == v1::RUN_STATE_CANCELED || to == v1::RUN_STATE_SKIPPED;
    default:
      return false;
  }
}

absl::Status CheckTransition(v1::RunState from, v1::RunState to) {
  if (CanTransition(from, to)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("a run cannot go from ",
                                                    v1::RunState_Name(from), " to ",
                                                    v1::RunState_Name(to)));
}

std::string RunStateLabel(v1::RunState state) {
  absl::string_view name = v1::RunState_Name(state);
  absl::string_view prefix = "RUN_STATE_";
  if (absl::StartsWith(name, prefix)) name.remove_prefix(prefix.size());
  return absl::AsciiStrToLower(name);
}

}  // namespace exportd
