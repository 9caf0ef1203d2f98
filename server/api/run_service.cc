#include "server/api/run_service.h"

#include <map>

#include <grpcpp/alarm.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/api/access.h"
#include "server/api/grpc_status.h"
#include "server/common/status_macros.h"
#include "server/engine/engine.h"
#include "server/common/run_states.h"

namespace exportd::api {
namespace {

constexpr char kService[] = "/exportd.v1.RunService/";

// ListRunLog's page sizes: when the request sets none, and at most.
constexpr int kDefaultRunLogPage = 100;
constexpr int kMaxRunLogPage = 1000;

// How often a watcher looks for news while a run is going: a new state is
// sent at once, new counts at most every kProgressInterval.
constexpr absl::Duration kWatchInterval = absl::Milliseconds(50);
constexpr absl::Duration kProgressInterval = absl::Milliseconds(200);

// Streams a run: the current state at once, then every change, until the
// run is final. Polls the engine on a gRPC alarm, so no thread waits.
class WatchReactor final : public grpc::ServerWriteReactor<v1::Run> {
 public:
  WatchReactor(const ServiceDeps& deps, grpc::CallbackServerContext* ctx, std::string run_id)
      : deps_(deps), run_id_(std::move(run_id)) {
    auto who = Authenticate(*ctx, *deps.authenticator);
    absl::Status status = who.ok() ? auth::Authorize(*who, auth::Action::kRead) : who.status();
    if (!status.ok()) {
      Finish(ToGrpcStatus(status));
      return;
    }
    Poll();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away"));
      return;
    }
    if (IsFinal(sent_.state())) {
      Finish(grpc::Status::OK);
      return;
    }
    ScheduleNextPoll();
  }

  void OnCancel() override { alarm_.Cancel(); }

  void OnDone() override { delete this; }

 private:
  void ScheduleNextPoll() {
    alarm_.Set(std::chrono::system_clock::now() +
                   std::chrono::microseconds(absl::ToInt64Microseconds(kWatchInterval)),
               [this](bool ok) {
                 if (ok) {
                   Poll();
                 } else {
                   Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch canceled"));
                 }
               });
  }

  void Poll() {
    auto run = deps_.engine->GetRun(run_id_);
    if (!run.ok()) {
      Finish(ToGrpcStatus(run.status()));
      return;
    }
    absl::Time now = absl::Now();
    bool news = first_ || run->state() != sent_.state() || run->message() != sent_.message() ||
                run->attempt() != sent_.attempt();
    if (!news && now - sent_at_ >= kProgressInterval) {
      news = run->SerializeAsString() != sent_.SerializeAsString();
    }
    if (news) {
      first_ = false;
      sent_ = std::move(*run);
      sent_at_ = now;
      StartWrite(&sent_);
      return;
    }
    ScheduleNextPoll();
  }

  const ServiceDeps deps_;
  const std::string run_id_;
  grpc::Alarm alarm_;
  v1::Run sent_;
  absl::Time sent_at_ = absl::InfinitePast();
  bool first_ = true;
};

}  // namespace

