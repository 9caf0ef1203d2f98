#include "server/engine/run_queue.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/run_states.h"

namespace exportd::engine {

absl::StatusOr<v1::Run> RunQueue::Enqueue(v1::Run fresh,
                                          const std::function<void(v1::Run&)>& join) {
  absl::MutexLock lock(&enqueue_mu_);
  EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Run> unfinished, store_->ListUnfinishedRuns());
  const std::int64_t now = options_.timing.clock->NowMicros();
  for (const v1::Run& queued : unfinished) {
    if (queued.export_id() != fresh.export_id() || queued.dry_run() != fresh.dry_run() ||
        queued.state() != v1::RUN_STATE_QUEUED || queued.lease_expires_at_micros() > now) {
      continue;
    }
    absl::StatusOr<v1::Run> joined =
        store_->UpdateUnclaimedRun(queued.id(), now, [&](v1::Run& run) -> absl::Status {
          if (run.state() != v1::RUN_STATE_QUEUED) {
            return absl::FailedPreconditionError("no longer queued");
          }
          join(run);
          return absl::OkStatus();
        });
    if (joined.ok()) return joined;
    // Claimed (or ended) meanwhile: it cannot absorb the trigger.
    if (!absl::IsFailedPrecondition(joined.status())) return joined.status();
  }
  EXPORTD_RETURN_IF_ERROR(store_->CreateRun(fresh));
  return fresh;
}

absl::StatusOr<std::optional<store::ClaimedRun>> RunQueue::Claim() {
  store::ClaimRequest request;
  request.holder = options_.replica_id;
  request.lease = options_.timing.lease;
  request.now_micros = options_.timing.clock->NowMicros();
  return store_->ClaimNextRun(request);
}

absl::StatusOr<v1::Run> RunQueue::Cancel(absl::string_view run_id, const std::string& message) {
  const std::int64_t now = options_.timing.clock->NowMicros();
  absl::StatusOr<v1::Run> canceled =
      store_->UpdateUnclaimedRun(run_id, now, [&](v1::Run& run) -> absl::Status {
        EXPORTD_RETURN_IF_ERROR(CheckTransition(run.state(), v1::RUN_STATE_CANCELED));
        run.set_state(v1::RUN_STATE_CANCELED);
        run.set_message(message);
        run.set_finished_at_micros(now);
        run.set_eta_seconds(0);
        return absl::OkStatus();
      });
  if (canceled.ok() || !absl::IsFailedPrecondition(canceled.status())) return canceled;
  EXPORTD_ASSIGN_OR_RETURN(v1::Run run, store_->GetRun(run_id));
  if (IsFinal(run.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run '", run_id, "' already ended (", v1::RunState_Name(run.state()), ")"));
  }
  // Held by a replica: its next heartbeat tells it.
  EXPORTD_RETURN_IF_ERROR(store_->RequestCancel(run_id));
  return run;
}

}  // namespace exportd::engine
