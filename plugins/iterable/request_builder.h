// Builds the JSON bodies of Iterable's list subscribe/unsubscribe calls: the
// hot path of a run (a million records per run), so it writes JSON by hand
// straight into the body instead of building a DOM.
//
// One engine batch becomes one or more requests: each holds at most
// `max_subscribers` subscribers and `max_body_bytes` bytes. Records that
// cannot be sent (missing or invalid email or userId, a single record larger
// than the body limit) get their outcome here and are never sent.
//
//   ListRequestOptions options;
//   options.operation = ListOperation::kSubscribe;
//   options.list_id = 12345;
//   ITERABLE_ASSIGN_OR_RETURN(ListRequests requests, BuildListRequests(batch, options));
//   for (const ListRequest& request : requests.requests) Post(request.body);
#ifndef EXPORTD_PLUGINS_ITERABLE_REQUEST_BUILDER_H_
#define EXPORTD_PLUGINS_ITERABLE_REQUEST_BUILDER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "exportd/sdk/record.h"

namespace exportd::iterable {

// Appends `s` as a JSON string literal (quotes included). Escapes '"', '\\'
// and control characters; replaces invalid UTF-8 with U+FFFD so one bad value
// cannot turn a whole request into a BadJsonBody.
void AppendJsonString(std::string_view s, std::string* out);

// Appends an integer / a double as a JSON number. NaN and infinities, which
// JSON cannot hold, become null.
void AppendJsonInt(std::int64_t value, std::string* out);
void AppendJsonDouble(double value, std::string* out);

// Formats microseconds since the Unix epoch as Iterable stores dates:
// "YYYY-MM-DD HH:MM:SS +00:00" (UTC), e.g. 0 -> "1970-01-01 00:00:00 +00:00".
std::string FormatIterableTimestamp(std::int64_t micros);
void AppendIterableTimestamp(std::int64_t micros, std::string* out);

// Appends one profile value as Iterable expects it: string -> string,
// int/double -> number, bool -> true/false, timestamp -> date string,
// null -> null (Iterable removes the field).
void AppendJsonValue(const sdk::Value& value, std::string* out);

// Iterable-managed profile fields; never sent as data fields.
const std::vector<std::string>& ReservedFieldNames();
bool IsReservedField(std::string_view name);

// "text", "an integer", "a number", "a boolean", "a timestamp".
const char* FieldTypeName(sdk::FieldType type);

// The data fields a subscribe sends for `row` with a value (not null): every
// field but email, userId and the Iterable-managed ones. A type mismatch
// Iterable reports for the row (invalidData*) is about one of them.
std::vector<std::string> SentDataFields(const sdk::RecordBatch& batch, std::size_t row);

enum class ListOperation { kSubscribe, kUnsubscribe };

struct ListRequestOptions {
  ListOperation operation = ListOperation::kSubscribe;
  std::int64_t list_id = 0;
  // The identity field that keys each subscriber: "email" or "userId", as the
  // project type says (IdentifierFieldFor). A record without a valid value of
  // it is rejected locally. On subscribe, the other identity field, when the
  // batch has it and the record holds a value, is sent too (a userID-based
  // project's user email, an email-based project's userId); an invalid one
  // rejects the record. Unsubscribe sends only the key.
  std::string key_field = "email";
  int max_subscribers = 1000;
  std::int64_t max_body_bytes = 4'000'000;
  // Subscribe only: send "updateExistingUsersOnly": true.
  bool update_existing_users_only = false;
};

// One HTTP request's worth of subscribers.
struct ListRequest {
  std::string body;
  // The batch rows in this request, in body order.
  std::vector<std::size_t> rows;
  // The normalized email and the userId each row was sent with (either may be
  // empty), as spans of `identities`: Iterable names failures by them.
  struct Spans {
    std::uint32_t email_offset = 0, email_size = 0;
    std::uint32_t user_id_offset = 0, user_id_size = 0;
  };
  std::string identities;
  std::vector<Spans> spans;

  std::string_view email(std::size_t i) const {
    return std::string_view(identities).substr(spans[i].email_offset, spans[i].email_size);
  }
  std::string_view user_id(std::size_t i) const {
    return std::string_view(identities).substr(spans[i].user_id_offset, spans[i].user_id_size);
  }
};

struct ListRequests {
  std::vector<ListRequest> requests;
  // One per batch record. Records in a request hold kDelivered as a
  // placeholder; the caller overwrites them with what Iterable answered.
  std::vector<sdk::RecordOutcome> outcomes;
};

// Splits `batch` into requests. INVALID_ARGUMENT when the batch has no
// `key_field` field or the limits are not positive.
absl::StatusOr<ListRequests> BuildListRequests(const sdk::RecordBatch& batch,
                                               const ListRequestOptions& options);

}  // namespace exportd::iterable

#endif  // EXPORTD_PLUGINS_ITERABLE_REQUEST_BUILDER_H_
