// A plugin whose manifest declares an enum setting without allowed values.
#include "fake_destination.h"

namespace {
absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> CreateBadManifest() {
  exportd::sdk::Manifest m = exportd::test_plugins::FakeManifest("test_bad_manifest");
  m.settings.push_back({"region", "Region", "", exportd::sdk::SettingType::kEnum, false, false,
                        {}, ""});
  return std::make_unique<exportd::test_plugins::FakeDestination>(std::move(m));
}
}  // namespace

EXPORTD_DESTINATION_PLUGIN(CreateBadManifest)
