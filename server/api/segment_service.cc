#include "server/api/segment_service.h"

#include <functional>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/api/limits.h"
#include "server/api/uploaded_ids.h"
#include "server/common/clock.h"
#include "server/common/grpc_status.h"
#include "server/common/status_macros.h"
#include "server/engine/engine.h"
#include "server/store/member_chunk.h"

namespace exportd::api {
namespace {

constexpr char kService[] = "/exportd.v1.SegmentService/";

absl::string_view TypeName(v1::FieldType type) {
  switch (type) {
    case v1::FIELD_TYPE_STRING: return "string";
    case v1::FIELD_TYPE_INT: return "int";
    case v1::FIELD_TYPE_DOUBLE: return "double";
    case v1::FIELD_TYPE_BOOL: return "bool";
    case v1::FIELD_TYPE_TIMESTAMP: return "timestamp";
    default: return "unspecified";
  }
}

v1::FieldType ValueType(v1::Value::KindCase kind) {
  switch (kind) {
    case v1::Value::kStringValue: return v1::FIELD_TYPE_STRING;
    case v1::Value::kIntValue: return v1::FIELD_TYPE_INT;
    case v1::Value::kDoubleValue: return v1::FIELD_TYPE_DOUBLE;
    case v1::Value::kBoolValue: return v1::FIELD_TYPE_BOOL;
    case v1::Value::kTimestampMicros: return v1::FIELD_TYPE_TIMESTAMP;
    default: return v1::FIELD_TYPE_UNSPECIFIED;  // null
  }
}

// One upload stream. Rows are checked and staged chunk by chunk; the
// snapshot is committed when the trailer arrived and the client half-closes,
// discarded otherwise.
//
// The stream is read as raw bytes: a message that holds only a chunk (all of
// them, from every client we know) is validated in place and its chunk
// stored as it arrived, with no protobuf messages built per row. Anything
// else is parsed the ordinary way.
class UploadReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  UploadReactor(const ServiceDeps& deps, grpc::CallbackServerContext* ctx,
                grpc::ByteBuffer* resp)
      : deps_(deps), ctx_(ctx), resp_(resp) {
    auto who = Authenticate(*ctx, *deps.authenticator);
    if (!who.ok()) {
      Finish(ToGrpcStatus(who.status()));
      return;
    }
    who_ = *who;
    authenticated_ = true;
    absl::Status allowed = auth::Authorize(who_, auth::Action::kManageSegments);
    if (!allowed.ok()) {
      End(allowed);
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (ctx_->IsCancelled()) {
        End(absl::CancelledError("upload canceled by the client; the previous snapshot stays"));
      } else if (!trailer_seen_) {
        End(absl::InvalidArgumentError(
            "the upload ended without its trailer; nothing was changed. Send "
            "UploadMembersRequest.trailer with the row count as the last message"));
      } else {
        auto segment = writer_->Commit();
        if (segment.ok()) {
          v1::UploadMembersResponse response;
          *response.mutable_segment() = *segment;
          response.set_rows_received(rows_);
          grpc::Slice slice(response.SerializeAsString());
          *resp_ = grpc::ByteBuffer(&slice, 1);
        }
        End(segment.status());
      }
      return;
    }
    absl::Status status = Handle();
    if (!status.ok()) {
      End(status);
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Handle() {
    grpc::Slice slice;
    if (!request_.DumpToSingleSlice(&slice).ok()) {
      return absl::InternalError("could not read the upload message; send it again");
    }
    request_.Clear();
    absl::string_view bytes(reinterpret_cast<const char*>(slice.begin()), slice.size());
    absl::Status fast;
    if (std::optional<absl::string_view> chunk = store::ChunkOfUploadRequest(bytes)) {
      fast = HandleChunk(*chunk);
      // Bytes the in-place reader does not take (groups) get protobuf's word.
      if (fast.code() != absl::StatusCode::kDataLoss) return fast;
    }
    v1::UploadMembersRequest request;
    if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      if (!fast.ok()) {
        // The in-place reader knows the row and the value.
        return absl::InvalidArgumentError(
            absl::StrCat("segment '", segment_name_, "': ", fast.message(),
                         "; send every string as UTF-8. Nothing was changed"));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "upload message ", messages_ + 1,
          " is not a valid UploadMembersRequest (malformed, or a string that is not UTF-8)"));
    }
    return Handle(request);
  }

