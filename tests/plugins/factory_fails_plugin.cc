// A plugin whose factory returns an error.
#include "fake_destination.h"

namespace {
absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> CreateFailing() {
  return absl::FailedPreconditionError("test_factory_fails: missing libfoo configuration");
}
}  // namespace

EXPORTD_DESTINATION_PLUGIN(CreateFailing)
