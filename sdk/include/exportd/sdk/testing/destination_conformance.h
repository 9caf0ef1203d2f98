// The destination conformance kit: one GoogleTest suite that every
// destination plugin instantiates (Arrow Flight's transport-independent
// suites). It checks what the core relies on and cannot check itself.
//
// Usage, in a test file of your plugin (at namespace scope):
//
//   #include "exportd/sdk/testing/destination_conformance.h"
//
//   // Traits: how to build and drive your destination. Derive from
//   // ConformanceTraitsBase and define the four required members; override the
//   // optional ones when the defaults do not fit. One Traits object is built
//   // per test (its constructor may start a fake server, make a temp dir...)
//   // and destroyed after the test.
//   class MyTraits : public exportd::sdk::testing::ConformanceTraitsBase {
//    public:
//     // The destination under test: a direct factory call, or loaded from the
//     // .so (keep the library alive in the shared_ptr's deleter or through an
//     // aliasing shared_ptr).
//     absl::StatusOr<std::shared_ptr<exportd::sdk::Destination>> MakeDestination();
//     // Settings with which Check() succeeds.
//     exportd::sdk::Settings ValidSettings();
//     // Records that must all be delivered.
//     exportd::sdk::RecordBatch ValidBatch();
//     // A batch with at least one record that must be rejected, and which.
//     exportd::sdk::testing::RejectionCase BatchWithRejectedRecord();
//   };
//
//   EXPORTD_DESTINATION_CONFORMANCE_TEST(My, MyTraits)
//
// This defines tests named `MyDestinationConformance.<Check>`.
//
// What a destination must do to pass:
// - A well-formed manifest: name [a-z0-9_-]+, a version, a privacy statement
//   and its version (neither blank), setting names [a-z0-9_]+ and unique,
//   enums with allowed values, defaults that parse and are allowed, mapping
//   fields named and unique, none reserved, speed > 0.
// - ValidSettings() pass the generic checks and ValidateSettings(); removing a
//   required setting, a value of the wrong type, an enum value not allowed and
//   each of InvalidSettings() fail with INVALID_ARGUMENT, without a secret's
//   value in the message.
// - ValidateMapping(ValidSettings(), ValidBatch()'s fields) is OK and names as
//   identifier a mapped field the manifest declares `identifier` (or none);
//   an empty mapping names none or is INVALID_ARGUMENT.
// - Check() is OK with ValidSettings().
// - EnsureAudience is idempotent: the same name twice gives the same id, and so
//   does passing the id back as `remembered_id`.
// - Connection::speed() is within the manifest's speed (settings only lower
//   it) and ValidBatch() fits it.
// - Upsert and Remove of a batch within speed() make exactly one request each
//   (checked when the traits count requests: RequestsSent(), see below), and
//   a destination that reports its requests (RunContext::RequestDone) reports
//   each one it made, no more.
// - Reported requests name an endpoint without ids or query ('/'-separated,
//   no part that is a number, no '?', at most 16 endpoints over all calls) and
//   an HTTP status of 100-599, or 0 for a request that got no answer.
// - Upsert and Remove return exactly one outcome per record, in order; an empty
//   batch gives no outcomes; a record that must be rejected is kRejected with a
//   reason code. A destination without removal returns an error from Remove.
// - Each call given an already-cancelled context returns CANCELLED within
//   CancelDeadline().
// - No exception escapes any call, and no secret appears in a log line.
//
// Header-only; link GoogleTest, Abseil and the SDK (CMake: exportd::sdk_testing).
#ifndef EXPORTD_SDK_TESTING_DESTINATION_CONFORMANCE_H_
#define EXPORTD_SDK_TESTING_DESTINATION_CONFORMANCE_H_

#include <atomic>
#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "exportd/sdk/destination.h"
#include "exportd/sdk/record.h"
#include "exportd/sdk/testing/test_run_context.h"
#include "gtest/gtest.h"

