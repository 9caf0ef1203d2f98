// exportd.v1.SegmentService: segments, their schemas and member snapshots.
// Members arrive by a client-streaming upload; a new snapshot becomes visible
// only when the whole stream arrived and every row was valid.
#ifndef EXPORTD_SERVER_API_SEGMENT_SERVICE_H_
#define EXPORTD_SERVER_API_SEGMENT_SERVICE_H_

#include "exportd/v1/segment.grpc.pb.h"
#include "server/api/rpc_support.h"

namespace exportd::api {

class SegmentService final : public v1::SegmentService::CallbackService {
 public:
  explicit SegmentService(ServiceDeps deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* CreateSegment(grpc::CallbackServerContext* ctx,
                                          const v1::CreateSegmentRequest* req,
                                          v1::Segment* resp) override;
  grpc::ServerUnaryReactor* GetSegment(grpc::CallbackServerContext* ctx,
                                       const v1::GetSegmentRequest* req,
                                       v1::Segment* resp) override;
  grpc::ServerUnaryReactor* ListSegments(grpc::CallbackServerContext* ctx,
                                         const v1::ListSegmentsRequest* req,
                                         v1::ListSegmentsResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteSegment(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteSegmentRequest* req,
                                          v1::DeleteSegmentResponse* resp) override;
  grpc::ServerReadReactor<v1::UploadMembersRequest>* UploadMembers(
      grpc::CallbackServerContext* ctx, v1::UploadMembersResponse* resp) override;
  grpc::ServerUnaryReactor* ListMembers(grpc::CallbackServerContext* ctx,
                                        const v1::ListMembersRequest* req,
                                        v1::ListMembersResponse* resp) override;

 private:
  ServiceDeps deps_;
};

// Field names non-empty and unique, every type set.
absl::Status ValidateSchema(const google::protobuf::RepeatedPtrField<v1::SchemaField>& schema);

// Checks a chunk's rows against the schema. `first_row` is the 1-based
// number of the chunk's first row in the upload, for messages.
absl::Status ValidateRows(const v1::UploadMembersRequest::Chunk& chunk,
                          const std::vector<v1::SchemaField>& schema, std::int64_t first_row);

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_SEGMENT_SERVICE_H_
