// The permission matrix: every RPC of every exportd.v1 service, called through
// real gRPC by each role, on resources whose connection is shared with
// contributors and on resources whose connection is not. One table says what
// each cell must answer; the test refuses to pass while an RPC of the API has
// no row, so a new RPC cannot be added without deciding who may call it.
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor_database.h"
#include "gtest/gtest.h"
#include "server/api/api_test_fixture.h"

namespace exportd::api {
namespace {

using ::testing::HasSubstr;

// What a cell must answer.
enum class Expect {
  kAllowed,  // past every permission check: no PERMISSION_DENIED, NOT_FOUND, UNAUTHENTICATED
  kDenied,   // PERMISSION_DENIED
  kHidden,   // NOT_FOUND, as for a resource that does not exist
};

const char* ExpectName(Expect e) {
  switch (e) {
    case Expect::kAllowed:
      return "allowed";
    case Expect::kDenied:
      return "PERMISSION_DENIED";
    case Expect::kHidden:
      return "NOT_FOUND";
  }
  return "?";
}

// The resources one cell acts on, made fresh for it by the admin: a
// connection (shared with contributors or not), a segment, an export of the
// segment on the connection, and a finished run of the export.
struct Target {
  std::string connection;
  std::string segment;
  std::string export_name;
  std::string run_id;
  std::string unique;  // a suffix for names the call creates
};

class PermissionMatrixTest : public ApiTest {
 protected:
  using Call = std::function<grpc::Status(grpc::ClientContext*, const Target&)>;

  struct Row {
    std::string method;  // "/exportd.v1.RunService/RunExport"
    // Answers for: admin, contributor, viewer; each on a shared and on a
    // private connection.
    Expect admin_shared, admin_private;
    Expect contributor_shared, contributor_private;
    Expect viewer_shared, viewer_private;
    Call call;
  };

  // Makes the resources of one cell as the admin.
  Target MakeTarget(bool shared) {
    int n = ++targets_;
    Target t;
    t.unique = absl::StrCat(n);
    t.connection = absl::StrCat(shared ? "shared-" : "private-", n);
    t.segment = absl::StrCat("segment-", n);
    t.export_name = absl::StrCat("export-", n);
    auto req = ConnectionRequest(t.connection);
    req.set_shared_with_contributors(shared);
    v1::Connection c;
    EXPECT_TRUE(CreateConnection(req, &c).ok());
    v1::Segment s;
    EXPECT_TRUE(CreateSegment(t.segment, {"k"}, &s).ok());
    v1::CreateExportRequest ereq;
    ereq.set_name(t.export_name);
    ereq.set_connection(t.connection);
    ereq.add_segments(t.segment);
    auto* m = ereq.add_mappings();
    m->set_destination_field("key");
    m->set_profile_field("k");
    ereq.mutable_schedule()->set_enabled(true);
    ereq.mutable_schedule()->set_cron("0 6 * * *");
    v1::Export e;
    EXPECT_TRUE(exports_->CreateExport(As(kAdmin).get(), ereq, &e).ok());
    v1::RunExportRequest run_req;
    run_req.set_export_(t.export_name);
    v1::Run run;
    EXPECT_TRUE(runs_->RunExport(As(kAdmin).get(), run_req, &run).ok());
    t.run_id = run.id();
    WaitUntilFinal(t.run_id);
    return t;
  }

  void WaitUntilFinal(const std::string& run_id) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      v1::GetRunRequest get;
      get.set_run_id(run_id);
      v1::Run run;
      if (runs_->GetRun(As(kAdmin).get(), get, &run).ok() &&
          (run.state() == v1::RUN_STATE_SUCCEEDED || run.state() == v1::RUN_STATE_FAILED ||
           run.state() == v1::RUN_STATE_SKIPPED || run.state() == v1::RUN_STATE_CANCELED ||
           run.state() == v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS)) {
        return;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "run " << run_id << " did not finish";
  }

