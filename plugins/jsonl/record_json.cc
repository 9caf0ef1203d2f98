#include "record_json.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace exportd::jsonl {
namespace {

nlohmann::json ToJson(const sdk::Value& v) {
  if (v.is_null) return nullptr;
  switch (v.type) {
    case sdk::FieldType::kString:
      return v.s;
    case sdk::FieldType::kInt:
      return v.i;
    case sdk::FieldType::kDouble:
      return std::isfinite(v.d) ? nlohmann::json(v.d) : nlohmann::json(nullptr);
    case sdk::FieldType::kBool:
      return v.i != 0;
    case sdk::FieldType::kTimestamp:
      return FormatTimestamp(v.i);
  }
  return nullptr;
}

}  // namespace

std::string FormatTimestamp(std::int64_t micros) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", absl::FromUnixMicros(micros),
                          absl::UTCTimeZone());
}

absl::StatusOr<std::string> RecordToJsonLine(const sdk::RecordBatch& batch, std::size_t row) {
  // nlohmann::json keeps keys sorted, so lines are stable across runs.
  nlohmann::json object = nlohmann::json::object();
  object[kIdField] = batch.profile_ids[row];
  for (std::size_t c = 0; c < batch.fields.size(); ++c) {
    object[batch.fields[c].name] = ToJson(batch.at(row, c));
  }
  try {
    return object.dump();
  } catch (const nlohmann::json::exception&) {
    // Only invalid UTF-8 makes dump() throw; find the culprit for the message.
    for (std::size_t c = 0; c < batch.fields.size(); ++c) {
      try {
        (void)nlohmann::json(ToJson(batch.at(row, c))).dump();
      } catch (const nlohmann::json::exception&) {
        return absl::InvalidArgumentError(
            absl::StrCat("field '", batch.fields[c].name, "' is not valid UTF-8"));
      }
    }
    return absl::InvalidArgumentError("the profile id is not valid UTF-8");
  }
}

}  // namespace exportd::jsonl
