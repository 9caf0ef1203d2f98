// One-pass parser for POST /api/lists/subscribe and /api/lists/unsubscribe bodies.
//
// A subscribe body of 1,000 subscribers is ~100 KB; building a full nlohmann DOM for it (a
// std::map per subscriber) costs more than everything else the sandbox does. This parser uses
// nlohmann's SAX interface and builds only what the API needs: identifiers as strings and
// each subscriber's dataFields as one JSON object that is later moved into the user.
//
// Example:
//   absl::StatusOr<ListRequest> request = ParseListRequest(body);
//   if (!request.ok()) -> 400 BadJsonBody with request.status().message()

#ifndef EXPORTD_TESTS_SANDBOX_LIST_REQUEST_H_
#define EXPORTD_TESTS_SANDBOX_LIST_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace exportd::sandbox {

// How a subscriber named itself in "email" or "userId".
enum class IdKind {
  kAbsent,  // Missing or null.
  kString,  // A string: the value.
  kOther,   // Not a string: its JSON text (e.g. "42"), reported as invalid.
};

struct SubscriberRecord {
  IdKind email_kind = IdKind::kAbsent;
  std::string email;
  IdKind user_id_kind = IdKind::kAbsent;
  std::string user_id;
  // Present and not null. Usually an object; any other type is invalid data.
  bool has_data_fields = false;
  nlohmann::json data_fields;
  bool merge_nested_objects = false;
};

// A parsed subscribe/unsubscribe body. Shape problems are recorded, not rejected, so the
// API logic can answer them the way Iterable does (BadParams / BatchTooLarge).
struct ListRequest {
  bool is_object = false;  // The body is a JSON object.
  std::optional<int64_t> list_id;
  bool list_id_present = false;  // Present, possibly with a wrong type.
  bool has_subscribers = false;
  bool subscribers_is_array = false;
  bool subscriber_not_object = false;  // Some element of "subscribers" is not an object.
  std::vector<SubscriberRecord> subscribers;
  bool update_existing_users_only = false;
  // "channelUnsubscribe": absent -> nullopt; true -> true; anything else -> false.
  std::optional<bool> channel_unsubscribe;
};

// Parses `body`; InvalidArgument (with the parser's message) when it is not valid JSON.
absl::StatusOr<ListRequest> ParseListRequest(absl::string_view body);

}  // namespace exportd::sandbox

#endif  // EXPORTD_TESTS_SANDBOX_LIST_REQUEST_H_