  std::vector<Row> Table() {
    constexpr Expect A = Expect::kAllowed, D = Expect::kDenied, H = Expect::kHidden;
    auto conn = connections_.get();
    auto seg = segments_.get();
    auto exp = exports_.get();
    auto run = runs_.get();
    auto dest = destinations_.get();
    auto audit = audit_.get();
    return {
        // ConnectionService: admins manage connections; contributors see the
        // shared ones (a private one does not exist for them); viewers none.
        {"/exportd.v1.ConnectionService/CreateConnection", A, A, D, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           auto req = ConnectionRequest("new-" + t.unique);
           v1::Connection out;
           return conn->CreateConnection(ctx, req, &out);
         }},
        {"/exportd.v1.ConnectionService/GetConnection", A, A, A, H, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::GetConnectionRequest req;
           req.set_connection(t.connection);
           v1::Connection out;
           return conn->GetConnection(ctx, req, &out);
         }},
        {"/exportd.v1.ConnectionService/ListConnections", A, A, A, A, D, D,
         [=](grpc::ClientContext* ctx, const Target&) {
           v1::ListConnectionsResponse out;
           return conn->ListConnections(ctx, v1::ListConnectionsRequest(), &out);
         }},
        {"/exportd.v1.ConnectionService/UpdateConnection", A, A, D, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::UpdateConnectionRequest req;
           req.set_connection(t.connection);
           req.set_display_name("renamed-" + t.unique);
           v1::Connection out;
           return conn->UpdateConnection(ctx, req, &out);
         }},
        {"/exportd.v1.ConnectionService/DeleteConnection", A, A, D, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::DeleteConnectionRequest req;
           req.set_connection(t.connection);
           req.set_delete_exports(true);
           v1::DeleteConnectionResponse out;
           return conn->DeleteConnection(ctx, req, &out);
         }},
        {"/exportd.v1.ConnectionService/TestConnection", A, A, D, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::TestConnectionRequest req;
           req.set_connection(t.connection);
           v1::TestConnectionResponse out;
           return conn->TestConnection(ctx, req, &out);
         }},
        // SegmentService: segments belong to no connection.
        {"/exportd.v1.SegmentService/CreateSegment", A, A, A, A, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::CreateSegmentRequest req;
           req.set_name("new-segment-" + t.unique);
           v1::Segment out;
           return seg->CreateSegment(ctx, req, &out);
         }},
        {"/exportd.v1.SegmentService/GetSegment", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::GetSegmentRequest req;
           req.set_segment(t.segment);
           v1::Segment out;
           return seg->GetSegment(ctx, req, &out);
         }},
        {"/exportd.v1.SegmentService/ListSegments", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target&) {
           v1::ListSegmentsResponse out;
           return seg->ListSegments(ctx, v1::ListSegmentsRequest(), &out);
         }},
        {"/exportd.v1.SegmentService/DeleteSegment", A, A, A, A, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::DeleteSegmentRequest req;
           req.set_segment(t.segment);
           v1::DeleteSegmentResponse out;
           return seg->DeleteSegment(ctx, req, &out);
         }},
        {"/exportd.v1.SegmentService/UploadMembers", A, A, A, A, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::UploadMembersResponse out;
           auto writer = seg->UploadMembers(ctx, &out);
           v1::UploadMembersRequest req;
           req.mutable_header()->set_segment(t.segment);
           writer->Write(req);
           req.Clear();
           auto* row = req.mutable_chunk()->add_rows();
           row->set_profile_id("p1");
           row->add_values()->set_string_value("v");
           writer->Write(req);
           req.Clear();
           req.mutable_trailer()->set_row_count(1);
           writer->Write(req);
           writer->WritesDone();
           return writer->Finish();
         }},
        {"/exportd.v1.SegmentService/ListMembers", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::ListMembersRequest req;
           req.set_segment(t.segment);
           v1::ListMembersResponse out;
           return seg->ListMembers(ctx, req, &out);
         }},
        // ExportService: everyone reads; contributors change only exports on
        // shared connections, and cannot name a private one.
        {"/exportd.v1.ExportService/CreateExport", A, A, A, H, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::CreateExportRequest req;
           req.set_name("new-export-" + t.unique);
           req.set_connection(t.connection);
           req.add_segments(t.segment);
           auto* m = req.add_mappings();
           m->set_destination_field("key");
           m->set_profile_field("k");
           v1::Export out;
           return exp->CreateExport(ctx, req, &out);
         }},
        {"/exportd.v1.ExportService/GetExport", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::GetExportRequest req;
           req.set_export_(t.export_name);
           v1::Export out;
           return exp->GetExport(ctx, req, &out);
         }},
        {"/exportd.v1.ExportService/ListExports", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target&) {
           v1::ListExportsResponse out;
           return exp->ListExports(ctx, v1::ListExportsRequest(), &out);
         }},
        {"/exportd.v1.ExportService/UpdateExport", A, A, A, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::UpdateExportRequest req;
           req.set_export_(t.export_name);
           req.set_mode(v1::EXPORT_MODE_ADD_ONLY);
           v1::Export out;
           return exp->UpdateExport(ctx, req, &out);
         }},
        {"/exportd.v1.ExportService/DeleteExport", A, A, A, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::DeleteExportRequest req;
           req.set_export_(t.export_name);
           v1::DeleteExportResponse out;
           return exp->DeleteExport(ctx, req, &out);
         }},
        {"/exportd.v1.ExportService/DuplicateExport", A, A, A, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::DuplicateExportRequest req;
           req.set_export_(t.export_name);
           req.set_new_name("copy-" + t.unique);
           v1::Export out;
           return exp->DuplicateExport(ctx, req, &out);
         }},
        {"/exportd.v1.ExportService/DetachExport", A, A, A, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::DetachExportRequest req;
           req.set_export_(t.export_name);
           v1::Export out;
           return exp->DetachExport(ctx, req, &out);
         }},
        // RunService: everyone reads runs; contributors run and cancel only
        // exports on shared connections.
        {"/exportd.v1.RunService/RunExport", A, A, A, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::RunExportRequest req;
           req.set_export_(t.export_name);
           v1::Run out;
           return run->RunExport(ctx, req, &out);
         }},
        {"/exportd.v1.RunService/RunAll", A, A, A, A, D, D,
         [=](grpc::ClientContext* ctx, const Target&) {
           v1::RunAllResponse out;
           return run->RunAll(ctx, v1::RunAllRequest(), &out);
         }},
        {"/exportd.v1.RunService/CancelRun", A, A, A, D, D, D,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::CancelRunRequest req;
           req.set_run_id(t.run_id);
           v1::Run out;
           return run->CancelRun(ctx, req, &out);
         }},
        {"/exportd.v1.RunService/GetRun", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::GetRunRequest req;
           req.set_run_id(t.run_id);
           v1::Run out;
           return run->GetRun(ctx, req, &out);
         }},
        {"/exportd.v1.RunService/ListRuns", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::ListRunsRequest req;
           req.set_export_(t.export_name);
           v1::ListRunsResponse out;
           return run->ListRuns(ctx, req, &out);
         }},
        {"/exportd.v1.RunService/WatchRun", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::WatchRunRequest req;
           req.set_run_id(t.run_id);
           auto reader = run->WatchRun(ctx, req);
           v1::Run out;
           while (reader->Read(&out)) {
           }
           return reader->Finish();
         }},
        {"/exportd.v1.RunService/ListRejections", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target& t) {
           v1::ListRejectionsRequest req;
           req.set_run_id(t.run_id);
           v1::ListRejectionsResponse out;
           return run->ListRejections(ctx, req, &out);
         }},
        // DestinationService: manifests are for everyone.
        {"/exportd.v1.DestinationService/ListDestinations", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target&) {
           v1::ListDestinationsResponse out;
           return dest->ListDestinations(ctx, v1::ListDestinationsRequest(), &out);
         }},
        {"/exportd.v1.DestinationService/GetDestination", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target&) {
           v1::GetDestinationRequest req;
           req.set_name("fake");
           v1::Destination out;
           return dest->GetDestination(ctx, req, &out);
         }},
        // AuditService: the log is for admins.
        {"/exportd.v1.AuditService/ListAuditEntries", A, A, D, D, D, D,
         [=](grpc::ClientContext* ctx, const Target&) {
           v1::ListAuditEntriesResponse out;
           return audit->ListAuditEntries(ctx, v1::ListAuditEntriesRequest(), &out);
         }},
        {"/exportd.v1.AuditService/WhoAmI", A, A, A, A, A, A,
         [=](grpc::ClientContext* ctx, const Target&) {
           v1::WhoAmIResponse out;
           return audit->WhoAmI(ctx, v1::WhoAmIRequest(), &out);
         }},
    };
  }

  int targets_ = 0;
};

