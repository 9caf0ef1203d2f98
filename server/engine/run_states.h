// Run states and the transitions allowed between them.
//
//   QUEUED ──> RUNNING ──> SUCCEEDED | SUCCEEDED_WITH_REJECTIONS | FAILED | CANCELED
//     │           └──────> FAILED_RETRYING ──> QUEUED (next attempt) | FAILED | CANCELED
//     │                                         | SKIPPED
//     ├──> SKIPPED   (the export became inactive or was deleted before it ran)
//     └──> CANCELED
//   RUNNING ──> QUEUED  (the server restarted mid-run: it resumes from its checkpoint)
#ifndef EXPORTD_SERVER_ENGINE_RUN_STATES_H_
#define EXPORTD_SERVER_ENGINE_RUN_STATES_H_

#include "absl/status/status.h"
#include "exportd/v1/run.pb.h"

namespace exportd::engine {

// True for states a run never leaves.
bool IsFinal(v1::RunState state);
// True when `from` may become `to`.
bool CanTransition(v1::RunState from, v1::RunState to);
// OK, or FAILED_PRECONDITION naming both states.
absl::Status CheckTransition(v1::RunState from, v1::RunState to);

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_RUN_STATES_H_
