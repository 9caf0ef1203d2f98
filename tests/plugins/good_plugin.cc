// A plugin the host accepts: name "test_good".
#include "fake_destination.h"

namespace {
absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> CreateGood() {
  return std::make_unique<exportd::test_plugins::FakeDestination>(
      exportd::test_plugins::FakeManifest("test_good"));
}
}  // namespace

EXPORTD_DESTINATION_PLUGIN(CreateGood)
