// A minimal destination for the plugin host's tests: a manifest and
// connections that deliver everything. Used by the test plugins only.
#ifndef EXPORTD_TESTS_PLUGINS_FAKE_DESTINATION_H_
#define EXPORTD_TESTS_PLUGINS_FAKE_DESTINATION_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "exportd/sdk/destination.h"

namespace exportd::test_plugins {

class FakeConnection final : public sdk::Connection {
 public:
  sdk::SyncSpeed speed() const override { return {}; }
  absl::Status Check(sdk::RunContext&) override { return absl::OkStatus(); }
  absl::StatusOr<sdk::Audience> EnsureAudience(std::string_view name, std::string_view,
                                               sdk::RunContext&) override {
    return sdk::Audience{std::string(name), std::string(name), false, ""};
  }
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Upsert(const sdk::Audience&,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext&) override {
    return std::vector<sdk::RecordOutcome>(batch.size());
  }
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Remove(const sdk::Audience&,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext&) override {
    return std::vector<sdk::RecordOutcome>(batch.size());
  }
};

class FakeDestination final : public sdk::Destination {
 public:
  explicit FakeDestination(sdk::Manifest manifest) : manifest_(std::move(manifest)) {}
  const sdk::Manifest& manifest() const override { return manifest_; }
  absl::StatusOr<std::unique_ptr<sdk::Connection>> Connect(const sdk::Settings&) override {
    return std::make_unique<FakeConnection>();
  }

 private:
  sdk::Manifest manifest_;
};

inline sdk::Manifest FakeManifest(std::string name, std::string version = "1.0.0") {
  sdk::Manifest m;
  m.name = std::move(name);
  m.display_name = "Test " + m.name;
  m.version = std::move(version);
  m.settings.push_back({"api_key", "API key", "", sdk::SettingType::kString, true, true, {}, ""});
  m.mapping_fields.push_back({"email", "The email address", true});
  m.privacy_statement = "Data sent to " + m.name + " stays in this test.";
  m.privacy_statement_version = "2026-01-01";
  return m;
}

}  // namespace exportd::test_plugins

#endif  // EXPORTD_TESTS_PLUGINS_FAKE_DESTINATION_H_
