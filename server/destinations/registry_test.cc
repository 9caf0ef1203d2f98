#include "registry.h"

#include <functional>
#include <thread>

#include "fake_destination.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace exportd::destinations {
namespace {

using ::exportd::destinations::testing::StatusIs;
using ::exportd::test_plugins::FakeDestination;
using ::exportd::test_plugins::FakeManifest;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::unique_ptr<sdk::Destination> Make(sdk::Manifest m) {
  return std::make_unique<FakeDestination>(std::move(m));
}

TEST(DestinationRegistryTest, RegistersAndFindsByName) {
  DestinationRegistry registry;
  ASSERT_TRUE(registry.Register(Make(FakeManifest("zeta")), "/p/libzeta.so").ok());
  ASSERT_TRUE(registry.Register(Make(FakeManifest("alpha")), "").ok());
  absl::StatusOr<sdk::Destination*> zeta = registry.Get("zeta");
  ASSERT_TRUE(zeta.ok());
  EXPECT_EQ((*zeta)->manifest().name, "zeta");
  std::vector<RegisteredDestination> list = registry.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].manifest->name, "alpha");
  EXPECT_EQ(list[1].library_path, "/p/libzeta.so");
}

TEST(DestinationRegistryTest, UnknownNameIsNotFoundListingKnownNames) {
  DestinationRegistry registry;
  EXPECT_THAT(registry.Get("iterable"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("known: none")));
  ASSERT_TRUE(registry.Register(Make(FakeManifest("jsonl")), "").ok());
  ASSERT_TRUE(registry.Register(Make(FakeManifest("braze")), "").ok());
  EXPECT_THAT(registry.Get("iterable"),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("no destination named 'iterable'"),
                             HasSubstr("known: braze, jsonl"))));
}

TEST(DestinationRegistryTest, DuplicateNameIsAlreadyExistsNamingBothLibraries) {
  DestinationRegistry registry;
  ASSERT_TRUE(registry.Register(Make(FakeManifest("iterable")), "/a/libone.so").ok());
  EXPECT_THAT(registry.Register(Make(FakeManifest("iterable", "2")), "/b/libtwo.so"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("'iterable'"), HasSubstr("/a/libone.so"),
                             HasSubstr("/b/libtwo.so"))));
  EXPECT_EQ((*registry.Get("iterable"))->manifest().version, "1.0.0");
}

TEST(DestinationRegistryTest, NullDestinationIsInvalidArgument) {
  DestinationRegistry registry;
  EXPECT_THAT(registry.Register(nullptr, "/x/libnull.so"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null destination")));
}

TEST(DestinationRegistryTest, RefusedAreKeptInOrder) {
  DestinationRegistry registry;
  registry.AddRefused("/a.so", "first");
  registry.AddRefused("/b.so", "second");
  ASSERT_EQ(registry.refused().size(), 2u);
  EXPECT_EQ(registry.refused()[1].library_path, "/b.so");
  EXPECT_EQ(registry.refused()[1].reason, "second");
}

TEST(DestinationRegistryTest, DestinationIsDestroyedBeforeItsLibraryHandle) {
  // The library handle's deleter checks that the destination is gone.
  struct Probe {
    bool destination_alive = true;
    bool handle_released_after = false;
  };
  auto probe = std::make_shared<Probe>();
  class Tracked final : public sdk::Destination {
   public:
    explicit Tracked(std::shared_ptr<Probe> p) : p_(std::move(p)), m_(FakeManifest("tracked")) {}
    ~Tracked() override { p_->destination_alive = false; }
    const sdk::Manifest& manifest() const override { return m_; }
    absl::StatusOr<std::unique_ptr<sdk::Connection>> Connect(const sdk::Settings&) override {
      return absl::UnimplementedError("");
    }

   private:
    std::shared_ptr<Probe> p_;
    sdk::Manifest m_;
  };
  {
    DestinationRegistry registry;
    std::shared_ptr<void> handle(static_cast<void*>(probe.get()), [probe](void*) {
      probe->handle_released_after = !probe->destination_alive;
    });
    ASSERT_TRUE(registry.Register(std::make_unique<Tracked>(probe), "/t.so", handle).ok());
  }
  EXPECT_TRUE(probe->handle_released_after);
}

TEST(DestinationRegistryTest, ConcurrentReads) {
  DestinationRegistry registry;
  ASSERT_TRUE(registry.Register(Make(FakeManifest("a")), "").ok());
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&registry] {
      for (int i = 0; i < 1000; ++i) {
        EXPECT_TRUE(registry.Get("a").ok());
        EXPECT_EQ(registry.List().size(), 1u);
      }
    });
  }
  for (std::thread& t : readers) t.join();
}

