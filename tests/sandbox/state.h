// In-memory Iterable project state behind the sandbox: lists, users and profile field types,
// with the subscribe/unsubscribe semantics of Iterable's list API. No HTTP here.
//
// Users are project-wide and keyed by lowercase email (or by userId when a subscriber has no
// email); a list holds a set of users; data fields live on the user, so every list a user is
// on shows the same fields. A field's type (string, number, boolean, object, array) is fixed by
// the first non-null value seen in the project.
//
// Example:
//   State state(absl::Now, /*first_list_id=*/10'000'000'001);
//   int64_t id = state.CreateList("VIP", std::nullopt);
//   absl::StatusOr<ListRequest> request = ParseListRequest(
//       R"({"listId":10000000001,"subscribers":[{"email":"A@b.com"}]})");
//   ApiReply reply = state.Subscribe(*request, /*max_batch=*/1000, absl::ZeroDuration());
//   // reply.status == 200, reply.body["successCount"] == 1

#ifndef EXPORTD_TESTS_SANDBOX_STATE_H_
#define EXPORTD_TESTS_SANDBOX_STATE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "tests/sandbox/list_request.h"

namespace exportd::sandbox {

// An HTTP status and JSON body produced by the API logic.
struct ApiReply {
  int status = 200;
  nlohmann::json body;
};

// The Iterable envelope {"msg":msg,"code":code,"params":null}.
nlohmann::json Envelope(absl::string_view msg, absl::string_view code);

// True when `email` looks like an address Iterable accepts: one '@', a non-empty local part
// of allowed characters without leading, trailing or double dots, a domain of at least two
// labels (letters, digits, '-') and a top-level domain of at least two letters. Case is
// ignored.
bool IsValidEmail(absl::string_view email);

// True for 1..52 printable ASCII characters without a trailing space.
bool IsValidUserId(absl::string_view user_id);

// True for the fields Iterable manages itself (emailListIds, signupDate, ...).
bool IsManagedField(absl::string_view field);

// Counters for /_sandbox/stats.
struct StateCounts {
  int64_t lists = 0;
  int64_t users = 0;
  int64_t fields = 0;
};

// How the simulated project identifies users (--project-type).
//   kEmail:  a subscriber needs an email (one with only a userId is an invalid email "");
//            users are keyed by email.
//   kUserId: a subscriber needs a userId (one without is an invalid userId ""); users are
//            keyed by userId and email is an ordinary, non-unique field.
//   kHybrid: either; by email when a subscriber has one, else by userId (the default, and
//            how the sandbox always behaved).
enum class ProjectType { kEmail, kUserId, kHybrid };

// "email" | "user_id" | "hybrid"; nullopt for another text.
std::optional<ProjectType> ParseProjectType(absl::string_view text);
const char* ProjectTypeName(ProjectType type);

class State {
 public:
  // `clock` gives createdAt and drives the invalid-list window. List ids count up from
  // `first_list_id` (default above 2^32, so a client that truncates ids to 32 bits fails).
  //
  // `lean` (--lean, for 10M+ member benchmarks): a user is kept as two 64-bit digests, of
  // its identifier (email, else userId) and of the data fields last sent, about 30 bytes per
  // list member instead of the whole record. Subscribe and unsubscribe answer as usual
  // (validation, field types, counts); what lean mode cannot do is answer with records:
  // /_sandbox/lists/{id}/members and /_sandbox/users/{email} say so, and userId conflicts
  // between users are not detected.
  State(std::function<absl::Time()> clock, int64_t first_list_id,
        ProjectType project_type = ProjectType::kHybrid, bool lean = false);

  bool lean() const { return lean_; }

  // Body of GET /api/lists: {"lists":[{"id","name","description"?,"createdAt","listType"}]}.
  nlohmann::json ListsJson() const;

  // Creates a list (names need not be unique) and returns its id.
  int64_t CreateList(std::string name, std::optional<std::string> description);

  // Deletes a list and its memberships (users stay), as a customer does in Iterable's UI.
  // False when the id is unknown.
  bool DeleteList(int64_t list_id);

  // DELETE /api/lists/{id}: as DeleteList, but a list marked in use (SetListInUse) stays.
  enum class ApiDelete { kDeleted, kNotFound, kInUse };
  ApiDelete DeleteListIfUnused(int64_t list_id);

