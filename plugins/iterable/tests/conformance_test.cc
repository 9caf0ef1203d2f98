// The SDK's destination conformance suite, run against iterable-sandbox: once
// with the destination created directly, once loaded from the built plugin
// library the way exportd loads it (Boost.DLL, exported factory).
#include <boost/dll/shared_library.hpp>
#include <memory>
#include <string>

#include "exportd/sdk/testing/destination_conformance.h"
#include "iterable_destination.h"
#include "test_batches.h"
#include "tests/sandbox/sandbox.h"

namespace exportd::iterable {
namespace {

using namespace exportd::iterable::testing;

constexpr char kKey[] = "itbl-conformance-key-0123456789a";

class SandboxTraits : public sdk::testing::ConformanceTraitsBase {
 public:
  SandboxTraits() {
    sandbox::Options options;
    options.api_keys = {kKey};
    auto sandbox = sandbox::Sandbox::Create(options);
    if (sandbox.ok()) sandbox_ = *std::move(sandbox);
  }

  sdk::Settings ValidSettings() {
    return {{"api_key", kKey},
            {"base_url", sandbox_ ? sandbox_->base_url() : "http://127.0.0.1:1"}};
  }

  std::vector<sdk::testing::InvalidSettingsCase> InvalidSettings() {
    auto with = [this](std::string name, std::string value) {
      sdk::Settings settings = ValidSettings();
      settings[name] = value;
      return sdk::testing::InvalidSettingsCase{name + "=" + value, settings};
    };
    return {with("base_url", "api.iterable.com"),
            with("base_url", "ftp://x"),
            with("batch_size", "0"),
            with("batch_size", "20000"),
            with("max_body_bytes", "1"),
            with("parallel_requests", "0"),
            with("requests_per_second", "-2"),
            with("api_key", "   ")};
  }

  sdk::RecordBatch ValidBatch() { return PeopleBatch(25); }

  // Subscribe and unsubscribe requests the sandbox received: the kit checks
  // one per Upsert/Remove call.
  std::optional<std::int64_t> RequestsSent() {
    if (!sandbox_) return std::nullopt;
    return static_cast<std::int64_t>(
        sandbox_->RequestTimes("POST /api/lists/subscribe").size() +
        sandbox_->RequestTimes("POST /api/lists/unsubscribe").size());
  }

  sdk::testing::RejectionCase BatchWithRejectedRecord() {
    return {EmailBatch({"ok@example.com", "not-an-email", "Also.OK@Example.com", ""}), {1, 3}};
  }

 private:
  std::unique_ptr<sandbox::Sandbox> sandbox_;
};

class DirectTraits : public SandboxTraits {
 public:
  absl::StatusOr<std::shared_ptr<sdk::Destination>> MakeDestination() {
    auto destination = CreateIterableDestination();
    if (!destination.ok()) return destination.status();
    return std::shared_ptr<sdk::Destination>(*std::move(destination));
  }
};

class SharedLibraryTraits : public SandboxTraits {
 public:
  absl::StatusOr<std::shared_ptr<sdk::Destination>> MakeDestination() {
    auto library = std::make_shared<boost::dll::shared_library>();
    boost::dll::fs::error_code error;
    library->load(EXPORTD_ITERABLE_PLUGIN_PATH, boost::dll::load_mode::rtld_local, error);
    if (error) return absl::InternalError("cannot load the plugin: " + error.message());
    if (!library->has(sdk::kAbiVersionSymbol) || !library->has(sdk::kFactorySymbol)) {
      return absl::InternalError("the plugin does not export its ABI version and factory");
    }
    const std::uint32_t abi = library->get_alias<const std::uint32_t>(sdk::kAbiVersionSymbol);
    if (abi != sdk::kAbiVersion) return absl::InternalError("ABI version mismatch");
    auto& factory = library->get_alias<sdk::DestinationFactory>(sdk::kFactorySymbol);
    auto destination = factory();
    if (!destination.ok()) return destination.status();
    // The library stays loaded as long as the destination lives.
    std::shared_ptr<sdk::Destination> owned(std::move(*destination));
    auto holder = std::make_shared<
        std::pair<std::shared_ptr<boost::dll::shared_library>, std::shared_ptr<sdk::Destination>>>(
        library, owned);
    return std::shared_ptr<sdk::Destination>(holder, holder->second.get());
  }
};

}  // namespace

EXPORTD_DESTINATION_CONFORMANCE_TEST(Iterable, DirectTraits)
EXPORTD_DESTINATION_CONFORMANCE_TEST(IterablePlugin, SharedLibraryTraits)

}  // namespace exportd::iterable
