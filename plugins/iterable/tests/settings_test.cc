#include "gtest/gtest.h"
#include "iterable_destination.h"
#include "iterable_settings.h"

namespace exportd::iterable {
namespace {

constexpr char kKey[] = "0123456789abcdef0123456789abcdef";

sdk::Settings Valid() { return {{"api_key", kKey}}; }

TEST(Manifest, DescribesTheIterableDestination) {
  const sdk::Manifest m = BuildManifest();
  EXPECT_EQ(m.name, "iterable");
  EXPECT_EQ(m.display_name, "Iterable");
  EXPECT_FALSE(m.version.empty());
  ASSERT_EQ(m.mapping_fields.size(), 2u);
  EXPECT_EQ(m.mapping_fields[0].name, "email");
  EXPECT_EQ(m.mapping_fields[1].name, "userId");
  for (const auto& f : m.mapping_fields) {
    EXPECT_TRUE(f.identifier) << f.name;
    EXPECT_FALSE(f.required) << f.name << ": the project type decides (ValidateMapping)";
  }
  EXPECT_TRUE(m.allows_extra_fields);
  EXPECT_TRUE(m.supports_removal);
  EXPECT_EQ(m.reserved_fields.size(), 11u);
  bool key_is_secret = false;
  for (const sdk::SettingSpec& s : m.settings) {
    if (s.name == "api_key") key_is_secret = s.secret && s.required;
    if (s.name == "region") {
      EXPECT_EQ(s.type, sdk::SettingType::kEnum);
      EXPECT_EQ(s.default_value, "us");
      EXPECT_EQ(s.allowed_values, (std::vector<std::string>{"us", "eu"}));
    }
  }
  EXPECT_TRUE(key_is_secret);
  // The statement admins agree to names who receives the data, where, and under which terms.
  EXPECT_EQ(m.privacy_statement_version, "2026-12-01");
  for (const char* says : {"to Iterable, Inc.", "US data centre (api.iterable.com)",
                           "EU data centre (api.eu.iterable.com)", "region setting",
                           "data processing agreement (DPA)", "terms of service"}) {
    EXPECT_NE(m.privacy_statement.find(says), std::string::npos) << says;
  }
  EXPECT_NE(m.privacy_statement.find("\n\n"), std::string::npos) << "paragraphs";
  // The manifest's speed is the ceiling; a connection's speed() is its settings'.
  EXPECT_EQ(m.speed.max_records_per_batch, 10000);
  EXPECT_EQ(m.speed.max_bytes_per_batch, 16'000'000);
  EXPECT_EQ(m.speed.max_parallel_batches, 32);
}

TEST(ParseSettings, DefaultsAndRegions) {
  auto options = ParseSettings(Valid());
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->base_url, "https://api.iterable.com");
  EXPECT_EQ(options->batch_size, 1000);
  EXPECT_EQ(options->max_body_bytes, 4'000'000);
  EXPECT_EQ(options->parallel_requests, 4);
  EXPECT_EQ(options->requests_per_second, 0);
  EXPECT_FALSE(options->update_existing_users_only);
  sdk::Settings eu = Valid();
  eu["region"] = "eu";
  EXPECT_EQ(ParseSettings(eu)->base_url, "https://api.eu.iterable.com");
  sdk::Settings custom = Valid();
  custom["base_url"] = "http://127.0.0.1:8080/";
  custom["batch_size"] = "250";
  custom["requests_per_second"] = "2.5";
  custom["update_existing_users_only"] = "true";
  auto parsed = ParseSettings(custom);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->base_url, "http://127.0.0.1:8080");
  EXPECT_EQ(parsed->batch_size, 250);
  EXPECT_EQ(parsed->requests_per_second, 2.5);
  EXPECT_TRUE(parsed->update_existing_users_only);
}

