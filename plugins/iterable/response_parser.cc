#include "response_parser.h"

#include <cctype>
#include <exception>
#include <limits>

#include "absl/status/status.h"
#include "email.h"
#include "nlohmann/json.hpp"

namespace exportd::iterable {
namespace {

using nlohmann::json;

// Parses without exceptions; a discarded value means "not JSON".
json ParseJson(std::string_view body) {
  return json::parse(body.begin(), body.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
}

std::string StringField(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// A number that fits in 64 bits, or nothing (a float out of range, NaN,
// an unsigned above INT64_MAX: no id or count of ours).
std::optional<std::int64_t> IntField(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    std::uint64_t value = it->get<std::uint64_t>();
    if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(value);
  }
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_number_float()) {
    double value = it->get<double>();
    // 2^63 exactly is out of range; every double below it converts.
    if (!(value >= -9223372036854775808.0 && value < 9223372036854775808.0)) return std::nullopt;
    return static_cast<std::int64_t>(value);
  }
  return std::nullopt;
}

// The suffix naming what a failedUpdates array lists, or 0 for neither.
size_t IdentitySuffix(std::string_view key, bool* user_id) {
  constexpr std::string_view kEmails = "Emails";
  constexpr std::string_view kUserIds = "UserIds";
  if (key.size() > kEmails.size() && key.substr(key.size() - kEmails.size()) == kEmails) {
    *user_id = false;
    return kEmails.size();
  }
  if (key.size() > kUserIds.size() && key.substr(key.size() - kUserIds.size()) == kUserIds) {
    *user_id = true;
    return kUserIds.size();
  }
  return 0;
}

// "conflictEmails" -> "conflict", "invalidDataUserIds" -> "invalid_data",
// "invalidEmails" -> "invalid_email".
std::string ReasonForArray(std::string_view key, size_t suffix, bool user_id) {
  std::string_view stem = key.substr(0, key.size() - suffix);
  if (stem == "invalid") return user_id ? "invalid_user_id" : "invalid_email";
  std::string out;
  for (char c : stem) {
    if (c >= 'A' && c <= 'Z') {
      if (!out.empty()) out.push_back('_');
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void CollectIdentities(const json& array, bool user_id, const std::string& reason,
                       const std::string& source, std::vector<IdentityFailure>* out) {
  if (!array.is_array()) return;
  for (const json& item : array) {
    if (!item.is_string()) continue;
    const std::string& text = item.get_ref<const std::string&>();
    out->push_back(IdentityFailure{user_id ? text : NormalizeEmail(text), user_id, reason, source});
  }
}

}  // namespace

Envelope ParseEnvelope(std::string_view body) {
  Envelope envelope;
  try {
    json parsed = ParseJson(body);
    if (!parsed.is_object()) return envelope;
    envelope.is_json = true;
    envelope.code = StringField(parsed, "code");
    envelope.msg = StringField(parsed, "msg");
  } catch (const std::exception&) {
    // Treated as not JSON.
  }
  return envelope;
}

std::string DescribeErrorAnswer(int http_status, std::string_view body) {
  std::string out = "HTTP " + std::to_string(http_status);
  const Envelope envelope = ParseEnvelope(body);
  if (envelope.is_json && (!envelope.code.empty() || !envelope.msg.empty())) {
    if (!envelope.code.empty()) out += " " + envelope.code;
    if (!envelope.msg.empty()) out += ": " + envelope.msg;
    return out;
  }
  // Not an envelope: quote the start of the text, on one line.
  std::string text(body.substr(0, 200));
  for (char& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  if (!text.empty()) out += ": " + text;
  return out;
}

std::optional<std::int64_t> RateLimitResetMillis(std::string_view body) {
  const json parsed = ParseJson(body);
  if (!parsed.is_object()) return std::nullopt;
  auto params = parsed.find("params");
  if (params == parsed.end() || !params->is_object()) return std::nullopt;
  std::optional<std::int64_t> reset = IntField(*params, "rateLimitReset");
  if (reset && *reset <= 0) return std::nullopt;
  return reset;
}

std::optional<std::int64_t> InvalidListIdIn(std::string_view msg) {
  constexpr std::string_view kMarker = "error.lists.invalidListId";
  const size_t at = msg.find(kMarker);
  if (at == std::string_view::npos) return std::nullopt;
  size_t i = at + kMarker.size();
  if (i < msg.size() && msg[i] == '(') ++i;
  std::int64_t id = 0;
  bool any = false;
  while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9') {
    const int digit = msg[i] - '0';
    // Too large for an id we could have sent.
    if (id > (std::numeric_limits<std::int64_t>::max() - digit) / 10) return std::nullopt;
    id = id * 10 + digit;
    any = true;
    ++i;
  }
  return any ? std::optional<std::int64_t>(id) : std::optional<std::int64_t>(0);
}

absl::StatusOr<std::vector<ListInfo>> ParseLists(std::string_view body) {
  try {
    json parsed = ParseJson(body);
    if (!parsed.is_object()) {
      return absl::InternalError("Iterable's list of lists is not a JSON object");
    }
    auto lists = parsed.find("lists");
    if (lists == parsed.end() || !lists->is_array()) {
      return absl::InternalError("Iterable's list of lists has no \"lists\" array");
    }
    std::vector<ListInfo> out;
    out.reserve(lists->size());
    for (const json& item : *lists) {
      if (!item.is_object()) continue;
      std::optional<std::int64_t> id = IntField(item, "id");
      auto name = item.find("name");
      if (!id || name == item.end() || !name->is_string()) continue;
      ListInfo info;
      info.id = *id;
      info.name = name->get<std::string>();
      info.created_at = IntField(item, "createdAt").value_or(0);
      info.list_type = StringField(item, "listType");
      out.push_back(std::move(info));
    }
    return out;
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("cannot read Iterable's list of lists: ") + e.what());
  }
}

absl::StatusOr<std::int64_t> ParseCreatedListId(std::string_view body) {
  try {
    json parsed = ParseJson(body);
    if (parsed.is_object()) {
      if (std::optional<std::int64_t> id = IntField(parsed, "listId")) return *id;
    }
  } catch (const std::exception&) {
  }
  return absl::InternalError("Iterable created a list but its answer has no listId: " +
                             std::string(body.substr(0, 200)));
}

ListUpdateResult ParseListUpdateResponse(std::string_view body) {
  ListUpdateResult result;
  try {
    json parsed = ParseJson(body);
    if (!parsed.is_object()) return result;
    result.is_json = true;
    result.success_count = IntField(parsed, "successCount");
    result.fail_count = IntField(parsed, "failCount");
    if (auto it = parsed.find("invalidEmails"); it != parsed.end()) {
      CollectIdentities(*it, false, "invalid_email", "invalidEmails", &result.failures);
    }
    if (auto it = parsed.find("invalidUserIds"); it != parsed.end()) {
      CollectIdentities(*it, true, "invalid_user_id", "invalidUserIds", &result.failures);
    }
    auto strings = [&](const char* key, std::vector<std::string>* out) {
      auto it = parsed.find(key);
      if (it == parsed.end() || !it->is_array()) return;
      for (const json& item : *it) {
        if (item.is_string()) out->push_back(item.get<std::string>());
      }
    };
    strings("createdFields", &result.created_fields);
    strings("filteredOutFields", &result.filtered_out_fields);
    if (auto it = parsed.find("failedUpdates"); it != parsed.end() && it->is_object()) {
      for (const auto& [key, value] : it->items()) {
        bool user_id = false;
        const size_t suffix = IdentitySuffix(key, &user_id);
        if (suffix == 0) continue;
        CollectIdentities(value, user_id, ReasonForArray(key, suffix, user_id),
                          "failedUpdates." + key, &result.failures);
      }
    }
  } catch (const std::exception&) {
    result.is_json = false;
  }
  return result;
}

std::string ExplainFailure(std::string_view reason_code) {
  if (reason_code == "conflict") {
    return "Iterable reported a conflict for this user (another user or a unique field "
           "already holds its email or userId)";
  }
  if (reason_code == "invalid_user_id") return "Iterable rejected the userId as invalid";
  if (reason_code == "forgotten") {
    return "the user was forgotten (privacy deletion) in Iterable and cannot be updated";
  }
  if (reason_code == "invalid_data") {
    return "Iterable rejected the data fields (a field's value may not match the type "
           "Iterable fixed for that field)";
  }
  if (reason_code == "invalid_email") return "Iterable rejected the email address as invalid";
  if (reason_code == "not_found") {
    return "no Iterable user has this email or userId (update_existing_users_only is on)";
  }
  return "Iterable did not update this user (" + std::string(reason_code) + ")";
}

}  // namespace exportd::iterable
