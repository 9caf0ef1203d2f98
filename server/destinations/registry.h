// The registry of destination plugins, keyed by manifest name.
//
// Registration is explicit, at start-up, on one thread (the plugin loader or a
// test calls Register); reads (Get, List, refused) are thread-safe and may run
// concurrently with each other and with late registrations.
//
//   exportd::destinations::DestinationRegistry registry;
//   absl::Status loaded = exportd::destinations::LoadPluginDirectory(dir, registry);
//   absl::StatusOr<exportd::sdk::Destination*> iterable = registry.Get("iterable");
//
// The registry owns each Destination and, for plugins loaded from a shared
// library, a handle that keeps the library loaded. On destruction every
// Destination is destroyed before its library is unloaded.
#ifndef EXPORTD_SERVER_DESTINATIONS_REGISTRY_H_
#define EXPORTD_SERVER_DESTINATIONS_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "exportd/sdk/destination.h"

namespace exportd::destinations {

// A registered destination. Pointers stay valid for the registry's lifetime.
struct RegisteredDestination {
  sdk::Destination* destination = nullptr;
  const sdk::Manifest* manifest = nullptr;
  std::string library_path;  // Empty for a destination registered in-process.
};

// A library the host refused to load, and why.
struct RefusedPlugin {
  std::string library_path;
  std::string reason;
};

// Checks a manifest the way Register does: a well-formed name, a version, a
// privacy statement and its version (neither blank), unique setting names,
// enums with allowed values, defaults that parse and are allowed, no required
// mapping field that is also reserved, speed values > 0...
// INVALID_ARGUMENT saying what is wrong.
absl::Status ValidateManifest(const sdk::Manifest& manifest);

class DestinationRegistry {
 public:
  DestinationRegistry() = default;
  DestinationRegistry(const DestinationRegistry&) = delete;
  DestinationRegistry& operator=(const DestinationRegistry&) = delete;
  // Destroys every Destination, then releases the libraries.
  ~DestinationRegistry();

  // Registers `destination` under its manifest name. `library_path` names the
  // library it came from (for messages and the API); `library` keeps that
  // library loaded for as long as the destination lives (may be null).
  // INVALID_ARGUMENT for a null destination or an invalid manifest,
  // ALREADY_EXISTS (naming both libraries) for a name taken. On error the
  // destination is destroyed before `library` is released.
  absl::Status Register(std::unique_ptr<sdk::Destination> destination, std::string library_path,
                        std::shared_ptr<void> library = nullptr);

  // The destination named `name`; NOT_FOUND listing the known names.
  absl::StatusOr<sdk::Destination*> Get(std::string_view name) const;

  // Every registered destination, sorted by name.
  std::vector<RegisteredDestination> List() const;

  // Records a library that was refused (the loader calls it).
  void AddRefused(std::string library_path, std::string reason);
  // Every refused library, in the order they were refused.
  std::vector<RefusedPlugin> refused() const;

 private:
  struct Entry {
    // Declared first so that it is destroyed last: the destination's code
    // lives in the library.
    std::shared_ptr<void> library;
    std::unique_ptr<sdk::Destination> destination;
    std::string library_path;
  };

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<RefusedPlugin> refused_ ABSL_GUARDED_BY(mu_);
};

}  // namespace exportd::destinations

#endif  // EXPORTD_SERVER_DESTINATIONS_REGISTRY_H_
