// Run states and the transitions allowed between them: the one definition of
// "final", shared by the engine, the store, the API and exportctl.
//
//   QUEUED ──> RUNNING ──> SUCCEEDED | SUCCEEDED_WITH_REJECTIONS | FAILED | CANCELED
//     │           └──────> FAILED_RETRYING ──> QUEUED (next attempt) | FAILED | CANCELED
//     │                                         | SKIPPED
//     ├──> SKIPPED   (the export became inactive or was deleted before it ran)
//     └──> CANCELED
//   RUNNING ──> QUEUED  (the server restarted mid-run: it resumes from its checkpoint)
#ifndef EXPORTD_SERVER_COMMON_RUN_STATES_H_
#define EXPORTD_SERVER_COMMON_RUN_STATES_H_

#include <string>

#include "absl/status/status.h"
#include "exportd/v1/run.pb.h"

namespace exportd {

// True for states a run never leaves (UNSPECIFIED is not one: it is no state).
bool IsFinal(v1::RunState state);
// True when `from` may become `to`.
bool CanTransition(v1::RunState from, v1::RunState to);
// A final state that counts as success (SUCCEEDED, SUCCEEDED_WITH_REJECTIONS,
// SKIPPED).
bool IsSuccess(v1::RunState state);
// OK, or FAILED_PRECONDITION naming both states.
absl::Status CheckTransition(v1::RunState from, v1::RunState to);
// The state as metrics and logs label it: lower case, without RUN_STATE_
// ("succeeded_with_rejections").
std::string RunStateLabel(v1::RunState state);

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_RUN_STATES_H_
