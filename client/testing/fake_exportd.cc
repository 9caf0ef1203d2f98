#include "client/testing/fake_exportd.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace exportd::client::fakes {
namespace {

void RecordAuth(grpc::ServerContext* context, absl::Mutex& mu, std::string& out) {
  auto it = context->client_metadata().find("authorization");
  absl::MutexLock lock(&mu);
  out = it == context->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
}

}  // namespace

class FakeExportd::SegmentServiceImpl final : public exportd::v1::SegmentService::Service {
 public:
  explicit SegmentServiceImpl(std::shared_ptr<State> state) : state_(std::move(state)) {}

  grpc::Status CreateSegment(grpc::ServerContext* context,
                             const exportd::v1::CreateSegmentRequest* request,
                             exportd::v1::Segment* response) override {
    RecordAuth(context, state_->mu, state_->last_authorization);
    absl::MutexLock lock(&state_->mu);
    if (state_->segments.count(request->name()) > 0) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          absl::StrCat("segment '", request->name(), "' already exists"));
    }
    exportd::v1::Segment& segment = state_->segments[request->name()];
    segment.set_id(absl::StrCat("seg-", state_->segments.size()));
    segment.set_name(request->name());
    *segment.mutable_schema() = request->schema();
    *response = segment;
    return grpc::Status::OK;
  }

  grpc::Status DeleteSegment(grpc::ServerContext* context,
                             const exportd::v1::DeleteSegmentRequest* request,
                             exportd::v1::DeleteSegmentResponse*) override {
    RecordAuth(context, state_->mu, state_->last_authorization);
    absl::MutexLock lock(&state_->mu);
    for (auto it = state_->segments.begin(); it != state_->segments.end(); ++it) {
      if (it->second.id() == request->segment() || it->first == request->segment()) {
        state_->rows.erase(it->first);
        state_->segments.erase(it);
        return grpc::Status::OK;
      }
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("segment '", request->segment(), "' not found"));
  }

  grpc::Status GetSegment(grpc::ServerContext* context,
                          const exportd::v1::GetSegmentRequest* request,
                          exportd::v1::Segment* response) override {
    RecordAuth(context, state_->mu, state_->last_authorization);
    absl::MutexLock lock(&state_->mu);
    auto it = state_->segments.find(request->segment());
    if (it == state_->segments.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("segment '", request->segment(), "' not found"));
    }
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status UploadMembers(grpc::ServerContext* context,
                             grpc::ServerReader<exportd::v1::UploadMembersRequest>* reader,
                             exportd::v1::UploadMembersResponse* response) override {
    RecordAuth(context, state_->mu, state_->last_authorization);
    exportd::v1::UploadMembersRequest request;
    if (!reader->Read(&request) || !request.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a header");
    }
    const exportd::v1::UploadMembersRequest::Header header = request.header();
    {
      absl::MutexLock lock(&state_->mu);
      if (state_->segments.count(header.segment()) == 0) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND,
                            absl::StrCat("segment '", header.segment(), "' not found"));
      }
    }
    int64_t rows = 0;
    std::optional<int64_t> trailer_count;
    std::vector<exportd::v1::MemberRow> first;
    while (reader->Read(&request)) {
      if (request.has_trailer()) {
        trailer_count = request.trailer().row_count();
        continue;
      }
      for (const auto& row : request.chunk().rows()) {
        if (first.size() < 100) first.push_back(row);
      }
      rows += request.chunk().rows_size();
    }
    absl::MutexLock lock(&state_->mu);
    if (context->IsCancelled()) {
      ++state_->cancelled_uploads;
      return grpc::Status(grpc::StatusCode::CANCELLED, "upload cancelled");
    }
    if (trailer_count != rows) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the upload ended without a matching trailer; nothing was changed");
    }
    exportd::v1::Segment& segment = state_->segments[header.segment()];
    if (!header.schema().empty()) *segment.mutable_schema() = header.schema();
    segment.set_member_count(rows);
    segment.set_snapshot_version(segment.snapshot_version() + 1);
    state_->rows[header.segment()] = std::move(first);
    *response->mutable_segment() = segment;
    response->set_rows_received(rows);
    return grpc::Status::OK;
  }

  // One page: the first rows of the last upload.
  grpc::Status ListMembers(grpc::ServerContext* context,
                           const exportd::v1::ListMembersRequest* request,
                           exportd::v1::ListMembersResponse* response) override {
    RecordAuth(context, state_->mu, state_->last_authorization);
    absl::MutexLock lock(&state_->mu);
    auto it = state_->segments.find(request->segment());
    if (it == state_->segments.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("segment '", request->segment(), "' not found"));
    }
    *response->mutable_schema() = it->second.schema();
    for (const auto& row : state_->rows[request->segment()]) *response->add_rows() = row;
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<State> state_;
};

