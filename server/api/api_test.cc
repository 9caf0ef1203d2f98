// The core's RPCs through real gRPC on 127.0.0.1 port 0, with an in-process
// fake destination registered through the same registry as plugins.
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "absl/time/clock.h"
#include "exportd/v1/audit.grpc.pb.h"
#include "exportd/v1/connection.grpc.pb.h"
#include "exportd/v1/destination.grpc.pb.h"
#include "exportd/v1/export.grpc.pb.h"
#include "exportd/v1/run.grpc.pb.h"
#include "exportd/v1/segment.grpc.pb.h"
#include "exportd/v1/server.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "server/api/api_test_fixture.h"
#include "tests/support/postgres_server.h"
#include "server/app/server.h"
#include "server/auth/credentials.h"
#include "tests/fakes/fake_destination.h"
#include "tests/support/webhook_receiver.h"

namespace exportd::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// The API's tests on each store ("sqlite", "postgres"): what the API keeps
// goes through the store, so every store must answer alike. PostgreSQL is the
// suite's own server (tests/support/postgres_server.h), a database per test.
class ApiStoreTest : public ApiTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void Configure(ServerOptions& options) override {
    if (GetParam() != "postgres") return;
    if (conninfo_.empty()) {  // Restarts keep the database.
      auto server = testing::PostgresServer::Shared();
      ASSERT_TRUE(server.ok()) << server.status();
      auto conninfo = (*server)->CreateDatabase();
      ASSERT_TRUE(conninfo.ok()) << conninfo.status();
      conninfo_ = *conninfo;
    }
    options.store = conninfo_;
  }
  std::string conninfo_;
};
INSTANTIATE_TEST_SUITE_P(Stores, ApiStoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST_P(ApiStoreTest, ConnectionLifecycleKeepsSecretsWriteOnly) {
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("Fake EU"), &c).ok());
  EXPECT_EQ(c.display_name(), "Fake EU");
  EXPECT_EQ(c.consent_accepted_by(), "alice");
  EXPECT_GT(c.consent_accepted_at_micros(), 0);
  EXPECT_THAT(c.secret_names(), ::testing::ElementsAre("token"));
  EXPECT_THAT(c.DebugString(), Not(HasSubstr("s3cr3t")));

  v1::GetConnectionRequest get;
  get.set_connection("Fake EU");
  v1::Connection got;
  ASSERT_TRUE(connections_->GetConnection(As(kAdmin).get(), get, &got).ok());
  EXPECT_EQ(got.id(), c.id());
  EXPECT_THAT(got.DebugString(), Not(HasSubstr("s3cr3t")));

  v1::TestConnectionRequest test;
  test.set_connection(c.id());
  v1::TestConnectionResponse tested;
  ASSERT_TRUE(connections_->TestConnection(As(kAdmin).get(), test, &tested).ok());
  EXPECT_TRUE(tested.ok()) << tested.message();
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->last_settings["token"], "s3cr3t-value-xyz");
    EXPECT_EQ(state_->last_settings["mode"], "slow");
  }

  v1::UpdateConnectionRequest update;
  update.set_connection(c.id());
  (*update.mutable_secrets())["token"] = "rotated-secret";
  update.set_display_name("Fake US");
  v1::Connection updated;
  ASSERT_TRUE(connections_->UpdateConnection(As(kAdmin).get(), update, &updated).ok());
  EXPECT_EQ(updated.display_name(), "Fake US");
  ASSERT_TRUE(connections_->TestConnection(As(kAdmin).get(), test, &tested).ok());
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->last_settings["token"], "rotated-secret");
  }
}

// Export users: added by the caller itself, once; removed by name.
TEST_P(ApiStoreTest, ExportUsersAreAddedByThemselvesAndRemovedByName) {
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("Fake"), &c).ok());
  EXPECT_TRUE(c.export_users().empty());
  v1::UpdateConnectionRequest update;
  update.set_connection("Fake");
  update.set_add_self_as_export_user(true);
  v1::Connection updated;
  ASSERT_TRUE(connections_->UpdateConnection(As(kAdmin).get(), update, &updated).ok());
  ASSERT_TRUE(connections_->UpdateConnection(As(kAdmin).get(), update, &updated).ok());
  EXPECT_THAT(updated.export_users(), ::testing::ElementsAre("alice"));

  update.set_add_self_as_export_user(false);
  update.add_remove_export_users("mallory");
  grpc::Status status = connections_->UpdateConnection(As(kAdmin).get(), update, &updated);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(status.error_message(),
              HasSubstr("'mallory' is not an export user of connection 'Fake' (its export "
                        "users: alice)"));

  update.clear_remove_export_users();
  update.add_remove_export_users("alice");
  ASSERT_TRUE(connections_->UpdateConnection(As(kAdmin).get(), update, &updated).ok());
  EXPECT_TRUE(updated.export_users().empty());
  v1::GetConnectionRequest get;
  get.set_connection("Fake");
  v1::Connection got;
  ASSERT_TRUE(connections_->GetConnection(As(kAdmin).get(), get, &got).ok());
  EXPECT_TRUE(got.export_users().empty());
}

// What a plugin logs while testing a connection (often the destination's
// answer) stays on one line of exportd's log.
TEST_P(ApiStoreTest, TestConnectionLogLinesAreEscaped) {
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("Fake"), &c).ok());
  {
    absl::MutexLock lock(&state_->mu);
    state_->log_line = "checked\nexportd: forged\x1b[2J";
  }
  v1::TestConnectionRequest test;
  test.set_connection(c.id());
  v1::TestConnectionResponse tested;
  ::testing::internal::CaptureStderr();
  grpc::Status status = connections_->TestConnection(As(kAdmin).get(), test, &tested);
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(log, HasSubstr("exportd: checked\\nexportd: forged\\x1b[2J\n"));
  EXPECT_THAT(log, Not(HasSubstr("\nexportd: forged")));
}

TEST_P(ApiStoreTest, ConnectionRulesAreEnforcedWithClearMessages) {
  v1::Connection c;
  auto req = ConnectionRequest("x");
  req.set_accept_privacy_terms(false);
  auto status = CreateConnection(req, &c);
  EXPECT_EQ(status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("privacy and compliance terms"));

  req = ConnectionRequest("");
  status = CreateConnection(req, &c);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("display_name is required"));

  req = ConnectionRequest(std::string(257, 'n'));
  status = CreateConnection(req, &c);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("at most 256"));

  req = ConnectionRequest("no-secret");
  req.clear_secrets();
  status = CreateConnection(req, &c);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("token"));

  req = ConnectionRequest("bad-enum");
  (*req.mutable_settings())["mode"] = "turbo";
  status = CreateConnection(req, &c);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("mode"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr("s3cr3t")));

  req = ConnectionRequest("bad-type");
  req.set_destination_type("nope");
  status = CreateConnection(req, &c);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("nope"));

  ASSERT_TRUE(CreateConnection(ConnectionRequest("dup"), &c).ok());
  status = CreateConnection(ConnectionRequest("dup"), &c);
  EXPECT_EQ(status.error_code(), grpc::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), HasSubstr("'dup'"));

  v1::GetConnectionRequest get;
  get.set_connection("missing");
  status = connections_->GetConnection(As(kAdmin).get(), get, &c);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("'missing'"));
}

// The statement an admin agrees to is the destination's: the manifest shows
// it, a create that names another version is refused, and the connection
// keeps the version that was accepted (through a restart, on each store).
TEST_P(ApiStoreTest, ConsentRecordsTheDestinationsStatementVersion) {
  v1::GetDestinationRequest get_destination;
  get_destination.set_name("fake");
  v1::Destination fake;
  ASSERT_TRUE(destinations_->GetDestination(As(kAdmin).get(), get_destination, &fake).ok());
  EXPECT_EQ(fake.privacy_statement(),
            "Profile data sent to the fake destination stays in this process.\n\n"
            "It is gone when the test ends.");
  EXPECT_EQ(fake.privacy_statement_version(), testing::kFakePrivacyStatementVersion);

  v1::Connection c;
  auto req = ConnectionRequest("outdated");
  req.set_privacy_statement_version("1999-01-01");
  grpc::Status status = CreateConnection(req, &c);
  EXPECT_EQ(status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(),
              HasSubstr("connection 'outdated': destination 'fake' changed its data privacy and "
                        "compliance statement: privacy_statement_version '1999-01-01' was "
                        "accepted, the current version is '2026-01-01'; read the statement "
                        "again ('exportctl destination get fake'"));
  v1::ListConnectionsResponse listed;
  ASSERT_TRUE(connections_->ListConnections(As(kAdmin).get(), {}, &listed).ok());
  EXPECT_EQ(listed.connections_size(), 0);

  req = ConnectionRequest("read");
  req.set_privacy_statement_version(testing::kFakePrivacyStatementVersion);
  ASSERT_TRUE(CreateConnection(req, &c).ok());
  EXPECT_EQ(c.consent_statement_version(), testing::kFakePrivacyStatementVersion);
  EXPECT_EQ(c.consent_accepted_by(), "alice");
  // Without a version, the consent is to the current one.
  v1::Connection unversioned;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("current"), &unversioned).ok());
  EXPECT_EQ(unversioned.consent_statement_version(), testing::kFakePrivacyStatementVersion);

  StopServer();
  StartServer();
  v1::GetConnectionRequest get;
  get.set_connection("read");
  v1::Connection stored;
  ASSERT_TRUE(connections_->GetConnection(As(kAdmin).get(), get, &stored).ok());
  EXPECT_EQ(stored.consent_statement_version(), testing::kFakePrivacyStatementVersion);
  EXPECT_EQ(stored.consent_accepted_at_micros(), c.consent_accepted_at_micros());
}

