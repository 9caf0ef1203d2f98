#include "manifest_proto.h"

#include "fake_destination.h"
#include "gtest/gtest.h"

namespace exportd::destinations {
namespace {

TEST(ManifestToProtoTest, CopiesEveryField) {
  sdk::Manifest m = test_plugins::FakeManifest("iterable", "1.2.3");
  m.description = "Lists";
  sdk::SettingSpec region;
  region.name = "region";
  region.type = sdk::SettingType::kEnum;
  region.allowed_values = {"us", "eu"};
  region.default_value = "us";
  m.settings.push_back(region);
  m.allows_extra_fields = true;
  m.reserved_fields = {"userId"};
  m.supports_removal = true;
  m.speed.records_per_second = 50;
  m.privacy_statement = "Data goes to Iterable.\n\nUnder its terms.";
  m.privacy_statement_version = "2026-12-01";

  exportd::v1::Destination proto;
  proto.set_name("stale");
  ManifestToProto(m, "/plugins/libexportd_iterable.so", &proto);
  EXPECT_EQ(proto.name(), "iterable");
  EXPECT_EQ(proto.version(), "1.2.3");
  EXPECT_EQ(proto.description(), "Lists");
  ASSERT_EQ(proto.settings_size(), 2);
  EXPECT_TRUE(proto.settings(0).secret());
  EXPECT_TRUE(proto.settings(0).required());
  EXPECT_EQ(proto.settings(1).type(), exportd::v1::SettingSpec::TYPE_ENUM);
  EXPECT_EQ(proto.settings(1).allowed_values_size(), 2);
  EXPECT_EQ(proto.settings(1).default_value(), "us");
  ASSERT_EQ(proto.mapping_fields_size(), 1);
  EXPECT_EQ(proto.mapping_fields(0).name(), "email");
  EXPECT_TRUE(proto.mapping_fields(0).required());
  EXPECT_TRUE(proto.allows_extra_fields());
  EXPECT_EQ(proto.reserved_fields(0), "userId");
  EXPECT_TRUE(proto.supports_removal());
  EXPECT_EQ(proto.speed().max_records_per_batch(), 1000);
  EXPECT_EQ(proto.speed().records_per_second(), 50);
  EXPECT_EQ(proto.library_path(), "/plugins/libexportd_iterable.so");
  EXPECT_EQ(proto.privacy_statement(), "Data goes to Iterable.\n\nUnder its terms.");
  EXPECT_EQ(proto.privacy_statement_version(), "2026-12-01");
}

}  // namespace
}  // namespace exportd::destinations