// Every RPC of every exportd.v1 service, from the generated descriptors.
std::set<std::string> AllMethods() {
  std::vector<std::string> files;
  google::protobuf::DescriptorPool::internal_generated_database()->FindAllFileNames(&files);
  std::set<std::string> methods;
  for (const std::string& name : files) {
    if (!absl::StartsWith(name, "exportd/v1/")) continue;
    const auto* file = google::protobuf::DescriptorPool::generated_pool()->FindFileByName(name);
    if (file == nullptr) continue;
    for (int s = 0; s < file->service_count(); ++s) {
      const auto* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        methods.insert(absl::StrCat("/", service->full_name(), "/", service->method(m)->name()));
      }
    }
  }
  return methods;
}

TEST_F(PermissionMatrixTest, EveryRpcHasARow) {
  std::set<std::string> rows;
  for (const Row& row : Table()) {
    EXPECT_TRUE(rows.insert(row.method).second) << row.method << " has two rows";
  }
  std::set<std::string> methods = AllMethods();
  EXPECT_GT(methods.size(), 25u);  // the descriptors were found at all
  for (const std::string& method : methods) {
    EXPECT_TRUE(rows.count(method)) << method << " has no row in the permission matrix: decide "
                                    << "who may call it and add the row";
  }
  for (const std::string& row : rows) {
    EXPECT_TRUE(methods.count(row)) << row << " is in the matrix but not in the API";
  }
}

