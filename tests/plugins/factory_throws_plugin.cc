// A plugin whose factory throws (which it must not): the host catches it.
#include <stdexcept>

#include "fake_destination.h"

namespace {
absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> CreateThrowing() {
  throw std::runtime_error("test_factory_throws: boom");
}
}  // namespace

EXPORTD_DESTINATION_PLUGIN(CreateThrowing)
