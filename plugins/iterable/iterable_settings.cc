#include "iterable_settings.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "exportd/sdk/http_url.h"
#include "request_builder.h"
#include "status_macros.h"

namespace exportd::iterable {
namespace {

using sdk::SettingSpec;
using sdk::SettingType;

SettingSpec Setting(std::string name, std::string display_name, std::string description,
                    SettingType type, std::string default_value = "", bool required = false,
                    bool secret = false, std::vector<std::string> allowed = {}) {
  SettingSpec spec;
  spec.name = std::move(name);
  spec.display_name = std::move(display_name);
  spec.description = std::move(description);
  spec.type = type;
  spec.required = required;
  spec.secret = secret;
  spec.allowed_values = std::move(allowed);
  spec.default_value = std::move(default_value);
  return spec;
}

const std::string* Find(const sdk::Settings& settings, absl::string_view name) {
  auto it = settings.find(std::string_view(name.data(), name.size()));
  if (it == settings.end()) return nullptr;
  return &it->second;
}

// Reads an integer setting in [min, max] into *out when present and not empty.
absl::Status ReadInt(const sdk::Settings& settings, absl::string_view name, std::int64_t min,
                     std::int64_t max, std::int64_t* out) {
  const std::string* text = Find(settings, name);
  if (text == nullptr || absl::StripAsciiWhitespace(*text).empty()) return absl::OkStatus();
  std::int64_t value;
  if (!absl::SimpleAtoi(*text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting '", name, "' must be a whole number, got '", *text, "'"));
  }
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting '", name, "' must be between ", min, " and ", max, ", got ", value));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status ReadDouble(const sdk::Settings& settings, absl::string_view name, double min,
                        double max, double* out) {
  const std::string* text = Find(settings, name);
  if (text == nullptr || absl::StripAsciiWhitespace(*text).empty()) return absl::OkStatus();
  double value;
  if (!absl::SimpleAtod(*text, &value) || !std::isfinite(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting '", name, "' must be a number, got '", *text, "'"));
  }
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting '", name, "' must be between ", min, " and ", max, ", got ", *text));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status ReadBool(const sdk::Settings& settings, absl::string_view name, bool* out) {
  const std::string* text = Find(settings, name);
  if (text == nullptr || absl::StripAsciiWhitespace(*text).empty()) return absl::OkStatus();
  if (!absl::SimpleAtob(absl::StripAsciiWhitespace(*text), out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting '", name, "' must be true or false, got '", *text, "'"));
  }
  return absl::OkStatus();
}

// What an admin agrees to when they create an Iterable connection. Change
// kPrivacyStatementVersion with any change in substance: connections record
// the version they accepted.
constexpr char kPrivacyStatementVersion[] = "2026-12-01";
constexpr char kPrivacyStatement[] =
    "This connection sends the profile data of the segments you export over it (the profile "
    "fields each export maps, such as email addresses, user ids and names) to Iterable, Inc., a "
    "company in the United States, which stores and processes it in the Iterable project the "
    "API key belongs to.\n\n"
    "Where the data is kept follows the connection's region setting: us sends it to Iterable's "
    "US data centre (api.iterable.com), eu to its EU data centre (api.eu.iterable.com). A "
    "base_url setting sends it to that host instead.\n\n"
    "Iterable processes the data under the agreement between your organisation and Iterable: "
    "Iterable's terms of service, its data processing agreement (DPA) and its privacy policy. "
    "Make sure your organisation has signed Iterable's DPA and, where the data leaves the "
    "European Economic Area (the US data centre), that the transfer has a lawful basis.\n\n"
    "You confirm that you are authorised to share this data with Iterable, that the people in "
    "the segments were informed and, where the law requires it, consented, and that using "
    "Iterable complies with your organisation's data protection and compliance rules (for "
    "example the GDPR). Data that reached Iterable is governed by Iterable: deleting the "
    "connection or an export stops further transfers but does not delete what was sent; delete "
    "it in Iterable.";

}  // namespace

sdk::Manifest BuildManifest() {
  sdk::Manifest m;
  m.name = "iterable";
  m.display_name = "Iterable";
  m.version = kPluginVersion;
  m.description =
      "Exports segments to Iterable lists: one list per segment, named exactly as the segment; "
      "members are subscribed with their mapped fields as data fields and unsubscribed "
      "(without a channel unsubscribe) when they leave.";
  m.settings = {
      Setting("api_key", "API key",
              "A server-side Iterable API key of the project (Integrations > API keys).",
              SettingType::kString, "", /*required=*/true, /*secret=*/true),
      Setting("region", "Data center",
              "Where the Iterable project lives: us (api.iterable.com) or eu "
              "(api.eu.iterable.com).",
              SettingType::kEnum, "us", false, false, {"us", "eu"}),
      Setting(
          "base_url", "Base URL",
          "Overrides the region's API host, e.g. for a proxy or a sandbox: http(s)://host[:port].",
          SettingType::kString),
      Setting("batch_size", "Subscribers per request", "1 to 10000.", SettingType::kInt, "1000"),
      Setting("max_body_bytes", "Request body limit (bytes)", "1024 to 16000000.",
              SettingType::kInt, "4000000"),
      Setting("parallel_requests", "Parallel requests", "Requests in flight at once, 1 to 32.",
              SettingType::kInt, "4"),
      Setting("requests_per_second", "Requests per second",
              "Limit on subscribe/unsubscribe calls across every export on the connection; "
              "empty or 0: no limit (exportd still slows down when Iterable answers 429, and "
              "remembers the rate it learned).",
              SettingType::kDouble),
      Setting("update_existing_users_only", "Update existing users only",
              "Only update users that already exist in Iterable; unknown emails are rejected "
              "(not_found) instead of creating users.",
              SettingType::kBool, "false"),
      Setting("project_type", "Project type",
              "How the Iterable project identifies users: email (email-based projects, the "
              "default), user_id (userID-based projects: map userId) or hybrid (map email, "
              "userId or both; the first of them in the export's mapping identifies a member).",
              SettingType::kEnum, "email", false, false, {"email", "user_id", "hybrid"}),
      Setting("timeout_seconds", "Request timeout (seconds)", "1 to 600.", SettingType::kInt, "30"),
      Setting("max_retry_seconds", "Retry time budget (seconds)",
              "How long one request is retried on 429, 5xx and network errors, 0 to 3600.",
              SettingType::kDouble, "60"),
      Setting("max_attempts", "Attempts per request", "1 to 20.", SettingType::kInt, "6"),
  };
  // Which of the two is required and which keys members depends on the
  // connection's project_type (Destination::ValidateMapping).
  m.mapping_fields = {
      {kEmailField,
       "The profile field holding the email address; required in email-based projects.",
       /*required=*/false, /*identifier=*/true},
      {kUserIdField,
       "The profile field holding the Iterable userId; required in userID-based projects.",
       /*required=*/false, /*identifier=*/true}};
  m.allows_extra_fields = true;
  m.reserved_fields = ReservedFieldNames();
  m.supports_removal = true;
  m.privacy_statement = kPrivacyStatement;
  m.privacy_statement_version = kPrivacyStatementVersion;

  // The ceilings the settings choose within (Connection::speed()).
  m.speed.max_records_per_batch = kMaxBatchSize;
  m.speed.max_bytes_per_batch = kMaxBodyBytes;
  m.speed.max_parallel_batches = kMaxParallelRequests;
  m.speed.records_per_second = 0;
  m.speed.requests_per_second = 0;
  return m;
}

absl::Status ValidateBaseUrl(std::string_view url) {
  absl::Status status = sdk::ValidateHttpUrl("setting 'base_url'", url);
  if (!status.ok() && absl::StrContains(status.message(), "credentials")) {
    return absl::InvalidArgumentError(
        absl::StrCat(status.message(), ": the API key goes in 'api_key'"));
  }
  return status;
}

absl::StatusOr<ProjectType> ParseProjectType(const sdk::Settings& settings) {
  const std::string* text = Find(settings, "project_type");
  if (text == nullptr || text->empty() || *text == "email") return ProjectType::kEmail;
  if (*text == "user_id") return ProjectType::kUserId;
  if (*text == "hybrid") return ProjectType::kHybrid;
  return absl::InvalidArgumentError(absl::StrCat(
      "setting 'project_type' must be 'email', 'user_id' or 'hybrid', got '", *text, "'"));
}

const char* ProjectTypeName(ProjectType type) {
  switch (type) {
    case ProjectType::kEmail:
      return "email";
    case ProjectType::kUserId:
      return "user_id";
    case ProjectType::kHybrid:
      return "hybrid";
  }
  return "unknown";
}

absl::StatusOr<std::string> IdentifierFieldFor(ProjectType type,
                                               const std::vector<std::string>& fields) {
  auto mapped = [&](const char* name) {
    return std::find(fields.begin(), fields.end(), name) != fields.end();
  };
  switch (type) {
    case ProjectType::kEmail:
      if (mapped(kEmailField)) return std::string(kEmailField);
      return absl::InvalidArgumentError(
          "mapping for field 'email' is missing: the connection's project_type is 'email' "
          "(an email-based Iterable project); map the profile field holding the email, or set "
          "project_type to 'user_id' or 'hybrid' if the project identifies users by userId");
    case ProjectType::kUserId:
      if (mapped(kUserIdField)) return std::string(kUserIdField);
      return absl::InvalidArgumentError(
          "mapping for field 'userId' is missing: the connection's project_type is 'user_id' "
          "(a userID-based Iterable project identifies users by userId); map the profile "
          "field holding the userId (email may be mapped too)");
    case ProjectType::kHybrid:
      for (const std::string& field : fields) {
        if (field == kEmailField || field == kUserIdField) return field;
      }
      return absl::InvalidArgumentError(
          "the mapping has neither 'email' nor 'userId': the connection's project_type is "
          "'hybrid'; map at least one (the first of them identifies a member)");
  }
  return absl::InternalError("unknown project type");
}

absl::StatusOr<ConnectionOptions> ParseSettings(const sdk::Settings& settings) {
  ConnectionOptions options;
  ITERABLE_ASSIGN_OR_RETURN(options.project_type, ParseProjectType(settings));
  const std::string* key = Find(settings, "api_key");
  if (key == nullptr || absl::StripAsciiWhitespace(*key).empty()) {
    return absl::InvalidArgumentError(
        "setting 'api_key' is required: paste a server-side Iterable API key");
  }
  options.api_key = std::string(absl::StripAsciiWhitespace(*key));
  for (char c : options.api_key) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u >= 0x7f) {
      return absl::InvalidArgumentError(
          "setting 'api_key' contains spaces, control or non-ASCII characters; paste the key "
          "again");
    }
  }

  const std::string* region = Find(settings, "region");
  const std::string region_value =
      region == nullptr || region->empty() ? "us" : absl::AsciiStrToLower(*region);
  if (region_value == "us") {
    options.base_url = kUsBaseUrl;
  } else if (region_value == "eu") {
    options.base_url = kEuBaseUrl;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("setting 'region' must be 'us' or 'eu', got '", *region, "'"));
  }
  if (const std::string* base_url = Find(settings, "base_url");
      base_url != nullptr && !absl::StripAsciiWhitespace(*base_url).empty()) {
    const std::string url(absl::StripAsciiWhitespace(*base_url));
    ITERABLE_RETURN_IF_ERROR(ValidateBaseUrl(url));
    options.base_url = url;
    while (options.base_url.back() == '/') options.base_url.pop_back();
  }