// test_before_save: the server checks the connection against the destination
// first, and saves nothing when the check fails.
TEST_P(ApiStoreTest, TestBeforeSaveRefusesAConnectionThatFailsItsCheck) {
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 1;
    state_->fail_message = "the fake refused the token";
  }
  v1::Connection c;
  auto req = ConnectionRequest("tested");
  req.set_test_before_save(true);
  grpc::Status status = CreateConnection(req, &c);
  EXPECT_EQ(status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(),
              HasSubstr("connection 'tested' was not saved: testing it against destination "
                        "'fake' failed: UNAVAILABLE: the fake refused the token"));
  EXPECT_THAT(status.error_message(), HasSubstr("'exportctl connection create --no-test'"));
  v1::GetConnectionRequest get;
  get.set_connection("tested");
  EXPECT_EQ(connections_->GetConnection(As(kAdmin).get(), get, &c).error_code(), grpc::NOT_FOUND);

  // The check passes now: saved.
  ASSERT_TRUE(CreateConnection(req, &c).ok());
  EXPECT_EQ(c.display_name(), "tested");

  // Without the flag nothing is checked: a failing destination does not stop the save.
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 1;
  }
  ASSERT_TRUE(CreateConnection(ConnectionRequest("untested"), &c).ok());
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->fail_calls, 1);
}

TEST_P(ApiStoreTest, ExportsAreValidatedAgainstManifestAndSchemas) {
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("conn"), &c).ok());
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("VIP", {"Email", "FirstName"}, &s).ok());
  v1::CreateExportRequest req;
  req.set_name("vip");
  req.set_connection("conn");
  req.add_segments("VIP");
  auto* m = req.add_mappings();
  m->set_destination_field("key");
  m->set_profile_field("Email");
  v1::Export e;
  ASSERT_TRUE(exports_->CreateExport(As(kAdmin).get(), req, &e).ok());
  EXPECT_EQ(e.connection_id(), c.id());
  EXPECT_EQ(e.segments(0), s.id());
  EXPECT_EQ(e.mode(), v1::EXPORT_MODE_MIRROR);
  EXPECT_TRUE(e.active());
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->upsert_calls, 0) << "saving an export must not run it";
  }

  auto bad = req;
  bad.set_name("bad1");
  bad.mutable_mappings(0)->set_profile_field("Mail");
  auto status = exports_->CreateExport(As(kAdmin).get(), bad, &e);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("export 'bad1': mapping 'key' names profile field 'Mail', which segment "
                        "'VIP' does not have (fields: Email, FirstName)"));

  bad = req;
  bad.set_name("bad2");
  bad.clear_mappings();
  status = exports_->CreateExport(As(kAdmin).get(), bad, &e);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("key"));

  bad = req;
  bad.set_name("bad3");
  auto* reserved = bad.add_mappings();
  reserved->set_destination_field("reserved");
  reserved->set_profile_field("FirstName");
  status = exports_->CreateExport(As(kAdmin).get(), bad, &e);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("reserved"));

  bad = req;
  bad.set_name("bad4");
  bad.mutable_schedule()->set_cron("0 6 * * *");
  bad.mutable_schedule()->set_timezone("Mars/Olympus");
  status = exports_->CreateExport(As(kAdmin).get(), bad, &e);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("Mars/Olympus"));

  bad = req;
  bad.set_name("bad4b");
  bad.mutable_schedule()->set_cron("0 25 * * *");
  status = exports_->CreateExport(As(kAdmin).get(), bad, &e);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("hour must be 0-23"));

  bad = req;
  bad.set_name("bad5");
  bad.set_segments(0, "Nope");
  status = exports_->CreateExport(As(kAdmin).get(), bad, &e);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("'Nope'"));

  status = exports_->CreateExport(As(kAdmin).get(), req, &e);
  EXPECT_EQ(status.error_code(), grpc::ALREADY_EXISTS);

  // Duplicate, detach, delete-connection rules.
  v1::DuplicateExportRequest dup;
  dup.set_export_("vip");
  dup.set_new_name("vip-copy");
  v1::Export copy;
  ASSERT_TRUE(exports_->DuplicateExport(As(kAdmin).get(), dup, &copy).ok());
  EXPECT_NE(copy.id(), e.id());
  EXPECT_EQ(copy.mappings_size(), 1);

  v1::DeleteConnectionRequest del;
  del.set_connection("conn");
  v1::DeleteConnectionResponse deleted;
  status = connections_->DeleteConnection(As(kAdmin).get(), del, &deleted);
  EXPECT_EQ(status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("connection 'conn' is used by exports: vip, vip-copy"));

  v1::DetachExportRequest detach;
  detach.set_export_("vip-copy");
  v1::Export detached;
  ASSERT_TRUE(exports_->DetachExport(As(kAdmin).get(), detach, &detached).ok());
  EXPECT_FALSE(detached.active());
  EXPECT_EQ(detached.segments_size(), 1);

  del.set_detach_exports(true);
  ASSERT_TRUE(connections_->DeleteConnection(As(kAdmin).get(), del, &deleted).ok());
  EXPECT_THAT(deleted.detached_exports(), ::testing::ElementsAre("vip"));
  v1::GetExportRequest get;
  get.set_export_("vip");
  ASSERT_TRUE(exports_->GetExport(As(kAdmin).get(), get, &e).ok());
  EXPECT_FALSE(e.active());
  EXPECT_EQ(e.mappings_size(), 1);
}

TEST_P(ApiStoreTest, PermissionMatrixForTheThreeRoles) {
  v1::Connection shared, private_conn;
  auto req = ConnectionRequest("shared");
  req.set_shared_with_contributors(true);
  ASSERT_TRUE(CreateConnection(req, &shared).ok());
  ASSERT_TRUE(CreateConnection(ConnectionRequest("private"), &private_conn).ok());
  v1::Segment s;

  // Contributors and viewers cannot create connections.
  v1::Connection c;
  EXPECT_EQ(CreateConnection(ConnectionRequest("c2"), &c, kContributor).error_code(),
            grpc::PERMISSION_DENIED);
  EXPECT_EQ(CreateConnection(ConnectionRequest("c3"), &c, kViewer).error_code(),
            grpc::PERMISSION_DENIED);
  EXPECT_EQ(CreateConnection(ConnectionRequest("c4"), &c, "").error_code(),
            grpc::UNAUTHENTICATED);
  EXPECT_EQ(CreateConnection(ConnectionRequest("c5"), &c, "wrong-token-0000000000").error_code(),
            grpc::UNAUTHENTICATED);

  // Contributors see only shared connections, and only name and type.
  v1::ListConnectionsResponse list;
  ASSERT_TRUE(
      connections_->ListConnections(As(kContributor).get(), v1::ListConnectionsRequest(), &list)
          .ok());
  ASSERT_EQ(list.connections_size(), 1);
  EXPECT_EQ(list.connections(0).display_name(), "shared");
  EXPECT_EQ(list.connections(0).destination_type(), "fake");
  EXPECT_TRUE(list.connections(0).settings().empty());
  EXPECT_TRUE(list.connections(0).consent_accepted_by().empty());
  EXPECT_EQ(
      connections_->ListConnections(As(kViewer).get(), v1::ListConnectionsRequest(), &list)
          .error_code(),
      grpc::PERMISSION_DENIED);
  v1::TestConnectionRequest test;
  test.set_connection("shared");
  v1::TestConnectionResponse tested;
  EXPECT_EQ(connections_->TestConnection(As(kContributor).get(), test, &tested).error_code(),
            grpc::PERMISSION_DENIED);

  // Contributors create segments and exports on shared connections only.
  ASSERT_TRUE(CreateSegment("S", {"k"}, &s, kContributor).ok());
  EXPECT_EQ(CreateSegment("S2", {"k"}, &s, kViewer).error_code(), grpc::PERMISSION_DENIED);
  v1::CreateExportRequest ereq;
  ereq.set_name("e1");
  ereq.set_connection("shared");
  ereq.add_segments("S");
  auto* m = ereq.add_mappings();
  m->set_destination_field("key");
  m->set_profile_field("k");
  v1::Export e;
  ASSERT_TRUE(exports_->CreateExport(As(kContributor).get(), ereq, &e).ok());
  ereq.set_name("e2");
  ereq.set_connection("private");
  // A connection the contributor may not see answers as one that does not exist.
  auto status = exports_->CreateExport(As(kContributor).get(), ereq, &e);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  ereq.set_connection("no-such-connection");
  auto missing = exports_->CreateExport(As(kContributor).get(), ereq, &e);
  EXPECT_EQ(missing.error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(status.error_message(),
            absl::StrReplaceAll(missing.error_message(), {{"no-such-connection", "private"}}));
  ereq.set_connection("shared");
  EXPECT_EQ(exports_->CreateExport(As(kViewer).get(), ereq, &e).error_code(),
            grpc::PERMISSION_DENIED);

  // Viewers read exports and segments.
  v1::ListExportsResponse exports;
  EXPECT_TRUE(exports_->ListExports(As(kViewer).get(), v1::ListExportsRequest(), &exports).ok());
  EXPECT_EQ(exports.exports_size(), 1);
  v1::ListSegmentsResponse segments;
  EXPECT_TRUE(
      segments_->ListSegments(As(kViewer).get(), v1::ListSegmentsRequest(), &segments).ok());

  // The audit log is for admins and records refused mutations too.
  v1::ListAuditEntriesResponse audit;
  EXPECT_EQ(audit_->ListAuditEntries(As(kContributor).get(), v1::ListAuditEntriesRequest(), &audit)
                .error_code(),
            grpc::PERMISSION_DENIED);
  ASSERT_TRUE(
      audit_->ListAuditEntries(As(kAdmin).get(), v1::ListAuditEntriesRequest(), &audit).ok());
  ASSERT_GT(audit.entries_size(), 4);
  bool saw_denied = false, saw_export = false;
  for (const auto& entry : audit.entries()) {
    saw_denied |= entry.outcome() == "PERMISSION_DENIED" && entry.principal() == "carol";
    saw_export |= entry.method() == "/exportd.v1.ExportService/CreateExport" &&
                  entry.outcome() == "OK" && entry.principal() == "bob" &&
                  entry.role() == v1::ROLE_CONTRIBUTOR;
  }
  EXPECT_TRUE(saw_denied);
  EXPECT_TRUE(saw_export);
}

TEST_P(ApiStoreTest, UploadRoundTripAndAbortedOrInvalidUploadsKeepTheOldSnapshot) {
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("Big", {"Email", "Note"}, &s).ok());
  v1::UploadMembersResponse resp;
  ASSERT_TRUE(Upload("Big", 100000, &resp).ok());
  EXPECT_EQ(resp.segment().member_count(), 100000);
  EXPECT_EQ(resp.rows_received(), 100000);

  v1::ListMembersRequest list;
  list.set_segment("Big");
  list.set_page_size(3);
  v1::ListMembersResponse members;
  // Members are listed in profile-id order (bytewise), not as uploaded.
  ASSERT_TRUE(segments_->ListMembers(As(kAdmin).get(), list, &members).ok());
  ASSERT_EQ(members.rows_size(), 3);
  EXPECT_EQ(members.rows(0).profile_id(), "p1");
  EXPECT_EQ(members.rows(1).profile_id(), "p10");
  EXPECT_EQ(members.rows(2).profile_id(), "p100");
  list.set_page_token("99998");
  members.Clear();
  ASSERT_TRUE(segments_->ListMembers(As(kAdmin).get(), list, &members).ok());
  ASSERT_EQ(members.rows_size(), 2);
  EXPECT_EQ(members.rows(1).profile_id(), "p99999");
  EXPECT_EQ(members.rows(1).values(0).string_value(), "user99999@example.com");
  EXPECT_EQ(members.rows(1).values(1).kind_case(), v1::Value::KIND_NOT_SET);

  // A row with a value of the wrong type: the error names row and field.
  auto status = Upload("Big", 10, &resp, /*bad_row=*/7);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("row 7 (profile 'p7'), field 'Email': expected string, got int"));
  // Canceled mid-stream.
  status = Upload("Big", 20000, &resp, 0, /*cancel_midway=*/true, 1000);
  EXPECT_EQ(status.error_code(), grpc::CANCELLED);
  // The client sees the cancellation at once; the server ends the upload
  // asynchronously, so poll for it.
  v1::GetSegmentRequest get;
  get.set_segment("Big");
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    ASSERT_TRUE(segments_->GetSegment(As(kAdmin).get(), get, &s).ok());
  } while (s.upload_in_progress() && absl::Now() < deadline);
  EXPECT_EQ(s.member_count(), 100000);
  EXPECT_EQ(s.snapshot_version(), 1);
  EXPECT_FALSE(s.upload_in_progress());
}

