// A plugin built against the previous ABI version (3: before Manifest::privacy_statement):
// the host must refuse it before calling its factory (which would
// abort the test).
#include <cstdlib>

#include "fake_destination.h"

namespace wrong_abi {
const std::uint32_t abi_version = exportd::sdk::kAbiVersion - 1;
absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> Create() { std::abort(); }
}  // namespace wrong_abi

BOOST_DLL_ALIAS(wrong_abi::abi_version, exportd_destination_abi_version)
BOOST_DLL_ALIAS(wrong_abi::Create, exportd_create_destination)