TEST_F(PermissionMatrixTest, EachRoleOnSharedAndPrivateConnections) {
  struct Who {
    const char* token;
    const char* name;
  };
  const Who roles[] = {{kAdmin, "admin"}, {kContributor, "contributor"}, {kViewer, "viewer"}};
  for (const Row& row : Table()) {
    const Expect expected[3][2] = {{row.admin_shared, row.admin_private},
                                   {row.contributor_shared, row.contributor_private},
                                   {row.viewer_shared, row.viewer_private}};
    for (int r = 0; r < 3; ++r) {
      for (bool shared : {true, false}) {
        Target t = MakeTarget(shared);
        auto ctx = As(roles[r].token);
        ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
        grpc::Status status = row.call(ctx.get(), t);
        Expect want = expected[r][shared ? 0 : 1];
        std::string cell =
            absl::StrCat(row.method, " as ", roles[r].name, " on a ", shared ? "shared" : "private",
                         " connection: ", status.error_code(), " ", status.error_message());
        switch (want) {
          case Expect::kAllowed:
            EXPECT_NE(status.error_code(), grpc::PERMISSION_DENIED) << cell;
            EXPECT_NE(status.error_code(), grpc::NOT_FOUND) << cell;
            EXPECT_NE(status.error_code(), grpc::UNAUTHENTICATED) << cell;
            break;
          case Expect::kDenied:
            EXPECT_EQ(status.error_code(), grpc::PERMISSION_DENIED)
                << cell << " (want " << ExpectName(want) << ")";
            break;
          case Expect::kHidden:
            EXPECT_EQ(status.error_code(), grpc::NOT_FOUND)
                << cell << " (want " << ExpectName(want) << ")";
            // Nothing in the answer gives away that the connection exists.
            EXPECT_THAT(status.error_message(), HasSubstr("does not exist")) << cell;
            EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr("shared"))) << cell;
            break;
        }
        // Without a token every RPC is refused, whatever the role would allow.
        auto anonymous = As("");
        anonymous->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
        EXPECT_EQ(row.call(anonymous.get(), t).error_code(), grpc::UNAUTHENTICATED)
            << row.method << " without a token";
      }
    }
  }
}

