// The permission matrix, shared by the gRPC matrix test
// (permission_matrix_test.cc) and the HTTP/JSON API's
// (server/http/http_api_test.cc): every RPC of every exportd.v1 service, what
// each role must get on resources whose connection is shared with
// contributors and on resources whose connection is not, and the request
// messages of one call, so that any transport can make it.
//
//   class MyTest : public PermissionMatrixTest {};
//   for (const Row& row : Table()) {
//     Target t = MakeTarget(/*shared=*/true);
//     grpc::Status status = CallGrpc(row, As(kViewer).get(), t);
//     ... compare with row.viewer_shared ...
//   }
#ifndef EXPORTD_SERVER_API_PERMISSION_MATRIX_H_
#define EXPORTD_SERVER_API_PERMISSION_MATRIX_H_

#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/sync_stream.h>

#include <functional>
#include <memory>
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
#include "google/protobuf/message.h"
#include "gtest/gtest.h"
#include "server/api/api_test_fixture.h"

namespace exportd::api {

// What a cell must answer.
enum class Expect {
  kAllowed,  // past every permission check: no PERMISSION_DENIED, NOT_FOUND, UNAUTHENTICATED
  kDenied,   // PERMISSION_DENIED
  kHidden,   // NOT_FOUND, as for a resource that does not exist
};

inline const char* ExpectName(Expect e) {
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

// The request messages of one call: one for a unary or server-streaming RPC,
// the whole stream for a client-streaming one.
using Requests = std::vector<std::unique_ptr<google::protobuf::Message>>;

template <typename... M>
Requests MakeRequests(M... messages) {
  Requests requests;
  (requests.push_back(std::make_unique<M>(std::move(messages))), ...);
  return requests;
}

// The method's descriptor, from "/exportd.v1.RunService/RunExport".
inline const google::protobuf::MethodDescriptor* FindMethod(const std::string& path) {
  std::string name = path.substr(1);
  std::replace(name.begin(), name.end(), '/', '.');
  return google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name);
}

// Every RPC of every exportd.v1 service, from the generated descriptors.
inline std::set<std::string> AllMethods() {
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

class PermissionMatrixTest : public ApiTest {
 protected:
  struct Row {
    std::string method;  // "/exportd.v1.RunService/RunExport"
    // Answers for: admin, contributor, viewer; each on a shared and on a
    // private connection.
    Expect admin_shared, admin_private;
    Expect contributor_shared, contributor_private;
    Expect viewer_shared, viewer_private;
    std::function<Requests(const Target&)> requests;
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

  struct Role {
    const char* token;
    const char* name;
  };

  // Calls `cell` once per row, role and kind of connection (shared with
  // contributors or not), each on fresh resources, with what it must answer.
  void ForEachCell(const std::function<void(const Row& row, const Role& role, const Target& t,
                                            bool shared, Expect want)>& cell) {
    static constexpr Role kRoles[] = {
        {kAdmin, "admin"}, {kContributor, "contributor"}, {kViewer, "viewer"}};
    for (const Row& row : Table()) {
      const Expect expected[3][2] = {{row.admin_shared, row.admin_private},
                                     {row.contributor_shared, row.contributor_private},
                                     {row.viewer_shared, row.viewer_private}};
      for (int r = 0; r < 3; ++r) {
        for (bool shared : {true, false}) {
          Target t = MakeTarget(shared);
          cell(row, kRoles[r], t, shared, expected[r][shared ? 0 : 1]);
        }
      }
    }
  }

  // Checks `status` against what the cell must answer; `cell` names it.
  static void ExpectAnswer(const grpc::Status& status, Expect want, const std::string& cell) {
    using ::testing::HasSubstr;
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
  }

  // Makes the row's call over gRPC: a unary call, a server stream read to its
  // end, or a client stream of all the requests.
  grpc::Status CallGrpc(const Row& row, grpc::ClientContext* ctx, const Target& t) {
    using google::protobuf::Message;
    const google::protobuf::MethodDescriptor* method = FindMethod(row.method);
    if (method == nullptr) return grpc::Status(grpc::UNIMPLEMENTED, row.method + " is unknown");
    Requests requests = row.requests(t);
    std::unique_ptr<Message> response(google::protobuf::MessageFactory::generated_factory()
                                          ->GetPrototype(method->output_type())
                                          ->New());
    using Type = grpc::internal::RpcMethod::RpcType;
    if (method->client_streaming()) {
      grpc::internal::RpcMethod rpc(row.method.c_str(), Type::CLIENT_STREAMING);
      std::unique_ptr<grpc::ClientWriter<Message>> writer(
          grpc::internal::ClientWriterFactory<Message>::Create(channel_.get(), rpc, ctx,
                                                               response.get()));
      for (const auto& request : requests) {
        if (!writer->Write(*request)) break;
      }
      writer->WritesDone();
      return writer->Finish();
    }
    if (method->server_streaming()) {
      grpc::internal::RpcMethod rpc(row.method.c_str(), Type::SERVER_STREAMING);
      std::unique_ptr<grpc::ClientReader<Message>> reader(
          grpc::internal::ClientReaderFactory<Message>::Create(channel_.get(), rpc, ctx,
                                                               *requests.front()));
      while (reader->Read(response.get())) {
      }
      return reader->Finish();
    }
    grpc::internal::RpcMethod rpc(row.method.c_str(), Type::NORMAL_RPC);
    return grpc::internal::BlockingUnaryCall<Message, Message>(channel_.get(), rpc, ctx,
                                                               *requests.front(), response.get());
  }

  std::vector<Row> Table() {
    constexpr Expect A = Expect::kAllowed, D = Expect::kDenied, H = Expect::kHidden;
    return {
        // ConnectionService: admins manage connections; contributors see the
        // shared ones (a private one does not exist for them); viewers none.
        {"/exportd.v1.ConnectionService/CreateConnection", A, A, D, D, D, D,
         [this](const Target& t) { return MakeRequests(ConnectionRequest("new-" + t.unique)); }},
        {"/exportd.v1.ConnectionService/GetConnection", A, A, A, H, D, D,
         [](const Target& t) {
           v1::GetConnectionRequest req;
           req.set_connection(t.connection);
           return MakeRequests(req);
         }},
        {"/exportd.v1.ConnectionService/ListConnections", A, A, A, A, D, D,
         [](const Target&) { return MakeRequests(v1::ListConnectionsRequest()); }},
        {"/exportd.v1.ConnectionService/UpdateConnection", A, A, D, D, D, D,
         [](const Target& t) {
           v1::UpdateConnectionRequest req;
           req.set_connection(t.connection);
           req.set_display_name("renamed-" + t.unique);
           return MakeRequests(req);
         }},
        {"/exportd.v1.ConnectionService/DeleteConnection", A, A, D, D, D, D,
         [](const Target& t) {
           v1::DeleteConnectionRequest req;
           req.set_connection(t.connection);
           req.set_delete_exports(true);
           return MakeRequests(req);
         }},
        {"/exportd.v1.ConnectionService/TestConnection", A, A, D, D, D, D,
         [](const Target& t) {
           v1::TestConnectionRequest req;
           req.set_connection(t.connection);
           return MakeRequests(req);
         }},
        // SegmentService: segments belong to no connection.
        {"/exportd.v1.SegmentService/CreateSegment", A, A, A, A, D, D,
         [](const Target& t) {
           v1::CreateSegmentRequest req;
           req.set_name("new-segment-" + t.unique);
           return MakeRequests(req);
         }},
        {"/exportd.v1.SegmentService/GetSegment", A, A, A, A, A, A,
         [](const Target& t) {
           v1::GetSegmentRequest req;
           req.set_segment(t.segment);
           return MakeRequests(req);
         }},
        {"/exportd.v1.SegmentService/ListSegments", A, A, A, A, A, A,
         [](const Target&) { return MakeRequests(v1::ListSegmentsRequest()); }},
        {"/exportd.v1.SegmentService/DeleteSegment", A, A, A, A, D, D,
         [](const Target& t) {
           v1::DeleteSegmentRequest req;
           req.set_segment(t.segment);
           return MakeRequests(req);
         }},
        {"/exportd.v1.SegmentService/UploadMembers", A, A, A, A, D, D,
         [](const Target& t) {
           v1::UploadMembersRequest header, chunk, trailer;
           header.mutable_header()->set_segment(t.segment);
           auto* row = chunk.mutable_chunk()->add_rows();
           row->set_profile_id("p1");
           row->add_values()->set_string_value("v");
           trailer.mutable_trailer()->set_row_count(1);
           return MakeRequests(header, chunk, trailer);
         }},
        {"/exportd.v1.SegmentService/ListMembers", A, A, A, A, A, A,
         [](const Target& t) {
           v1::ListMembersRequest req;
           req.set_segment(t.segment);
           return MakeRequests(req);
         }},
        // ExportService: everyone reads; contributors change only exports on
        // shared connections, and cannot name a private one.
        {"/exportd.v1.ExportService/CreateExport", A, A, A, H, D, D,
         [](const Target& t) {
           v1::CreateExportRequest req;
           req.set_name("new-export-" + t.unique);
           req.set_connection(t.connection);
           req.add_segments(t.segment);
           auto* m = req.add_mappings();
           m->set_destination_field("key");
           m->set_profile_field("k");
           return MakeRequests(req);
         }},
        {"/exportd.v1.ExportService/GetExport", A, A, A, A, A, A,
         [](const Target& t) {
           v1::GetExportRequest req;
           req.set_export_(t.export_name);
           return MakeRequests(req);
         }},
        {"/exportd.v1.ExportService/ListExports", A, A, A, A, A, A,
         [](const Target&) { return MakeRequests(v1::ListExportsRequest()); }},
        {"/exportd.v1.ExportService/UpdateExport", A, A, A, D, D, D,
         [](const Target& t) {
           v1::UpdateExportRequest req;
           req.set_export_(t.export_name);
           req.set_mode(v1::EXPORT_MODE_ADD_ONLY);
           return MakeRequests(req);
         }},
        {"/exportd.v1.ExportService/DeleteExport", A, A, A, D, D, D,
         [](const Target& t) {
           v1::DeleteExportRequest req;
           req.set_export_(t.export_name);
           return MakeRequests(req);
         }},
        {"/exportd.v1.ExportService/DuplicateExport", A, A, A, D, D, D,
         [](const Target& t) {
           v1::DuplicateExportRequest req;
           req.set_export_(t.export_name);
           req.set_new_name("copy-" + t.unique);
           return MakeRequests(req);
         }},
        {"/exportd.v1.ExportService/DetachExport", A, A, A, D, D, D,
         [](const Target& t) {
           v1::DetachExportRequest req;
           req.set_export_(t.export_name);
           return MakeRequests(req);
         }},
        // RunService: everyone reads runs; contributors run and cancel only
        // exports on shared connections.
        {"/exportd.v1.RunService/RunExport", A, A, A, D, D, D,
         [](const Target& t) {
           v1::RunExportRequest req;
           req.set_export_(t.export_name);
           return MakeRequests(req);
         }},
        {"/exportd.v1.RunService/RunAll", A, A, A, A, D, D,
         [](const Target&) { return MakeRequests(v1::RunAllRequest()); }},
        {"/exportd.v1.RunService/CancelRun", A, A, A, D, D, D,
         [](const Target& t) {
           v1::CancelRunRequest req;
           req.set_run_id(t.run_id);
           return MakeRequests(req);
         }},
        {"/exportd.v1.RunService/GetRun", A, A, A, A, A, A,
         [](const Target& t) {
           v1::GetRunRequest req;
           req.set_run_id(t.run_id);
           return MakeRequests(req);
         }},
        {"/exportd.v1.RunService/ListRuns", A, A, A, A, A, A,
         [](const Target& t) {
           v1::ListRunsRequest req;
           req.set_export_(t.export_name);
           return MakeRequests(req);
         }},
        {"/exportd.v1.RunService/WatchRun", A, A, A, A, A, A,
         [](const Target& t) {
           v1::WatchRunRequest req;
           req.set_run_id(t.run_id);
           return MakeRequests(req);
         }},
        {"/exportd.v1.RunService/ListRejections", A, A, A, A, A, A,
         [](const Target& t) {
           v1::ListRejectionsRequest req;
           req.set_run_id(t.run_id);
           return MakeRequests(req);
         }},
        {"/exportd.v1.RunService/ListRunLog", A, A, A, A, A, A,
         [](const Target& t) {
           v1::ListRunLogRequest req;
           req.set_run_id(t.run_id);
           return MakeRequests(req);
         }},
        // DestinationService: manifests are for everyone.
        {"/exportd.v1.DestinationService/ListDestinations", A, A, A, A, A, A,
         [](const Target&) { return MakeRequests(v1::ListDestinationsRequest()); }},
        {"/exportd.v1.DestinationService/GetDestination", A, A, A, A, A, A,
         [](const Target&) {
           v1::GetDestinationRequest req;
           req.set_name("fake");
           return MakeRequests(req);
         }},
        // AuditService: the log is for admins.
        {"/exportd.v1.AuditService/ListAuditEntries", A, A, D, D, D, D,
         [](const Target&) { return MakeRequests(v1::ListAuditEntriesRequest()); }},
        {"/exportd.v1.AuditService/WhoAmI", A, A, A, A, A, A,
         [](const Target&) { return MakeRequests(v1::WhoAmIRequest()); }},
        // ServerService: what the server is and does, for everyone.
        {"/exportd.v1.ServerService/GetServerStatus", A, A, A, A, A, A,
         [](const Target&) { return MakeRequests(v1::GetServerStatusRequest()); }},
    };
  }

  int targets_ = 0;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_PERMISSION_MATRIX_H_