// An upload larger than its sort's memory: the rows are sorted through runs
// on disk, a repeat is found when they are merged, and nothing is changed.
TEST_P(ApiStoreTest, ARepeatedIdAcrossSortedRunsOnDiskFailsTheUploadAtItsEnd) {
  StopServer();
  StartServer([](ServerOptions& o) { o.upload_sort_memory_bytes = 100; });
  v1::Segment segment;
  ASSERT_TRUE(CreateSegment("S", {"Email"}, &segment).ok());
  using Chunk = v1::UploadMembersRequest::Chunk;
  auto row = [](Chunk& chunk, const std::string& id) {
    auto* r = chunk.add_rows();
    r->set_profile_id(id);
    r->add_values()->set_string_value(id + "@example.com");
  };
  Chunk first, second;
  for (int i = 0; i < 5; ++i) row(first, "p" + std::to_string(i));
  for (int i = 5; i < 9; ++i) row(second, "p" + std::to_string(i));
  row(second, "p1");
  grpc::Status status = SendRaw("S", {first, second}, 10);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("segment 'S': profile id 'p1' appears twice (rows 2 and 10); profile "
                        "ids must be unique. Nothing was changed"));
  v1::Segment got;
  v1::GetSegmentRequest get;
  get.set_segment("S");
  ASSERT_TRUE(segments_->GetSegment(As(kAdmin).get(), get, &got).ok());
  EXPECT_EQ(got.snapshot_version(), 0);

  // Without the repeat the same upload commits.
  second.mutable_rows()->RemoveLast();
  row(second, "p9");
  EXPECT_TRUE(SendRaw("S", {first, second}, 10).ok());
  ASSERT_TRUE(segments_->GetSegment(As(kAdmin).get(), get, &got).ok());
  EXPECT_EQ(got.member_count(), 10);
  EXPECT_EQ(got.snapshot_version(), 1);
}

TEST_P(ApiStoreTest, MalformedUploadsAndOversizedMessages) {
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("S", {"Email"}, &s).ok());
  using Chunk = v1::UploadMembersRequest::Chunk;
  auto row = [](Chunk& chunk, const std::string& id, std::vector<std::string> values) {
    auto* r = chunk.add_rows();
    r->set_profile_id(id);
    for (auto& v : values) r->add_values()->set_string_value(v);
  };
  // No trailer: the stream might have been cut short, so nothing changes.
  auto status = SendRaw("S", {}, /*trailer_rows=*/-1);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("without its trailer"));

  Chunk too_many;
  row(too_many, "a", {"x", "extra"});
  status = SendRaw("S", {too_many}, 1);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("row 1 (profile 'a') has 2 values"));

  Chunk duplicate;
  row(duplicate, "same", {"x"});
  row(duplicate, "same", {"x"});
  status = SendRaw("S", {duplicate}, 2);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("segment 'S': profile id 'same' appears twice (rows 1 and 2)"));

  // Across chunks too.
  Chunk first, second;
  row(first, "x1", {"a"});
  row(first, "x2", {"b"});
  row(second, "x3", {"c"});
  row(second, "x2", {"d"});
  status = SendRaw("S", {first, second}, 4);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("profile id 'x2' appears twice (rows 2 and 4); profile ids must be "
                        "unique"));

  Chunk miscounted;
  row(miscounted, "a", {"x"});
  status = SendRaw("S", {miscounted}, 5);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("the trailer counts 5 rows but 1 arrived"));

  Chunk oversized;
  row(oversized, "big", {std::string(5 * 1024 * 1024, 'x')});
  EXPECT_EQ(SendRaw("S", {oversized}, 1).error_code(), grpc::RESOURCE_EXHAUSTED);

  v1::Segment got;
  v1::GetSegmentRequest get;
  get.set_segment("S");
  ASSERT_TRUE(segments_->GetSegment(As(kAdmin).get(), get, &got).ok());
  EXPECT_EQ(got.snapshot_version(), 0);
}

