// A plugin that exports the ABI version but no factory.
#include "fake_destination.h"

namespace no_factory {
const std::uint32_t abi_version = exportd::sdk::kAbiVersion;
}  // namespace no_factory

BOOST_DLL_ALIAS(no_factory::abi_version, exportd_destination_abi_version)