  absl::Status Handle(v1::UploadMembersRequest& request) {
    if (request.has_header()) {
      if (writer_ != nullptr) {
        return absl::InvalidArgumentError("the upload carried a second header; send it once");
      }
      resource_ = absl::StrCat("segment/", request.header().segment());
      EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment,
                               deps_.store->GetSegment(request.header().segment()));
      resource_ = absl::StrCat("segment/", segment.id());
      segment_name_ = segment.name();
      if (request.header().schema_size() > 0) {
        EXPORTD_RETURN_IF_ERROR(ValidateSchema(request.header().schema()));
        schema_.assign(request.header().schema().begin(), request.header().schema().end());
      } else {
        schema_.assign(segment.schema().begin(), segment.schema().end());
      }
      EXPORTD_ASSIGN_OR_RETURN(writer_, deps_.store->BeginSnapshot(segment.id(), schema_));
      ++messages_;
      return absl::OkStatus();
    }
    if (request.has_trailer()) {
      EXPORTD_RETURN_IF_ERROR(CheckOrder());
      if (request.trailer().row_count() != rows_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "segment '", segment_name_, "': the trailer counts ", request.trailer().row_count(),
            " rows but ", rows_, " arrived; nothing was changed"));
      }
      trailer_seen_ = true;
      ++messages_;
      return absl::OkStatus();
    }
    if (!request.has_chunk()) {
      return absl::InvalidArgumentError(
          "empty UploadMembersRequest; send a header, chunks, then the trailer");
    }
    // Stored in its canonical form: fields this server does not know are dropped.
    request.mutable_chunk()->DiscardUnknownFields();
    return HandleChunk(request.chunk().SerializeAsString());
  }

  absl::Status CheckOrder() const {
    if (writer_ == nullptr) {
      return absl::InvalidArgumentError(
          "rows arrived before the header; send UploadMembersRequest.header first");
    }
    if (trailer_seen_) {
      return absl::InvalidArgumentError("a message arrived after the trailer; send it last");
    }
    return absl::OkStatus();
  }

  // Validates a chunk's rows in place and stages it. DATA_LOSS only when the
  // bytes are not a well-formed chunk.
  absl::Status HandleChunk(absl::string_view chunk) {
    EXPORTD_RETURN_IF_ERROR(CheckOrder());
    std::int64_t rows = 0;
    absl::Status valid = ValidateRows(chunk, schema_, rows_ + 1, &rows);
    if (!valid.ok()) {
      if (valid.code() == absl::StatusCode::kDataLoss) return valid;
      return absl::Status(valid.code(),
                          absl::StrCat("segment '", segment_name_, "': ", valid.message()));
    }
    // Only now, when the whole chunk is valid, do its ids count as seen.
    store::ChunkReader reader(chunk);
    for (std::int64_t i = 0; reader.Next(row_); ++i) {
      EXPORTD_ASSIGN_OR_RETURN(
          bool fresh, ids_.Insert(row_.profile_id, [&](absl::string_view id) {
            return SeenBefore(id, chunk.substr(0, reader.last_row_offset()));
          }));
      if (!fresh) {
        return absl::InvalidArgumentError(absl::StrCat(
            "segment '", segment_name_, "': row ", rows_ + i + 1, ": profile id '",
            row_.profile_id, "' appears twice; profile ids must be unique"));
      }
    }
    rows_ += rows;
    ++messages_;
    return writer_->AppendBytes(std::string(chunk), rows);
  }

  // Whether a row staged before, or one of the rows of `earlier` (the part of
  // the current chunk before the row asking), has profile id `id`.
  absl::StatusOr<bool> SeenBefore(absl::string_view id, absl::string_view earlier) {
    bool found = false;
    store::RowView row;
    auto scan = [&](absl::string_view bytes) -> absl::Status {
      store::ChunkReader reader(bytes);
      while (!found && reader.Next(row)) found = row.profile_id == id;
      return reader.status();
    };
    EXPORTD_RETURN_IF_ERROR(scan(earlier));
    if (!found) EXPORTD_RETURN_IF_ERROR(writer_->ForEachStagedChunk(scan));
    return found;
  }

  void End(const absl::Status& status) {
    bool uploading = writer_ != nullptr;
    writer_.reset();  // Uncommitted: discarded.
    // Runs waiting for this upload to end can start now.
    if (uploading && deps_.engine != nullptr) deps_.engine->Wake();
    if (authenticated_) {
      RecordAudit(deps_, who_, absl::StrCat(kService, "UploadMembers"), resource_, status);
    }
    Finish(ToGrpcStatus(status));
  }

  const ServiceDeps deps_;
  grpc::CallbackServerContext* ctx_;
  grpc::ByteBuffer* resp_;
  auth::Principal who_;
  bool authenticated_ = false;
  std::string resource_ = "segment/?";
  std::string segment_name_;
  grpc::ByteBuffer request_;
  store::RowView row_;
  std::vector<v1::SchemaField> schema_;
  std::unique_ptr<store::SnapshotWriter> writer_;
  // The profile ids seen so far (by hash).
  UploadedIds ids_;
  std::int64_t rows_ = 0;
  std::int64_t messages_ = 0;
  bool trailer_seen_ = false;
};

}  // namespace

