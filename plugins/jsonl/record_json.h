// Turns one record of a batch into the JSON line the JSON Lines destination
// stores: {"id": <profile id>, <field>: <value>, ...}.
//
// Values keep their type: strings as strings, ints as integers, doubles as
// numbers (NaN and infinities as null), bools as true/false, timestamps as
// ISO 8601 UTC strings ("2024-03-01T12:00:00.25Z"), nulls as null.
#ifndef EXPORTD_PLUGINS_JSONL_RECORD_JSON_H_
#define EXPORTD_PLUGINS_JSONL_RECORD_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "exportd/sdk/record.h"

namespace exportd::jsonl {

// The destination field the profile id is stored under; reserved.
inline constexpr char kIdField[] = "id";

// Formats microseconds since the Unix epoch as ISO 8601 UTC.
std::string FormatTimestamp(std::int64_t micros);

// Serializes row `row` of `batch` as one JSON line. INVALID_ARGUMENT naming
// the field when a string is not valid UTF-8 (the record is then rejected).
absl::StatusOr<std::string> RecordToJsonLine(const sdk::RecordBatch& batch, std::size_t row);

}  // namespace exportd::jsonl

#endif  // EXPORTD_PLUGINS_JSONL_RECORD_JSON_H_