// Chunks are validated in place from the bytes that arrived; what the
// in-place reader does not take goes through protobuf's parser, with the
// same result a client would get from any protobuf server.
TEST_P(ApiStoreTest, UploadMessagesAreReadAsProtobufWouldReadThem) {
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("S", {"Email"}, &s).ok());
  using Chunk = v1::UploadMembersRequest::Chunk;
  auto list = [&] {
    v1::ListMembersRequest req;
    req.set_segment("S");
    v1::ListMembersResponse resp;
    EXPECT_TRUE(segments_->ListMembers(As(kAdmin).get(), req, &resp).ok());
    std::vector<std::string> out;
    for (const auto& row : resp.rows()) {
      out.push_back(row.profile_id() + "=" + row.values(0).string_value());
    }
    return out;
  };

  // Fields this server does not know, at every level, and a group (which
  // only protobuf's parser reads): ignored.
  Chunk unknown;
  auto* a = unknown.add_rows();
  a->set_profile_id("a");
  a->add_values()->set_string_value("a@example.com");
  a->GetReflection()->MutableUnknownFields(a)->AddVarint(15, 1);
  a->mutable_values(0)->GetReflection()->MutableUnknownFields(a->mutable_values(0))
      ->AddLengthDelimited(9, "later");
  auto* b = unknown.add_rows();
  b->set_profile_id("b");
  b->add_values()->set_string_value("b@example.com");
  b->GetReflection()->MutableUnknownFields(b)->AddGroup(12)->AddVarint(1, 2);
  ASSERT_TRUE(SendRaw("S", {unknown}, 2).ok());
  EXPECT_THAT(list(), ElementsAre("a=a@example.com", "b=b@example.com"));

  // A chunk field twice in one message merges the two (protobuf's rule).
  {
    v1::UploadMembersRequest twice;
    auto* c = twice.mutable_chunk()->add_rows();
    c->set_profile_id("c");
    c->add_values()->set_string_value("c@example.com");
    Chunk more;
    auto* d = more.add_rows();
    d->set_profile_id("d");
    d->add_values()->set_string_value("d@example.com");
    twice.GetReflection()->MutableUnknownFields(&twice)->AddLengthDelimited(
        v1::UploadMembersRequest::kChunkFieldNumber, more.SerializeAsString());
    v1::UploadMembersRequest trailer;
    trailer.mutable_trailer()->set_row_count(2);
    v1::UploadMembersResponse resp;
    ASSERT_TRUE(SendMessages("S", {twice, trailer}, &resp).ok());
    EXPECT_EQ(resp.rows_received(), 2);
    EXPECT_EQ(resp.segment().member_count(), 2);
  }
  EXPECT_THAT(list(), ElementsAre("c=c@example.com", "d=d@example.com"));

  // A string that is not UTF-8 is refused, as protobuf refuses it.
  Chunk latin1;
  auto* e = latin1.add_rows();
  e->set_profile_id("e");
  e->add_values()->set_string_value("caf\xe9@example.com");
  grpc::Status status = SendRaw("S", {latin1}, 1);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "segment 'S': row 1: value 1 is not valid UTF-8; send every string as UTF-8. "
            "Nothing was changed");
  // A message that is not even a chunk is named by its place in the stream.
  {
    v1::UploadMembersRequest bad_header;
    bad_header.mutable_trailer()->set_row_count(0);
    bad_header.GetReflection()->MutableUnknownFields(&bad_header)->AddLengthDelimited(
        v1::UploadMembersRequest::kHeaderFieldNumber, "\x0a\x02\xff\xfe");
    v1::UploadMembersResponse resp;
    status = SendMessages("S", {bad_header}, &resp);
  }
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("upload message 2 is not a valid UploadMembersRequest"));
  EXPECT_THAT(list(), ElementsAre("c=c@example.com", "d=d@example.com"));
}

// Limits: uploads that stall or drag on, sizes of schemas and exports, names.

// Waits for run `id` to end and returns it as it ended.
v1::Run WaitForRun(v1::RunService::Stub& runs, const std::string& id) {
  v1::WatchRunRequest watch;
  watch.set_run_id(id);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kAdmin);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = runs.WatchRun(&ctx, watch);
  v1::Run run;
  while (reader->Read(&run)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
  return run;
}

class UploadLimitsTest : public ApiTest {
 protected:
  // Restarts the server with `limits`, then creates segment `S` with three
  // members and export `vip` on it.
  void StartWith(absl::Duration idle_timeout, absl::Duration max_duration) {
    StopServer();
    StartServer([&](ServerOptions& o) {
      o.upload_idle_timeout = idle_timeout;
      o.upload_max_duration = max_duration;
    });
    v1::Connection c;
    ASSERT_TRUE(CreateConnection(ConnectionRequest("conn"), &c).ok());
    v1::Segment s;
    ASSERT_TRUE(CreateSegment("S", {"Email", "Note"}, &s).ok());
    v1::UploadMembersResponse resp;
    ASSERT_TRUE(Upload("S", 3, &resp).ok());
    v1::CreateExportRequest req;
    req.set_name("vip");
    req.set_connection("conn");
    req.add_segments("S");
    auto* m = req.add_mappings();
    m->set_destination_field("key");
    m->set_profile_field("Email");
    v1::Export e;
    ASSERT_TRUE(exports_->CreateExport(As(kAdmin).get(), req, &e).ok());
  }

  v1::Segment GetSegment() {
    v1::GetSegmentRequest get;
    get.set_segment("S");
    v1::Segment s;
    EXPECT_TRUE(segments_->GetSegment(As(kAdmin).get(), get, &s).ok());
    return s;
  }

  // Polls until segment S's upload is (or is no longer) in progress.
  bool UploadInProgressBecomes(bool in_progress) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (GetSegment().upload_in_progress() != in_progress) {
      if (absl::Now() > deadline) return false;
    }
    return true;
  }

  // Starts a run of `vip` while the upload is in progress: it waits for it.
  std::string RunWhileUploading() {
    EXPECT_TRUE(UploadInProgressBecomes(true));
    v1::RunExportRequest run_req;
    run_req.set_export_("vip");
    v1::Run run;
    EXPECT_TRUE(runs_->RunExport(As(kAdmin).get(), run_req, &run).ok());
    return run.id();
  }

  // The old snapshot is intact and the waiting run ran on it.
  void ExpectOldSnapshotAndRunDone(const std::string& run_id) {
    ASSERT_TRUE(UploadInProgressBecomes(false));
    v1::Segment s = GetSegment();
    EXPECT_EQ(s.snapshot_version(), 1);
    EXPECT_EQ(s.member_count(), 3);
    v1::Run run = WaitForRun(*runs_, run_id);
    EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.DebugString();
    ASSERT_EQ(run.segments_size(), 1);
    EXPECT_EQ(run.segments(0).added(), 3);
  }

  std::unique_ptr<grpc::ClientContext> UploadContext() {
    auto ctx = As(kAdmin);
    // Only so that a broken server cannot hang the test.
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ctx;
  }
};

TEST_F(UploadLimitsTest, AnUploadThatSendsNothingIsAbortedAndWaitingRunsStart) {
  StartWith(/*idle_timeout=*/absl::Milliseconds(500), /*max_duration=*/absl::Hours(1));
  auto ctx = UploadContext();
  v1::UploadMembersResponse resp;
  auto writer = segments_->UploadMembers(ctx.get(), &resp);
  v1::UploadMembersRequest header;
  header.mutable_header()->set_segment("S");
  ASSERT_TRUE(writer->Write(header));
  const std::string run_id = RunWhileUploading();
  // The client sends nothing more.
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_EQ(status.error_message(),
            "segment 'S': the upload sent nothing for 500ms (--upload-idle-timeout) and was "
            "aborted; the previous snapshot stays. Send each message sooner, or raise "
            "--upload-idle-timeout");
  ExpectOldSnapshotAndRunDone(run_id);

  // A stream that never sends its header is aborted too.
  auto silent_ctx = UploadContext();
  auto silent = segments_->UploadMembers(silent_ctx.get(), &resp);
  status = silent->Finish();
  EXPECT_EQ(status.error_code(), grpc::DEADLINE_EXCEEDED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("the upload sent nothing for 500ms (--upload-idle-timeout) and was "
                        "aborted; nothing was changed (no header had arrived)"));
  // Uploads that keep sending are not affected.
  ASSERT_TRUE(Upload("S", 10, &resp).ok());
  EXPECT_EQ(resp.segment().member_count(), 10);
}

TEST_F(UploadLimitsTest, AnUploadThatLastsTooLongIsAbortedAndWaitingRunsStart) {
  StartWith(/*idle_timeout=*/absl::Seconds(5), /*max_duration=*/absl::Milliseconds(800));
  auto ctx = UploadContext();
  v1::UploadMembersResponse resp;
  auto writer = segments_->UploadMembers(ctx.get(), &resp);
  v1::UploadMembersRequest req;
  req.mutable_header()->set_segment("S");
  ASSERT_TRUE(writer->Write(req));
  const std::string run_id = RunWhileUploading();
  // A slow client: one row every 50ms, never idle for long, never done.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  for (int i = 1; absl::Now() < give_up; ++i) {
    req.Clear();
    auto* row = req.mutable_chunk()->add_rows();
    row->set_profile_id("slow" + std::to_string(i));
    row->add_values()->set_string_value("x@example.com");
    row->add_values();
    if (!writer->Write(req)) break;  // The server ended the call.
    absl::SleepFor(absl::Milliseconds(50));
  }
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_EQ(status.error_message(),
            "segment 'S': the upload took longer than 800ms (--upload-max-duration) and was "
            "aborted; the previous snapshot stays. Send the rows faster (larger chunks, no "
            "pauses), or raise --upload-max-duration");
  ExpectOldSnapshotAndRunDone(run_id);
}

TEST(ServerStartTest, UploadLimitsMustBePositive) {
  std::string dir = std::filesystem::temp_directory_path() / "api_limitsXXXXXX";
  dir = mkdtemp(dir.data());
  for (absl::Duration bad : {absl::ZeroDuration(), absl::Seconds(-1), absl::InfiniteDuration()}) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = dir + "/data";
    options.upload_max_duration = bad;
    auto server = Server::Start(std::move(options));
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(server.status().message(),
                HasSubstr("--upload-max-duration " + absl::FormatDuration(bad) +
                          ": must be a positive, finite duration such as 60s, 5m or 1h"));
  }
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = dir + "/data";
  options.upload_idle_timeout = absl::ZeroDuration();
  EXPECT_THAT(std::string(Server::Start(std::move(options)).status().message()),
              HasSubstr("--upload-idle-timeout 0: must be a positive"));
  std::filesystem::remove_all(dir);
}

// An error that quotes a huge input still reaches the client, cut to fit in
// the gRPC trailer.
TEST_P(ApiStoreTest, LongErrorMessagesAreCutToFitTheTrailer) {
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("S", {"Email"}, &s).ok());
  v1::UploadMembersRequest::Chunk chunk;
  auto* row = chunk.add_rows();
  row->set_profile_id(std::string(100000, 'p'));
  row->add_values()->set_string_value("a");
  row->add_values()->set_string_value("b");
  grpc::Status status = SendRaw("S", {chunk}, 1);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT) << status.error_message().size();
  EXPECT_THAT(status.error_message(), ::testing::StartsWith("segment 'S': row 1 (profile 'ppp"));
  EXPECT_THAT(status.error_message(), ::testing::EndsWith(" more bytes)"));
  EXPECT_LE(status.error_message().size(), 4096u);
}

