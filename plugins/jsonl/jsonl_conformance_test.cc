// The destination conformance kit, run twice: against the destination built
// into this test (direct factory call) and against libexportd_jsonl.so loaded
// by the plugin host, as exportd loads it.
#include "exportd/sdk/testing/destination_conformance.h"
#include "audience_file.h"
#include "jsonl_destination.h"
#include "jsonl_test_util.h"
#include "plugin_loader.h"
#include "registry.h"

namespace {

namespace sdk = ::exportd::sdk;
namespace sdk_testing = ::exportd::sdk::testing;

class JsonlTraitsBase : public sdk_testing::ConformanceTraitsBase {
 public:
  sdk::Settings ValidSettings() { return {{"directory", dir_.path().string()}}; }
  std::vector<sdk_testing::InvalidSettingsCase> InvalidSettings() {
    return {{"a relative directory", {{"directory", "relative/dir"}}},
            {"an empty directory", {{"directory", ""}}}};
  }
  sdk::RecordBatch ValidBatch() {
    return exportd::jsonl::testing::EmailAgeBatch({"p1", "p2", "p3"});
  }
  sdk_testing::RejectionCase BatchWithRejectedRecord() {
    return {exportd::jsonl::testing::EmailAgeBatch({"p1", "", "p3"}), {1}};
  }

 private:
  exportd::jsonl::testing::TempDir dir_;
};

class JsonlDirectTraits : public JsonlTraitsBase {
 public:
  // Each Upsert/Remove rewrites the audience file once: that is its request.
  // (The loaded library keeps its own counter, out of reach: those traits do
  // not count, and the kit skips the check for them.)
  std::optional<std::int64_t> RequestsSent() { return exportd::jsonl::AudienceFileWrites(); }
  absl::StatusOr<std::shared_ptr<sdk::Destination>> MakeDestination() {
    auto destination = exportd::jsonl::CreateJsonlDestination();
    if (!destination.ok()) return destination.status();
    return std::shared_ptr<sdk::Destination>(*std::move(destination));
  }
};

class JsonlLoadedTraits : public JsonlTraitsBase {
 public:
  // Loads the plugin through the host; the shared_ptr keeps the registry (and
  // so the library) alive as long as the destination is used.
  absl::StatusOr<std::shared_ptr<sdk::Destination>> MakeDestination() {
    auto registry = std::make_shared<exportd::destinations::DestinationRegistry>();
    absl::Status loaded = exportd::destinations::LoadPlugin(EXPORTD_JSONL_PLUGIN, *registry);
    if (!loaded.ok()) return loaded;
    absl::StatusOr<sdk::Destination*> destination = registry->Get("jsonl");
    if (!destination.ok()) return destination.status();
    return std::shared_ptr<sdk::Destination>(registry, *destination);
  }
};

}  // namespace

EXPORTD_DESTINATION_CONFORMANCE_TEST(JsonlDirect, JsonlDirectTraits)
EXPORTD_DESTINATION_CONFORMANCE_TEST(JsonlLoaded, JsonlLoadedTraits)