class FakeExportd::ConnectionServiceImpl final : public exportd::v1::ConnectionService::Service {
 public:
  explicit ConnectionServiceImpl(std::shared_ptr<State> state) : state_(std::move(state)) {}

  // "shared" answers as exportd answers a contributor: id, name, type and
  // sharing only. Any other name is NOT_FOUND.
  grpc::Status GetConnection(grpc::ServerContext* context,
                             const exportd::v1::GetConnectionRequest* request,
                             exportd::v1::Connection* response) override {
    RecordAuth(context, state_->mu, state_->last_authorization);
    if (request->connection() == "shared") {
      response->set_id("conn-1");
      response->set_display_name("shared");
      response->set_destination_type("iterable");
      response->set_shared_with_contributors(true);
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("connection '", request->connection(), "' not found"));
  }

  grpc::Status CreateConnection(grpc::ServerContext* context,
                                const exportd::v1::CreateConnectionRequest* request,
                                exportd::v1::Connection* response) override {
    RecordAuth(context, state_->mu, state_->last_authorization);
    {
      absl::MutexLock lock(&state_->mu);
      state_->last_create_connection = *request;
    }
    response->set_id("conn-1");
    response->set_display_name(request->display_name());
    response->set_destination_type(request->destination_type());
    response->set_consent_accepted_by("admin");
    response->set_consent_statement_version(request->privacy_statement_version());
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<State> state_;
};

class FakeExportd::DestinationServiceImpl final : public exportd::v1::DestinationService::Service {
 public:
  grpc::Status GetDestination(grpc::ServerContext*,
                              const exportd::v1::GetDestinationRequest* request,
                              exportd::v1::Destination* response) override {
    if (request->name() != "iterable") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("no destination named '", request->name(), "'"));
    }
    response->set_name("iterable");
    response->set_display_name("Iterable");
    response->set_privacy_statement(kFakePrivacyStatement);
    response->set_privacy_statement_version(kFakePrivacyStatementVersion);
    return grpc::Status::OK;
  }
};

class FakeExportd::RunServiceImpl final : public exportd::v1::RunService::Service {
 public:
  int waiting_watches() const { return waiting_watches_.load(); }

  grpc::Status RunExport(grpc::ServerContext*, const exportd::v1::RunExportRequest* request,
                         exportd::v1::Run* response) override {
    *response = Stage(request->export_() == "ok" ? "run-ok" : "run-fails", 0);
    // Like exportd: a second request while the run is queued joins it.
    if (run_requested_.exchange(true)) response->set_joined_queued_run(true);
    return grpc::Status::OK;
  }

  // "run-ok" is RUNNING when canceled; its stream then ends CANCELED. A
  // "run-fails" cancel finds it ended already.
  grpc::Status CancelRun(grpc::ServerContext*, const exportd::v1::CancelRunRequest* request,
                         exportd::v1::Run* response) override {
    *response = Stage(request->run_id(), request->run_id() == "run-ok" ? 1 : 2);
    if (request->run_id() == "run-ok") canceled_.store(true);
    return grpc::Status::OK;
  }

  grpc::Status GetRun(grpc::ServerContext*, const exportd::v1::GetRunRequest* request,
                      exportd::v1::Run* response) override {
    if (request->run_id() == "run-slow") {
      *response = Stage("run-ok", 1);
      response->set_id("run-slow");
      return grpc::Status::OK;
    }
    if (request->run_id() == "run-retrying") {
      *response = Stage("run-fails", 2);
      response->set_id("run-retrying");
      response->set_state(exportd::v1::RUN_STATE_FAILED_RETRYING);
      response->set_attempt(1);
      response->set_next_attempt_at_micros(1714564800000000);  // 2024-05-01 12:00:00 UTC
      response->set_message(
          "Iterable request failed after 2 tries: GET /api/lists: HTTP 503; the run will be "
          "tried again (run attempt 2 of 3) in 30s");
      return grpc::Status::OK;
    }
    *response = Stage(request->run_id(), 2);
    return grpc::Status::OK;
  }