TEST_P(ApiStoreTest, SchemasAndExportsAreLimitedAndValidatedInLinearTime) {
  // 1,000 fields and 1,000 mappings: accepted (validation is linear, so this
  // is quick; a timing bound is the benchmark's business, not a test's).
  std::vector<std::string> fields;
  for (int i = 0; i < 1000; ++i) fields.push_back("f" + std::to_string(i));
  v1::Segment wide;
  ASSERT_TRUE(CreateSegment("Wide", fields, &wide).ok());
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("conn"), &c).ok());
  v1::CreateExportRequest req;
  req.set_name("wide");
  req.set_connection("conn");
  req.add_segments("Wide");
  for (int i = 0; i < 1000; ++i) {
    auto* m = req.add_mappings();
    m->set_destination_field(i == 0 ? "key" : "d" + std::to_string(i));
    m->set_profile_field(fields[i]);
  }
  v1::Export e;
  grpc::Status status = exports_->CreateExport(As(kAdmin).get(), req, &e);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(e.mappings_size(), 1000);

  auto refused = [&](const v1::CreateExportRequest& bad) {
    grpc::Status status = exports_->CreateExport(As(kAdmin).get(), bad, &e);
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT) << status.error_message();
    return status.error_message();
  };
  auto bad = req;
  bad.set_name("too-many-mappings");
  bad.add_mappings()->set_destination_field("d1000");
  bad.mutable_mappings(1000)->set_profile_field("f0");
  EXPECT_THAT(refused(bad), HasSubstr("export 'too-many-mappings': it has 1001 mappings; the "
                                      "limit is 1000 mappings per export"));
  bad = req;
  bad.set_name("twice");
  bad.mutable_mappings(999)->set_destination_field("d1");
  EXPECT_THAT(refused(bad), HasSubstr("destination field 'd1' is mapped twice (mappings 2 and "
                                      "1000)"));
  bad = req;
  bad.set_name("missing");
  bad.mutable_mappings(5)->set_profile_field("Nope");
  EXPECT_THAT(refused(bad),
              HasSubstr("mapping 'd5' names profile field 'Nope', which segment 'Wide' does not "
                        "have (fields: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, "
                        "f14, f15, f16, f17, f18, f19, \u2026 and 980 more)"));
  bad = req;
  bad.set_name("segments");
  for (int i = 0; i < 100; ++i) bad.add_segments("S" + std::to_string(i));
  EXPECT_THAT(refused(bad), HasSubstr("it lists 101 segments; the limit is 100 segments per "
                                      "export"));
  bad = req;
  bad.set_name("bidi");
  bad.mutable_mappings(3)->set_destination_field("d\u202e3");
  EXPECT_THAT(refused(bad), HasSubstr("mapping 4 destination_field 'd\\u202e3' contains U+202E "
                                      "(a bidirectional control character)"));
  bad = req;
  bad.set_name("zone");
  bad.mutable_schedule()->set_cron("0 6 * * *");
  bad.mutable_schedule()->set_timezone("../../../etc/passwd");
  EXPECT_THAT(refused(bad), HasSubstr("export 'zone': schedule.timezone: time zone "
                                      "\"../../../etc/passwd\" is not an IANA name"));
  bad.mutable_schedule()->set_timezone("/dev/stdin");
  EXPECT_THAT(refused(bad), HasSubstr("it is an absolute path"));

  // Schemas: at most 1,000 fields, each a valid name.
  fields.push_back("f1000");
  v1::Segment s;
  status = CreateSegment("Wider", fields, &s);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "the schema has 1001 fields; the limit is 1000 fields per segment");
  status = CreateSegment("ZeroWidth", {"Email", "First\u200bName"}, &s);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("schema field 2 'First\\u200bName' contains U+200B (a zero-width "
                        "character) at character 6"));
}

TEST_P(ApiStoreTest, NamesAreMeasuredInCharactersAndRefuseInvisibleCharacters) {
  std::string umlauts;
  for (int i = 0; i < 256; ++i) umlauts += "\u00fc";
  v1::Segment s;
  EXPECT_TRUE(CreateSegment(umlauts, {"Email"}, &s).ok()) << "256 characters, 512 bytes";
  grpc::Status status = CreateSegment(umlauts + "x", {"Email"}, &s);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "name is 257 characters long; at most 256 are allowed");

  v1::Connection c;
  status = CreateConnection(ConnectionRequest("Iterable\u202eUE"), &c);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("display_name 'Iterable\\u202eUE' contains U+202E (a bidirectional "
                        "control character) at character 9"));
  status = CreateConnection(ConnectionRequest("conn\u0085"), &c);
  EXPECT_THAT(status.error_message(), HasSubstr("contains U+0085 (a control character)"));
  status = CreateSegment("\ufeffVIP", {"Email"}, &s);
  EXPECT_THAT(status.error_message(),
              HasSubstr("name '\\ufeffVIP' contains U+FEFF (a zero-width character)"));
}

TEST_F(ApiTest, EverythingSurvivesARestartAndSecretsAreNotStoredInClear) {
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("conn"), &c).ok());
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("VIP", {"Email", "Note"}, &s).ok());
  v1::UploadMembersResponse resp;
  ASSERT_TRUE(Upload("VIP", 1000, &resp).ok());
  StopServer();
  StartServer();
  v1::GetConnectionRequest get;
  get.set_connection("conn");
  ASSERT_TRUE(connections_->GetConnection(As(kAdmin).get(), get, &c).ok());
  v1::TestConnectionRequest test;
  test.set_connection("conn");
  v1::TestConnectionResponse tested;
  ASSERT_TRUE(connections_->TestConnection(As(kAdmin).get(), test, &tested).ok());
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->last_settings["token"], "s3cr3t-value-xyz");
  }
  v1::GetSegmentRequest gs;
  gs.set_segment("VIP");
  ASSERT_TRUE(segments_->GetSegment(As(kAdmin).get(), gs, &s).ok());
  EXPECT_EQ(s.member_count(), 1000);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_ + "/data")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    EXPECT_EQ(bytes.str().find("s3cr3t-value-xyz"), std::string::npos) << entry.path();
  }
}