// ValidateManifest, through Register: each broken manifest and its message.
struct BadManifestCase {
  std::string label;
  std::function<void(sdk::Manifest&)> breaks;
  std::string message;
};

class InvalidManifestTest : public ::testing::TestWithParam<BadManifestCase> {};

TEST_P(InvalidManifestTest, IsRefusedSayingWhy) {
  sdk::Manifest m = FakeManifest("dest");
  GetParam().breaks(m);
  DestinationRegistry registry;
  EXPECT_THAT(registry.Register(Make(m), "/x.so"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().message)));
  EXPECT_TRUE(registry.List().empty());
}

sdk::SettingSpec Setting(std::string name, sdk::SettingType type) {
  sdk::SettingSpec s;
  s.name = std::move(name);
  s.type = type;
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, InvalidManifestTest,
    ::testing::Values(
        BadManifestCase{"EmptyName", [](sdk::Manifest& m) { m.name = ""; }, "the name is empty"},
        BadManifestCase{"IllFormedName", [](sdk::Manifest& m) { m.name = "Bad Name"; },
                        "the name is ill-formed; use only [a-z0-9_-]"},
        BadManifestCase{"EmptyVersion", [](sdk::Manifest& m) { m.version = ""; },
                        "the version is empty"},
        BadManifestCase{"EmptyPrivacyStatement", [](sdk::Manifest& m) { m.privacy_statement = ""; },
                        "the privacy statement is empty; set Manifest::privacy_statement"},
        BadManifestCase{"BlankPrivacyStatement",
                        [](sdk::Manifest& m) { m.privacy_statement = "\n\n  "; },
                        "the privacy statement is empty"},
        BadManifestCase{"PrivacyStatementWithoutVersion",
                        [](sdk::Manifest& m) { m.privacy_statement_version = ""; },
                        "the privacy statement has no version; set "
                        "Manifest::privacy_statement_version"},
        BadManifestCase{"DuplicateSetting",
                        [](sdk::Manifest& m) { m.settings.push_back(m.settings[0]); },
                        "setting 'api_key' is declared twice"},
        BadManifestCase{"IllFormedSettingName",
                        [](sdk::Manifest& m) {
                          m.settings.push_back(Setting("Region", sdk::SettingType::kString));
                        },
                        "setting name 'Region' is empty or ill-formed"},
        BadManifestCase{"EnumWithoutValues",
                        [](sdk::Manifest& m) {
                          m.settings.push_back(Setting("region", sdk::SettingType::kEnum));
                        },
                        "enum setting 'region' has no allowed values"},
        BadManifestCase{"DefaultNotAllowed",
                        [](sdk::Manifest& m) {
                          sdk::SettingSpec s = Setting("region", sdk::SettingType::kEnum);
                          s.allowed_values = {"us", "eu"};
                          s.default_value = "ap";
                          m.settings.push_back(s);
                        },
                        "the default of setting 'region' is not valid"},
        BadManifestCase{"DefaultOfWrongType",
                        [](sdk::Manifest& m) {
                          sdk::SettingSpec s = Setting("batch", sdk::SettingType::kInt);
                          s.default_value = "many";
                          m.settings.push_back(s);
                        },
                        "value 'many' is not an integer"},
        BadManifestCase{"SecretWithDefault",
                        [](sdk::Manifest& m) { m.settings[0].default_value = "k"; },
                        "secret setting 'api_key' must not have a default"},
        BadManifestCase{"RequiredFieldAlsoReserved",
                        [](sdk::Manifest& m) { m.reserved_fields = {"email"}; },
                        "required mapping field 'email' is also a reserved field"},
        BadManifestCase{"DuplicateMappingField",
                        [](sdk::Manifest& m) { m.mapping_fields.push_back(m.mapping_fields[0]); },
                        "mapping field 'email' is declared twice"},
        BadManifestCase{"EmptyMappingField",
                        [](sdk::Manifest& m) { m.mapping_fields.push_back({}); },
                        "a mapping field has an empty name"},
        BadManifestCase{"ZeroBatch", [](sdk::Manifest& m) { m.speed.max_records_per_batch = 0; },
                        "speed.max_records_per_batch must be > 0"},
        BadManifestCase{"ZeroBytes", [](sdk::Manifest& m) { m.speed.max_bytes_per_batch = 0; },
                        "speed.max_bytes_per_batch must be > 0"},
        BadManifestCase{"ZeroParallel", [](sdk::Manifest& m) { m.speed.max_parallel_batches = -1; },
                        "speed.max_parallel_batches must be > 0"},
        BadManifestCase{"NegativeRate", [](sdk::Manifest& m) { m.speed.records_per_second = -1; },
                        "speed.records_per_second must be >= 0"}),
    [](const ::testing::TestParamInfo<BadManifestCase>& info) { return info.param.label; });

}  // namespace
}  // namespace exportd::destinations
