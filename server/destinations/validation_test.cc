#include "validation.h"

#include <algorithm>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace exportd::destinations {
namespace {

using ::exportd::destinations::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

sdk::Manifest TestManifest() {
  sdk::Manifest m;
  m.name = "iterable";
  m.display_name = "Iterable";
  m.version = "1";
  sdk::SettingSpec key;
  key.name = "api_key";
  key.required = true;
  key.secret = true;
  sdk::SettingSpec region;
  region.name = "region";
  region.type = sdk::SettingType::kEnum;
  region.allowed_values = {"us", "eu"};
  region.default_value = "us";
  sdk::SettingSpec batch;
  batch.name = "batch_size";
  batch.type = sdk::SettingType::kInt;
  sdk::SettingSpec rate;
  rate.name = "rate";
  rate.type = sdk::SettingType::kDouble;
  sdk::SettingSpec dry;
  dry.name = "dry_run";
  dry.type = sdk::SettingType::kBool;
  sdk::SettingSpec pin;
  pin.name = "pin";
  pin.type = sdk::SettingType::kInt;
  pin.secret = true;
  m.settings = {key, region, batch, rate, dry, pin};
  m.mapping_fields = {{"email", "", true}, {"phone", "", false}};
  m.reserved_fields = {"userId"};
  return m;
}

const std::map<std::string, std::string> kKey = {{"api_key", "sk-very-secret"}};

TEST(ResolveSettingsTest, FillsDefaultsAndMergesSecrets) {
  auto resolved = ResolveSettings(TestManifest(), {{"batch_size", "50"}, {"dry_run", "true"}}, kKey);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->at("api_key"), "sk-very-secret");
  EXPECT_EQ(resolved->at("region"), "us");
  EXPECT_EQ(resolved->at("batch_size"), "50");
  EXPECT_EQ(resolved->at("dry_run"), "true");
  EXPECT_EQ(resolved->count("rate"), 0u);
}

TEST(ResolveSettingsTest, UnknownSettingListsKnownOnes) {
  EXPECT_THAT(ResolveSettings(TestManifest(), {{"regoin", "eu"}}, kKey),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("unknown setting 'regoin'"),
                             HasSubstr("known settings: region, batch_size, rate, dry_run"))));
  EXPECT_THAT(ResolveSettings(TestManifest(), {}, {{"api_key", "k"}, {"token", "t"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("unknown secret for destination 'iterable'"),
                             HasSubstr("known secrets: api_key, pin"))));
}

// A secret value typed where its name belongs (`--secret c2VjcmV0=`) is not
// repeated in the error, which the audit trail keeps.
TEST(ResolveSettingsTest, UnknownSecretNameIsNotShown) {
  EXPECT_THAT(
      ResolveSettings(TestManifest(), {}, {{"api_key", "k"}, {"c2VjcmV0LXZhbHVl", ""}}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("its name is not shown"), Not(HasSubstr("c2VjcmV0LXZhbHVl")))));
}

TEST(ResolveSettingsTest, SecretInSettingsSaysToUseSecrets) {
  EXPECT_THAT(ResolveSettings(TestManifest(), {{"api_key", "sk-very-secret"}}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("setting 'api_key' is secret: pass it in secrets, not in "
                                       "settings"),
                             Not(HasSubstr("sk-very-secret")))));
}

