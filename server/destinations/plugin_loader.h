// Loads destination plugins (shared libraries) with Boost.DLL into a
// DestinationRegistry.
//
//   DestinationRegistry registry;
//   absl::Status status = LoadPluginDirectory(DefaultPluginDir(argv[0]), registry);
//   if (!status.ok()) { /* the directory is missing: stop */ }
//   for (const RefusedPlugin& r : registry.refused()) { /* already logged */ }
//
// For each library the loader checks, in order: that it loads; that it
// exports the ABI version symbol (exportd::sdk::kAbiVersionSymbol) with the
// host's version — before calling anything in it; that it exports the factory
// (kFactorySymbol); that the factory returns a destination without throwing;
// and that the registry accepts it (valid manifest, name not taken). A library
// failing any step is refused: logged on stderr and recorded in
// registry.refused(); the others still load. Loaded libraries stay loaded
// until the registry is destroyed.
#ifndef EXPORTD_SERVER_DESTINATIONS_PLUGIN_LOADER_H_
#define EXPORTD_SERVER_DESTINATIONS_PLUGIN_LOADER_H_

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "registry.h"

namespace exportd::destinations {

// Loads one library and registers its destination. On refusal, records the
// reason in registry.refused(), logs it, and returns it: FAILED_PRECONDITION
// (ABI mismatch, missing symbols), INVALID_ARGUMENT (load failure, manifest),
// ALREADY_EXISTS (name taken) or the factory's own error (INTERNAL if it
// threw).
absl::Status LoadPlugin(const std::filesystem::path& library, DestinationRegistry& registry);

// Loads every `*.so` file in `dir`, sorted by file name. Refusals do not make
// it fail; only a missing or unreadable directory does (NOT_FOUND /
// FAILED_PRECONDITION naming the path). An empty directory is fine.
absl::Status LoadPluginDirectory(const std::filesystem::path& dir, DestinationRegistry& registry);

// Where exportd looks for plugins by default: `<exe dir>/../plugins` when it
// exists (the build tree: build/bin/exportd next to build/plugins), else
// `<exe dir>/../lib/exportd/plugins` (an installed tree). `argv0` is the
// program's argv[0]; the running executable's path is used when argv0 has no
// directory part.
std::filesystem::path DefaultPluginDir(const std::string& argv0);

}  // namespace exportd::destinations

#endif  // EXPORTD_SERVER_DESTINATIONS_PLUGIN_LOADER_H_