  // Marks a list as referenced by a campaign or journey (or no longer). False when the id
  // is unknown.
  bool SetListInUse(int64_t list_id, bool in_use);

  // POST /api/lists/subscribe and /api/lists/unsubscribe with an already parsed body.
  // `request` is consumed (data fields are moved out of it). Requests naming a list created
  // less than `invalid_list_window` ago get the invalidListId answer.
  ApiReply Subscribe(ListRequest& request, int max_batch, absl::Duration invalid_list_window);
  ApiReply Unsubscribe(ListRequest& request, int max_batch, absl::Duration invalid_list_window);

  // GET /_sandbox/lists: [{"id","name","description"?,"memberCount","createdAt"}].
  nlohmann::json AdminListsJson() const;

  // GET /_sandbox/lists/{id}/members: [{"email"?,"userId"?,"dataFields":{...}}] sorted by
  // email, then userId. nullopt when the list is unknown.
  std::optional<nlohmann::json> AdminMembersJson(int64_t list_id) const;

  // GET /_sandbox/users/{email}: {"email","userId"?,"dataFields","listIds":[...]}.
  std::optional<nlohmann::json> AdminUserJson(absl::string_view email) const;

  // Field name -> "string" | "number" | "boolean" | "object" | "array".
  nlohmann::json FieldTypesJson() const;

  StateCounts Counts() const;

  // A privacy deletion ("forget user" in Iterable): later subscribes of this email (lowercase)
  // or userId are refused and reported in failedUpdates.forgottenEmails/forgottenUserIds.
  // (The user's existing record and memberships are left as they are.)
  void Forget(std::string email, std::string user_id);

  // Forgets every list, user and field type. List ids keep counting up, so an id cached by a
  // client before the reset never names a new list.
  void Reset();

 private:
  struct User {
    std::string email;    // Lowercase; empty for userId-only users.
    std::string user_id;  // Empty when unknown.
    nlohmann::json data_fields = nlohmann::json::object();
  };
  struct List {
    int64_t id = 0;
    std::string name;
    std::optional<std::string> description;
    absl::Time created;
    bool in_use = false;  // A campaign or journey references it: the API does not delete it.
    absl::flat_hash_set<int64_t> members;  // Indexes into users_.
  };

  // Validates listId/subscribers/batch size.
  static std::optional<ApiReply> CheckRequestShape(const ListRequest& request, int max_batch);
  // The invalidListId answer when `list_id` is unknown or too new.
  std::optional<ApiReply> CheckListUsable(int64_t list_id, absl::Duration invalid_list_window) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t FindUser(absl::string_view lowercase_email, absl::string_view user_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether every data field of `subscriber` has the type the project fixed for it (true
  // without data fields); `new_types` gets the fields the project has no type for yet.
  bool CheckFieldTypes(SubscriberRecord& subscriber,
                       std::vector<std::pair<const std::string*, const char*>>* new_types) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Lean mode: the digest a user is kept under, and whether it exists.
  static int64_t LeanKey(absl::string_view lowercase_email, absl::string_view user_id);
  bool LeanUserExists(int64_t key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return lean_users_.contains(key);
  }

  const std::function<absl::Time()> clock_;
  const ProjectType project_type_;
  const bool lean_;
  mutable absl::Mutex mu_;
  int64_t next_list_id_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, List> lists_ ABSL_GUARDED_BY(mu_);
  std::deque<User> users_ ABSL_GUARDED_BY(mu_);  // Never moves users.
  absl::flat_hash_map<std::string, int64_t> users_by_email_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> users_by_id_ ABSL_GUARDED_BY(mu_);
  // Lean mode only: user key (LeanKey) -> digest of its data fields. List members are
  // user keys then, not indexes into users_.
  absl::flat_hash_map<int64_t, std::uint64_t> lean_users_ ABSL_GUARDED_BY(mu_);
  // Field name -> type name (a static string from TypeName()).
  absl::flat_hash_map<std::string, const char*> field_types_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> forgotten_emails_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> forgotten_user_ids_ ABSL_GUARDED_BY(mu_);
};

}  // namespace exportd::sandbox

#endif  // EXPORTD_TESTS_SANDBOX_STATE_H_