TEST(ResolveSettingsTest, PlainSettingInSecretsSaysToUseSettings) {
  EXPECT_THAT(ResolveSettings(TestManifest(), {}, {{"api_key", "k"}, {"region", "eu"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("setting 'region' is not secret: pass it in settings, not in "
                                 "secrets")));
}

TEST(ResolveSettingsTest, MissingRequiredNamesIt) {
  EXPECT_THAT(ResolveSettings(TestManifest(), {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("required setting 'api_key' is missing: pass it in secrets")));
  EXPECT_THAT(ResolveSettings(TestManifest(), {}, {{"api_key", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("required setting 'api_key' is empty")));
}

TEST(ResolveSettingsTest, WrongTypesNameSettingAndValue) {
  EXPECT_THAT(ResolveSettings(TestManifest(), {{"batch_size", "lots"}}, kKey),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("setting 'batch_size': value 'lots' is not an integer")));
  EXPECT_THAT(ResolveSettings(TestManifest(), {{"batch_size", "1.5"}}, kKey),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not an integer")));
  EXPECT_THAT(ResolveSettings(TestManifest(), {{"rate", "fast"}}, kKey),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("setting 'rate': value 'fast' is not a number")));
  EXPECT_THAT(ResolveSettings(TestManifest(), {{"dry_run", "yes"}}, kKey),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("setting 'dry_run': value 'yes' is not true or false")));
  EXPECT_TRUE(ResolveSettings(TestManifest(), {{"rate", "2.5"}, {"dry_run", "false"}}, kKey).ok());
}

TEST(ResolveSettingsTest, EnumValueNotAllowedListsAllowedValues) {
  EXPECT_THAT(ResolveSettings(TestManifest(), {{"region", "ap"}}, kKey),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("setting 'region': value 'ap' is not allowed; allowed values: "
                                 "us, eu")));
}

TEST(ResolveSettingsTest, NeverShowsASecretValue) {
  EXPECT_THAT(ResolveSettings(TestManifest(), {}, {{"api_key", "k"}, {"pin", "s3cr3t-pin"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("setting 'pin': value (secret value not shown) is not an "
                                       "integer"),
                             Not(HasSubstr("s3cr3t-pin")))));
}

using Mappings = std::vector<std::pair<std::string, std::string>>;

TEST(ValidateMappingsTest, AcceptsRequiredAndOptionalFields) {
  EXPECT_TRUE(ValidateMappings(TestManifest(), {{"email", "Email"}, {"phone", "Phone"}}).ok());
}

TEST(ValidateMappingsTest, RequiredFieldMissing) {
  EXPECT_THAT(ValidateMappings(TestManifest(), Mappings{{"phone", "Phone"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("mapping for required field 'email' is missing")));
}

TEST(ValidateMappingsTest, FieldMappedTwice) {
  EXPECT_THAT(ValidateMappings(TestManifest(), {{"email", "Email"}, {"email", "Mail"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("field 'email' is mapped twice (from profile fields 'Email' and "
                                 "'Mail'); keep one mapping")));
}

TEST(ValidateMappingsTest, ExtraFieldRefusedUnlessAllowed) {
  sdk::Manifest m = TestManifest();
  const Mappings mappings = {{"email", "Email"}, {"firstName", "FirstName"}};
  EXPECT_THAT(ValidateMappings(m, mappings),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("destination 'iterable' has no field 'firstName' (fields: "
                                 "email, phone)")));
  m.allows_extra_fields = true;
  EXPECT_TRUE(ValidateMappings(m, mappings).ok());
}

TEST(ValidateMappingsTest, ReservedFieldRefusedEvenWithExtraFields) {
  sdk::Manifest m = TestManifest();
  m.allows_extra_fields = true;
  EXPECT_THAT(ValidateMappings(m, {{"email", "Email"}, {"userId", "Id"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("field 'userId' is reserved by destination 'iterable' and "
                                 "cannot be mapped")));
}

TEST(ValidateMappingsTest, EmptyNames) {
  EXPECT_THAT(ValidateMappings(TestManifest(), {{"email", "Email"}, {"", "Phone"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("mapping #2 (from profile field 'Phone') has an empty "
                                 "destination field")));
  EXPECT_THAT(ValidateMappings(TestManifest(), Mappings{{"email", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("mapping for field 'email' names no profile field")));
}

// A destination whose identifier field is a setting, as Iterable's project
// type decides between email and userId.
class KeyedBySetting final : public sdk::Destination {
 public:
  KeyedBySetting() {
    manifest_ = TestManifest();
    manifest_.reserved_fields.clear();
    manifest_.allows_extra_fields = true;
    manifest_.mapping_fields = {{"email", "", false, true}, {"phone", "", false, true}};
    sdk::SettingSpec key;
    key.name = "key";
    key.default_value = "email";
    manifest_.settings.push_back(key);
  }
  const sdk::Manifest& manifest() const override { return manifest_; }
  absl::StatusOr<std::unique_ptr<sdk::Connection>> Connect(const sdk::Settings&) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::StatusOr<sdk::MappingCheck> ValidateMapping(
      const sdk::Settings& settings, const std::vector<std::string>& fields) const override {
    const std::string& key = settings.at("key");
    if (key == "bogus") return sdk::MappingCheck{"name", ""};  // A plugin bug.
    if (std::find(fields.begin(), fields.end(), key) == fields.end()) {
      return absl::InvalidArgumentError("map '" + key + "': setting 'key' says so");
    }
    return sdk::MappingCheck{key, ""};
  }

 private:
  sdk::Manifest manifest_;
};

TEST(ValidateMappingsForTest, TheDestinationDecidesByTheConnectionsSettings) {
  KeyedBySetting destination;
  const Mappings both = {{"email", "Email"}, {"phone", "Phone"}, {"name", "Name"}};
  sdk::Settings settings = SettingsWithDefaults(destination.manifest(), {});
  EXPECT_EQ(settings.at("key"), "email");
  EXPECT_EQ(settings.at("region"), "us");
  EXPECT_EQ(ValidateMappingsFor(destination, settings, both)->identifier_field, "email");
  settings = SettingsWithDefaults(destination.manifest(), {{"key", "phone"}});
  EXPECT_EQ(ValidateMappingsFor(destination, settings, both)->identifier_field, "phone");
  EXPECT_THAT(ValidateMappingsFor(destination, settings, {{"email", "Email"}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("setting 'key' says so")));
  // The generic checks come first.
  EXPECT_THAT(ValidateMappingsFor(destination, settings, {{"phone", ""}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names no profile field")));
  settings["key"] = "bogus";
  EXPECT_THAT(ValidateMappingsFor(destination, settings, both).status(),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("bug in the plugin")));
}

TEST(ValidateMappingsForTest, TheDefaultIsTheFirstMappedIdentifierField) {
  class Plain final : public sdk::Destination {
   public:
    const sdk::Manifest& manifest() const override { return manifest_; }
    absl::StatusOr<std::unique_ptr<sdk::Connection>> Connect(const sdk::Settings&) override {
      return absl::UnimplementedError("not in this test");
    }
    sdk::Manifest manifest_ = TestManifest();
  } plain;
  plain.manifest_.mapping_fields = {{"email", "", false, true}, {"phone", "", false, true}};
  plain.manifest_.allows_extra_fields = true;
  absl::StatusOr<sdk::MappingCheck> check =
      ValidateMappingsFor(plain, {}, {{"name", "N"}, {"phone", "P"}, {"email", "E"}});
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->identifier_field, "phone");
  EXPECT_EQ(check->keyed_by, "phone") << "keyed by the identifier field unless the plugin says";
  EXPECT_EQ(ValidateMappingsFor(plain, {}, {{"name", "N"}})->identifier_field, "");
}

}  // namespace
}  // namespace exportd::destinations