// A webhook: checked like a destination's base URL; its signing secret is
// shown once, in the answer that made it, sealed at rest, and never in
// listings or the audit trail; a run that fails notifies it, signed with
// that secret.
TEST_P(ApiStoreTest, WebhooksAreSignedWithTheSecretShownOnlyAtCreation) {
  auto receiver = testing::WebhookReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  StopServer();
  StartServer([](ServerOptions& options) {
    options.run_attempts = 1;
    options.notify_backoff = absl::Milliseconds(10);
  });
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("conn"), &c).ok());
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("VIP", {"Email", "Note"}, &s).ok());
  v1::UploadMembersResponse uploaded;
  ASSERT_TRUE(Upload("VIP", 10, &uploaded).ok());
  v1::CreateExportRequest req;
  req.set_name("vip");
  req.set_connection("conn");
  req.add_segments("VIP");
  auto* m = req.add_mappings();
  m->set_destination_field("key");
  m->set_profile_field("Email");

  auto bad = req;
  bad.set_notify_url("ftp://127.0.0.1/hook");
  v1::Export e;
  auto status = exports_->CreateExport(As(kAdmin).get(), bad, &e);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("export 'vip': notify_url must start with http:// or https://, got "
                        "'ftp://127.0.0.1/hook'"));
  bad.set_notify_url("http://user@127.0.0.1/hook");
  EXPECT_THAT(exports_->CreateExport(As(kAdmin).get(), bad, &e).error_message(),
              HasSubstr("notify_url must not contain credentials"));
  bad.set_notify_url(receiver->get()->url());
  bad.add_notify_on("rejections>200%");
  EXPECT_THAT(exports_->CreateExport(As(kAdmin).get(), bad, &e).error_message(),
              HasSubstr("export 'vip': notify_on: 'rejections>200%' needs a percentage"));
  auto no_url = req;
  no_url.add_notify_on("failed");
  EXPECT_THAT(exports_->CreateExport(As(kAdmin).get(), no_url, &e).error_message(),
              HasSubstr("notify_on needs a webhook"));

  req.set_notify_url(receiver->get()->url());
  ASSERT_TRUE(exports_->CreateExport(As(kAdmin).get(), req, &e).ok());
  const std::string secret = e.new_notify_secret();
  ASSERT_EQ(secret.size(), 64u);
  EXPECT_TRUE(e.notify_secret_set());
  EXPECT_THAT(e.notify_on(), ElementsAre("failed", "recovered"));

  v1::GetExportRequest get;
  get.set_export_("vip");
  v1::Export got;
  ASSERT_TRUE(exports_->GetExport(As(kViewer).get(), get, &got).ok());
  EXPECT_EQ(got.notify_url(), receiver->get()->url());
  EXPECT_TRUE(got.notify_secret_set());
  EXPECT_TRUE(got.new_notify_secret().empty());
  EXPECT_THAT(got.DebugString(), Not(HasSubstr(secret)));
  v1::ListExportsResponse listed;
  ASSERT_TRUE(exports_->ListExports(As(kAdmin).get(), {}, &listed).ok());
  EXPECT_THAT(listed.DebugString(), Not(HasSubstr(secret)));

  // A failed run notifies, signed with that secret.
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 1000;
  }
  v1::RunExportRequest run_req;
  run_req.set_export_("vip");
  v1::Run run;
  ASSERT_TRUE(runs_->RunExport(As(kAdmin).get(), run_req, &run).ok());
  ASSERT_TRUE(receiver->get()->WaitForRequests(1, absl::Seconds(60)));
  const auto delivery = receiver->get()->requests().front();
  EXPECT_EQ(delivery.Header("x-exportd-delivery"), run.id() + "/failed");
  const std::string signed_text = delivery.Header("x-exportd-timestamp") + "." + delivery.body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), mac,
       &mac_size);
  EXPECT_EQ(delivery.Header("x-exportd-signature"),
            "sha256=" + absl::BytesToHexString(
                            std::string(reinterpret_cast<const char*>(mac), mac_size)));
  EXPECT_THAT(delivery.body, HasSubstr("\"state\":\"failed\""));

  // A copy of the export signs with a secret of its own.
  v1::DuplicateExportRequest duplicate;
  duplicate.set_export_("vip");
  duplicate.set_new_name("vip-copy");
  v1::Export copy;
  ASSERT_TRUE(exports_->DuplicateExport(As(kAdmin).get(), duplicate, &copy).ok());
  EXPECT_EQ(copy.notify_url(), receiver->get()->url());
  EXPECT_TRUE(copy.notify_secret_set());
  EXPECT_EQ(copy.new_notify_secret().size(), 64u);
  EXPECT_NE(copy.new_notify_secret(), secret);

  // Rotating makes a new secret; removing the webhook clears it.
  v1::UpdateExportRequest rotate;
  rotate.set_export_("vip");
  rotate.set_rotate_notify_secret(true);
  v1::Export rotated;
  ASSERT_TRUE(exports_->UpdateExport(As(kAdmin).get(), rotate, &rotated).ok());
  const std::string rotated_secret = rotated.new_notify_secret();
  EXPECT_EQ(rotated_secret.size(), 64u);
  EXPECT_NE(rotated_secret, secret);
  v1::UpdateExportRequest triggers;
  triggers.set_export_("vip");
  triggers.add_notify_on("failed,rejections>5%");
  v1::Export retriggered;
  ASSERT_TRUE(exports_->UpdateExport(As(kAdmin).get(), triggers, &retriggered).ok());
  EXPECT_THAT(retriggered.notify_on(), ElementsAre("failed", "rejections>5%"));
  EXPECT_TRUE(retriggered.new_notify_secret().empty());  // Unchanged.
  v1::UpdateExportRequest remove;
  remove.set_export_("vip");
  remove.set_notify_url("");
  v1::Export removed;
  ASSERT_TRUE(exports_->UpdateExport(As(kAdmin).get(), remove, &removed).ok());
  EXPECT_TRUE(removed.notify_url().empty());
  EXPECT_TRUE(removed.notify_on().empty());
  EXPECT_FALSE(removed.notify_secret_set());
  EXPECT_EQ(exports_->UpdateExport(As(kAdmin).get(), rotate, &rotated).error_code(),
            grpc::FAILED_PRECONDITION);

  v1::ListAuditEntriesRequest audit_req;
  v1::ListAuditEntriesResponse audit;
  ASSERT_TRUE(audit_->ListAuditEntries(As(kAdmin).get(), audit_req, &audit).ok());
  EXPECT_GT(audit.entries_size(), 0);
  EXPECT_THAT(audit.DebugString(), Not(HasSubstr(secret)));
  EXPECT_THAT(audit.DebugString(), Not(HasSubstr(rotated_secret)));
  EXPECT_THAT(audit.DebugString(), Not(HasSubstr(copy.new_notify_secret())));
  if (GetParam() == "sqlite") {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_ + "/data")) {
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      EXPECT_EQ(bytes.str().find(secret), std::string::npos) << entry.path();
    }
  }
}

TEST_P(ApiStoreTest, DestinationsListManifestsAndHealthIsServed) {
  v1::ListDestinationsResponse list;
  ASSERT_TRUE(destinations_
                  ->ListDestinations(As(kViewer).get(), v1::ListDestinationsRequest(), &list)
                  .ok());
  ASSERT_EQ(list.destinations_size(), 1);
  EXPECT_EQ(list.destinations(0).name(), "fake");
  EXPECT_EQ(list.destinations(0).settings_size(), 3);
  v1::GetDestinationRequest get;
  get.set_name("unknown");
  v1::Destination d;
  EXPECT_EQ(destinations_->GetDestination(As(kViewer).get(), get, &d).error_code(),
            grpc::NOT_FOUND);
}

// A destination that cannot delete its audiences (the fake: the SDK's
// default DeleteAudience) makes --delete-audiences FAILED_PRECONDITION, and the
// export stays; without the flag it is deleted.
TEST_P(ApiStoreTest, DeletingAnExportWithItsAudiencesNeedsADestinationThatCan) {
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("conn"), &c).ok());
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("VIP", {"Email", "Note"}, &s).ok());
  v1::UploadMembersResponse uploaded;
  ASSERT_TRUE(Upload("VIP", 10, &uploaded).ok());
  v1::CreateExportRequest req;
  req.set_name("vip");
  req.set_connection("conn");
  req.add_segments("VIP");
  auto* m = req.add_mappings();
  m->set_destination_field("key");
  m->set_profile_field("Email");
  v1::Export e;
  ASSERT_TRUE(exports_->CreateExport(As(kAdmin).get(), req, &e).ok());
  v1::RunExportRequest run_req;
  run_req.set_export_("vip");
  v1::Run run;
  ASSERT_TRUE(runs_->RunExport(As(kAdmin).get(), run_req, &run).ok());
  run = WaitForRun(*runs_, run.id());
  ASSERT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_TRUE(run.segments(0).audience_created()) << "the run created the audience";

  v1::DeleteExportRequest del;
  del.set_export_("vip");
  del.set_delete_audiences(true);
  v1::DeleteExportResponse deleted;
  grpc::Status refused = exports_->DeleteExport(As(kAdmin).get(), del, &deleted);
  EXPECT_EQ(refused.error_code(), grpc::FAILED_PRECONDITION) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("cannot delete its audiences"));
  EXPECT_THAT(refused.error_message(), HasSubstr("without --delete-audiences"));
  v1::GetExportRequest get;
  get.set_export_("vip");
  EXPECT_TRUE(exports_->GetExport(As(kAdmin).get(), get, &e).ok()) << "the export stays";
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->audiences.count("VIP"), 1u);
  }
  del.set_delete_audiences(false);
  EXPECT_TRUE(exports_->DeleteExport(As(kAdmin).get(), del, &deleted).ok());
  EXPECT_EQ(exports_->GetExport(As(kAdmin).get(), get, &e).error_code(), grpc::NOT_FOUND);
}

TEST_P(ApiStoreTest, RunsAreTriggeredWatchedListedAndTheirRejectionsRead) {
  v1::Connection c;
  auto shared = ConnectionRequest("conn");
  shared.set_shared_with_contributors(true);  // The contributor runs the export.
  ASSERT_TRUE(CreateConnection(shared, &c).ok());
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("VIP", {"Email", "Note"}, &s).ok());
  v1::UploadMembersResponse uploaded;
  ASSERT_TRUE(Upload("VIP", 2500, &uploaded).ok());
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject = {"p5"};
  }
  v1::CreateExportRequest req;
  req.set_name("vip");
  req.set_connection("conn");
  req.add_segments("VIP");
  auto* m = req.add_mappings();
  m->set_destination_field("key");
  m->set_profile_field("Email");
  v1::Export e;
  ASSERT_TRUE(exports_->CreateExport(As(kAdmin).get(), req, &e).ok());

  v1::RunExportRequest run_req;
  run_req.set_export_("vip");
  v1::Run run;
  EXPECT_EQ(runs_->RunExport(As(kViewer).get(), run_req, &run).error_code(),
            grpc::PERMISSION_DENIED);
  ASSERT_TRUE(runs_->RunExport(As(kContributor).get(), run_req, &run).ok());
  EXPECT_EQ(run.requested_by(), "bob");

  v1::WatchRunRequest watch;
  watch.set_run_id(run.id());
  auto ctx = As(kViewer);
  auto reader = runs_->WatchRun(ctx.get(), watch);
  v1::Run update;
  int updates = 0;
  while (reader->Read(&update)) ++updates;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_GE(updates, 1);
  EXPECT_EQ(update.state(), v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS);
  EXPECT_EQ(update.segments(0).added(), 2499);
  EXPECT_EQ(update.segments(0).rejected(), 1);

  v1::ListRunsRequest list;
  list.set_export_("vip");
  v1::ListRunsResponse listed;
  ASSERT_TRUE(runs_->ListRuns(As(kViewer).get(), list, &listed).ok());
  ASSERT_EQ(listed.runs_size(), 1);
  EXPECT_EQ(listed.runs(0).id(), run.id());

  v1::ListRejectionsRequest rej;
  rej.set_run_id(run.id());
  v1::ListRejectionsResponse rejections;
  ASSERT_TRUE(runs_->ListRejections(As(kViewer).get(), rej, &rejections).ok());
  ASSERT_EQ(rejections.rejections_size(), 1);
  EXPECT_EQ(rejections.total(), 1);
  EXPECT_EQ(rejections.rejections(0).profile_id(), "p5");
  // Named, so that exportctl and the console need not look segments up.
  EXPECT_EQ(rejections.rejections(0).segment_id(), s.id());
  EXPECT_EQ(rejections.rejections(0).segment_name(), "VIP");

  // Dry run: counts, nothing sent.
  run_req.set_dry_run(true);
  ASSERT_TRUE(runs_->RunExport(As(kAdmin).get(), run_req, &run).ok());
  watch.set_run_id(run.id());
  auto ctx2 = As(kAdmin);
  auto reader2 = runs_->WatchRun(ctx2.get(), watch);
  while (reader2->Read(&update)) {
  }
  ASSERT_TRUE(reader2->Finish().ok());
  EXPECT_TRUE(update.dry_run());
  EXPECT_EQ(update.segments(0).to_add(), 1);  // the rejected member is retried
  EXPECT_EQ(update.segments(0).unchanged(), 2499);

  // A detached export cannot run.
  v1::DetachExportRequest detach;
  detach.set_export_("vip");
  ASSERT_TRUE(exports_->DetachExport(As(kAdmin).get(), detach, &e).ok());
  run_req.set_dry_run(false);
  auto status = runs_->RunExport(As(kAdmin).get(), run_req, &run);
  EXPECT_EQ(status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("inactive"));

  v1::GetRunRequest get;
  get.set_run_id("run-nope");
  EXPECT_EQ(runs_->GetRun(As(kAdmin).get(), get, &run).error_code(), grpc::NOT_FOUND);
}

