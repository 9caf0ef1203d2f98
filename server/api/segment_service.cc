#include "server/api/segment_service.h"

#include <grpcpp/alarm.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/api/call_run_context.h"
#include "server/api/limits.h"
#include "server/common/clock.h"
#include "server/common/free_memory.h"
#include "server/api/grpc_status.h"
#include "server/common/status_macros.h"
#include "server/engine/audience_deletion.h"
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
// them, from every client we know) is validated in place and its rows'
// bytes staged as they arrived, with no protobuf messages built per row.
// Anything else is parsed the ordinary way. The writer sorts the rows by
// profile id when the upload commits (which also finds a repeated id).
//
// The time limits (UploadLimits) are kept by one grpc::Alarm at a time, not
// a thread: it fires at the earlier of the two deadlines and either ends the
// upload or sets a new alarm. Its callback runs on another thread than
// OnReadDone; `phase_` says which of them may touch the upload. The alarm
// ends it only while a read is pending (kReading); while a message is being
// handled it leaves the limit in `passed_` for the handler to act on. No
// gRPC call is made with `mu_` held.
class UploadReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  UploadReactor(const ServiceDeps& deps, const UploadLimits& limits,
                grpc::CallbackServerContext* ctx, grpc::ByteBuffer* resp)
      : deps_(deps),
        limits_(limits),
        ctx_(ctx),
        resp_(resp),
        started_(absl::Now()) {
    auto who = Authenticate(*ctx, *deps.authenticator);
    if (!who.ok()) {
      End(who.status());
      return;
    }
    who_ = *who;
    authenticated_ = true;
    absl::Status allowed = auth::Authorize(who_, auth::Action::kManageSegments);
    if (!allowed.ok()) {
      End(allowed);
      return;
    }
    absl::Time first_check;
    {
      absl::MutexLock lock(&mu_);
      first_check = NextCheckLocked(started_);
      ++holds_;  // The alarm's, taken before the first read can end the call.
    }
    SetAlarm(first_check);
    absl::Status status = ReadNext();
    if (!status.ok()) End(status);
  }

  void OnReadDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      // The read that was pending when the alarm ended the upload.
      if (phase_ == Phase::kEnded) return;
      phase_ = Phase::kHandling;
    }
    if (!ok) {
      End(EndOfStream());
      return;
    }
    absl::Status status = Handle();
    if (status.ok()) status = ReadNext();
    if (!status.ok()) End(status);
  }

  void OnDone() override {
    std::unique_ptr<grpc::Alarm> alarm;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      alarm = std::move(alarm_);
    }
    // Cancels a pending alarm; its callback still runs, with `fired` false.
    alarm.reset();
    Release();
  }

 private:
  enum class Phase {
    kHandling,      // A message (or the end of the stream) is being handled.
    kStartingRead,  // ReadNext is asking for the next message.
    kReading,       // Waiting for the client's next message.
    kEnded,         // End() was called or is about to be.
  };
  enum class Limit { kNone, kIdleTimeout, kMaxDuration };

  // The final status once the client half-closed (or went away).
  absl::Status EndOfStream() {
    if (ctx_->IsCancelled()) {
      return absl::CancelledError("upload canceled by the client; the previous snapshot stays");
    }
    if (!trailer_seen_) {
      return absl::InvalidArgumentError(
          "the upload ended without its trailer; nothing was changed. Send "
          "UploadMembersRequest.trailer with the row count as the last message");
    }
    // The rows are sorted by profile id here, which is also where a repeated
    // one shows (as two neighbours).
    auto segment = writer_->Commit();
    if (!segment.ok()) {
      const bool invalid = segment.status().code() == absl::StatusCode::kInvalidArgument;
      return absl::Status(segment.status().code(),
                          absl::StrCat("segment '", segment_name_, "': ", segment.status().message(),
                                       invalid ? ". Nothing was changed" : ""));
    }
    if (deps_.metrics != nullptr) deps_.metrics->Upload(rows_, bytes_);
    v1::UploadMembersResponse response;
    *response.mutable_segment() = *segment;
    response.set_rows_received(rows_);
    grpc::Slice slice(response.SerializeAsString());
    *resp_ = grpc::ByteBuffer(&slice, 1);
    return absl::OkStatus();
  }

  // Asks for the next message, unless a limit passed meanwhile: then the
  // error to end the upload with.
  absl::Status ReadNext() {
    std::int64_t read;
    {
      absl::MutexLock lock(&mu_);
      if (passed_ != Limit::kNone) return LimitError(passed_);
      phase_ = Phase::kStartingRead;
      waiting_since_ = absl::Now();
      read = ++reads_;
    }
    StartRead(&request_);
    Limit passed;
    {
      absl::MutexLock lock(&mu_);
      // The read completed already: its OnReadDone has the upload now.
      if (phase_ != Phase::kStartingRead || reads_ != read) return absl::OkStatus();
      if (passed_ == Limit::kNone) {
        phase_ = Phase::kReading;
        return absl::OkStatus();
      }
      // A limit passed during StartRead. Claimed, so the pending read's
      // OnReadDone returns at once.
      passed = passed_;
      phase_ = Phase::kEnded;
    }
    return LimitError(passed);
  }

  // The limit that has passed at `now`, if any.
  Limit PassedLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (now - started_ >= limits_.max_duration) return Limit::kMaxDuration;
    if (phase_ == Phase::kReading && now - waiting_since_ >= limits_.idle_timeout) {
      return Limit::kIdleTimeout;
    }
    return Limit::kNone;
  }

  // When to look again: at the end of the upload's time, or of the current
  // wait for the client (handling a message is no wait).
  absl::Time NextCheckLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const bool waiting = phase_ == Phase::kReading || phase_ == Phase::kStartingRead;
    const absl::Time idle_end = (waiting ? waiting_since_ : now) + limits_.idle_timeout;
    return std::min(started_ + limits_.max_duration, idle_end);
  }

  // Sets a new alarm for `at`; the caller took its hold. The alarm is set
  // before it is published, so OnDone never sees one half set up.
  void SetAlarm(absl::Time at) {
    auto alarm = std::make_unique<grpc::Alarm>();
    alarm->Set(absl::ToChronoTime(at), [this](bool fired) { OnAlarm(fired); });
    std::unique_ptr<grpc::Alarm> discard;  // Destroyed (canceled) after the lock.
    absl::MutexLock lock(&mu_);
    if (done_) {
      discard = std::move(alarm);  // OnDone ran meanwhile: no call to watch.
    } else {
      // The previous alarm has fired: it is the one calling, if any, and
      // gRPC keeps it alive until its callback returns.
      discard = std::move(alarm_);
      alarm_ = std::move(alarm);
    }
  }

  void OnAlarm(bool fired) {
    Limit end_with = Limit::kNone;
    std::optional<absl::Time> next;
    {
      absl::MutexLock lock(&mu_);
      if (fired && phase_ != Phase::kEnded) {
        const absl::Time now = absl::Now();
        const Limit passed = PassedLocked(now);
        if (passed == Limit::kNone) {
          next = NextCheckLocked(now);
          ++holds_;
        } else if (phase_ == Phase::kReading) {
          // Claimed: the pending read's OnReadDone returns at once.
          phase_ = Phase::kEnded;
          end_with = passed;
        } else {
          passed_ = passed;  // The handler ends the upload when it is done.
        }
      }
    }
    if (next.has_value()) SetAlarm(*next);
    if (end_with != Limit::kNone) End(LimitError(end_with));
    Release();
  }

  // Lets go of one hold (the call's, or an alarm's); the last one deletes.
  void Release() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      last = --holds_ == 0;
    }
    if (last) delete this;
  }

  // Why the upload is aborted. Called by whoever ended it, which owns it.
  absl::Status LimitError(Limit limit) const {
    const std::string segment =
        segment_name_.empty() ? "" : absl::StrCat("segment '", segment_name_, "': ");
    const bool idle = limit == Limit::kIdleTimeout;
    const absl::Duration value = idle ? limits_.idle_timeout : limits_.max_duration;
    return absl::DeadlineExceededError(absl::StrCat(
        segment, "the upload ",
        idle ? "sent nothing for " : "took longer than ", absl::FormatDuration(value),
        idle ? " (--upload-idle-timeout)" : " (--upload-max-duration)", " and was aborted; ",
        writer_ != nullptr ? "the previous snapshot stays. "
                           : "nothing was changed (no header had arrived). ",
        idle ? "Send each message sooner, or raise --upload-idle-timeout"
             : "Send the rows faster (larger chunks, no pauses), or raise "
               "--upload-max-duration"));
  }

  absl::Status Handle() {
    grpc::Slice slice;
    if (!request_.DumpToSingleSlice(&slice).ok()) {
      return absl::InternalError("could not read the upload message; send it again");
    }
    request_.Clear();
    bytes_ += static_cast<std::int64_t>(slice.size());
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
      store::MemberSorterOptions sort;
      sort.memory_bytes = limits_.sort_memory_bytes;
      EXPORTD_ASSIGN_OR_RETURN(writer_,
                               deps_.store->BeginSnapshot(segment.id(), schema_, std::move(sort)));
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
    rows_ += rows;
    ++messages_;
    return writer_->AppendBytes(std::string(chunk), rows);
  }

  void End(const absl::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      phase_ = Phase::kEnded;
    }
    bool uploading = writer_ != nullptr;
    writer_.reset();  // Uncommitted: discarded.
    // The sort's buffer (ServerOptions.upload_sort_memory_bytes) and the
    // chunks are gone: give their pages back before a run needs its own.
    if (uploading) ReturnFreeMemoryToTheSystem();
    // Runs waiting for this upload to end can start now.
    if (uploading && deps_.engine != nullptr) deps_.engine->Wake();
    if (authenticated_) {
      RecordAudit(deps_, who_, absl::StrCat(kService, "UploadMembers"), resource_, status);
    }
    Finish(ToGrpcStatus(status));
  }

  const ServiceDeps deps_;
  const UploadLimits limits_;
  grpc::CallbackServerContext* ctx_;
  grpc::ByteBuffer* resp_;
  const absl::Time started_;
  absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kHandling;
  // When the current wait for the client began.
  absl::Time waiting_since_ ABSL_GUARDED_BY(mu_);
  // Reads started so far: tells ReadNext its own read from a later one.
  std::int64_t reads_ ABSL_GUARDED_BY(mu_) = 0;
  // A limit that passed while a message was being handled.
  Limit passed_ ABSL_GUARDED_BY(mu_) = Limit::kNone;
  std::unique_ptr<grpc::Alarm> alarm_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;  // OnDone ran.
  // The call's own hold (let go in OnDone) and one per alarm set.
  int holds_ ABSL_GUARDED_BY(mu_) = 1;
  auth::Principal who_;
  bool authenticated_ = false;
  std::string resource_ = "segment/?";
  std::string segment_name_;
  grpc::ByteBuffer request_;
  std::vector<v1::SchemaField> schema_;
  std::unique_ptr<store::SnapshotWriter> writer_;
  std::int64_t rows_ = 0;
  // Bytes of the messages received, as they arrived.
  std::int64_t bytes_ = 0;
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
                                                        v1::DeleteSegmentResponse* resp) {
  return HandleUnary(
      ctx, deps_, absl::StrCat(kService, "DeleteSegment"), auth::Action::kManageSegments,
      Audit::kYes, [&](const auth::Principal& who, std::string& resource) -> absl::Status {
        resource = absl::StrCat("segment/", req->segment());
        EXPORTD_ASSIGN_OR_RETURN(v1::Segment segment, deps_.store->GetSegment(req->segment()));
        resource = absl::StrCat("segment/", segment.id());
        if (req->delete_audiences()) {
          // Refused while an export uses it, before anything is deleted at a
          // destination; then the audiences, then the segment.
          EXPORTD_ASSIGN_OR_RETURN(std::vector<v1::Export> exports, deps_.store->ListExports());
          EXPORTD_RETURN_IF_ERROR(store::SegmentUnusedBy(exports, segment));
          CallRunContext run_context(ctx, deps_.metrics, "");
          EXPORTD_ASSIGN_OR_RETURN(
              engine::AudienceDeletion done,
              engine::DeleteSegmentAudiences(*deps_.store, *deps_.secrets, *deps_.registry,
                                             segment, who, run_context));
          for (auto& a : done.deleted) resp->add_deleted_audiences(std::move(a));
          for (auto& a : done.kept) resp->add_kept_audiences(std::move(a));
        }
        return deps_.store->DeleteSegment(segment.id());
      });
}

grpc::ServerReadReactor<grpc::ByteBuffer>* SegmentService::UploadMembers(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* resp) {
  return new UploadReactor(deps_, limits_, ctx, resp);
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
