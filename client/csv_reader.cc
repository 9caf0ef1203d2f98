#include "client/csv_reader.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/field_type.h"

namespace exportd::client {
namespace {

using exportd::v1::FieldType;
using exportd::v1::Value;

constexpr size_t kBufferSize = 1 << 16;

// Long cells are cut in error messages so one bad value cannot flood a terminal.
std::string Quote(absl::string_view text) {
  constexpr size_t kMax = 40;
  if (text.size() <= kMax) return absl::StrCat("'", text, "'");
  return absl::StrCat("'", text.substr(0, kMax), "...'");
}

std::string RowLabel(const std::string& source, int64_t row, int64_t line) {
  if (row == line) return absl::StrCat(source, ": row ", row);
  return absl::StrCat(source, ": row ", row, " (line ", line, ")");
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool IsLeapYear(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int64_t y, int64_t m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

// A cursor over the timestamp text.
class Scanner {
 public:
  explicit Scanner(absl::string_view text) : text_(text) {}
  bool AtEnd() const { return pos_ == text_.size(); }
  char PeekChar() const { return AtEnd() ? '\0' : text_[pos_]; }
  bool Consume(char c) {
    if (PeekChar() != c) return false;
    ++pos_;
    return true;
  }
  // Exactly `n` digits.
  bool Digits(int n, int64_t* value) {
    if (text_.size() - pos_ < static_cast<size_t>(n)) return false;
    int64_t v = 0;
    for (int i = 0; i < n; ++i) {
      char c = text_[pos_ + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos_ += n;
    *value = v;
    return true;
  }

 private:
  absl::string_view text_;
  size_t pos_ = 0;
};

absl::Status BadTimestamp(absl::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot parse ", Quote(text),
      " as a timestamp (use ISO 8601, e.g. 2024-05-01T12:00:00Z, 2024-05-01T14:00:00+02:00 or "
      "2024-05-01)"));
}

absl::Status ConvertCellInto(absl::string_view text, bool quoted, FieldType type, Value* value) {
  if (type == FieldType::FIELD_TYPE_STRING || type == FieldType::FIELD_TYPE_UNSPECIFIED) {
    value->set_string_value(text.data(), text.size());
    return absl::OkStatus();
  }
  if (text.empty() && !quoted) {
    value->Clear();  // null
    return absl::OkStatus();
  }
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  // from_chars takes no '+'; a leading '+' is common enough in exports to allow.
  if (begin != end && *begin == '+') ++begin;
  switch (type) {
    case FieldType::FIELD_TYPE_INT: {
      int64_t parsed = 0;
      auto [ptr, ec] = std::from_chars(begin, end, parsed);
      if (ec == std::errc::result_out_of_range) {
        return absl::InvalidArgumentError(
            absl::StrCat(Quote(text), " is out of range for an int (64-bit)"));
      }
      if (ec != std::errc() || ptr != end || begin == end) {
        return absl::InvalidArgumentError(absl::StrCat("cannot parse ", Quote(text), " as an int"));
      }
      value->set_int_value(parsed);
      return absl::OkStatus();
    }
    case FieldType::FIELD_TYPE_DOUBLE: {
      double parsed = 0;
      auto [ptr, ec] = std::from_chars(begin, end, parsed);
      if (ec != std::errc() || ptr != end || begin == end || !std::isfinite(parsed)) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot parse ", Quote(text), " as a double (a finite decimal number)"));
      }
      value->set_double_value(parsed);
      return absl::OkStatus();
    }
    case FieldType::FIELD_TYPE_BOOL: {
      auto is = [&](absl::string_view word) { return absl::EqualsIgnoreCase(text, word); };
      if (is("true") || is("t") || is("yes") || is("y") || is("1")) {
        value->set_bool_value(true);
      } else if (is("false") || is("f") || is("no") || is("n") || is("0")) {
        value->set_bool_value(false);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot parse ", Quote(text), " as a bool (use true/false, yes/no or 1/0)"));
      }
      return absl::OkStatus();
    }
    case FieldType::FIELD_TYPE_TIMESTAMP: {
      absl::StatusOr<int64_t> micros = ParseIso8601Micros(text);
      if (!micros.ok()) return micros.status();
      value->set_timestamp_micros(*micros);
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("unsupported field type ", type));
  }
}

}  // namespace

// --- CsvReader ---------------------------------------------------------------

CsvReader::CsvReader(std::istream& in, std::string source_name)
    : in_(in), source_name_(std::move(source_name)), buffer_(kBufferSize) {}

bool CsvReader::Refill() {
  if (eof_) return false;
  in_.read(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  end_ = static_cast<size_t>(in_.gcount());
  pos_ = 0;
  if (end_ == 0) {
    eof_ = true;
    return false;
  }
  return true;
}

int CsvReader::Peek() {
  if (pos_ == end_ && !Refill()) return -1;
  return static_cast<unsigned char>(buffer_[pos_]);
}

int CsvReader::Get() {
  if (pos_ == end_ && !Refill()) return -1;
  return static_cast<unsigned char>(buffer_[pos_++]);
}

absl::StatusOr<bool> CsvReader::Next(CsvRecord& record) {
  if (!started_) {
    started_ = true;
    static constexpr unsigned char kBom[] = {0xEF, 0xBB, 0xBF};
    if (Peek() == kBom[0]) {
      // The buffer holds at least 3 bytes unless the input is shorter.
      if (end_ - pos_ >= 3 && std::memcmp(&buffer_[pos_], kBom, 3) == 0) pos_ += 3;
    }
  }
  // Skip empty lines between records (and the trailing newline of the file).
  while (true) {
    int c = Peek();
    if (c == -1) return false;
    if (c == '\n') {
      Get();
      ++line_;
    } else if (c == '\r') {
      Get();
      if (Peek() == '\n') Get();
      ++line_;
    } else {
      break;
    }
  }

  record.row_number = ++rows_;
  record.line_number = line_;
  size_t count = 0;
  while (true) {
    if (count == record.cells.size()) {
      record.cells.emplace_back();
      record.quoted.push_back(false);
    }
    std::string& cell = record.cells[count];
    cell.clear();
    bool quoted = false;

    if (Peek() == '"') {
      Get();
      quoted = true;
      const int64_t opened_on = line_;
      while (true) {
        if (pos_ == end_ && !Refill()) {
          return absl::InvalidArgumentError(
              absl::StrCat(RowLabel(source_name_, record.row_number, record.line_number),
                           ", field ", count + 1, ": the quote opened on line ", opened_on,
                           " is never closed"));
        }
        // Copy up to the next quote in one go.
        const char* start = &buffer_[pos_];
        const char* stop = static_cast<const char*>(std::memchr(start, '"', end_ - pos_));
        size_t n = stop == nullptr ? end_ - pos_ : static_cast<size_t>(stop - start);
        for (size_t i = 0; i < n; ++i) {
          if (start[i] == '\n') ++line_;
        }
        cell.append(start, n);
        pos_ += n;
        if (stop == nullptr) continue;
        Get();  // the quote
        if (Peek() == '"') {
          Get();
          cell.push_back('"');
          continue;
        }
        break;
      }
      int next = Peek();
      if (next != ',' && next != '\n' && next != '\r' && next != -1) {
        return absl::InvalidArgumentError(absl::StrCat(
            RowLabel(source_name_, record.row_number, record.line_number), ", field ", count + 1,
            ": unexpected character '", std::string(1, static_cast<char>(next)),
            "' after a closing quote (a quote inside a quoted field is written as \"\")"));
      }
    } else {
      // Unquoted: everything up to the next comma or line end, taken literally.
      while (true) {
        if (pos_ == end_ && !Refill()) break;
        size_t i = pos_;
        while (i < end_) {
          char c = buffer_[i];
          if (c == ',' || c == '\n' || c == '\r') break;
          ++i;
        }
        cell.append(&buffer_[pos_], i - pos_);
        pos_ = i;
        if (i < end_) break;
      }
    }
    record.quoted[count] = quoted;
    ++count;

    int c = Get();
    if (c == ',') continue;
    if (c == '\r' && Peek() == '\n') Get();
    if (c != -1) ++line_;
    break;
  }
  record.cells.resize(count);
  record.quoted.resize(count);
  return true;
}

// --- Typed values ------------------------------------------------------------

absl::StatusOr<Value> ConvertCell(absl::string_view text, bool quoted, FieldType type) {
  Value value;
  absl::Status status = ConvertCellInto(text, quoted, type, &value);
  if (!status.ok()) return status;
  return value;
}

absl::StatusOr<int64_t> ParseIso8601Micros(absl::string_view text) {
  Scanner s(text);
  int64_t year = 0, month = 0, day = 0;
  if (!s.Digits(4, &year) || !s.Consume('-') || !s.Digits(2, &month) || !s.Consume('-') ||
      !s.Digits(2, &day)) {
    return BadTimestamp(text);
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(text), " is not a valid date (month or day out of range)"));
  }
  int64_t hour = 0, minute = 0, second = 0, micros = 0, offset_minutes = 0;
  if (!s.AtEnd()) {
    if (!s.Consume('T') && !s.Consume('t') && !s.Consume(' ')) return BadTimestamp(text);
    if (!s.Digits(2, &hour) || !s.Consume(':') || !s.Digits(2, &minute)) {
      return BadTimestamp(text);
    }
    if (s.Consume(':')) {
      if (!s.Digits(2, &second)) return BadTimestamp(text);
      if (s.Consume('.') || s.Consume(',')) {
        int digits = 0;
        int64_t digit = 0;
        while (s.Digits(1, &digit)) {
          if (digits < 6) micros = micros * 10 + digit;  // beyond microseconds: truncated
          ++digits;
        }
        if (digits == 0) return BadTimestamp(text);
        for (int i = digits; i < 6; ++i) micros *= 10;
      }
    }
    if (hour > 23 || minute > 59 || second > 59) {
      return absl::InvalidArgumentError(
          absl::StrCat(Quote(text), " is not a valid time (hour, minute or second out of range)"));
    }
    if (s.Consume('Z') || s.Consume('z')) {
      // UTC.
    } else if (s.PeekChar() == '+' || s.PeekChar() == '-') {
      const int sign = s.PeekChar() == '-' ? -1 : 1;
      s.Consume(s.PeekChar());
      int64_t offset_hours = 0, offset_mins = 0;
      if (!s.Digits(2, &offset_hours)) return BadTimestamp(text);
      if (s.Consume(':')) {
        if (!s.Digits(2, &offset_mins)) return BadTimestamp(text);
      } else if (!s.AtEnd() && !s.Digits(2, &offset_mins)) {
        return BadTimestamp(text);
      }
      if (offset_hours > 23 || offset_mins > 59) return BadTimestamp(text);
      offset_minutes = sign * (offset_hours * 60 + offset_mins);
    }
  }
  if (!s.AtEnd()) return BadTimestamp(text);
  const int64_t seconds = DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                          second - offset_minutes * 60;
  return seconds * 1000000 + micros;
}

// --- MemberCsvReader ---------------------------------------------------------

MemberCsvReader::MemberCsvReader(std::istream& in, std::string source_name)
    : csv_(in, std::move(source_name)) {}

absl::StatusOr<std::unique_ptr<MemberCsvReader>> MemberCsvReader::Open(
    std::istream& in, std::string source_name, const CsvImportOptions& options) {
  std::unique_ptr<MemberCsvReader> reader(new MemberCsvReader(in, std::move(source_name)));
  const std::string& source = reader->csv_.source_name();
  CsvRecord header;
  absl::StatusOr<bool> has_header = reader->csv_.Next(header);
  if (!has_header.ok()) return has_header.status();
  if (!*has_header) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " is empty: its first row must name the profile fields"));
  }
  const std::vector<std::string>& columns = header.cells;
  const std::string column_list = absl::StrJoin(columns, ", ");
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": column ", i + 1, " of the header row has no name (columns: ", column_list,
          ")"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (columns[j] == columns[i]) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": the header row names column '", columns[i], "' twice (columns ", j + 1,
            " and ", i + 1, ")"));
      }
    }
  }
  auto column_index = [&](const std::string& name) -> std::optional<size_t> {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == name) return i;
    }
    return std::nullopt;
  };

  for (const std::string& name : columns) {
    exportd::v1::SchemaField& field = reader->schema_.emplace_back();
    field.set_name(name);
    field.set_type(FieldType::FIELD_TYPE_STRING);
  }
  for (const auto& [name, type] : options.field_types) {
    std::optional<size_t> index = column_index(name);
    if (!index.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("--field ", name, ":", cli::FieldTypeName(type),
                                                     ": '", name, "' is not a column of ", source,
                                                     " (columns: ", column_list, ")"));
    }
    reader->schema_[*index].set_type(type);
  }
  if (!options.id_field.empty()) {
    std::optional<size_t> index = column_index(options.id_field);
    if (!index.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("--id-field ", options.id_field, ": '",
                                                     options.id_field, "' is not a column of ",
                                                     source, " (columns: ", column_list, ")"));
    }
    reader->id_column_ = *index;
  }
  return reader;
}

