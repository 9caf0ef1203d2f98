#include "tests/sandbox/state.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace exportd::sandbox {
namespace {

constexpr absl::string_view kManagedFields[] = {"emailListIds",
                                                "userListIds",
                                                "signupDate",
                                                "signupSource",
                                                "profileUpdatedAt",
                                                "itblInternal",
                                                "itblDS",
                                                "itblUserId",
                                                "subscribedMessageTypeIds",
                                                "unsubscribedChannelIds",
                                                "unsubscribedMessageTypeIds"};

const char* TypeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::string:
      return "string";
    case nlohmann::json::value_t::boolean:
      return "boolean";
    case nlohmann::json::value_t::object:
      return "object";
    case nlohmann::json::value_t::array:
      return "array";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return "number";
    default:
      return "null";
  }
}

bool IsLocalChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+/=?^_`{|}~.-", c) != nullptr;
}

// Per-request outcome of subscribe/unsubscribe, in Iterable's response shape.
struct Outcome {
  int64_t success_count = 0;
  int64_t fail_count = 0;
  std::vector<std::string> conflict_emails, conflict_user_ids, invalid_data_emails,
      invalid_data_user_ids, invalid_emails, invalid_user_ids, not_found_emails, not_found_user_ids,
      forgotten_emails, forgotten_user_ids;
  std::vector<std::string> created_fields, filtered_out_fields;

  void Fail(std::vector<std::string>* where, std::string what) {
    where->push_back(std::move(what));
    ++fail_count;
  }

  nlohmann::json ToJson() && {
    nlohmann::json failed = {
        {"conflictEmails", std::move(conflict_emails)},
        {"conflictUserIds", std::move(conflict_user_ids)},
        {"forgottenEmails", std::move(forgotten_emails)},
        {"forgottenUserIds", std::move(forgotten_user_ids)},
        {"invalidDataEmails", std::move(invalid_data_emails)},
        {"invalidDataUserIds", std::move(invalid_data_user_ids)},
        {"invalidEmails", invalid_emails},
        {"invalidUserIds", invalid_user_ids},
        {"notFoundEmails", std::move(not_found_emails)},
        {"notFoundUserIds", std::move(not_found_user_ids)},
    };
    return {{"successCount", success_count},
            {"failCount", fail_count},
            {"invalidEmails", std::move(invalid_emails)},
            {"invalidUserIds", std::move(invalid_user_ids)},
            {"failedUpdates", std::move(failed)},
            {"createdFields", std::move(created_fields)},
            {"filteredOutFields", std::move(filtered_out_fields)}};
  }
};

// A subscriber's identifiers after validation.
struct Identity {
  bool has_email = false;
  bool has_user_id = false;
  std::string email_sent;  // As sent, for reporting.
  std::string email;       // Lowercase.
  std::string user_id;
};

// Validates one subscriber's email/userId, recording failures in *outcome.
bool ReadIdentity(SubscriberRecord& subscriber, ProjectType project_type, Outcome* outcome,
                  Identity* identity) {
  if (subscriber.email_kind == IdKind::kOther) {
    outcome->Fail(&outcome->invalid_emails, std::move(subscriber.email));
    return false;
  }
  if (subscriber.user_id_kind == IdKind::kOther) {
    outcome->Fail(&outcome->invalid_user_ids, std::move(subscriber.user_id));
    return false;
  }
  identity->has_email = subscriber.email_kind == IdKind::kString;
  identity->has_user_id = subscriber.user_id_kind == IdKind::kString;
  if (!identity->has_email && !identity->has_user_id) {
    // Neither identifier: reported as an invalid (empty) email.
    outcome->Fail(&outcome->invalid_emails, "");
    return false;
  }
  // The identifier the project keys users by is required.
  if (project_type == ProjectType::kEmail && !identity->has_email) {
    outcome->Fail(&outcome->invalid_emails, "");
    return false;
  }
  if (project_type == ProjectType::kUserId && !identity->has_user_id) {
    outcome->Fail(&outcome->invalid_user_ids, "");
    return false;
  }
  if (identity->has_email) {
    identity->email_sent = std::move(subscriber.email);
    if (!IsValidEmail(identity->email_sent)) {
      outcome->Fail(&outcome->invalid_emails, identity->email_sent);
      return false;
    }
    identity->email = absl::AsciiStrToLower(identity->email_sent);
  }
  if (identity->has_user_id) {
    identity->user_id = std::move(subscriber.user_id);
    if (!IsValidUserId(identity->user_id)) {
      outcome->Fail(&outcome->invalid_user_ids, identity->user_id);
      return false;
    }
  }
  return true;
}

// Records a per-record failure in the email or userId flavour of a failedUpdates array.
void FailRecord(const Identity& identity, ProjectType project_type,
                std::vector<std::string>* emails, std::vector<std::string>* user_ids,
                Outcome* outcome) {
  // Reported by the identifier the project keys users by.
  if (identity.has_email && (project_type != ProjectType::kUserId || !identity.has_user_id)) {
    outcome->Fail(emails, identity.email_sent);
  } else {
    outcome->Fail(user_ids, identity.user_id);
  }
}

}  // namespace

nlohmann::json Envelope(absl::string_view msg, absl::string_view code) {
  return {{"msg", msg}, {"code", code}, {"params", nullptr}};
}

bool IsValidEmail(absl::string_view email) {
  if (email.size() < 6 || email.size() > 254) return false;
  size_t at = email.find('@');
  if (at == absl::string_view::npos || at == 0 || at > 64 ||
      email.find('@', at + 1) != absl::string_view::npos) {
    return false;
  }
  absl::string_view local = email.substr(0, at);
  if (local.front() == '.' || local.back() == '.' || local.find("..") != absl::string_view::npos) {
    return false;
  }
  for (char c : local) {
    if (!IsLocalChar(c)) return false;
  }
  absl::string_view domain = email.substr(at + 1);
  size_t last_dot = domain.rfind('.');
  if (last_dot == absl::string_view::npos) return false;
  // Labels: 1..63 of letters, digits and '-', not starting or ending with '-'.
  size_t start = 0;
  while (start <= domain.size()) {
    size_t end = domain.find('.', start);
    if (end == absl::string_view::npos) end = domain.size();
    absl::string_view label = domain.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    start = end + 1;
  }
  absl::string_view tld = domain.substr(last_dot + 1);
  if (tld.size() < 2) return false;
  for (char c : tld) {
    if (!absl::ascii_isalpha(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsValidUserId(absl::string_view user_id) {
  if (user_id.empty() || user_id.size() > 52 || user_id.back() == ' ') return false;
  for (char c : user_id) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

bool IsManagedField(absl::string_view field) {
  return std::find(std::begin(kManagedFields), std::end(kManagedFields), field) !=
         std::end(kManagedFields);
}

std::optional<ProjectType> ParseProjectType(absl::string_view text) {
  if (text == "email") return ProjectType::kEmail;
  if (text == "user_id") return ProjectType::kUserId;
  if (text == "hybrid") return ProjectType::kHybrid;
  return std::nullopt;
}

const char* ProjectTypeName(ProjectType type) {
  switch (type) {
    case ProjectType::kEmail: return "email";
    case ProjectType::kUserId: return "user_id";
    case ProjectType::kHybrid: return "hybrid";
  }
  return "hybrid";
}

State::State(std::function<absl::Time()> clock, int64_t first_list_id, ProjectType project_type,
             bool lean)
    : clock_(std::move(clock)),
      project_type_(project_type),
      lean_(lean),
      next_list_id_(first_list_id) {}

int64_t State::LeanKey(absl::string_view lowercase_email, absl::string_view user_id) {
  // Emails and userIds hash apart: a userId that spells an email is another user.
  return static_cast<int64_t>(!lowercase_email.empty()
                                  ? absl::HashOf(absl::string_view("e"), lowercase_email)
                                  : absl::HashOf(absl::string_view("u"), user_id));
}

nlohmann::json State::ListsJson() const {
  nlohmann::json lists = nlohmann::json::array();
  absl::MutexLock lock(&mu_);
  for (const auto& [id, list] : lists_) {
    nlohmann::json entry = {{"id", id}, {"name", list.name}};
    if (list.description) entry["description"] = *list.description;
    entry["createdAt"] = absl::ToUnixMillis(list.created);
    entry["listType"] = "Standard";
    lists.push_back(std::move(entry));
  }
  return {{"lists", std::move(lists)}};
}

int64_t State::CreateList(std::string name, std::optional<std::string> description) {
  absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  int64_t id = next_list_id_++;
  List& list = lists_[id];
  list.id = id;
  list.name = std::move(name);
  list.description = std::move(description);
  list.created = now;
  return id;
}

bool State::DeleteList(int64_t list_id) {
  absl::MutexLock lock(&mu_);
  return lists_.erase(list_id) > 0;
}

State::ApiDelete State::DeleteListIfUnused(int64_t list_id) {
  absl::MutexLock lock(&mu_);
  auto it = lists_.find(list_id);
  if (it == lists_.end()) return ApiDelete::kNotFound;
  if (it->second.in_use) return ApiDelete::kInUse;
  lists_.erase(it);
  return ApiDelete::kDeleted;
}

bool State::SetListInUse(int64_t list_id, bool in_use) {
  absl::MutexLock lock(&mu_);
  auto it = lists_.find(list_id);
  if (it == lists_.end()) return false;
  it->second.in_use = in_use;
  return true;
}

std::optional<ApiReply> State::CheckRequestShape(const ListRequest& request, int max_batch) {
  if (!request.is_object) {
    return ApiReply{400, Envelope("Request body must be a JSON object", "BadParams")};
  }
  if (!request.list_id) {
    return ApiReply{400, Envelope("listId is required and must be an integer", "BadParams")};
  }
  if (!request.has_subscribers || !request.subscribers_is_array) {
    return ApiReply{400, Envelope("subscribers is required and must be an array", "BadParams")};
  }
  if (request.subscribers.size() > static_cast<size_t>(max_batch)) {
    return ApiReply{400,
                    Envelope(absl::StrCat("Too many subscribers in one request: ",
                                          request.subscribers.size(), " (maximum ", max_batch, ")"),
                             "BatchTooLarge")};
  }
  if (request.subscriber_not_object) {
    return ApiReply{400, Envelope("Every subscriber must be a JSON object", "BadParams")};
  }
  return std::nullopt;
}

std::optional<ApiReply> State::CheckListUsable(int64_t list_id,
                                               absl::Duration invalid_list_window) const {
  auto list = lists_.find(list_id);
  if (list == lists_.end() || (invalid_list_window > absl::ZeroDuration() &&
                               clock_() - list->second.created < invalid_list_window)) {
    return ApiReply{400,
                    Envelope(absl::StrCat("error.lists.invalidListId(", list_id, ")"), "Success")};
  }
  return std::nullopt;
}

int64_t State::FindUser(absl::string_view lowercase_email, absl::string_view user_id) const {
  if (project_type_ != ProjectType::kUserId && !lowercase_email.empty()) {
    auto found = users_by_email_.find(lowercase_email);
    return found == users_by_email_.end() ? -1 : found->second;
  }
  auto found = users_by_id_.find(user_id);
  return found == users_by_id_.end() ? -1 : found->second;
}

bool State::CheckFieldTypes(
    SubscriberRecord& subscriber,
    std::vector<std::pair<const std::string*, const char*>>* new_types) const {
  new_types->clear();
  if (!subscriber.has_data_fields) return true;
  nlohmann::json& fields = subscriber.data_fields;
  if (!fields.is_object()) return false;
  for (auto field = fields.begin(); field != fields.end(); ++field) {
    if (field.value().is_null()) continue;
    const char* type = TypeName(field.value());
    auto known = field_types_.find(field.key());
    if (known == field_types_.end()) {
      new_types->emplace_back(&field.key(), type);
    } else if (std::strcmp(known->second, type) != 0) {
      return false;
    }
  }
  return true;
}

ApiReply State::Subscribe(ListRequest& request, int max_batch, absl::Duration invalid_list_window) {
  if (auto error = CheckRequestShape(request, max_batch)) return *error;
  const int64_t list_id = *request.list_id;
  const bool update_existing_only = request.update_existing_users_only;
  Outcome outcome;

  // Phase 1, without the lock: identifiers, lowercasing and managed fields depend only on
  // the request, so concurrent requests do this work in parallel.
  struct Prepared {
    Identity identity;
    SubscriberRecord* record;
  };
  std::vector<Prepared> prepared;
  prepared.reserve(request.subscribers.size());
  for (SubscriberRecord& subscriber : request.subscribers) {
    Identity identity;
    if (!ReadIdentity(subscriber, project_type_, &outcome, &identity)) continue;
    if (subscriber.has_data_fields && subscriber.data_fields.is_object()) {
      nlohmann::json& fields = subscriber.data_fields;
      for (auto field = fields.begin(); field != fields.end();) {
        if (!IsManagedField(field.key())) {
          ++field;
          continue;
        }
        if (std::find(outcome.filtered_out_fields.begin(), outcome.filtered_out_fields.end(),
                      field.key()) == outcome.filtered_out_fields.end()) {
          outcome.filtered_out_fields.push_back(field.key());
        }
        field = fields.erase(field);
      }
    }
    prepared.push_back({std::move(identity), &subscriber});
  }

  // Phase 2, under the lock: everything that reads or changes project state.
  std::vector<std::pair<const std::string*, const char*>> new_types;
  absl::MutexLock lock(&mu_);
  if (auto error = CheckListUsable(list_id, invalid_list_window)) return *error;
  List& list = lists_[list_id];
  for (Prepared& item : prepared) {
    Identity& identity = item.identity;
    SubscriberRecord& subscriber = *item.record;
    int64_t user_index = -1;
    if ((identity.has_email && forgotten_emails_.contains(identity.email)) ||
        (identity.has_user_id && forgotten_user_ids_.contains(identity.user_id))) {
      FailRecord(identity, project_type_, &outcome.forgotten_emails, &outcome.forgotten_user_ids,
                 &outcome);
      continue;
    }
    if (lean_) {
      const int64_t key = LeanKey(project_type_ == ProjectType::kUserId ? "" : identity.email,
                                  identity.user_id);
      if (update_existing_only && !LeanUserExists(key)) {
        FailRecord(identity, project_type_, &outcome.not_found_emails,
                   &outcome.not_found_user_ids, &outcome);
        continue;
      }
      if (!CheckFieldTypes(subscriber, &new_types)) {
        FailRecord(identity, project_type_, &outcome.invalid_data_emails,
                   &outcome.invalid_data_user_ids, &outcome);
        continue;
      }
      for (auto& [name, type] : new_types) {
        if (field_types_.emplace(*name, type).second) outcome.created_fields.push_back(*name);
      }
      std::uint64_t& data = lean_users_[key];
      if (subscriber.has_data_fields) data = absl::HashOf(subscriber.data_fields.dump());
      list.members.insert(key);
      ++outcome.success_count;
      continue;
    }
    user_index = FindUser(identity.email, identity.user_id);
    if (user_index < 0 && update_existing_only) {
      FailRecord(identity, project_type_, &outcome.not_found_emails, &outcome.not_found_user_ids, &outcome);
      continue;
    }
    // A userId already used by another user, or a user that already has another userId.
    if (project_type_ != ProjectType::kUserId && identity.has_email && identity.has_user_id) {
      auto owner = users_by_id_.find(identity.user_id);
      if (owner != users_by_id_.end() && owner->second != user_index) {
        outcome.Fail(&outcome.conflict_user_ids, identity.user_id);
        continue;
      }
      if (user_index >= 0 && !users_[user_index].user_id.empty() &&
          users_[user_index].user_id != identity.user_id) {
        outcome.Fail(&outcome.conflict_emails, identity.email_sent);
        continue;
      }
    }
    // Check every field's type before changing anything, so a rejected record leaves no
    // trace.
    nlohmann::json& fields = subscriber.data_fields;
    const bool has_fields = subscriber.has_data_fields;
    if (!CheckFieldTypes(subscriber, &new_types)) {
      FailRecord(identity, project_type_, &outcome.invalid_data_emails, &outcome.invalid_data_user_ids, &outcome);
      continue;
    }
    for (auto& [name, type] : new_types) {
      if (field_types_.emplace(*name, type).second) outcome.created_fields.push_back(*name);
    }
    bool new_user = user_index < 0;
    if (new_user) {
      user_index = static_cast<int64_t>(users_.size());
      users_.emplace_back();
      if (identity.has_email) {
        users_.back().email = identity.email;
        users_by_email_.emplace(identity.email, user_index);
      }
    }
    User& user = users_[user_index];
    if (project_type_ == ProjectType::kUserId && identity.has_email) {
      // An ordinary field there: the latest value wins.
      user.email = std::move(identity.email);
    }
    if (identity.has_user_id && user.user_id.empty()) {
      user.user_id = identity.user_id;
      users_by_id_.emplace(std::move(identity.user_id), user_index);
    }
    if (has_fields) {
      if (new_user) {
        // Common case of a large export: hand the whole object over.
        for (auto field = fields.begin(); field != fields.end();) {
          field = field.value().is_null() ? fields.erase(field) : std::next(field);
        }
        user.data_fields = std::move(fields);
      } else {
        for (auto field = fields.begin(); field != fields.end(); ++field) {
          const std::string& name = field.key();
          if (field.value().is_null()) {
            user.data_fields.erase(name);
            continue;
          }
          nlohmann::json& slot = user.data_fields[name];
          if (subscriber.merge_nested_objects && slot.is_object() && field.value().is_object()) {
            slot.update(field.value(), /*merge_objects=*/true);
          } else {
            slot = std::move(field.value());
          }
        }
      }
    }
    list.members.insert(user_index);
    ++outcome.success_count;
  }
  return ApiReply{200, std::move(outcome).ToJson()};
}

ApiReply State::Unsubscribe(ListRequest& request, int max_batch,
                            absl::Duration invalid_list_window) {
  if (auto error = CheckRequestShape(request, max_batch)) return *error;
  const int64_t list_id = *request.list_id;
  Outcome outcome;
  absl::MutexLock lock(&mu_);
  if (auto error = CheckListUsable(list_id, invalid_list_window)) return *error;
  List& list = lists_[list_id];
  for (SubscriberRecord& subscriber : request.subscribers) {
    Identity identity;
    if (!ReadIdentity(subscriber, project_type_, &outcome, &identity)) continue;
    int64_t user_index =
        lean_ ? LeanKey(project_type_ == ProjectType::kUserId ? "" : identity.email,
                        identity.user_id)
              : FindUser(identity.email, identity.user_id);
    if ((!lean_ && user_index < 0) || list.members.erase(user_index) == 0) {
      FailRecord(identity, project_type_, &outcome.not_found_emails, &outcome.not_found_user_ids, &outcome);
      continue;
    }
    ++outcome.success_count;
  }
  return ApiReply{200, std::move(outcome).ToJson()};
}

nlohmann::json State::AdminListsJson() const {
  nlohmann::json lists = nlohmann::json::array();
  absl::MutexLock lock(&mu_);
  for (const auto& [id, list] : lists_) {
    nlohmann::json entry = {{"id", id}, {"name", list.name}};
    if (list.description) entry["description"] = *list.description;
    entry["memberCount"] = list.members.size();
    entry["createdAt"] = absl::ToUnixMillis(list.created);
    lists.push_back(std::move(entry));
  }
  return lists;
}

std::optional<nlohmann::json> State::AdminMembersJson(int64_t list_id) const {
  absl::MutexLock lock(&mu_);
  auto list = lists_.find(list_id);
  if (list == lists_.end() || lean_) return std::nullopt;  // Lean mode keeps no records.
  std::vector<const User*> members;
  members.reserve(list->second.members.size());
  for (int64_t index : list->second.members) members.push_back(&users_[index]);
  std::sort(members.begin(), members.end(), [](const User* a, const User* b) {
    return std::tie(a->email, a->user_id) < std::tie(b->email, b->user_id);
  });
  nlohmann::json result = nlohmann::json::array();
  for (const User* user : members) {
    nlohmann::json entry = nlohmann::json::object();
    if (!user->email.empty()) entry["email"] = user->email;
    if (!user->user_id.empty()) entry["userId"] = user->user_id;
    entry["dataFields"] = user->data_fields;
    result.push_back(std::move(entry));
  }
  return result;
}

std::optional<nlohmann::json> State::AdminUserJson(absl::string_view email) const {
  absl::MutexLock lock(&mu_);
  if (lean_) return std::nullopt;  // Lean mode keeps no records.
  int64_t index = FindUser(absl::AsciiStrToLower(email), "");
  if (index < 0) return std::nullopt;
  const User& user = users_[index];
  nlohmann::json list_ids = nlohmann::json::array();
  for (const auto& [id, list] : lists_) {
    if (list.members.contains(index)) list_ids.push_back(id);
  }
  nlohmann::json result = {{"email", user.email}};
  if (!user.user_id.empty()) result["userId"] = user.user_id;
  result["dataFields"] = user.data_fields;
  result["listIds"] = std::move(list_ids);
  return result;
}

nlohmann::json State::FieldTypesJson() const {
  nlohmann::json result = nlohmann::json::object();
  absl::MutexLock lock(&mu_);
  for (const auto& [name, type] : field_types_) result[name] = type;
  return result;
}

StateCounts State::Counts() const {
  absl::MutexLock lock(&mu_);
  return StateCounts{static_cast<int64_t>(lists_.size()),
                     static_cast<int64_t>(lean_ ? lean_users_.size() : users_.size()),
                     static_cast<int64_t>(field_types_.size())};
}

void State::Forget(std::string email, std::string user_id) {
  absl::MutexLock lock(&mu_);
  if (!email.empty()) forgotten_emails_.insert(absl::AsciiStrToLower(email));
  if (!user_id.empty()) forgotten_user_ids_.insert(std::move(user_id));
}

void State::Reset() {
  absl::MutexLock lock(&mu_);
  forgotten_emails_.clear();
  forgotten_user_ids_.clear();
  lists_.clear();
  users_.clear();
  users_by_email_.clear();
  users_by_id_.clear();
  lean_users_.clear();
  field_types_.clear();
}

}  // namespace exportd::sandbox
