// Tolerant parsing of Iterable's answers. Any field may be missing, a body may
// not be JSON at all (a 429 in plain text, an HTML error page), and success is
// judged by the HTTP status, never by the envelope's `code` (a 400 can carry
// "code":"Success"). Nothing here throws.
//
//   Envelope envelope = ParseEnvelope(response.body);
//   ListUpdateResult result = ParseListUpdateResponse(response.body);
//   for (const IdentityFailure& failure : result.failures) { ... }
#ifndef EXPORTD_PLUGINS_ITERABLE_RESPONSE_PARSER_H_
#define EXPORTD_PLUGINS_ITERABLE_RESPONSE_PARSER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace exportd::iterable {

// Iterable's common envelope {"msg","code","params"}.
struct Envelope {
  bool is_json = false;  // The body parsed as a JSON object.
  std::string code;      // e.g. "BadApiKey"; empty when absent.
  std::string msg;       // e.g. "Invalid API key"; empty when absent.
};
Envelope ParseEnvelope(std::string_view body);

// A short, secret-free description of an error answer for messages:
// "HTTP 400 BatchTooLarge: too many subscribers" or, for a body that is not a
// JSON envelope, "HTTP 429: " + the first 200 characters of the text.
std::string DescribeErrorAnswer(int http_status, std::string_view body);

// The time a JSON rate-limit answer names in params.rateLimitReset (epoch
// milliseconds: nothing may be sent before it), if any.
std::optional<std::int64_t> RateLimitResetMillis(std::string_view body);

// The list id named by "error.lists.invalidListId(ID)" in `msg`, if any.
std::optional<std::int64_t> InvalidListIdIn(std::string_view msg);

// One entry of GET /api/lists.
struct ListInfo {
  std::int64_t id = 0;
  std::string name;
  std::int64_t created_at = 0;  // Epoch milliseconds; 0 when absent.
  std::string list_type;
};
// Parses {"lists":[...]}; entries without an integer id or a string name are
// skipped. INTERNAL when the body is not such an object.
absl::StatusOr<std::vector<ListInfo>> ParseLists(std::string_view body);

// Parses {"listId": N} from POST /api/lists.
absl::StatusOr<std::int64_t> ParseCreatedListId(std::string_view body);

// One user Iterable reported as not updated, by email or by userId.
struct IdentityFailure {
  std::string identity;     // The email (normalized: trimmed, lowercase) or the userId as sent.
  bool user_id = false;     // `identity` is a userId (a *UserIds array).
  std::string reason_code;  // "conflict", "forgotten", "invalid_data", "invalid_email",
                            // "invalid_user_id", "not_found", or the snake_case of an unknown
                            // array.
  std::string source;       // Where it was listed, e.g. "failedUpdates.conflictEmails".
};

// The body of a 2xx answer to subscribe/unsubscribe.
struct ListUpdateResult {
  bool is_json = false;
  std::optional<std::int64_t> success_count;
  std::optional<std::int64_t> fail_count;
  // Every email listed in invalidEmails or failedUpdates.*Emails and every
  // userId in invalidUserIds or failedUpdates.*UserIds, in order.
  std::vector<IdentityFailure> failures;
  // The data fields Iterable added to the project's schema with this
  // request (`createdFields`), and those it did not store
  // (`filteredOutFields`); string entries only, in order.
  std::vector<std::string> created_fields;
  std::vector<std::string> filtered_out_fields;
};
ListUpdateResult ParseListUpdateResponse(std::string_view body);

// A human-readable explanation for a reason code of IdentityFailure.
std::string ExplainFailure(std::string_view reason_code);

}  // namespace exportd::iterable

#endif  // EXPORTD_PLUGINS_ITERABLE_RESPONSE_PARSER_H_
