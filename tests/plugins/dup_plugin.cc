// Built twice (test_dup_a, test_dup_b): two libraries with the same
// destination name "test_dup"; the second one loaded is refused.
#include "fake_destination.h"

namespace {
absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> CreateDup() {
  return std::make_unique<exportd::test_plugins::FakeDestination>(
      exportd::test_plugins::FakeManifest("test_dup", EXPORTD_TEST_DUP_VERSION));
}
}  // namespace

EXPORTD_DESTINATION_PLUGIN(CreateDup)
