// A plugin whose manifest has no privacy statement: the host refuses it, since
// admins could not see what they agree to when they create a connection.
#include "fake_destination.h"

namespace {
absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> CreateNoPrivacyStatement() {
  exportd::sdk::Manifest m = exportd::test_plugins::FakeManifest("test_no_privacy_statement");
  m.privacy_statement = " \n\n ";
  return std::make_unique<exportd::test_plugins::FakeDestination>(std::move(m));
}
}  // namespace

EXPORTD_DESTINATION_PLUGIN(CreateNoPrivacyStatement)
