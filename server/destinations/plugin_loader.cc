#include "plugin_loader.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/terminal_text.h"

namespace exportd::destinations {
namespace {

using Library = boost::dll::shared_library;

// Why `path` cannot be a plugin library before trying to load it: the loader's
// own error says "Bad file descriptor" for all of these. Empty when it may be.
std::string NotALibrary(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) return "no such file; check the path";
  if (std::filesystem::is_directory(st)) {
    return "it is a directory; pass one plugin's .so file (exportd loads a whole directory "
           "with --plugin-dir)";
  }
  std::ifstream file(path, std::ios::binary);
  char magic[4] = {};
  if (!file.read(magic, sizeof magic) || std::string(magic, 4) != "\x7f" "ELF") {
    return "not an ELF shared library; a plugin is a .so built against the exportd SDK";
  }
  return "";
}

absl::Status Refuse(DestinationRegistry& registry, const std::string& path, absl::Status status) {
  // The file name and the plugin's own words are escaped in the log line; the
  // registry keeps them exact for ListDestinations.
  Log(LogLevel::kWarning, {"plugins"},
      absl::StrCat("refused destination plugin '", EscapeForTerminal(path),
                   "': ", EscapeForTerminal(status.message())));
  registry.AddRefused(path, std::string(status.message()));
  return status;
}

}  // namespace

absl::Status LoadPlugin(const std::filesystem::path& library_path, DestinationRegistry& registry) {
  const std::string path = library_path.string();
  if (std::string why = NotALibrary(path); !why.empty()) {
    return Refuse(registry, path,
                  absl::InvalidArgumentError(absl::StrCat("cannot be loaded: ", why)));
  }
  auto library = std::make_shared<Library>();
  boost::dll::fs::error_code ec;
  library->load(boost::dll::fs::path(path), boost::dll::load_mode::rtld_lazy, ec);
  if (ec || !library->is_loaded()) {
    return Refuse(registry, path,
                  absl::InvalidArgumentError(absl::StrCat("cannot be loaded: ", ec.message())));
  }
  // The ABI version comes first: nothing else in the library is touched when
  // it was built against another SDK.
  if (!library->has(sdk::kAbiVersionSymbol)) {
    return Refuse(registry, path,
                  absl::FailedPreconditionError(absl::StrCat(
                      "no ", sdk::kAbiVersionSymbol,
                      " symbol: not an exportd destination plugin (build it with "
                      "EXPORTD_DESTINATION_PLUGIN from exportd/sdk/destination.h)")));
  }
  const std::uint32_t abi = library->get_alias<const std::uint32_t>(sdk::kAbiVersionSymbol);
  if (abi != sdk::kAbiVersion) {
    return Refuse(registry, path,
                  absl::FailedPreconditionError(absl::StrCat(
                      "ABI version ", abi, " does not match the host's ", sdk::kAbiVersion,
                      "; rebuild the plugin against this exportd's SDK (see the ABI history in "
                      "exportd/sdk/destination.h)")));
  }
  if (!library->has(sdk::kFactorySymbol)) {
    return Refuse(registry, path,
                  absl::FailedPreconditionError(absl::StrCat(
                      "no ", sdk::kFactorySymbol,
                      " symbol: the plugin exports no factory (use EXPORTD_DESTINATION_PLUGIN)")));
  }
  auto& factory = library->get_alias<sdk::DestinationFactory>(sdk::kFactorySymbol);
  absl::StatusOr<std::unique_ptr<sdk::Destination>> destination;
  try {
    destination = factory();
  } catch (const std::exception& e) {
    return Refuse(registry, path,
                  absl::InternalError(absl::StrCat("the factory threw an exception: ", e.what())));
  } catch (...) {
    return Refuse(registry, path, absl::InternalError("the factory threw an unknown exception"));
  }
  if (!destination.ok()) {
    absl::Status failed = destination.status();
    return Refuse(registry, path,
                  absl::Status(failed.code(), absl::StrCat("the factory failed: ", failed.message())));
  }
  absl::Status registered;
  try {
    registered = registry.Register(*std::move(destination), path, std::move(library));
  } catch (const std::exception& e) {
    registered = absl::InternalError(absl::StrCat("the plugin threw an exception: ", e.what()));
  } catch (...) {
    registered = absl::InternalError("the plugin threw an unknown exception");
  }
  if (!registered.ok()) return Refuse(registry, path, registered);
  return absl::OkStatus();
}

absl::Status LoadPluginDirectory(const std::filesystem::path& dir, DestinationRegistry& registry) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("plugin directory '", dir.string(),
                                            "' does not exist; create it or pass another one"));
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("plugin directory '", dir.string(), "' is not a directory"));
  }
  std::vector<std::filesystem::path> libraries;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".so" && !it->is_directory()) libraries.push_back(it->path());
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read plugin directory '", dir.string(), "': ", ec.message()));
  }
  std::sort(libraries.begin(), libraries.end());
  for (const std::filesystem::path& library : libraries) {
    LoadPlugin(library, registry).IgnoreError();  // Refusals are recorded.
  }
  return absl::OkStatus();
}

std::filesystem::path DefaultPluginDir(const std::string& argv0) {
  std::filesystem::path exe(argv0);
  if (!exe.has_parent_path()) exe = boost::dll::program_location().string();
  std::error_code ec;
  std::filesystem::path exe_dir = std::filesystem::weakly_canonical(exe, ec).parent_path();
  if (ec) exe_dir = std::filesystem::absolute(exe, ec).parent_path();
  std::filesystem::path build_tree = exe_dir.parent_path() / "plugins";
  if (std::filesystem::is_directory(build_tree, ec)) return build_tree;
  return exe_dir.parent_path() / "lib" / "exportd" / "plugins";
}

}  // namespace exportd::destinations
