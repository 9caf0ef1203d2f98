// Reads member rows straight from the bytes of a serialized
// `v1.UploadMembersRequest.Chunk`, without building protobuf messages.
//
// A segment snapshot is stored as the chunks it was uploaded in, and both the
// upload (validation) and every run (the diff) walk all of its rows. Parsing
// them into `v1::MemberRow` messages allocates a message per value and a
// string per profile id; the reader below hands out views into the chunk's
// bytes instead, and reuses one `RowView` for every row.
//
//   store::ChunkReader reader(bytes);
//   store::RowView row;
//   while (reader.Next(row)) {
//     Use(row.profile_id, row.values[0].string_value);
//   }
//   if (!reader.status().ok()) return reader.status();  // malformed bytes
//
// It follows protobuf's parsing rules for these messages: unknown fields and
// known fields with an unexpected wire type are skipped, the last of several
// oneof members (or profile ids) wins, and every string must be valid UTF-8
// (as proto3 requires). Groups are not accepted.
#ifndef EXPORTD_SERVER_STORE_MEMBER_CHUNK_H_
#define EXPORTD_SERVER_STORE_MEMBER_CHUNK_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "exportd/v1/common.pb.h"

namespace exportd::store {

// One `v1.Value`, read in place. Only the member named by `kind` is set;
// `string_value` points into the chunk's bytes.
struct ValueView {
  v1::Value::KindCase kind = v1::Value::KIND_NOT_SET;
  absl::string_view string_value;
  // kIntValue and kTimestampMicros.
  std::int64_t int_value = 0;
  double double_value = 0;
  bool bool_value = false;
};

// One `v1.MemberRow`, read in place.
struct RowView {
  absl::string_view profile_id;
  std::vector<ValueView> values;
};

// Iterates the rows of one serialized chunk. The views stay valid as long as
// the bytes do.
class ChunkReader {
 public:
  explicit ChunkReader(absl::string_view chunk_bytes)
      : begin_(chunk_bytes.data()), in_(chunk_bytes) {}

  // Reads the next row into `row` (its `values` vector is reused). False at
  // the end of the chunk, or when the bytes are malformed: status() says
  // which.
  bool Next(RowView& row) { return Next(row, -1); }
  // Whether Next checks that the profile id is valid UTF-8. A pass that
  // does not use the profile id may skip it when another pass over the same
  // rows checks it.
  enum class ProfileId { kCheck, kUnchecked };
  // The same, but only value `only_value` (0-based) is parsed and checked;
  // the others are left null (a pass that needs one column, e.g. the
  // identifier's, skips the work on the rest). `row.values.size()` is still
  // the row's width.
  bool Next(RowView& row, int only_value, ProfileId profile_id = ProfileId::kCheck);
  // The same, but only the values `wanted` marks (by 0-based index) are
  // parsed and checked; the others, and those past its end, are left null.
  bool Next(RowView& row, const std::vector<bool>& wanted);
  // Parses the row read last again, with the values `wanted` marks: for a
  // pass that read a row for its profile id and width alone (an empty
  // `wanted`) and then needs some of its values. False, with status()
  // saying why, when they are malformed.
  bool Reparse(RowView& row, const std::vector<bool>& wanted);

  // OK so far, or DATA_LOSS saying what is wrong with the row after the
  // last one read, e.g. "value 3 is not valid UTF-8".
  const absl::Status& status() const { return status_; }

  // Rows read so far.
  std::int64_t rows_read() const { return rows_read_; }

  // Where the row read last begins, in bytes from the start of the chunk:
  // the chunk's first `last_row_offset()` bytes hold the rows before it.
  size_t last_row_offset() const { return last_row_offset_; }
  // The serialized `v1.MemberRow` of the row read last (field 1's bytes,
  // without its tag and length), a view into the chunk's bytes.
  absl::string_view last_row() const { return last_row_; }

 private:
  struct Wanted {
    int only_value = -1;                      // >= 0: this value only.
    const std::vector<bool>* mask = nullptr;  // Else, when set: these values.
    bool check_profile_id = true;
  };
  bool Next(RowView& row, const Wanted& wanted);

  const char* begin_;
  size_t last_row_offset_ = 0;
  absl::string_view last_row_;
  absl::string_view in_;
  absl::Status status_;
  std::int64_t rows_read_ = 0;
};

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or
// code points above U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// If the serialized `v1.UploadMembersRequest` in `message` consists of just
// its `chunk` field, the chunk's bytes (a view into `message`); otherwise
// nothing, and the caller parses the message the ordinary way.
std::optional<absl::string_view> ChunkOfUploadRequest(absl::string_view message);

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_MEMBER_CHUNK_H_
