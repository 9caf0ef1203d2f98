// Fuzzes the in-place reader of member chunks (bytes that gRPC clients send):
// it must accept exactly what protobuf's parser accepts (groups aside, which
// the upload hands to protobuf) and read the same rows.
#include <cstring>
#include <string>
#include <vector>

#include "exportd/v1/segment.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/unknown_field_set.h"
#include "server/store/member_chunk.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using exportd::store::ChunkReader;
using exportd::store::RowView;
using Chunk = exportd::v1::UploadMembersRequest::Chunk;

bool HasUnknownGroup(const google::protobuf::Message& m) {
  const auto& unknown = m.GetReflection()->GetUnknownFields(m);
  for (int i = 0; i < unknown.field_count(); ++i) {
    if (unknown.field(i).type() == google::protobuf::UnknownField::TYPE_GROUP) return true;
  }
  return false;
}

bool AnyUnknownGroup(const Chunk& chunk) {
  if (HasUnknownGroup(chunk)) return true;
  for (const auto& row : chunk.rows()) {
    if (HasUnknownGroup(row)) return true;
    for (const auto& value : row.values()) {
      if (HasUnknownGroup(value)) return true;
    }
  }
  return false;
}

void ExpectSame(const exportd::v1::Value& want, const exportd::store::ValueView& got) {
  FUZZ_CHECK(got.kind == want.kind_case()) << got.kind << " vs " << want.kind_case();
  switch (want.kind_case()) {
    case exportd::v1::Value::kStringValue:
      FUZZ_CHECK(got.string_value == want.string_value());
      break;
    case exportd::v1::Value::kIntValue:
      FUZZ_CHECK(got.int_value == want.int_value());
      break;
    case exportd::v1::Value::kTimestampMicros:
      FUZZ_CHECK(got.int_value == want.timestamp_micros());
      break;
    case exportd::v1::Value::kDoubleValue: {
      double expected = want.double_value();
      FUZZ_CHECK(std::memcmp(&expected, &got.double_value, 8) == 0);
      break;
    }
    case exportd::v1::Value::kBoolValue:
      FUZZ_CHECK(got.bool_value == want.bool_value());
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static google::protobuf::LogSilencer* quiet = new google::protobuf::LogSilencer;
  (void)quiet;
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  Chunk parsed;
  bool protobuf_ok = parsed.ParseFromArray(data, static_cast<int>(size));
  ChunkReader reader(bytes);
  std::vector<RowView> rows;
  RowView row;
  while (reader.Next(row)) rows.push_back(row);
  bool reader_ok = reader.status().ok();
  if (protobuf_ok && !reader_ok) {
    FUZZ_CHECK(AnyUnknownGroup(parsed))
        << "the reader refused what protobuf accepts: " << reader.status();
  } else {
    FUZZ_CHECK(reader_ok == protobuf_ok) << "the reader accepted what protobuf refuses";
  }
  if (protobuf_ok && reader_ok) {
    FUZZ_CHECK(rows.size() == static_cast<size_t>(parsed.rows_size()));
    for (size_t r = 0; r < rows.size(); ++r) {
      FUZZ_CHECK(rows[r].profile_id == parsed.rows(r).profile_id());
      FUZZ_CHECK(rows[r].values.size() == static_cast<size_t>(parsed.rows(r).values_size()));
      for (size_t v = 0; v < rows[r].values.size(); ++v) {
        ExpectSame(parsed.rows(r).values(v), rows[r].values[v]);
      }
    }
  }

  // The same bytes as a whole upload message: a lone chunk field is found
  // exactly when protobuf sees a message holding just that chunk.
  if (auto chunk = exportd::store::ChunkOfUploadRequest(bytes)) {
    FUZZ_CHECK(chunk->data() >= bytes.data() &&
               chunk->data() + chunk->size() <= bytes.data() + bytes.size());
    exportd::v1::UploadMembersRequest request;
    Chunk alone;
    bool whole = request.ParseFromArray(data, static_cast<int>(size));
    bool part = alone.ParseFromArray(chunk->data(), static_cast<int>(chunk->size()));
    FUZZ_CHECK(whole == part);
    if (whole) {
      FUZZ_CHECK(request.has_chunk());
      FUZZ_CHECK(request.chunk().SerializeAsString() == alone.SerializeAsString());
    }
  }
  return 0;
}