absl::Status ValidateSchema(const google::protobuf::RepeatedPtrField<v1::SchemaField>& schema) {
  if (schema.size() > kMaxSchemaFields) {
    return absl::InvalidArgumentError(absl::StrCat("the schema has ", schema.size(),
                                                   " fields; the limit is ", kMaxSchemaFields,
                                                   " fields per segment"));
  }
  absl::flat_hash_set<std::string> names;
  names.reserve(schema.size());
  for (int i = 0; i < schema.size(); ++i) {
    const auto& field = schema[i];
    if (field.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("schema field ", i + 1, " has no name"));
    }
    EXPORTD_RETURN_IF_ERROR(ValidateName(absl::StrCat("schema field ", i + 1), field.name()));
    if (!names.insert(field.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("schema field '", field.name(), "' is declared twice"));
    }
    if (field.type() == v1::FIELD_TYPE_UNSPECIFIED || !v1::FieldType_IsValid(field.type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "schema field '", field.name(),
          "' has no type; use string, int, double, bool or timestamp"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRows(absl::string_view chunk, const std::vector<v1::SchemaField>& schema,
                          std::int64_t first_row, std::int64_t* rows) {
  store::ChunkReader reader(chunk);
  store::RowView row;
  std::int64_t number = first_row;
  for (; reader.Next(row); ++number) {
    if (row.profile_id.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("row ", number, " has an empty profile id"));
    }
    if (row.values.size() != schema.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", number, " (profile '", row.profile_id, "') has ",
                       row.values.size(), " values; the schema has ", schema.size(), " fields"));
    }
    for (size_t f = 0; f < schema.size(); ++f) {
      v1::FieldType got = ValueType(row.values[f].kind);
      if (got != v1::FIELD_TYPE_UNSPECIFIED && got != schema[f].type()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "row ", number, " (profile '", row.profile_id, "'), field '", schema[f].name(),
            "': expected ", TypeName(schema[f].type()), ", got ", TypeName(got)));
      }
    }
  }
  if (!reader.status().ok()) {
    return absl::DataLossError(absl::StrCat("row ", first_row + reader.rows_read(), ": ",
                                            reader.status().message()));
  }
  if (rows != nullptr) *rows = number - first_row;
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* SegmentService::CreateSegment(grpc::CallbackServerContext* ctx,
                                                        const v1::CreateSegmentRequest* req,
                                                        v1::Segment* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "CreateSegment"),
                     auth::Action::kManageSegments, Audit::kYes,
                     [&](const auth::Principal&, std::string& resource) -> absl::Status {
                       resource = absl::StrCat("segment/", req->name());
                       EXPORTD_RETURN_IF_ERROR(ValidateName("name", req->name()));
                       EXPORTD_RETURN_IF_ERROR(ValidateSchema(req->schema()));
                       v1::Segment segment;
                       segment.set_id(NewId("seg"));
                       segment.set_name(req->name());
                       *segment.mutable_schema() = req->schema();
                       std::int64_t now = NowMicros();
                       segment.set_created_at_micros(now);
                       segment.set_updated_at_micros(now);
                       EXPORTD_RETURN_IF_ERROR(deps_.store->CreateSegment(segment));
                       resource = absl::StrCat("segment/", segment.id());
                       *resp = segment;
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* SegmentService::GetSegment(grpc::CallbackServerContext* ctx,
                                                     const v1::GetSegmentRequest* req,
                                                     v1::Segment* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "GetSegment"), auth::Action::kRead,
                     Audit::kNo, [&](const auth::Principal&, std::string&) -> absl::Status {
                       EXPORTD_ASSIGN_OR_RETURN(*resp, deps_.store->GetSegment(req->segment()));
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* SegmentService::ListSegments(grpc::CallbackServerContext* ctx,
                                                       const v1::ListSegmentsRequest*,
                                                       v1::ListSegmentsResponse* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "ListSegments"), auth::Action::kRead,
                     Audit::kNo, [&](const auth::Principal&, std::string&) -> absl::Status {
                       EXPORTD_ASSIGN_OR_RETURN(auto segments, deps_.store->ListSegments());
                       for (auto& s : segments) *resp->add_segments() = std::move(s);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* SegmentService::DeleteSegment(grpc::CallbackServerContext* ctx,
                                                        const v1::DeleteSegmentRequest* req,
                                                        v1::DeleteSegmentResponse*) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "DeleteSegment"),
                     auth::Action::kManageSegments, Audit::kYes,
                     [&](const auth::Principal&, std::string& resource) -> absl::Status {
                       resource = absl::StrCat("segment/", req->segment());
                       EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment,
                                                deps_.store->GetSegment(req->segment()));
                       resource = absl::StrCat("segment/", segment.id());
                       return deps_.store->DeleteSegment(segment.id());
                     });
}

