#include "client/field_type.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace exportd::cli {

std::optional<exportd::v1::FieldType> FieldTypeFromName(absl::string_view name) {
  using exportd::v1::FieldType;
  std::string lower = absl::AsciiStrToLower(name);
  if (lower == "string") return FieldType::FIELD_TYPE_STRING;
  if (lower == "int") return FieldType::FIELD_TYPE_INT;
  if (lower == "double") return FieldType::FIELD_TYPE_DOUBLE;
  if (lower == "bool") return FieldType::FIELD_TYPE_BOOL;
  if (lower == "timestamp") return FieldType::FIELD_TYPE_TIMESTAMP;
  return std::nullopt;
}

std::string FieldTypeName(exportd::v1::FieldType type) {
  using exportd::v1::FieldType;
  switch (type) {
    case FieldType::FIELD_TYPE_STRING:
      return "string";
    case FieldType::FIELD_TYPE_INT:
      return "int";
    case FieldType::FIELD_TYPE_DOUBLE:
      return "double";
    case FieldType::FIELD_TYPE_BOOL:
      return "bool";
    case FieldType::FIELD_TYPE_TIMESTAMP:
      return "timestamp";
    default:
      return "unspecified";
  }
}

absl::StatusOr<std::pair<std::string, exportd::v1::FieldType>> ParseFieldTypeFlag(
    absl::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--field takes NAME:TYPE (TYPE one of string, int, double, bool, timestamp), got '", text,
        "'"));
  }
  absl::string_view type_name = text.substr(colon + 1);
  std::optional<exportd::v1::FieldType> type = FieldTypeFromName(type_name);
  if (!type.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--field ", text, ": unknown type '", type_name,
                     "' (use string, int, double, bool or timestamp)"));
  }
  return std::make_pair(std::string(text.substr(0, colon)), *type);
}

}  // namespace exportd::cli