namespace exportd::sdk::testing {

// Settings the destination must refuse (generic checks + ValidateSettings).
struct InvalidSettingsCase {
  std::string description;  // Printed when the case is accepted by mistake.
  Settings settings;
};

// A batch and the rows in it that the destination must reject.
struct RejectionCase {
  RecordBatch batch;
  std::vector<std::size_t> rejected_rows;
};

// Defaults for the optional traits members. Hide any of them in your traits.
class ConformanceTraitsBase {
 public:
  // Extra plugin-specific settings that must be refused with INVALID_ARGUMENT.
  std::vector<InvalidSettingsCase> InvalidSettings() { return {}; }
  // A name no audience has yet (each call returns a new one).
  std::string FreshAudienceName() {
    static std::atomic<int> counter{0};
    return "exportd conformance " + std::to_string(absl::ToUnixMicros(absl::Now())) + "-" +
           std::to_string(counter++);
  }
  // Cancels `ctx` (default: ctx.Cancel()). Override when your destination
  // also needs, e.g., a fake server told to hang.
  void Cancel(TestRunContext& ctx) { ctx.Cancel(); }
  // How long a call given a cancelled context may take.
  absl::Duration CancelDeadline() { return absl::Seconds(2); }
  // Requests the destination received so far (e.g. a fake server's count of
  // write requests), so that the kit can check one request per Upsert/Remove
  // call. nullopt: the traits cannot count, and that check is skipped.
  std::optional<std::int64_t> RequestsSent() { return std::nullopt; }
};

namespace conformance_internal {

inline bool IsName(const std::string& s, bool allow_dash) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || (allow_dash && c == '-');
    if (!ok) return false;
  }
  return true;
}

// Whether `value` parses as a value of `spec`'s type (enum: is allowed).
inline bool ParsesAs(const SettingSpec& spec, const std::string& value) {
  switch (spec.type) {
    case SettingType::kString:
      return true;
    case SettingType::kInt: {
      if (value.empty()) return false;
      char* end = nullptr;
      errno = 0;
      std::strtoll(value.c_str(), &end, 10);
      return errno == 0 && *end == '\0';
    }
    case SettingType::kDouble: {
      if (value.empty()) return false;
      char* end = nullptr;
      errno = 0;
      std::strtod(value.c_str(), &end);
      return errno == 0 && *end == '\0';
    }
    case SettingType::kBool:
      return value == "true" || value == "false";
    case SettingType::kEnum:
      for (const std::string& v : spec.allowed_values) {
        if (v == value) return true;
      }
      return false;
  }
  return false;
}

// A small version of the core's generic settings checks: unknown names,
// missing required settings, types and enum values. Messages never carry
// a secret's value.
inline absl::Status CheckSettings(const Manifest& manifest, const Settings& settings) {
  for (const auto& [name, value] : settings) {
    const SettingSpec* spec = nullptr;
    for (const SettingSpec& s : manifest.settings) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr) return absl::InvalidArgumentError("unknown setting '" + name + "'");
    if (!ParsesAs(*spec, value)) {
      return absl::InvalidArgumentError("setting '" + name + "' has a value of the wrong type");
    }
  }
  for (const SettingSpec& s : manifest.settings) {
    if (s.required && settings.find(s.name) == settings.end() && s.default_value.empty()) {
      return absl::InvalidArgumentError("required setting '" + s.name + "' is missing");
    }
  }
  return absl::OkStatus();
}

// Generic checks, then the destination's own ValidateSettings.
inline absl::Status ValidateAll(const Destination& destination, const Settings& settings) {
  absl::Status status = CheckSettings(destination.manifest(), settings);
  if (!status.ok()) return status;
  return destination.ValidateSettings(settings);
}

inline std::string WrongTypeValue(SettingType type) {
  switch (type) {
    case SettingType::kInt:
      return "not-an-int";
    case SettingType::kDouble:
      return "not-a-number";
    case SettingType::kBool:
      return "maybe";
    case SettingType::kEnum:
      return "exportd-conformance-not-an-allowed-value";
    case SettingType::kString:
      break;
  }
  return "";
}

}  // namespace conformance_internal