  std::int64_t batch_size = options.batch_size;
  ITERABLE_RETURN_IF_ERROR(ReadInt(settings, "batch_size", 1, kMaxBatchSize, &batch_size));
  options.batch_size = static_cast<int>(batch_size);
  ITERABLE_RETURN_IF_ERROR(
      ReadInt(settings, "max_body_bytes", 1024, kMaxBodyBytes, &options.max_body_bytes));
  std::int64_t parallel = options.parallel_requests;
  ITERABLE_RETURN_IF_ERROR(ReadInt(settings, "parallel_requests", 1, kMaxParallelRequests, &parallel));
  options.parallel_requests = static_cast<int>(parallel);
  ITERABLE_RETURN_IF_ERROR(
      ReadDouble(settings, "requests_per_second", 0, 10000, &options.requests_per_second));
  ITERABLE_RETURN_IF_ERROR(
      ReadBool(settings, "update_existing_users_only", &options.update_existing_users_only));
  std::int64_t timeout = 30;
  ITERABLE_RETURN_IF_ERROR(ReadInt(settings, "timeout_seconds", 1, 600, &timeout));
  options.timeout = absl::Seconds(timeout);
  options.connect_timeout = std::min(options.timeout, absl::Seconds(10));
  double retry_seconds = 60;
  ITERABLE_RETURN_IF_ERROR(ReadDouble(settings, "max_retry_seconds", 0, 3600, &retry_seconds));
  options.retry.max_total = absl::Seconds(retry_seconds);
  std::int64_t attempts = options.retry.max_attempts;
  ITERABLE_RETURN_IF_ERROR(ReadInt(settings, "max_attempts", 1, 20, &attempts));
  options.retry.max_attempts = static_cast<int>(attempts);
  return options;
}

}  // namespace exportd::iterable