// The reproduced attack: a contributor replaces a segment's members and runs
// an admin-only mirror export, which would empty the admin's audience.
class ContributorHoleTest : public PermissionMatrixTest {
 protected:
  // An upload of `segment` held open: runs of its exports wait in the queue
  // until Finish() commits it (empty).
  class Upload {
   public:
    Upload(ContributorHoleTest& test, const std::string& segment) : ctx_(test.As(kAdmin)) {
      writer_ = test.segments_->UploadMembers(ctx_.get(), &response_);
      v1::UploadMembersRequest header;
      header.mutable_header()->set_segment(segment);
      EXPECT_TRUE(writer_->Write(header));
      // The header is taken once the segment shows the upload in progress.
      absl::Time deadline = absl::Now() + absl::Seconds(20);
      for (;;) {
        v1::GetSegmentRequest get;
        get.set_segment(segment);
        v1::Segment s;
        EXPECT_TRUE(test.segments_->GetSegment(test.As(kAdmin).get(), get, &s).ok());
        if (s.upload_in_progress() || absl::Now() > deadline) break;
        absl::SleepFor(absl::Milliseconds(5));
      }
    }
    void Finish() {
      v1::UploadMembersRequest trailer;
      trailer.mutable_trailer()->set_row_count(0);
      EXPECT_TRUE(writer_->Write(trailer));
      writer_->WritesDone();
      EXPECT_TRUE(writer_->Finish().ok());
    }

   private:
    std::unique_ptr<grpc::ClientContext> ctx_;
    v1::UploadMembersResponse response_;
    std::unique_ptr<grpc::ClientWriter<v1::UploadMembersRequest>> writer_;
  };
};

TEST_F(ContributorHoleTest, RunAllRunsOnlyWhatTheContributorMayRun) {
  Target shared = MakeTarget(true);
  Target secret = MakeTarget(false);
  v1::RunAllResponse all;
  ASSERT_TRUE(runs_->RunAll(As(kContributor).get(), v1::RunAllRequest(), &all).ok());
  std::set<std::string> ran;
  for (const auto& r : all.runs()) ran.insert(r.export_name());
  EXPECT_TRUE(ran.count(shared.export_name));
  EXPECT_FALSE(ran.count(secret.export_name));
  for (const auto& r : all.runs()) {
    EXPECT_EQ(r.requested_by(), "bob");
    EXPECT_EQ(r.requested_by_role(), v1::ROLE_CONTRIBUTOR);
  }
  // The admin's run-all runs both.
  ASSERT_TRUE(runs_->RunAll(As(kAdmin).get(), v1::RunAllRequest(), &all).ok());
  ran.clear();
  for (const auto& r : all.runs()) ran.insert(r.export_name());
  EXPECT_TRUE(ran.count(shared.export_name));
  EXPECT_TRUE(ran.count(secret.export_name));
}