// The suite. Use EXPORTD_DESTINATION_CONFORMANCE_TEST rather than this class.
template <typename Traits>
class DestinationConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::shared_ptr<Destination>> destination;
    EXPECT_NO_THROW(destination = traits_.MakeDestination());
    ASSERT_TRUE(destination.ok()) << destination.status();
    ASSERT_NE(*destination, nullptr);
    destination_ = *std::move(destination);
    settings_ = traits_.ValidSettings();
  }

  // Connects with ValidSettings() (defaults filled in like the core does).
  std::unique_ptr<Connection> ConnectOrDie() {
    Settings settings = settings_;
    for (const SettingSpec& s : destination_->manifest().settings) {
      if (!s.default_value.empty() && settings.find(s.name) == settings.end()) {
        settings[s.name] = s.default_value;
      }
    }
    absl::StatusOr<std::unique_ptr<Connection>> connection;
    EXPECT_NO_THROW(connection = destination_->Connect(settings));
    EXPECT_TRUE(connection.ok()) << connection.status();
    if (!connection.ok()) return nullptr;
    return *std::move(connection);
  }

  Audience EnsureAudienceOrDie(Connection& connection) {
    TestRunContext ctx;
    absl::StatusOr<Audience> audience;
    EXPECT_NO_THROW(audience = connection.EnsureAudience(traits_.FreshAudienceName(), "", ctx));
    EXPECT_TRUE(audience.ok()) << audience.status();
    return audience.ok() ? *audience : Audience{};
  }

  // Values of secret settings in ValidSettings(): they must never show.
  std::vector<std::string> SecretValues() const {
    std::vector<std::string> secrets;
    for (const SettingSpec& s : destination_->manifest().settings) {
      auto it = settings_.find(s.name);
      if (s.secret && it != settings_.end() && it->second.size() >= 4) secrets.push_back(it->second);
    }
    return secrets;
  }

  void ExpectNoSecretIn(const std::string& text, const std::string& where) const {
    for (const std::string& secret : SecretValues()) {
      EXPECT_EQ(text.find(secret), std::string::npos) << where << " contains a secret's value";
    }
  }

  void ExpectNoSecretLogged(const TestRunContext& ctx) const {
    for (const LogLine& line : ctx.logs()) ExpectNoSecretIn(line.message, "log line");
  }

  void ExpectOneOutcomePerRecord(const absl::StatusOr<std::vector<RecordOutcome>>& outcomes,
                                 const RecordBatch& batch, const char* call) {
    ASSERT_TRUE(outcomes.ok()) << call << ": " << outcomes.status();
    ASSERT_EQ(outcomes->size(), batch.size()) << call << " must return one outcome per record";
  }

  // ----- The checks ---------------------------------------------------------

  void TestManifestIsWellFormed() {
    using conformance_internal::IsName;
    const Manifest& m = destination_->manifest();
    EXPECT_TRUE(IsName(m.name, /*allow_dash=*/true)) << "manifest name '" << m.name << "'";
    EXPECT_FALSE(m.display_name.empty()) << "manifest display_name is empty";
    EXPECT_FALSE(m.version.empty()) << "manifest version is empty";
    const auto blank = [](const std::string& text) {
      return text.find_first_not_of(" \t\r\n") == std::string::npos;
    };
    EXPECT_FALSE(blank(m.privacy_statement))
        << "manifest privacy_statement is empty: exportd refuses a plugin without the data "
           "privacy and compliance statement admins agree to";
    EXPECT_FALSE(blank(m.privacy_statement_version))
        << "manifest privacy_statement_version is empty";
    std::set<std::string> names;
    for (const SettingSpec& s : m.settings) {
      EXPECT_TRUE(IsName(s.name, /*allow_dash=*/false)) << "setting name '" << s.name << "'";
      EXPECT_TRUE(names.insert(s.name).second) << "setting '" << s.name << "' declared twice";
      if (s.type == SettingType::kEnum) {
        EXPECT_FALSE(s.allowed_values.empty()) << "enum setting '" << s.name << "' has no values";
      }
      if (!s.default_value.empty()) {
        EXPECT_TRUE(conformance_internal::ParsesAs(s, s.default_value))
            << "default of setting '" << s.name << "' is not a valid value";
        EXPECT_FALSE(s.secret) << "secret setting '" << s.name << "' has a default";
      }
    }
    std::set<std::string> fields;
    for (const MappingFieldSpec& f : m.mapping_fields) {
      EXPECT_FALSE(f.name.empty()) << "a mapping field has no name";
      EXPECT_TRUE(fields.insert(f.name).second) << "mapping field '" << f.name << "' twice";
    }
    for (const std::string& r : m.reserved_fields) {
      EXPECT_EQ(fields.count(r), 0u) << "mapping field '" << r << "' is also reserved";
    }
    EXPECT_GT(m.speed.max_records_per_batch, 0);
    EXPECT_GT(m.speed.max_bytes_per_batch, 0);
    EXPECT_GT(m.speed.max_parallel_batches, 0);
    EXPECT_GE(m.speed.records_per_second, 0);
  }

  // ValidBatch()'s fields are a mapping the destination accepts for
  // ValidSettings(), and the identifier it names is a mapped field the
  // manifest declares an identifier (or none).
  void TestMappingOfValidBatchAccepted() {
    Settings settings = settings_;
    for (const SettingSpec& s : destination_->manifest().settings) {
      if (!s.default_value.empty()) settings.emplace(s.name, s.default_value);
    }
    std::vector<std::string> fields;
    for (const BatchField& f : traits_.ValidBatch().fields) fields.push_back(f.name);
    absl::StatusOr<MappingCheck> check;
    EXPECT_NO_THROW(check = destination_->ValidateMapping(settings, fields));
    ASSERT_TRUE(check.ok()) << "ValidateMapping refused ValidBatch()'s fields: " << check.status();
    ExpectNoSecretIn(std::string(check.status().message()), "ValidateMapping's message");
    const std::string& identifier = check->identifier_field;
    if (identifier.empty()) return;
    EXPECT_NE(std::find(fields.begin(), fields.end(), identifier), fields.end())
        << "identifier '" << identifier << "' is not a mapped field";
    bool declared = false;
    for (const MappingFieldSpec& f : destination_->manifest().mapping_fields) {
      declared = declared || (f.identifier && f.name == identifier);
    }
    EXPECT_TRUE(declared) << "identifier '" << identifier
                          << "' is not declared `identifier` in the manifest";
    // An empty mapping cannot name an identifier.
    absl::StatusOr<MappingCheck> empty;
    EXPECT_NO_THROW(empty = destination_->ValidateMapping(settings, {}));
    if (empty.ok()) {
      EXPECT_TRUE(empty->identifier_field.empty()) << "an empty mapping has no identifier";
    } else {
      EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument) << empty.status();
    }
  }

  void TestValidSettingsAccepted() {
    absl::Status status;
    EXPECT_NO_THROW(status = conformance_internal::ValidateAll(*destination_, settings_));
    EXPECT_TRUE(status.ok()) << status;
  }

  void TestInvalidSettingsRefused() {
    std::vector<InvalidSettingsCase> cases = traits_.InvalidSettings();
    for (const SettingSpec& s : destination_->manifest().settings) {
      if (s.required && s.default_value.empty()) {
        Settings without = settings_;
        without.erase(s.name);
        cases.push_back({"required setting '" + s.name + "' missing", without});
      }
      if (s.type != SettingType::kString) {
        Settings wrong = settings_;
        wrong[s.name] = conformance_internal::WrongTypeValue(s.type);
        cases.push_back({"setting '" + s.name + "' of the wrong type", wrong});
      }
    }
    Settings unknown = settings_;
    unknown["exportd_conformance_unknown"] = "x";
    cases.push_back({"an unknown setting", unknown});
    for (const InvalidSettingsCase& c : cases) {
      absl::Status status;
      EXPECT_NO_THROW(status = conformance_internal::ValidateAll(*destination_, c.settings));
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
          << c.description << " was not refused: " << status;
      ExpectNoSecretIn(std::string(status.message()), "error for " + c.description);
    }
  }

  void TestConnectWithoutSettingsDoesNotThrow() {
    // The core never does this, but a plugin must not crash or throw on it.
    EXPECT_NO_THROW({ auto ignored = destination_->Connect(Settings{}); });
  }

  void TestCheckSucceeds() {
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    TestRunContext ctx;
    absl::Status status;
    EXPECT_NO_THROW(status = connection->Check(ctx));
    EXPECT_TRUE(status.ok()) << status;
    ExpectNoSecretLogged(ctx);
  }

  void TestEnsureAudienceIsIdempotent() {
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    const std::string name = traits_.FreshAudienceName();
    TestRunContext ctx;
    absl::StatusOr<Audience> first, second, remembered;
    EXPECT_NO_THROW(first = connection->EnsureAudience(name, "", ctx));
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(first->id.empty());
    EXPECT_EQ(first->name, name);
    EXPECT_NO_THROW(second = connection->EnsureAudience(name, "", ctx));
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(second->id, first->id) << "the same name twice must give the same audience";
    EXPECT_FALSE(second->created) << "the second call must find the audience, not create it";
    EXPECT_NO_THROW(remembered = connection->EnsureAudience(name, first->id, ctx));
    ASSERT_TRUE(remembered.ok()) << remembered.status();
    EXPECT_EQ(remembered->id, first->id);
    ExpectNoSecretLogged(ctx);
  }

  void TestUpsertReturnsOneOutcomePerRecord() {
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    Audience audience = EnsureAudienceOrDie(*connection);
    const RecordBatch batch = traits_.ValidBatch();
    ASSERT_GT(batch.size(), 0u) << "ValidBatch() must not be empty";
    TestRunContext ctx;
    absl::StatusOr<std::vector<RecordOutcome>> outcomes;
    EXPECT_NO_THROW(outcomes = connection->Upsert(audience, batch, ctx));
    ExpectOneOutcomePerRecord(outcomes, batch, "Upsert");
    if (!outcomes.ok()) return;
    for (std::size_t i = 0; i < outcomes->size(); ++i) {
      EXPECT_EQ((*outcomes)[i].kind, OutcomeKind::kDelivered)
          << "record " << i << " (" << batch.profile_ids[i] << "): " << (*outcomes)[i].message;
    }
    // Upserting the same records again is fine too.
    EXPECT_NO_THROW(outcomes = connection->Upsert(audience, batch, ctx));
    ExpectOneOutcomePerRecord(outcomes, batch, "Upsert (again)");
    ExpectNoSecretLogged(ctx);
  }

  void TestSpeedIsWithinTheManifest() {
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    const SyncSpeed& m = destination_->manifest().speed;
    const SyncSpeed speed = connection->speed();
    EXPECT_GT(speed.max_records_per_batch, 0);
    EXPECT_LE(speed.max_records_per_batch, m.max_records_per_batch);
    EXPECT_GT(speed.max_bytes_per_batch, 0);
    EXPECT_LE(speed.max_bytes_per_batch, m.max_bytes_per_batch);
    EXPECT_GT(speed.max_parallel_batches, 0);
    EXPECT_LE(speed.max_parallel_batches, m.max_parallel_batches);
    EXPECT_GE(speed.requests_per_second, 0);
    EXPECT_GE(speed.records_per_second, 0);
    if (m.requests_per_second > 0) {
      EXPECT_GT(speed.requests_per_second, 0) << "settings may lower the rate, not lift it";
      EXPECT_LE(speed.requests_per_second, m.requests_per_second);
    }
    if (m.records_per_second > 0) {
      EXPECT_GT(speed.records_per_second, 0) << "settings may lower the rate, not lift it";
      EXPECT_LE(speed.records_per_second, m.records_per_second);
    }
    EXPECT_LE(traits_.ValidBatch().size(), static_cast<std::size_t>(speed.max_records_per_batch))
        << "ValidBatch() must fit the connection's speed";
  }

  void TestOneRequestPerBatch() {
    if (!traits_.RequestsSent().has_value()) {
      GTEST_SKIP() << "the traits do not count requests (RequestsSent())";
    }
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    Audience audience = EnsureAudienceOrDie(*connection);
    const RecordBatch batch = traits_.ValidBatch();
    TestRunContext ctx;
    const std::int64_t before = *traits_.RequestsSent();
    absl::StatusOr<std::vector<RecordOutcome>> outcomes;
    EXPECT_NO_THROW(outcomes = connection->Upsert(audience, batch, ctx));
    ASSERT_TRUE(outcomes.ok()) << outcomes.status();
    EXPECT_EQ(*traits_.RequestsSent() - before, 1)
        << "an Upsert of a batch within speed() must be one request: the engine owns batching";
    const std::size_t reported = ctx.requests().size();
    EXPECT_LE(reported, 1u) << "RequestDone reports the requests made, no more";
    if (!destination_->manifest().supports_removal) return;
    const std::int64_t before_remove = *traits_.RequestsSent();
    EXPECT_NO_THROW(outcomes = connection->Remove(audience, batch, ctx));
    ASSERT_TRUE(outcomes.ok()) << outcomes.status();
    EXPECT_EQ(*traits_.RequestsSent() - before_remove, 1)
        << "a Remove of a batch within speed() must be one request";
    if (reported > 0) {
      EXPECT_EQ(ctx.requests().size(), 2u)
          << "a destination that reports its requests reports each one (RequestDone)";
    }
  }

  // Every call's reported requests (RunContext::RequestDone) are bounded
  // labels: endpoints without ids or query, HTTP statuses or 0.
  void TestReportedRequestsAreBoundedLabels() {
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    TestRunContext ctx;
    EXPECT_NO_THROW(connection->Check(ctx).IgnoreError());
    absl::StatusOr<Audience> audience;
    EXPECT_NO_THROW(audience = connection->EnsureAudience(traits_.FreshAudienceName(), "", ctx));
    ASSERT_TRUE(audience.ok()) << audience.status();
    const RecordBatch batch = traits_.ValidBatch();
    EXPECT_NO_THROW(connection->Upsert(*audience, batch, ctx).status().IgnoreError());
    if (destination_->manifest().supports_removal) {
      EXPECT_NO_THROW(connection->Remove(*audience, batch, ctx).status().IgnoreError());
    }
    std::set<std::string> endpoints;
    for (const ReportedRequest& r : ctx.requests()) {
      endpoints.insert(r.endpoint);
      EXPECT_TRUE(r.http_status == 0 || (r.http_status >= 100 && r.http_status <= 599))
          << r.endpoint << ": HTTP status " << r.http_status;
      EXPECT_GE(r.latency, absl::ZeroDuration()) << r.endpoint;
      EXPECT_FALSE(r.endpoint.empty());
      EXPECT_EQ(r.endpoint.find_first_of("?#"), std::string::npos)
          << "endpoint '" << r.endpoint << "' carries a query";
      ExpectNoSecretIn(r.endpoint, "endpoint");
      std::size_t start = 0;
      while (start <= r.endpoint.size()) {
        std::size_t end = r.endpoint.find('/', start);
        if (end == std::string::npos) end = r.endpoint.size();
        const std::string part = r.endpoint.substr(start, end - start);
        EXPECT_TRUE(part.empty() || part.find_first_not_of("0123456789") != std::string::npos)
            << "endpoint '" << r.endpoint << "' carries an id (" << part << ")";
        start = end + 1;
      }
    }
    EXPECT_LE(endpoints.size(), 16u) << "endpoints must be a small fixed set";
  }

  void TestEmptyBatchGivesNoOutcomes() {
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    Audience audience = EnsureAudienceOrDie(*connection);
    RecordBatch empty;
    empty.fields = traits_.ValidBatch().fields;
    TestRunContext ctx;
    absl::StatusOr<std::vector<RecordOutcome>> outcomes;
    EXPECT_NO_THROW(outcomes = connection->Upsert(audience, empty, ctx));
    ASSERT_TRUE(outcomes.ok()) << outcomes.status();
    EXPECT_TRUE(outcomes->empty());
  }

  void TestRejectedRecordHasItsOwnOutcome() {
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    Audience audience = EnsureAudienceOrDie(*connection);
    const RejectionCase rejection = traits_.BatchWithRejectedRecord();
    ASSERT_FALSE(rejection.rejected_rows.empty()) << "name the rows that must be rejected";
    const std::set<std::size_t> rejected(rejection.rejected_rows.begin(),
                                         rejection.rejected_rows.end());
    TestRunContext ctx;
    absl::StatusOr<std::vector<RecordOutcome>> outcomes;
    EXPECT_NO_THROW(outcomes = connection->Upsert(audience, rejection.batch, ctx));
    ExpectOneOutcomePerRecord(outcomes, rejection.batch, "Upsert");
    if (!outcomes.ok()) return;
    for (std::size_t i = 0; i < outcomes->size(); ++i) {
      const RecordOutcome& o = (*outcomes)[i];
      if (rejected.count(i)) {
        EXPECT_EQ(o.kind, OutcomeKind::kRejected) << "record " << i << " must be rejected";
        EXPECT_FALSE(o.reason_code.empty()) << "record " << i << ": a rejection needs a reason";
      } else {
        EXPECT_EQ(o.kind, OutcomeKind::kDelivered) << "record " << i << ": " << o.message;
      }
      ExpectNoSecretIn(o.message, "outcome message");
    }
  }

  void TestRemoveReturnsOneOutcomePerRecord() {
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    Audience audience = EnsureAudienceOrDie(*connection);
    const RecordBatch batch = traits_.ValidBatch();
    TestRunContext ctx;
    absl::StatusOr<std::vector<RecordOutcome>> outcomes;
    EXPECT_NO_THROW(outcomes = connection->Upsert(audience, batch, ctx));
    ASSERT_TRUE(outcomes.ok()) << outcomes.status();
    EXPECT_NO_THROW(outcomes = connection->Remove(audience, batch, ctx));
    if (!destination_->manifest().supports_removal) {
      EXPECT_FALSE(outcomes.ok()) << "Remove must fail when supports_removal is false";
      return;
    }
    ExpectOneOutcomePerRecord(outcomes, batch, "Remove");
    if (!outcomes.ok()) return;
    for (std::size_t i = 0; i < outcomes->size(); ++i) {
      EXPECT_EQ((*outcomes)[i].kind, OutcomeKind::kDelivered)
          << "record " << i << ": " << (*outcomes)[i].message;
    }
    // Removing members that are gone is not an error.
    EXPECT_NO_THROW(outcomes = connection->Remove(audience, batch, ctx));
    ExpectOneOutcomePerRecord(outcomes, batch, "Remove (again)");
    ExpectNoSecretLogged(ctx);
  }

  void TestCancellationIsHonoured() {
    auto connection = ConnectOrDie();
    ASSERT_NE(connection, nullptr);
    Audience audience = EnsureAudienceOrDie(*connection);
    const RecordBatch batch = traits_.ValidBatch();
    const absl::Duration deadline = traits_.CancelDeadline();
    auto expect_cancelled = [&](const char* call, auto&& fn) {
      TestRunContext ctx;
      traits_.Cancel(ctx);
      const absl::Time start = absl::Now();
      absl::Status status;
      EXPECT_NO_THROW(status = fn(ctx));
      EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << call << ": " << status;
      EXPECT_LE(absl::Now() - start, deadline) << call << " ignored cancellation for too long";
    };
    expect_cancelled("Check", [&](TestRunContext& ctx) { return connection->Check(ctx); });
    expect_cancelled("EnsureAudience", [&](TestRunContext& ctx) {
      return connection->EnsureAudience(traits_.FreshAudienceName(), "", ctx).status();
    });
    expect_cancelled("Upsert", [&](TestRunContext& ctx) {
      return connection->Upsert(audience, batch, ctx).status();
    });
    if (destination_->manifest().supports_removal) {
      expect_cancelled("Remove", [&](TestRunContext& ctx) {
        return connection->Remove(audience, batch, ctx).status();
      });
    }
  }

  Traits traits_;
  std::shared_ptr<Destination> destination_;
  Settings settings_;
};

}  // namespace exportd::sdk::testing

