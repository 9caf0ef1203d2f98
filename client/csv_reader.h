// Streaming CSV import for segment uploads.
//
// Two layers:
// - `CsvReader` reads RFC 4180 records (quoted fields, embedded commas, quotes
//   and newlines, CRLF or LF line ends) from a stream, one record at a time,
//   through a fixed-size buffer: memory does not grow with the file.
// - `MemberCsvReader` turns a CSV whose header row names the profile fields
//   into segment members: it resolves the schema (every column is a profile
//   field; `id_field`, default the first column, also gives the profile id;
//   columns are strings unless typed), and converts each row into an
//   exportd.v1.MemberRow, chunk by chunk.
//
// Usage:
//
//   std::ifstream file("people.csv", std::ios::binary);
//   absl::StatusOr<std::unique_ptr<MemberCsvReader>> reader =
//       MemberCsvReader::Open(file, "people.csv", {.id_field = "Email"});
//   if (!reader.ok()) ...            // header or option problem
//   exportd::v1::UploadMembersRequest::Chunk chunk;
//   while (true) {
//     absl::StatusOr<int> rows = (*reader)->ReadChunk(5000, 1 << 20, &chunk);
//     if (!rows.ok()) ...            // names the row number and field
//     if (*rows == 0) break;
//     ... send chunk ...
//   }
//
// Conversion rules: values are never trimmed. An empty *unquoted* cell in a
// non-string column is null; in a string column it is the empty string.
// Timestamps are ISO 8601 (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`,
// `2024-05-01 12:00:00.250`, `2024-05-01`); without an offset they are UTC.
#ifndef EXPORTD_CLIENT_CSV_READER_H_
#define EXPORTD_CLIENT_CSV_READER_H_

#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "exportd/v1/common.pb.h"
#include "exportd/v1/segment.pb.h"

namespace exportd::client {

// One CSV record: its cells, and whether each cell was quoted.
struct CsvRecord {
  std::vector<std::string> cells;
  std::vector<bool> quoted;
  // 1-based record number (the header is record 1) and the line it starts on
  // (they differ once a quoted cell spans lines).
  int64_t row_number = 0;
  int64_t line_number = 0;
};

// Reads RFC 4180 records from a stream. Completely empty lines are skipped. A
// leading UTF-8 byte order mark is ignored.
class CsvReader {
 public:
  // `source_name` (e.g. the file name) prefixes error messages.
  CsvReader(std::istream& in, std::string source_name);

  // Reads the next record into `record` (reusing its storage). Returns false
  // at the end of input; an error for malformed quoting, naming the row.
  absl::StatusOr<bool> Next(CsvRecord& record);

  const std::string& source_name() const { return source_name_; }

 private:
  // Returns the next byte, or -1 at the end of input.
  int Get();
  int Peek();
  bool Refill();

  std::istream& in_;
  std::string source_name_;
  std::vector<char> buffer_;
  size_t pos_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  bool started_ = false;
  int64_t rows_ = 0;
  int64_t line_ = 1;
};

// Converts one cell to a typed value. `quoted` tells an empty quoted cell ("")
// from an empty unquoted one (null for non-string types). The error message
// says what was expected, without position (the caller adds it).
absl::StatusOr<exportd::v1::Value> ConvertCell(absl::string_view text, bool quoted,
                                               exportd::v1::FieldType type);

// Parses an ISO 8601 date or date-time into microseconds since the Unix epoch,
// UTC. Accepts `YYYY-MM-DD`, then optionally `T` or a space, `HH:MM[:SS[.frac]]`,
// then optionally `Z`, `±HH:MM`, `±HHMM` or `±HH`.
absl::StatusOr<int64_t> ParseIso8601Micros(absl::string_view text);

// Options for reading segment members from a CSV file.
struct CsvImportOptions {
  // The column holding the profile id; empty: the first column.
  std::string id_field;
  // Column types; columns not named here are strings.
  std::vector<std::pair<std::string, exportd::v1::FieldType>> field_types;
};

// The options from exportctl's `--id-field FIELD` and `--field NAME:TYPE` flags
// (the HTTP API's `id-field` and `field` query parameters of a CSV upload).
// INVALID_ARGUMENT for a `fields` entry that is not NAME:TYPE with a known type.
absl::StatusOr<CsvImportOptions> ParseCsvImportOptions(std::string id_field,
                                                       const std::vector<std::string>& fields);

// Reads segment members from a CSV stream whose first record is the header.
class MemberCsvReader {
 public:
  // Reads and checks the header. Errors (all about the header or the options,
  // so callers may treat them as usage errors): empty input, an empty or
  // duplicate column name, `id_field` or a `field_types` name that is not a
  // column (the message lists the header's columns).
  static absl::StatusOr<std::unique_ptr<MemberCsvReader>> Open(std::istream& in,
                                                               std::string source_name,
                                                               const CsvImportOptions& options);

  // The profile schema: every column in header order, typed.
  const std::vector<exportd::v1::SchemaField>& schema() const { return schema_; }
  const std::string& id_field() const { return schema_[id_column_].name(); }

  // Replaces `chunk`'s rows with the next rows of the file: at most `max_rows`,
  // and stops early once the rows' cell text reaches `max_bytes`. Returns the
  // number of rows read, 0 at the end. An error names the row (header = row 1),
  // the line and the field, e.g. "people.csv: row 7 (line 7), field 'age'
  // (int): cannot parse 'x' as an int".
  absl::StatusOr<int> ReadChunk(int max_rows, size_t max_bytes,
                                exportd::v1::UploadMembersRequest::Chunk* chunk);

  // Data rows read so far (the header not included).
  int64_t rows_read() const { return rows_read_; }

 private:
  MemberCsvReader(std::istream& in, std::string source_name);

  CsvReader csv_;
  std::vector<exportd::v1::SchemaField> schema_;
  size_t id_column_ = 0;
  CsvRecord record_;
  int64_t rows_read_ = 0;
};

// How a CSV upload is cut into UploadMembersRequest messages: rows per chunk,
// and a cap on a chunk's cell text so wide rows stay well under gRPC's
// default 4 MiB message limit.
inline constexpr int kCsvRowsPerChunk = 5000;
inline constexpr size_t kCsvMaxChunkBytes = 2 << 20;

// The one way a CSV becomes an UploadMembers stream (exportctl's `segment
// upload` and the HTTP API's CSV uploads): the header naming `segment` with the
// CSV's schema, the rows in chunks, then the trailer with the row count, each
// passed to `write`, which returns false once the stream broke (then nothing
// more is written and `*stream_ok` is false: finish the call to learn why).
// Returns the reader's error for a bad row, after which the caller must
// cancel the call so that the server keeps the previous snapshot.
absl::Status WriteCsvUpload(MemberCsvReader& reader, const std::string& segment,
                            const std::function<bool(const exportd::v1::UploadMembersRequest&)>& write,
                            bool* stream_ok);

}  // namespace exportd::client

#endif  // EXPORTD_CLIENT_CSV_READER_H_