absl::StatusOr<int> MemberCsvReader::ReadChunk(int max_rows, size_t max_bytes,
                                               exportd::v1::UploadMembersRequest::Chunk* chunk) {
  // The chunk's rows and values are overwritten in place rather than cleared:
  // clearing a oneof string frees it, and re-allocating every cell of every
  // row dominated the import's CPU time.
  google::protobuf::RepeatedPtrField<exportd::v1::MemberRow>* out = chunk->mutable_rows();
  int rows = 0;
  size_t bytes = 0;
  while (rows < max_rows && bytes < max_bytes) {
    absl::StatusOr<bool> more = csv_.Next(record_);
    if (!more.ok()) return more.status();
    if (!*more) break;
    const std::vector<std::string>& cells = record_.cells;
    if (cells.size() != schema_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          RowLabel(csv_.source_name(), record_.row_number, record_.line_number), ": expected ",
          schema_.size(), " values (one per header column), found ", cells.size()));
    }
    if (cells[id_column_].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(RowLabel(csv_.source_name(), record_.row_number, record_.line_number),
                       ", field '", schema_[id_column_].name(),
                       "': the profile id is empty (every row needs one)"));
    }
    exportd::v1::MemberRow* row = rows < out->size() ? out->Mutable(rows) : out->Add();
    row->set_profile_id(cells[id_column_]);
    google::protobuf::RepeatedPtrField<Value>* values = row->mutable_values();
    while (values->size() > static_cast<int>(cells.size())) values->RemoveLast();
    for (size_t i = 0; i < cells.size(); ++i) {
      bytes += cells[i].size();
      const int index = static_cast<int>(i);
      Value* value = index < values->size() ? values->Mutable(index) : values->Add();
      absl::Status status = ConvertCellInto(cells[i], record_.quoted[i], schema_[i].type(), value);
      if (!status.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            RowLabel(csv_.source_name(), record_.row_number, record_.line_number), ", field '",
            schema_[i].name(), "' (", cli::FieldTypeName(schema_[i].type()),
            "): ", status.message()));
      }
    }
    bytes += 16 * cells.size();  // rough per-value encoding overhead
    ++rows;
    ++rows_read_;
  }
  while (out->size() > rows) out->RemoveLast();
  return rows;
}