grpc::ServerUnaryReactor* RunService::RunExport(grpc::CallbackServerContext* ctx,
                                                const v1::RunExportRequest* req, v1::Run* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "RunExport"), auth::Action::kRunExports,
                     Audit::kYes, [&](const auth::Principal& who, std::string& resource) {
                       resource = absl::StrCat("export/", req->export_());
                       auto e = ExportFor(deps_, who, req->export_(), auth::Action::kRunExports);
                       if (!e.ok()) return e.status();
                       resource = absl::StrCat("export/", e->id());
                       engine::TriggerOptions options;
                       options.dry_run = req->dry_run();
                       options.full = req->full();
                       options.requested_by = who.name;
                       options.requested_by_role = who.role;
                       auto run = deps_.engine->Trigger(e->id(), options);
                       if (!run.ok()) return run.status();
                       resource = absl::StrCat("run/", run->id());
                       *resp = std::move(*run);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* RunService::RunAll(grpc::CallbackServerContext* ctx,
                                             const v1::RunAllRequest*, v1::RunAllResponse* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "RunAll"), auth::Action::kRunExports,
                     Audit::kYes, [&](const auth::Principal& who, std::string& resource) {
                       resource = "exports/*";
                       auto runs = deps_.engine->TriggerAll(who.name, who.role);
                       if (!runs.ok()) return runs.status();
                       for (auto& run : *runs) *resp->add_runs() = std::move(run);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* RunService::CancelRun(grpc::CallbackServerContext* ctx,
                                                const v1::CancelRunRequest* req, v1::Run* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "CancelRun"), auth::Action::kRunExports,
                     Audit::kYes, [&](const auth::Principal& who, std::string& resource) {
                       resource = absl::StrCat("run/", req->run_id());
                       auto known = deps_.engine->GetRun(req->run_id());
                       if (!known.ok()) return known.status();
                       // A run outlives a deleted export; only admins may touch it then.
                       auto e = ExportFor(deps_, who, known->export_id(),
                                          auth::Action::kRunExports);
                       if (!e.ok() && !(absl::IsNotFound(e.status()) &&
                                        who.role == v1::ROLE_ADMIN)) {
                         return e.status();
                       }
                       auto run = deps_.engine->Cancel(req->run_id());
                       if (!run.ok()) return run.status();
                       *resp = std::move(*run);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* RunService::GetRun(grpc::CallbackServerContext* ctx,
                                             const v1::GetRunRequest* req, v1::Run* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "GetRun"), auth::Action::kRead,
                     Audit::kNo, [&](const auth::Principal&, std::string&) {
                       auto run = deps_.engine->GetRun(req->run_id());
                       if (!run.ok()) return run.status();
                       *resp = std::move(*run);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* RunService::ListRuns(grpc::CallbackServerContext* ctx,
                                               const v1::ListRunsRequest* req,
                                               v1::ListRunsResponse* resp) {
  return HandleUnary(
      ctx, deps_, absl::StrCat(kService, "ListRuns"), auth::Action::kRead, Audit::kNo,
      [&](const auth::Principal&, std::string&) -> absl::Status {
        EXPORTD_ASSIGN_OR_RETURN(v1::Export e, deps_.store->GetExport(req->export_()));
        std::string next;
        EXPORTD_ASSIGN_OR_RETURN(
            auto runs, deps_.store->ListRuns(e.id(), {req->page_size(), req->page_token()}, &next));
        for (auto& run : runs) {
          // Unfinished runs: the engine's live view has the current progress.
          if (!IsFinal(run.state())) {
            auto live = deps_.engine->GetRun(run.id());
            if (live.ok()) run = std::move(*live);
          }
          *resp->add_runs() = std::move(run);
        }
        resp->set_next_page_token(next);
        return absl::OkStatus();
      });
}

grpc::ServerWriteReactor<v1::Run>* RunService::WatchRun(grpc::CallbackServerContext* ctx,
                                                        const v1::WatchRunRequest* req) {
  return new WatchReactor(deps_, ctx, req->run_id());
}

grpc::ServerUnaryReactor* RunService::ListRejections(grpc::CallbackServerContext* ctx,
                                                     const v1::ListRejectionsRequest* req,
                                                     v1::ListRejectionsResponse* resp) {
  return HandleUnary(
      ctx, deps_, absl::StrCat(kService, "ListRejections"), auth::Action::kRead, Audit::kNo,
      [&](const auth::Principal&, std::string&) -> absl::Status {
        EXPORTD_RETURN_IF_ERROR(deps_.store->GetRun(req->run_id()).status());
        std::string next;
        EXPORTD_ASSIGN_OR_RETURN(
            auto rejections,
            deps_.store->ListRejections(req->run_id(), {req->page_size(), req->page_token()},
                                        &next));
        // Each segment's name, looked up once per page; a segment deleted
        // since keeps only its id.
        std::map<std::string, std::string> names;
        for (auto& r : rejections) {
          auto [it, inserted] = names.emplace(r.segment_id(), "");
          if (inserted) {
            auto segment = deps_.store->GetSegment(r.segment_id());
            if (segment.ok()) {
              it->second = segment->name();
            } else if (!absl::IsNotFound(segment.status())) {
              return segment.status();
            }
          }
          r.set_segment_name(it->second);
          *resp->add_rejections() = std::move(r);
        }
        resp->set_next_page_token(next);
        EXPORTD_ASSIGN_OR_RETURN(std::int64_t total, deps_.store->CountRejections(req->run_id()));
        resp->set_total(total);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* RunService::ListRunLog(grpc::CallbackServerContext* ctx,
                                                 const v1::ListRunLogRequest* req,
                                                 v1::ListRunLogResponse* resp) {
  return HandleUnary(
      ctx, deps_, absl::StrCat(kService, "ListRunLog"), auth::Action::kRead, Audit::kNo,
      [&](const auth::Principal&, std::string&) -> absl::Status {
        if (req->after_seq() < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "after_seq ", req->after_seq(),
              " is negative; pass 0 for the first line, or the seq of the last line read"));
        }
        if (!v1::RunLogLevel_IsValid(req->min_level())) {
          return absl::InvalidArgumentError(absl::StrCat(
              "min_level ", req->min_level(),
              " is not a RunLogLevel; use RUN_LOG_LEVEL_DEBUG, _INFO, _WARNING or _ERROR"));
        }
        EXPORTD_RETURN_IF_ERROR(deps_.store->GetRun(req->run_id()).status());
        const int limit =
            req->page_size() <= 0 ? kDefaultRunLogPage : std::min(req->page_size(), kMaxRunLogPage);
        bool more = false;
        EXPORTD_ASSIGN_OR_RETURN(auto lines,
                                 deps_.store->ListRunLog(req->run_id(), req->after_seq(), limit,
                                                         req->min_level(), &more));
        if (more && !lines.empty()) resp->set_next_after_seq(lines.back().seq());
        for (auto& line : lines) *resp->add_lines() = std::move(line);
        return absl::OkStatus();
      });
}

}  // namespace exportd::api
