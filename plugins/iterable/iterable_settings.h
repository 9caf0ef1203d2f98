// The Iterable destination's manifest and the parsing of its connection
// settings into ConnectionOptions.
//
//   ITERABLE_ASSIGN_OR_RETURN(ConnectionOptions options, ParseSettings(settings));
//   options.base_url;  // "https://api.iterable.com", the region's host, or base_url.
#ifndef EXPORTD_PLUGINS_ITERABLE_ITERABLE_SETTINGS_H_
#define EXPORTD_PLUGINS_ITERABLE_ITERABLE_SETTINGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "exportd/sdk/destination.h"
#include "retry_policy.h"

namespace exportd::iterable {

inline constexpr char kUsBaseUrl[] = "https://api.iterable.com";
inline constexpr char kEuBaseUrl[] = "https://api.eu.iterable.com";
inline constexpr char kPluginVersion[] = "1.0.0";

// The most a connection's settings may ask for: the manifest's speed. A
// connection's speed() is what its settings chose within these.
inline constexpr int kMaxBatchSize = 10000;
inline constexpr std::int64_t kMaxBodyBytes = 16'000'000;
inline constexpr int kMaxParallelRequests = 32;

// How the Iterable project identifies users (setting `project_type`).
enum class ProjectType { kEmail, kUserId, kHybrid };

// The two identity fields an export maps.
inline constexpr char kEmailField[] = "email";
inline constexpr char kUserIdField[] = "userId";

// Everything a connection needs, from the settings plus knobs tests may turn.
struct ConnectionOptions {
  std::string api_key;
  std::string base_url = kUsBaseUrl;  // No trailing slash.
  int batch_size = 1000;
  std::int64_t max_body_bytes = 4'000'000;
  int parallel_requests = 4;
  double requests_per_second = 0;  // 0: no client-side limit until a 429.
  bool update_existing_users_only = false;
  ProjectType project_type = ProjectType::kEmail;
  absl::Duration timeout = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(10);
  RetryPolicy retry;
  // How long subscribe/unsubscribe retry "error.lists.invalidListId" for a
  // list this connection created (or the engine says was just created).
  absl::Duration invalid_list_window = absl::Seconds(10);
  absl::Duration invalid_list_initial_backoff = absl::Milliseconds(200);
};

// The manifest: settings, the `email` mapping field, reserved fields, speed.
sdk::Manifest BuildManifest();

// Parses and range-checks `settings` (as the core hands them over, defaults
// filled in, though absent ones are tolerated). INVALID_ARGUMENT naming the
// setting otherwise; never quotes the API key.
absl::StatusOr<ConnectionOptions> ParseSettings(const sdk::Settings& settings);

// The `project_type` setting (absent or empty: email). INVALID_ARGUMENT for
// another value.
absl::StatusOr<ProjectType> ParseProjectType(const sdk::Settings& settings);

// The setting's value for `type`: "email", "user_id" or "hybrid".
const char* ProjectTypeName(ProjectType type);

// The identity field that keys a member of a project of `type`, given the
// destination fields an export maps (in its order): `email` in email-based
// projects, `userId` in userID-based ones, in hybrid projects the first of the
// two the export maps. INVALID_ARGUMENT naming the missing field and the
// project type when the mapping lacks it.
absl::StatusOr<std::string> IdentifierFieldFor(ProjectType type,
                                               const std::vector<std::string>& fields);

// Checks a base URL's form: http(s)://host[:port][/path], no credentials,
// query, fragment or whitespace.
absl::Status ValidateBaseUrl(std::string_view url);

}  // namespace exportd::iterable

#endif  // EXPORTD_PLUGINS_ITERABLE_ITERABLE_SETTINGS_H_
