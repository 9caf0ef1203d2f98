// Profile field types as exportctl and the CSV import spell them: "int",
// "timestamp", and NAME:TYPE for one typed column (`exportctl --field`, the
// HTTP API's `field` query parameter of a CSV upload).
//
//   auto typed = cli::ParseFieldTypeFlag("Age:int");  // {"Age", FIELD_TYPE_INT}
#ifndef EXPORTD_CLIENT_FIELD_TYPE_H_
#define EXPORTD_CLIENT_FIELD_TYPE_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "exportd/v1/common.pb.h"

namespace exportd::cli {

// "NAME:TYPE" (TYPE one of string,int,double,bool,timestamp) → {NAME, type}.
// The name is everything before the last ':'.
absl::StatusOr<std::pair<std::string, exportd::v1::FieldType>> ParseFieldTypeFlag(
    absl::string_view text);
// "string" → FIELD_TYPE_STRING, ...; nullopt for an unknown name.
std::optional<exportd::v1::FieldType> FieldTypeFromName(absl::string_view name);
// FIELD_TYPE_INT → "int", ...
std::string FieldTypeName(exportd::v1::FieldType type);

}  // namespace exportd::cli

#endif  // EXPORTD_CLIENT_FIELD_TYPE_H_
