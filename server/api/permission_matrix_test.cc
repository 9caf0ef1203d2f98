// The permission matrix: every RPC of every exportd.v1 service, called through
// real gRPC by each role, on resources whose connection is shared with
// contributors and on resources whose connection is not. One table
// (permission_matrix.h, also run over HTTP) says what each cell must answer;
// the test refuses to pass while an RPC of the API has no row, so a new RPC
// cannot be added without deciding who may call it.
#include "server/api/permission_matrix.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::api {
namespace {

using ::testing::HasSubstr;

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
  ForEachCell([&](const Row& row, const Role& role, const Target& t, bool shared, Expect want) {
    auto ctx = As(role.token);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    grpc::Status status = CallGrpc(row, ctx.get(), t);
    ExpectAnswer(
        status, want,
        absl::StrCat(row.method, " as ", role.name, " on a ", shared ? "shared" : "private",
                     " connection: ", status.error_code(), " ", status.error_message()));
    // Without a token every RPC is refused, whatever the role would allow.
    auto anonymous = As("");
    anonymous->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    EXPECT_EQ(CallGrpc(row, anonymous.get(), t).error_code(), grpc::UNAUTHENTICATED)
        << row.method << " without a token";
  });
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