// ListRunLog: every role reads a run's log (the permission matrix has the
// cells), a page at a time and from a level up; the final line is there as
// soon as the run shows its final state.
TEST_P(ApiStoreTest, ARunsLogIsReadPageByPageAndFromALevelUp) {
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("conn"), &c).ok());
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("VIP", {"Email", "Note"}, &s).ok());
  v1::UploadMembersResponse uploaded;
  ASSERT_TRUE(Upload("VIP", 10, &uploaded).ok());
  v1::CreateExportRequest req;
  req.set_name("vip");
  req.set_connection("conn");
  req.add_segments("VIP");
  auto* m = req.add_mappings();
  m->set_destination_field("key");
  m->set_profile_field("Email");
  v1::Export e;
  ASSERT_TRUE(exports_->CreateExport(As(kAdmin).get(), req, &e).ok());
  v1::RunExportRequest run_req;
  run_req.set_export_("vip");
  v1::Run run;
  ASSERT_TRUE(runs_->RunExport(As(kAdmin).get(), run_req, &run).ok());
  v1::WatchRunRequest watch;
  watch.set_run_id(run.id());
  auto ctx = As(kViewer);
  auto reader = runs_->WatchRun(ctx.get(), watch);
  while (reader->Read(&run)) {
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();

  v1::ListRunLogRequest log_req;
  log_req.set_run_id(run.id());
  v1::ListRunLogResponse all;
  ASSERT_TRUE(runs_->ListRunLog(As(kViewer).get(), log_req, &all).ok());
  ASSERT_GE(all.lines_size(), 4);
  EXPECT_EQ(all.next_after_seq(), 0);
  EXPECT_THAT(all.lines(0).message(), ::testing::StartsWith("run started (attempt 1 of "));
  EXPECT_EQ(all.lines(all.lines_size() - 1).message(), "run SUCCEEDED");

  // Two lines a page, following next_after_seq to the end.
  std::vector<std::string> paged;
  log_req.set_page_size(2);
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 100);
    v1::ListRunLogResponse page;
    ASSERT_TRUE(runs_->ListRunLog(As(kViewer).get(), log_req, &page).ok());
    ASSERT_LE(page.lines_size(), 2);
    for (const auto& line : page.lines()) paged.push_back(line.message());
    if (page.next_after_seq() == 0) break;
    EXPECT_EQ(page.next_after_seq(), page.lines(page.lines_size() - 1).seq());
    log_req.set_after_seq(page.next_after_seq());
  }
  ASSERT_EQ(paged.size(), static_cast<size_t>(all.lines_size()));
  EXPECT_EQ(paged.back(), "run SUCCEEDED");

  v1::ListRunLogRequest errors;
  errors.set_run_id(run.id());
  errors.set_min_level(v1::RUN_LOG_LEVEL_WARNING);
  v1::ListRunLogResponse none;
  ASSERT_TRUE(runs_->ListRunLog(As(kViewer).get(), errors, &none).ok());
  EXPECT_EQ(none.lines_size(), 0) << "a clean run logs nothing at warning or above";

  v1::ListRunLogRequest bad = errors;
  bad.set_after_seq(-1);
  grpc::Status status = runs_->ListRunLog(As(kViewer).get(), bad, &none);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("after_seq -1 is negative"));
  bad = errors;
  bad.set_min_level(static_cast<v1::RunLogLevel>(9));
  status = runs_->ListRunLog(As(kViewer).get(), bad, &none);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("min_level 9 is not a RunLogLevel"));
  bad = errors;
  bad.set_run_id("run-nope");
  status = runs_->ListRunLog(As(kViewer).get(), bad, &none);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("run-nope"));
}

// The core validates connections and exports generically, here against the
// real manifests of the shipped plugins.
TEST(ShippedPluginsTest, ConnectionsAndExportsAreValidatedAgainstRealManifests) {
  std::string dir = std::filesystem::temp_directory_path() / "api_pluginsXXXXXX";
  dir = mkdtemp(dir.data());
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = dir + "/data";
  options.plugin_dir = EXPORTD_PLUGIN_DIR;
  auto server = Server::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  std::string token;
  std::ifstream((*server)->admin_token_path()) >> token;
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto connections = v1::ConnectionService::NewStub(channel);
  auto segments = v1::SegmentService::NewStub(channel);
  auto exports = v1::ExportService::NewStub(channel);
  auto destinations = v1::DestinationService::NewStub(channel);
  auto ctx = [&] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->AddMetadata("authorization", "Bearer " + token);
    return c;
  };

  v1::ListDestinationsResponse loaded;
  ASSERT_TRUE(destinations->ListDestinations(ctx().get(), {}, &loaded).ok());
  std::set<std::string> names;
  for (const auto& d : loaded.destinations()) names.insert(d.name());
  EXPECT_TRUE(names.count("iterable")) << loaded.DebugString();
  EXPECT_TRUE(names.count("jsonl")) << loaded.DebugString();

  v1::CreateConnectionRequest req;
  req.set_display_name("Iterable");
  req.set_destination_type("iterable");
  req.set_accept_privacy_terms(true);
  v1::Connection c;
  auto status = connections->CreateConnection(ctx().get(), req, &c);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("api_key"));
  (*req.mutable_settings())["region"] = "mars";
  (*req.mutable_secrets())["api_key"] = "0123456789abcdef0123456789abcdef";
  status = connections->CreateConnection(ctx().get(), req, &c);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("region"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr("0123456789abcdef")));
  (*req.mutable_settings())["region"] = "eu";
  ASSERT_TRUE(connections->CreateConnection(ctx().get(), req, &c).ok());

  v1::CreateSegmentRequest seg;
  seg.set_name("VIP");
  for (const char* f : {"Email", "SignupDate"}) {
    auto* field = seg.add_schema();
    field->set_name(f);
    field->set_type(v1::FIELD_TYPE_STRING);
  }
  v1::Segment s;
  ASSERT_TRUE(segments->CreateSegment(ctx().get(), seg, &s).ok());

  v1::CreateExportRequest e;
  e.set_name("vip");
  e.set_connection("Iterable");
  e.add_segments("VIP");
  auto* m = e.add_mappings();
  m->set_destination_field("firstName");
  m->set_profile_field("Email");
  v1::Export created;
  status = exports->CreateExport(ctx().get(), e, &created);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("email"));
  m->set_destination_field("email");
  auto* managed = e.add_mappings();
  managed->set_destination_field("signupDate");
  managed->set_profile_field("SignupDate");
  status = exports->CreateExport(ctx().get(), e, &created);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("signupDate"));
  e.mutable_mappings()->RemoveLast();
  EXPECT_TRUE(exports->CreateExport(ctx().get(), e, &created).ok());
  (*server)->Shutdown();
  std::filesystem::remove_all(dir);
}

// The start-up description names refused plugin libraries; a file name with a
// line break cannot add a line of its own to it.
TEST(ServerStartTest, DescribeEscapesRefusedPluginNames) {
  std::string dir = std::filesystem::temp_directory_path() / "api_describeXXXXXX";
  dir = mkdtemp(dir.data());
  std::filesystem::create_directories(dir + "/plugins");
  std::ofstream(dir + "/plugins/libx.so\nadmin token: forged\x1b[2J.so") << "not a library";
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = dir + "/data";
  options.plugin_dir = dir + "/plugins";
  auto server = Server::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string text = (*server)->Describe();
  EXPECT_THAT(text, HasSubstr("\nrefused plugin " + dir +
                              "/plugins/libx.so\\nadmin token: forged\\x1b[2J.so: "));
  EXPECT_THAT(text, Not(HasSubstr("\nadmin token: forged")));
  EXPECT_THAT(text, Not(HasSubstr("\x1b")));
  (*server)->Shutdown();
  std::filesystem::remove_all(dir);
}