// Instantiates the conformance suite for `TRAITS` as tests named
// `NAME##DestinationConformance.*`. Use at namespace scope, once per traits.
#define EXPORTD_DESTINATION_CONFORMANCE_TEST(NAME, TRAITS)                                      \
  class NAME##DestinationConformance                                                            \
      : public ::exportd::sdk::testing::DestinationConformanceTest<TRAITS> {};                  \
  TEST_F(NAME##DestinationConformance, ManifestIsWellFormed) { TestManifestIsWellFormed(); }    \
  TEST_F(NAME##DestinationConformance, ValidSettingsAccepted) { TestValidSettingsAccepted(); }  \
  TEST_F(NAME##DestinationConformance, MappingOfValidBatchAccepted) {                           \
    TestMappingOfValidBatchAccepted();                                                          \
  }                                                                                             \
  TEST_F(NAME##DestinationConformance, InvalidSettingsRefused) { TestInvalidSettingsRefused(); } \
  TEST_F(NAME##DestinationConformance, ConnectWithoutSettingsDoesNotThrow) {                    \
    TestConnectWithoutSettingsDoesNotThrow();                                                   \
  }                                                                                             \
  TEST_F(NAME##DestinationConformance, CheckSucceeds) { TestCheckSucceeds(); }                  \
  TEST_F(NAME##DestinationConformance, EnsureAudienceIsIdempotent) {                            \
    TestEnsureAudienceIsIdempotent();                                                           \
  }                                                                                             \
  TEST_F(NAME##DestinationConformance, UpsertReturnsOneOutcomePerRecord) {                      \
    TestUpsertReturnsOneOutcomePerRecord();                                                     \
  }                                                                                             \
  TEST_F(NAME##DestinationConformance, SpeedIsWithinTheManifest) {                              \
    TestSpeedIsWithinTheManifest();                                                             \
  }                                                                                             \
  TEST_F(NAME##DestinationConformance, OneRequestPerBatch) { TestOneRequestPerBatch(); }        \
  TEST_F(NAME##DestinationConformance, ReportedRequestsAreBoundedLabels) {                      \
    TestReportedRequestsAreBoundedLabels();                                                     \
  }                                                                                             \
  TEST_F(NAME##DestinationConformance, EmptyBatchGivesNoOutcomes) {                             \
    TestEmptyBatchGivesNoOutcomes();                                                            \
  }                                                                                             \
  TEST_F(NAME##DestinationConformance, RejectedRecordHasItsOwnOutcome) {                        \
    TestRejectedRecordHasItsOwnOutcome();                                                       \
  }                                                                                             \
  TEST_F(NAME##DestinationConformance, RemoveReturnsOneOutcomePerRecord) {                      \
    TestRemoveReturnsOneOutcomePerRecord();                                                     \
  }                                                                                             \
  TEST_F(NAME##DestinationConformance, CancellationIsHonoured) { TestCancellationIsHonoured(); }

#endif  // EXPORTD_SDK_TESTING_DESTINATION_CONFORMANCE_H_