  // "run-ok" has two rejections: one in segment VIP, one in a segment deleted
  // since (no name).
  grpc::Status ListRejections(grpc::ServerContext*,
                              const exportd::v1::ListRejectionsRequest* request,
                              exportd::v1::ListRejectionsResponse* response) override {
    if (request->run_id() != "run-ok") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("run '", request->run_id(), "' not found"));
    }
    exportd::v1::Rejection* r = response->add_rejections();
    r->set_run_id("run-ok");
    r->set_segment_id("seg-vip");
    r->set_segment_name("VIP");
    r->set_profile_id("p1");
    r->set_reason_code("invalid_email");
    r->set_message("not an email");
    r = response->add_rejections();
    r->set_run_id("run-ok");
    r->set_segment_id("seg-gone");
    r->set_profile_id("p2");
    r->set_reason_code("invalid_email");
    r->set_message("not an email");
    response->set_total(2);
    return grpc::Status::OK;
  }

  grpc::Status WatchRun(grpc::ServerContext* context, const exportd::v1::WatchRunRequest* request,
                        grpc::ServerWriter<exportd::v1::Run>* writer) override {
    if (request->run_id() == "run-slow") {
      // Stays RUNNING until the client goes away.
      exportd::v1::Run run = Stage("run-ok", 1);
      run.set_id("run-slow");
      writer->Write(run);
      waiting_watches_.fetch_add(1);
      while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(10));
      waiting_watches_.fetch_sub(1);
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    if (request->run_id() != "run-ok" && request->run_id() != "run-fails") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("run '", request->run_id(), "' not found"));
    }
    for (int stage = 0; stage < 3; ++stage) {
      exportd::v1::Run run = Stage(request->run_id(), stage);
      if (stage == 2 && canceled_.load()) run.set_state(exportd::v1::RUN_STATE_CANCELED);
      writer->Write(run);
    }
    return grpc::Status::OK;
  }

 private:
  std::atomic<int> waiting_watches_{0};
  std::atomic<bool> canceled_{false};
  std::atomic<bool> run_requested_{false};
  // Stage 0: queued; 1: running, half done; 2: the end.
  static exportd::v1::Run Stage(const std::string& id, int stage) {
    exportd::v1::Run run;
    run.set_id(id);
    run.set_export_name(id == "run-ok" ? "ok" : "fails");
    run.set_eta_seconds(-1);
    exportd::v1::SegmentProgress* segment = run.add_segments();
    segment->set_segment_name("VIP");
    segment->set_total_members(1000);
    if (stage == 0) {
      run.set_state(exportd::v1::RUN_STATE_QUEUED);
      return run;
    }
    segment->set_to_add(1000);
    if (stage == 1) {
      run.set_state(exportd::v1::RUN_STATE_RUNNING);
      segment->set_added(500);
      run.set_rate(250);
      run.set_eta_seconds(2);
      return run;
    }
    if (id == "run-ok") {
      run.set_state(exportd::v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS);
      segment->set_added(998);
      segment->set_rejected(2);
    } else {
      run.set_state(exportd::v1::RUN_STATE_FAILED);
      segment->set_added(500);
      run.set_message("destination said no");
    }
    return run;
  }
};

exportd::v1::ServerStatus FakeServerStatus() {
  exportd::v1::ServerStatus status;
  status.set_version("9.8.7");
  status.set_plugin_abi_version(3);
  status.set_store_kind("postgresql");
  status.set_store_location("exportd on db.internal:5432");
  status.set_replica("host-a:41");
  auto* d = status.add_destinations();
  d->set_name("iterable");
  d->set_version("1.2.0");
  auto* run = status.add_runs_in_progress();
  run->set_run_id("run-1");
  run->set_export_name("vip");
  run->set_state(exportd::v1::RUN_STATE_RUNNING);
  run->set_replica("host-b:7");
  run = status.add_runs_in_progress();
  run->set_run_id("run-2");
  run->set_export_name("churn\n\x1b[2J");
  run->set_state(exportd::v1::RUN_STATE_FAILED_RETRYING);
  status.set_queued_runs(3);
  status.set_oldest_queued_age_seconds(125);
  auto* next = status.add_next_scheduled_runs();
  next->set_export_name("daily");
  next->set_at_micros(1714564800000000);  // 2024-05-01 12:00:00 UTC
  status.set_time_micros(1714561200000000);
  return status;
}