TEST_F(ContributorHoleTest, ListsHidePrivateConnectionsFromContributorsAndViewers) {
  Target shared = MakeTarget(true);
  Target secret = MakeTarget(false);
  for (const char* token : {kContributor, kViewer}) {
    v1::ListExportsResponse list;
    ASSERT_TRUE(exports_->ListExports(As(token).get(), v1::ListExportsRequest(), &list).ok());
    ASSERT_EQ(list.exports_size(), 2);
    for (const auto& e : list.exports()) {
      bool is_secret = e.name() == secret.export_name;
      EXPECT_EQ(e.connection_hidden(), is_secret) << e.name();
      EXPECT_EQ(e.connection_name().empty(), is_secret) << e.name();
      EXPECT_EQ(e.connection_id().empty(), is_secret) << e.name();
      EXPECT_THAT(e.DebugString(), ::testing::Not(HasSubstr(secret.connection)));
    }
    v1::GetExportRequest get;
    get.set_export_(secret.export_name);
    v1::Export e;
    ASSERT_TRUE(exports_->GetExport(As(token).get(), get, &e).ok());
    EXPECT_TRUE(e.connection_hidden());
    EXPECT_TRUE(e.connection_id().empty());
  }
  v1::ListExportsResponse list;
  ASSERT_TRUE(exports_->ListExports(As(kAdmin).get(), v1::ListExportsRequest(), &list).ok());
  for (const auto& e : list.exports()) {
    EXPECT_FALSE(e.connection_hidden());
    EXPECT_FALSE(e.connection_name().empty());
  }
}

TEST_F(ContributorHoleTest, ARunOfAConnectionUnsharedAfterTheTriggerIsSkipped) {
  Target t = MakeTarget(true);
  // Hold the run in the queue: it waits while its segment is being uploaded.
  Upload upload(*this, t.segment);
  v1::RunExportRequest run_req;
  run_req.set_export_(t.export_name);
  v1::Run run;
  ASSERT_TRUE(runs_->RunExport(As(kContributor).get(), run_req, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(run.requested_by_role(), v1::ROLE_CONTRIBUTOR);

  v1::UpdateConnectionRequest unshare;
  unshare.set_connection(t.connection);
  unshare.set_shared_with_contributors(false);
  v1::Connection c;
  ASSERT_TRUE(connections_->UpdateConnection(As(kAdmin).get(), unshare, &c).ok());

  upload.Finish();

  WaitUntilFinal(run.id());
  v1::GetRunRequest get;
  get.set_run_id(run.id());
  ASSERT_TRUE(runs_->GetRun(As(kAdmin).get(), get, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_SKIPPED);
  EXPECT_THAT(run.message(), HasSubstr("contributor 'bob'"));
  EXPECT_THAT(run.message(), HasSubstr("not shared with contributors"));
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->upsert_calls, 0);
  EXPECT_EQ(state_->remove_calls, 0);
}

TEST_F(ContributorHoleTest, AnAdminTriggerJoiningAContributorsQueuedRunKeepsItRunnable) {
  Target t = MakeTarget(true);
  Upload upload(*this, t.segment);
  v1::RunExportRequest run_req;
  run_req.set_export_(t.export_name);
  v1::Run first, second;
  ASSERT_TRUE(runs_->RunExport(As(kContributor).get(), run_req, &first).ok());
  ASSERT_TRUE(runs_->RunExport(As(kAdmin).get(), run_req, &second).ok());
  EXPECT_EQ(first.id(), second.id());
  EXPECT_EQ(second.requested_by(), "alice");

  v1::UpdateConnectionRequest unshare;
  unshare.set_connection(t.connection);
  unshare.set_shared_with_contributors(false);
  v1::Connection c;
  ASSERT_TRUE(connections_->UpdateConnection(As(kAdmin).get(), unshare, &c).ok());
  upload.Finish();

  WaitUntilFinal(first.id());
  v1::GetRunRequest get;
  get.set_run_id(first.id());
  v1::Run run;
  ASSERT_TRUE(runs_->GetRun(As(kAdmin).get(), get, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
}

}  // namespace
}  // namespace exportd::api
