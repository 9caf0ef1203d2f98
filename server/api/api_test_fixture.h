// The API test fixture: an exportd Server on 127.0.0.1 port 0 with a tokens
// file for three principals (alice admin, bob contributor, carol viewer), an
// in-process fake destination, and a stub per service.
//
//   class MyTest : public exportd::api::ApiTest {};
//   TEST_F(MyTest, X) { ASSERT_TRUE(CreateConnection(ConnectionRequest("c"), &c).ok()); }
#ifndef EXPORTD_SERVER_API_API_TEST_FIXTURE_H_
#define EXPORTD_SERVER_API_API_TEST_FIXTURE_H_

#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "exportd/v1/audit.grpc.pb.h"
#include "exportd/v1/connection.grpc.pb.h"
#include "exportd/v1/destination.grpc.pb.h"
#include "exportd/v1/export.grpc.pb.h"
#include "exportd/v1/run.grpc.pb.h"
#include "exportd/v1/segment.grpc.pb.h"
#include "exportd/v1/server.grpc.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"
#include "server/app/server.h"
#include "tests/fakes/fake_destination.h"

namespace exportd::api {

// The services are tested through the assembled server.
using ::exportd::app::Server;
using ::exportd::app::ServerOptions;

inline constexpr char kAdmin[] = "admin-token-00000000000000000000000";
inline constexpr char kContributor[] = "contrib-token-000000000000000000000";
inline constexpr char kViewer[] = "viewer-token-00000000000000000000000";

// exportd refuses a tokens file that group or others may read.
inline void MakePrivate(const std::string& path) {
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
      std::filesystem::perm_options::replace);
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = std::filesystem::temp_directory_path() / "api_testXXXXXX";
    dir_ = mkdtemp(dir.data());
    std::ofstream(dir_ + "/tokens") << "# test tokens\n"
                                    << kAdmin << " alice admin\n"
                                    << kContributor << " bob contributor\n"
                                    << kViewer << " carol viewer\n";
    MakePrivate(dir_ + "/tokens");
    state_ = std::make_shared<testing::FakeState>();
    StartServer();
  }
  void TearDown() override {
    StopServer();
    std::filesystem::remove_all(dir_);
  }
  // `configure` may change the options (e.g. the upload limits) before start.
  void StartServer(const std::function<void(ServerOptions&)>& configure = nullptr) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = dir_ + "/data";
    options.tokens_file = dir_ + "/tokens";
    options.extra_destinations.push_back(testing::MakeFakeDestination(state_));
    Configure(options);
    if (configure) configure(options);
    auto server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    connections_ = v1::ConnectionService::NewStub(channel_);
    segments_ = v1::SegmentService::NewStub(channel_);
    exports_ = v1::ExportService::NewStub(channel_);
    destinations_ = v1::DestinationService::NewStub(channel_);
    audit_ = v1::AuditService::NewStub(channel_);
    runs_ = v1::RunService::NewStub(channel_);
    status_ = v1::ServerService::NewStub(channel_);
  }
  // A fixture's own options for every start (e.g. an HTTP listener).
  virtual void Configure(ServerOptions&) {}
  void StopServer() {
    connections_.reset();
    segments_.reset();
    exports_.reset();
    destinations_.reset();
    audit_.reset();
    runs_.reset();
    status_.reset();
    channel_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
  }
  std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }
  v1::CreateConnectionRequest ConnectionRequest(const std::string& name) {
    v1::CreateConnectionRequest req;
    req.set_display_name(name);
    req.set_destination_type("fake");
    (*req.mutable_secrets())["token"] = "s3cr3t-value-xyz";
    (*req.mutable_settings())["mode"] = "slow";
    req.set_accept_privacy_terms(true);
    return req;
  }
  grpc::Status CreateConnection(const v1::CreateConnectionRequest& req, v1::Connection* out,
                                const std::string& token = kAdmin) {
    return connections_->CreateConnection(As(token).get(), req, out);
  }
  grpc::Status CreateSegment(const std::string& name, std::vector<std::string> fields,
                             v1::Segment* out, const std::string& token = kAdmin) {
    v1::CreateSegmentRequest req;
    req.set_name(name);
    for (auto& f : fields) {
      auto* field = req.add_schema();
      field->set_name(f);
      field->set_type(v1::FIELD_TYPE_STRING);
    }
    return segments_->CreateSegment(As(token).get(), req, out);
  }
  // Uploads rows of string values; `bad_row` (1-based) gets a wrong type.
  grpc::Status Upload(const std::string& segment, int rows, v1::UploadMembersResponse* resp,
                      int bad_row = 0, bool cancel_midway = false, int chunk_rows = 5000) {
    auto ctx = As(kAdmin);
    auto writer = segments_->UploadMembers(ctx.get(), resp);
    v1::UploadMembersRequest req;
    req.mutable_header()->set_segment(segment);
    writer->Write(req);
    req.Clear();
    for (int i = 1; i <= rows; ++i) {
      auto* row = req.mutable_chunk()->add_rows();
      row->set_profile_id("p" + std::to_string(i));
      if (i == bad_row) {
        row->add_values()->set_int_value(7);
      } else {
        row->add_values()->set_string_value("user" + std::to_string(i) + "@example.com");
      }
      row->add_values();  // null
      if (req.chunk().rows_size() == chunk_rows || i == rows) {
        if (!writer->Write(req)) break;
        req.Clear();
        if (cancel_midway && i >= rows / 2) {
          ctx->TryCancel();
          break;
        }
      }
    }
    if (!cancel_midway) {
      req.Clear();
      req.mutable_trailer()->set_row_count(rows);
      writer->Write(req);
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // Sends a header for `segment`, then `messages` as they are; returns how
  // the upload ended.
  grpc::Status SendMessages(const std::string& segment,
                            const std::vector<v1::UploadMembersRequest>& messages,
                            v1::UploadMembersResponse* resp) {
    auto ctx = As(kAdmin);
    auto writer = segments_->UploadMembers(ctx.get(), resp);
    v1::UploadMembersRequest header;
    header.mutable_header()->set_segment(segment);
    writer->Write(header);
    {
      google::protobuf::LogSilencer quiet;  // Tests send strings that are not UTF-8.
      for (const auto& message : messages) {
        if (!writer->Write(message)) break;
      }
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // Sends a header for `segment`, the chunks as they are, and a trailer
  // counting `trailer_rows` unless it is negative; returns how it ended.
  grpc::Status SendRaw(const std::string& segment,
                       const std::vector<v1::UploadMembersRequest::Chunk>& chunks,
                       std::int64_t trailer_rows) {
    std::vector<v1::UploadMembersRequest> messages;
    for (const auto& chunk : chunks) *messages.emplace_back().mutable_chunk() = chunk;
    if (trailer_rows >= 0) messages.emplace_back().mutable_trailer()->set_row_count(trailer_rows);
    v1::UploadMembersResponse resp;
    return SendMessages(segment, messages, &resp);
  }

  std::string dir_;
  std::shared_ptr<testing::FakeState> state_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ConnectionService::Stub> connections_;
  std::unique_ptr<v1::SegmentService::Stub> segments_;
  std::unique_ptr<v1::ExportService::Stub> exports_;
  std::unique_ptr<v1::DestinationService::Stub> destinations_;
  std::unique_ptr<v1::AuditService::Stub> audit_;
  std::unique_ptr<v1::RunService::Stub> runs_;
  std::unique_ptr<v1::ServerService::Stub> status_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_API_TEST_FIXTURE_H_