TEST(ParseSettings, RefusesBadValuesNamingTheSettingButNotTheKey) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"batch_size", "0"},
      {"batch_size", "10001"},
      {"batch_size", "many"},
      {"max_body_bytes", "10"},
      {"parallel_requests", "0"},
      {"requests_per_second", "-1"},
      {"region", "apac"},
      {"base_url", "ftp://x"},
      {"base_url", "https://"},
      {"base_url", "https://a b"},
      {"base_url", "https://user:pw@host"},
      {"base_url", "https://h/?q=1"},
      {"update_existing_users_only", "maybe"},
      {"timeout_seconds", "0"}};
  for (const auto& [name, value] : bad) {
    sdk::Settings settings = Valid();
    settings[name] = value;
    absl::Status status = ParseSettings(settings).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name << "=" << value;
    EXPECT_NE(status.message().find(name), absl::string_view::npos) << status;
    EXPECT_EQ(status.message().find(kKey), absl::string_view::npos) << status;
  }
  EXPECT_EQ(ParseSettings({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSettings({{"api_key", "has\r\nnewline-0123456789"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Destination, ValidateSettingsAndConnectWithoutNetwork) {
  auto destination = CreateIterableDestination();
  ASSERT_TRUE(destination.ok());
  EXPECT_EQ((*destination)->manifest().name, "iterable");
  EXPECT_TRUE((*destination)->ValidateSettings(Valid()).ok());
  sdk::Settings bad = Valid();
  bad["base_url"] = "api.iterable.com";
  EXPECT_EQ((*destination)->ValidateSettings(bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*destination)->Connect(Valid()).ok());
  EXPECT_EQ((*destination)->Connect({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ProjectType, ParsesTheSettingAndDefaultsToEmail) {
  EXPECT_EQ(*ParseProjectType({}), ProjectType::kEmail);
  EXPECT_EQ(*ParseProjectType({{"project_type", "user_id"}}), ProjectType::kUserId);
  EXPECT_EQ(*ParseProjectType({{"project_type", "hybrid"}}), ProjectType::kHybrid);
  absl::StatusOr<ProjectType> bad = ParseProjectType({{"project_type", "userid"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'userid'"), std::string::npos) << bad.status();
}

TEST(ProjectType, DecidesWhichMappedFieldIdentifiesAMember) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*IdentifierFieldFor(ProjectType::kEmail, V{"userId", "email"}), "email");
  EXPECT_EQ(*IdentifierFieldFor(ProjectType::kUserId, V{"email", "userId"}), "userId");
  EXPECT_EQ(*IdentifierFieldFor(ProjectType::kHybrid, V{"name", "userId", "email"}), "userId");
  EXPECT_EQ(*IdentifierFieldFor(ProjectType::kHybrid, V{"email", "userId"}), "email");
  absl::StatusOr<std::string> missing = IdentifierFieldFor(ProjectType::kEmail, V{"userId"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("'email' is missing"), std::string::npos);
  missing = IdentifierFieldFor(ProjectType::kUserId, V{"email", "name"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("'userId' is missing"), std::string::npos);
  EXPECT_NE(missing.status().message().find("project_type is 'user_id'"), std::string::npos);
  missing = IdentifierFieldFor(ProjectType::kHybrid, V{"name"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ProjectType, TheDestinationValidatesAMappingForTheConnectionsSettings) {
  auto destination = CreateIterableDestination();
  ASSERT_TRUE(destination.ok());
  auto check = (*destination)->ValidateMapping({{"project_type", "user_id"}}, {"email", "userId"});
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->identifier_field, "userId");
  EXPECT_EQ(check->keyed_by, "userId (project_type user_id)");
  check = (*destination)->ValidateMapping({}, {"email", "userId"});
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->identifier_field, "email");
  EXPECT_EQ(check->keyed_by, "email (project_type email)");
  // Another project type keys members differently, even by the same field.
  check = (*destination)->ValidateMapping({{"project_type", "hybrid"}}, {"email", "userId"});
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->keyed_by, "email (project_type hybrid)");
  EXPECT_EQ((*destination)->ValidateMapping({{"project_type", "user_id"}}, {"email"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*destination)->CanonicalIdentifier("userId", "AbC-1"), "AbC-1");
  EXPECT_EQ((*destination)->CanonicalIdentifier("email", " A@B.com"), "a@b.com");
}

}  // namespace
}  // namespace exportd::iterable