absl::StatusOr<CsvImportOptions> ParseCsvImportOptions(std::string id_field,
                                                       const std::vector<std::string>& fields) {
  CsvImportOptions options;
  options.id_field = std::move(id_field);
  for (const std::string& text : fields) {
    absl::StatusOr<std::pair<std::string, FieldType>> typed = cli::ParseFieldTypeFlag(text);
    if (!typed.ok()) return typed.status();
    options.field_types.push_back(*std::move(typed));
  }
  return options;
}

absl::Status WriteCsvUpload(MemberCsvReader& reader, const std::string& segment,
                            const std::function<bool(const exportd::v1::UploadMembersRequest&)>& write,
                            bool* stream_ok) {
  exportd::v1::UploadMembersRequest request;
  request.mutable_header()->set_segment(segment);
  for (const auto& field : reader.schema()) *request.mutable_header()->add_schema() = field;
  *stream_ok = write(request);
  // One Chunk message, reused: its rows are cleared and refilled each time.
  exportd::v1::UploadMembersRequest::Chunk* chunk = request.mutable_chunk();
  while (*stream_ok) {
    absl::StatusOr<int> rows = reader.ReadChunk(kCsvRowsPerChunk, kCsvMaxChunkBytes, chunk);
    if (!rows.ok()) return rows.status();
    if (*rows == 0) break;
    *stream_ok = write(request);
  }
  // The trailer commits: the server makes the snapshot visible only when the
  // count it carries matches the rows it received.
  if (*stream_ok) {
    request.mutable_trailer()->set_row_count(reader.rows_read());
    *stream_ok = write(request);
  }
  return absl::OkStatus();
}

}  // namespace exportd::client