TEST(ServerStartTest, MalformedTokensFileIsAClearStartupError) {
  std::string dir = std::filesystem::temp_directory_path() / "api_startXXXXXX";
  dir = mkdtemp(dir.data());
  std::ofstream(dir + "/tokens") << "short admin\n";
  MakePrivate(dir + "/tokens");
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = dir + "/data";
  options.tokens_file = dir + "/tokens";
  auto server = Server::Start(std::move(options));
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("line 1"));
  std::filesystem::remove_all(dir);
}

TEST(ServerStartTest, TokensFileReadableByOthersIsAStartupError) {
  std::string dir = std::filesystem::temp_directory_path() / "api_startXXXXXX";
  dir = mkdtemp(dir.data());
  std::ofstream(dir + "/tokens") << kAdmin << " alice admin\n";
  std::filesystem::permissions(dir + "/tokens", std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = dir + "/data";
  options.tokens_file = dir + "/tokens";
  auto server = Server::Start(std::move(options));
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(server.status().message(), HasSubstr("run 'chmod 600 " + dir + "/tokens'"));
  std::filesystem::remove_all(dir);
}

TEST(ServerStartTest, AdminTokenFileReadableByOthersIsAStartupError) {
  std::string dir = std::filesystem::temp_directory_path() / "api_startXXXXXX";
  dir = mkdtemp(dir.data());
  auto start = [&] {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = dir + "/data";
    return Server::Start(std::move(options));
  };
  auto first = start();
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string token_file = (*first)->admin_token_path();
  (*first)->Shutdown();
  first->reset();
  std::filesystem::permissions(token_file, std::filesystem::perms::group_read,
                               std::filesystem::perm_options::add);
  auto second = start();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("admin token file '" + token_file + "'"));
  EXPECT_THAT(second.status().message(), HasSubstr("run 'chmod 600 " + token_file + "'"));
  std::filesystem::remove_all(dir);
}

TEST(ServerStartTest, HashedTokensAuthenticateOverGrpc) {
  std::string dir = std::filesystem::temp_directory_path() / "api_startXXXXXX";
  dir = mkdtemp(dir.data());
  const std::string token = "hashed-token-0123456789abcdef0123456789";
  std::ofstream(dir + "/tokens") << "sha256:" << auth::TokenSha256Hex(token) << " svc viewer\n";
  MakePrivate(dir + "/tokens");
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = dir + "/data";
  options.tokens_file = dir + "/tokens";
  auto server = Server::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  auto audit = v1::AuditService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  v1::WhoAmIResponse who;
  grpc::Status status = audit->WhoAmI(&ctx, v1::WhoAmIRequest(), &who);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(who.principal(), "svc");
  EXPECT_EQ(who.role(), v1::ROLE_VIEWER);
  (*server)->Shutdown();
  std::filesystem::remove_all(dir);
}

// exportctl status: what the server is and does, for every role, with the
// store named without its user or password.
TEST_P(ApiStoreTest, ServerStatusShowsTheStoreTheRunsAndTheScheduleToEveryRole) {
  StopServer();
  StartServer([](ServerOptions& o) {
    o.replica_id = "status-replica";
    o.run_retry_backoff = absl::Hours(1);  // A failed attempt stays FAILED_RETRYING.
  });
  v1::Connection c;
  ASSERT_TRUE(CreateConnection(ConnectionRequest("c"), &c).ok());
  v1::Segment s;
  ASSERT_TRUE(CreateSegment("s", {"k", "extra"}, &s).ok());
  ASSERT_TRUE(CreateSegment("uploading", {"k", "extra"}, &s).ok());
  v1::UploadMembersResponse uploaded;
  ASSERT_TRUE(Upload("s", 3, &uploaded).ok());
  for (const auto& [name, segment] : {std::pair<std::string, std::string>("daily", "s"),
                                      {"waiting", "uploading"}}) {
    v1::CreateExportRequest req;
    req.set_name(name);
    req.set_connection("c");
    req.add_segments(segment);
    auto* m = req.add_mappings();
    m->set_destination_field("key");
    m->set_profile_field("k");
    req.mutable_schedule()->set_enabled(name == "daily");
    req.mutable_schedule()->set_cron("0 6 * * *");
    v1::Export e;
    ASSERT_TRUE(exports_->CreateExport(As(kAdmin).get(), req, &e).ok()) << name;
  }
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 1000;
  }
  v1::RunExportRequest run_req;
  run_req.set_export_("daily");
  v1::Run retrying;
  ASSERT_TRUE(runs_->RunExport(As(kAdmin).get(), run_req, &retrying).ok());
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (retrying.state() != v1::RUN_STATE_FAILED_RETRYING && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
    v1::GetRunRequest get;
    get.set_run_id(retrying.id());
    ASSERT_TRUE(runs_->GetRun(As(kAdmin).get(), get, &retrying).ok());
  }
  ASSERT_EQ(retrying.state(), v1::RUN_STATE_FAILED_RETRYING) << retrying.message();
  // A run of an export whose segment is being uploaded waits in the queue.
  auto upload_ctx = As(kAdmin);
  v1::UploadMembersResponse never;
  auto writer = segments_->UploadMembers(upload_ctx.get(), &never);
  v1::UploadMembersRequest header;
  header.mutable_header()->set_segment("uploading");
  ASSERT_TRUE(writer->Write(header));
  v1::UploadMembersRequest chunk;
  auto* row = chunk.mutable_chunk()->add_rows();
  row->set_profile_id("p1");
  row->add_values()->set_string_value("a@x.com");
  row->add_values();
  ASSERT_TRUE(writer->Write(chunk));
  deadline = absl::Now() + absl::Seconds(20);
  v1::GetSegmentRequest get_segment;
  get_segment.set_segment("uploading");
  while (!s.upload_in_progress() && absl::Now() < deadline) {
    ASSERT_TRUE(segments_->GetSegment(As(kAdmin).get(), get_segment, &s).ok());
  }
  ASSERT_TRUE(s.upload_in_progress());
  v1::Run queued;
  run_req.set_export_("waiting");
  ASSERT_TRUE(runs_->RunExport(As(kAdmin).get(), run_req, &queued).ok());

  v1::ServerStatus status;
  for (const char* token : {kAdmin, kContributor, kViewer}) {
    grpc::Status answer =
        status_->GetServerStatus(As(token).get(), v1::GetServerStatusRequest(), &status);
    ASSERT_TRUE(answer.ok()) << token << ": " << answer.error_message();
  }
  EXPECT_FALSE(status.version().empty());
  EXPECT_EQ(status.plugin_abi_version(), sdk::kAbiVersion);
  EXPECT_EQ(status.replica(), "status-replica");
  ASSERT_EQ(status.destinations_size(), 1);
  EXPECT_EQ(status.destinations(0).name(), "fake");
  EXPECT_FALSE(status.destinations(0).version().empty());
  if (GetParam() == "postgres") {
    EXPECT_EQ(status.store_kind(), "postgresql");
    EXPECT_THAT(status.store_location(), HasSubstr(" on 127.0.0.1:"));
    // Never the user (nor a password, which exportd refuses in --store).
    EXPECT_THAT(status.store_location(), Not(HasSubstr("user")));
    EXPECT_THAT(status.store_location(), Not(HasSubstr(testing::PostgresServer::kUser)));
  } else {
    EXPECT_EQ(status.store_kind(), "sqlite");
    EXPECT_EQ(status.store_location(), dir_ + "/data/exportd.db");
  }
  ASSERT_EQ(status.runs_in_progress_size(), 1) << status.DebugString();
  EXPECT_EQ(status.runs_in_progress(0).run_id(), retrying.id());
  EXPECT_EQ(status.runs_in_progress(0).export_name(), "daily");
  EXPECT_EQ(status.runs_in_progress(0).state(), v1::RUN_STATE_FAILED_RETRYING);
  EXPECT_EQ(status.queued_runs(), 1) << status.DebugString();
  EXPECT_GE(status.oldest_queued_age_seconds(), 0);
  EXPECT_LT(status.oldest_queued_age_seconds(), 60);
  ASSERT_EQ(status.next_scheduled_runs_size(), 1) << status.DebugString();
  EXPECT_EQ(status.next_scheduled_runs(0).export_name(), "daily");
  EXPECT_GT(status.next_scheduled_runs(0).at_micros(), status.time_micros());
  EXPECT_LE(status.next_scheduled_runs(0).at_micros(),
            status.time_micros() + absl::ToInt64Microseconds(absl::Hours(24)));
  EXPECT_EQ(status_->GetServerStatus(As("").get(), v1::GetServerStatusRequest(), &status)
                .error_code(),
            grpc::UNAUTHENTICATED);
  upload_ctx->TryCancel();
  writer->Finish().IgnoreError();
}

TEST_P(ApiStoreTest, FailedAuthenticationIsLoggedWithThePeerNeverTheToken) {
  const std::string wrong = "not-a-token-of-this-server-0123456789";
  ::testing::internal::CaptureStderr();
  v1::WhoAmIResponse who;
  grpc::Status status = audit_->WhoAmI(As(wrong).get(), v1::WhoAmIRequest(), &who);
  std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(status.error_code(), grpc::UNAUTHENTICATED);
  EXPECT_THAT(logged, HasSubstr("exportd: authentication failed: unknown token (principal "
                                "unknown) from ipv4:127.0.0.1:"));
  EXPECT_THAT(logged, Not(HasSubstr(wrong.substr(0, 8))));
}

}  // namespace
}  // namespace exportd::api
