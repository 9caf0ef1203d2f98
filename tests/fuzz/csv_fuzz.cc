// Fuzzes exportctl's CSV import (files users hand it): any bytes either read
// or fail with INVALID_ARGUMENT naming the place, rows always match the
// header's schema, and columns typed int, double, bool or timestamp convert
// or fail cleanly.
#include <sstream>
#include <string>

#include "client/csv_reader.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

void ReadAll(const std::string& text, const exportd::client::CsvImportOptions& options,
             std::vector<exportd::v1::SchemaField>* schema) {
  std::istringstream in(text);
  auto reader = exportd::client::MemberCsvReader::Open(in, "fuzz.csv", options);
  if (!reader.ok()) {
    FUZZ_CHECK(reader.status().code() == absl::StatusCode::kInvalidArgument) << reader.status();
    return;
  }
  if (schema != nullptr) *schema = (*reader)->schema();
  exportd::v1::UploadMembersRequest::Chunk chunk;
  std::int64_t rows = 0;
  while (true) {
    absl::StatusOr<int> read = (*reader)->ReadChunk(7, 256, &chunk);
    if (!read.ok()) {
      FUZZ_CHECK(read.status().code() == absl::StatusCode::kInvalidArgument) << read.status();
      FUZZ_CHECK(read.status().message().find("fuzz.csv") != absl::string_view::npos)
          << read.status();
      return;
    }
    if (*read == 0) break;
    FUZZ_CHECK(*read == chunk.rows_size());
    for (const auto& row : chunk.rows()) {
      FUZZ_CHECK(row.values_size() == static_cast<int>((*reader)->schema().size()));
    }
    rows += *read;
  }
  FUZZ_CHECK(rows == (*reader)->rows_read());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  // As strings, which learns the header; then with the columns typed in turn.
  std::vector<exportd::v1::SchemaField> schema;
  ReadAll(text, {}, &schema);
  if (schema.empty()) return 0;
  static const exportd::v1::FieldType kTypes[] = {
      exportd::v1::FIELD_TYPE_INT, exportd::v1::FIELD_TYPE_DOUBLE, exportd::v1::FIELD_TYPE_BOOL,
      exportd::v1::FIELD_TYPE_TIMESTAMP, exportd::v1::FIELD_TYPE_STRING};
  exportd::client::CsvImportOptions typed;
  typed.id_field = schema.back().name();
  for (size_t i = 0; i < schema.size(); ++i) {
    typed.field_types.emplace_back(schema[i].name(), kTypes[i % 5]);
  }
  ReadAll(text, typed, nullptr);
  exportd::client::ParseIso8601Micros(text.substr(0, 40)).IgnoreError();
  return 0;
}