class FakeExportd::ServerServiceImpl final : public exportd::v1::ServerService::Service {
 public:
  grpc::Status GetServerStatus(grpc::ServerContext*, const exportd::v1::GetServerStatusRequest*,
                               exportd::v1::ServerStatus* response) override {
    *response = FakeServerStatus();
    return grpc::Status::OK;
  }
};

class FakeExportd::ExportServiceImpl final : public exportd::v1::ExportService::Service {
 public:
  explicit ExportServiceImpl(std::shared_ptr<State> state) : state_(std::move(state)) {}

  grpc::Status CreateExport(grpc::ServerContext*, const exportd::v1::CreateExportRequest* request,
                            exportd::v1::Export* response) override {
    absl::MutexLock lock(&state_->mu);
    state_->last_create_export = *request;
    exportd::v1::Export e;
    e.set_id(absl::StrCat("exp-", request->name()));
    e.set_name(request->name());
    e.set_notify_url(request->notify_url());
    *e.mutable_notify_on() = request->notify_on();
    e.set_notify_secret_set(!request->notify_url().empty());
    state_->exports[e.name()] = e;
    *response = e;
    if (e.notify_secret_set()) response->set_new_notify_secret("fake-signing-secret");
    return grpc::Status::OK;
  }

  grpc::Status GetExport(grpc::ServerContext*, const exportd::v1::GetExportRequest* request,
                         exportd::v1::Export* response) override {
    absl::MutexLock lock(&state_->mu);
    auto it = state_->exports.find(request->export_());
    if (it == state_->exports.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("export '", request->export_(), "' does not exist"));
    }
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status UpdateExport(grpc::ServerContext*, const exportd::v1::UpdateExportRequest* request,
                            exportd::v1::Export* response) override {
    absl::MutexLock lock(&state_->mu);
    state_->last_update_export = *request;
    exportd::v1::Export& e = state_->exports[request->export_()];
    e.set_name(request->export_());
    if (request->has_notify_url()) e.set_notify_url(request->notify_url());
    if (request->notify_on_size() > 0) *e.mutable_notify_on() = request->notify_on();
    e.set_notify_secret_set(!e.notify_url().empty());
    *response = e;
    if (request->rotate_notify_secret()) response->set_new_notify_secret("rotated-signing-secret");
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<State> state_;
};

FakeExportd::FakeExportd()
    : state_(std::make_shared<State>()),
      segments_(std::make_unique<SegmentServiceImpl>(state_)),
      connections_(std::make_unique<ConnectionServiceImpl>(state_)),
      destinations_(std::make_unique<DestinationServiceImpl>()),
      runs_(std::make_unique<RunServiceImpl>()),
      status_(std::make_unique<ServerServiceImpl>()),
      exports_(std::make_unique<ExportServiceImpl>(state_)) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(segments_.get());
  builder.RegisterService(connections_.get());
  builder.RegisterService(destinations_.get());
  builder.RegisterService(runs_.get());
  builder.RegisterService(status_.get());
  builder.RegisterService(exports_.get());
  server_ = builder.BuildAndStart();
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeExportd::~FakeExportd() { server_->Shutdown(); }

std::optional<exportd::v1::Segment> FakeExportd::segment(const std::string& name) {
  absl::MutexLock lock(&state_->mu);
  auto it = state_->segments.find(name);
  if (it == state_->segments.end()) return std::nullopt;
  return it->second;
}

std::vector<exportd::v1::MemberRow> FakeExportd::first_rows(const std::string& name) {
  absl::MutexLock lock(&state_->mu);
  return state_->rows[name];
}

exportd::v1::CreateConnectionRequest FakeExportd::last_create_connection() {
  absl::MutexLock lock(&state_->mu);
  return state_->last_create_connection;
}

int FakeExportd::waiting_watches() { return runs_->waiting_watches(); }

int FakeExportd::cancelled_uploads() {
  absl::MutexLock lock(&state_->mu);
  return state_->cancelled_uploads;
}

exportd::v1::CreateExportRequest FakeExportd::last_create_export() {
  absl::MutexLock lock(&state_->mu);
  return state_->last_create_export;
}

exportd::v1::UpdateExportRequest FakeExportd::last_update_export() {
  absl::MutexLock lock(&state_->mu);
  return state_->last_update_export;
}

std::string FakeExportd::last_authorization() {
  absl::MutexLock lock(&state_->mu);
  return state_->last_authorization;
}

}  // namespace exportd::client::fakes
