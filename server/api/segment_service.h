// exportd.v1.SegmentService: segments, their schemas and member snapshots.
// Members arrive by a client-streaming upload; a new snapshot becomes visible
// only when the whole stream arrived and every row was valid.
#ifndef EXPORTD_SERVER_API_SEGMENT_SERVICE_H_
#define EXPORTD_SERVER_API_SEGMENT_SERVICE_H_

#include "absl/time/time.h"
#include "exportd/v1/segment.grpc.pb.h"
#include "server/api/limits.h"
#include "server/api/rpc_support.h"
#include "server/store/member_sorter.h"

namespace exportd::api {

// How long an upload may take (--upload-idle-timeout, --upload-max-duration).
// One that breaks either is aborted with DEADLINE_EXCEEDED: its staged rows
// are discarded, the segment keeps its previous snapshot, and the runs that
// waited for the upload start.
struct UploadLimits {
  // The longest wait for the client's next message (the first one included).
  absl::Duration idle_timeout = kDefaultUploadIdleTimeout;
  // The longest an upload may last, from the call's start to its trailer.
  absl::Duration max_duration = kDefaultUploadMaxDuration;
  // The memory an upload's rows may take while they are sorted by profile id
  // (store::MemberSorter); beyond, sorted runs go to a temporary file in
  // $TMPDIR (or /tmp) and are merged at the end of the upload.
  size_t sort_memory_bytes = store::MemberSorterOptions().memory_bytes;
};

// UploadMembers is served on raw bytes (see segment_service.cc); the other
// methods on messages.
class SegmentService final : public v1::SegmentService::WithRawCallbackMethod_UploadMembers<
                                 v1::SegmentService::CallbackService> {
 public:
  explicit SegmentService(ServiceDeps deps, UploadLimits limits = {})
      : deps_(deps), limits_(limits) {}

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
  // Reads serialized UploadMembersRequest messages, answers a serialized
  // UploadMembersResponse.
  grpc::ServerReadReactor<grpc::ByteBuffer>* UploadMembers(grpc::CallbackServerContext* ctx,
                                                           grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ListMembers(grpc::CallbackServerContext* ctx,
                                        const v1::ListMembersRequest* req,
                                        v1::ListMembersResponse* resp) override;

 private:
  ServiceDeps deps_;
  UploadLimits limits_;
};

// At most kMaxSchemaFields fields; names non-empty, valid (ValidateName) and
// unique; every type set.
absl::Status ValidateSchema(const google::protobuf::RepeatedPtrField<v1::SchemaField>& schema);

// Checks the rows of a serialized chunk against the schema. `first_row` is
// the 1-based number of the chunk's first row in the upload, for messages.
// Sets `*rows` (if given) to the number of rows. DATA_LOSS when the bytes
// are not a well-formed chunk.
absl::Status ValidateRows(absl::string_view chunk, const std::vector<v1::SchemaField>& schema,
                          std::int64_t first_row, std::int64_t* rows = nullptr);

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_SEGMENT_SERVICE_H_