grpc::ServerReadReactor<grpc::ByteBuffer>* SegmentService::UploadMembers(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* resp) {
  return new UploadReactor(deps_, ctx, resp);
}

grpc::ServerUnaryReactor* SegmentService::ListMembers(grpc::CallbackServerContext* ctx,
                                                      const v1::ListMembersRequest* req,
                                                      v1::ListMembersResponse* resp) {
  return HandleUnary(
      ctx, deps_, absl::StrCat(kService, "ListMembers"), auth::Action::kRead, Audit::kNo,
      [&](const auth::Principal&, std::string&) -> absl::Status {
        EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment, deps_.store->GetSegment(req->segment()));
        std::int64_t offset = 0;
        if (!req->page_token().empty() && !absl::SimpleAtoi(req->page_token(), &offset)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "page_token '", req->page_token(), "' is not one this server returned"));
        }
        int limit = req->page_size() <= 0 ? 100 : std::min(req->page_size(), 10000);
        *resp->mutable_schema() = segment.schema();
        std::int64_t index = 0;
        absl::Status stop = absl::CancelledError("page full");
        absl::Status status = deps_.store->ForEachChunk(
            segment.id(), segment.snapshot_version(),
            [&](const v1::UploadMembersRequest::Chunk& chunk) -> absl::Status {
              if (index + chunk.rows_size() <= offset) {
                index += chunk.rows_size();
                return absl::OkStatus();
              }
              for (const auto& row : chunk.rows()) {
                if (index++ < offset) continue;
                if (resp->rows_size() == limit) {
                  resp->set_next_page_token(absl::StrCat(index - 1));
                  return stop;
                }
                *resp->add_rows() = row;
              }
              return absl::OkStatus();
            });
        return status.ok() || status == stop ? absl::OkStatus() : status;
      });
}

}  // namespace exportd::api
