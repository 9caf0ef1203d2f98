// An in-process fake of the exportd services exportctl's tests need: segments
// (with a real client-streaming UploadMembers that commits only a complete
// stream, and ListMembers answering with its first rows), connections ("shared"
// answers as exportd answers a contributor; lookups of other names fail
// NOT_FOUND; CreateConnection records the request and answers a connection made
// from it), destinations (GetDestination knows "iterable", whose privacy
// statement is kFakePrivacyStatement, version kFakePrivacyStatementVersion) and
// runs (export "ok" runs to SUCCEEDED, any other export to FAILED; WatchRun
// streams QUEUED, RUNNING at 50%, then the final state; GetRun of "run-slow"
// is RUNNING, of "run-retrying" FAILED_RETRYING; "run-ok" has two
// rejections) and the server's status (a fixed one: FakeServerStatus()). It
// binds 127.0.0.1:0 and records the authorization header it saw.
//
//   FakeExportd server;                 // started
//   RunExportctl({"exportctl", "--server", server.address(), "segment", "list"}, ...);
#ifndef EXPORTD_CLIENT_TESTING_FAKE_EXPORTD_H_
#define EXPORTD_CLIENT_TESTING_FAKE_EXPORTD_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "exportd/v1/connection.grpc.pb.h"
#include "exportd/v1/destination.grpc.pb.h"
#include "exportd/v1/export.grpc.pb.h"
#include "exportd/v1/run.grpc.pb.h"
#include "exportd/v1/segment.grpc.pb.h"
#include "exportd/v1/server.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace exportd::client::fakes {

// What the fake's GetServerStatus answers.
exportd::v1::ServerStatus FakeServerStatus();

// The fake "iterable" destination's privacy statement (two paragraphs).
inline constexpr char kFakePrivacyStatement[] =
    "Profile data goes to the fake Iterable.\n\nIt stays in this test.";
inline constexpr char kFakePrivacyStatementVersion[] = "2026-12-01";

class FakeExportd {
 public:
  FakeExportd();
  ~FakeExportd();

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }

  // The segment as last committed; NOT_FOUND-like empty optional when absent.
  std::optional<exportd::v1::Segment> segment(const std::string& name);
  // The first rows of the last committed upload of `name` (at most 100).
  std::vector<exportd::v1::MemberRow> first_rows(const std::string& name);
  int cancelled_uploads();
  // How many WatchRun streams of "run-slow" (RUNNING until the client goes
  // away) are open now.
  int waiting_watches();
  std::string last_authorization();
  // The last CreateExport / UpdateExport request (exports: CreateExport keeps
  // the export by name, with a signing secret "fake-signing-secret" shown
  // when it has a webhook; GetExport answers it; UpdateExport records the
  // request and answers the export with the request's webhook fields).
  exportd::v1::CreateExportRequest last_create_export();
  exportd::v1::UpdateExportRequest last_update_export();
  // The last CreateConnection request; empty when there was none.
  exportd::v1::CreateConnectionRequest last_create_connection();

 private:
  class SegmentServiceImpl;
  class ConnectionServiceImpl;
  class DestinationServiceImpl;
  class RunServiceImpl;
  class ServerServiceImpl;
  class ExportServiceImpl;

  struct State {
    absl::Mutex mu;
    std::map<std::string, exportd::v1::Segment> segments ABSL_GUARDED_BY(mu);
    std::map<std::string, std::vector<exportd::v1::MemberRow>> rows ABSL_GUARDED_BY(mu);
    int cancelled_uploads ABSL_GUARDED_BY(mu) = 0;
    std::string last_authorization ABSL_GUARDED_BY(mu);
    std::map<std::string, exportd::v1::Export> exports ABSL_GUARDED_BY(mu);
    exportd::v1::CreateExportRequest last_create_export ABSL_GUARDED_BY(mu);
    exportd::v1::UpdateExportRequest last_update_export ABSL_GUARDED_BY(mu);
    exportd::v1::CreateConnectionRequest last_create_connection ABSL_GUARDED_BY(mu);
  };

  std::shared_ptr<State> state_;
  std::unique_ptr<SegmentServiceImpl> segments_;
  std::unique_ptr<ConnectionServiceImpl> connections_;
  std::unique_ptr<DestinationServiceImpl> destinations_;
  std::unique_ptr<RunServiceImpl> runs_;
  std::unique_ptr<ServerServiceImpl> status_;
  std::unique_ptr<ExportServiceImpl> exports_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace exportd::client::fakes

#endif  // EXPORTD_CLIENT_TESTING_FAKE_EXPORTD_H_
