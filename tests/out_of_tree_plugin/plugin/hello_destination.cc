#include "hello_destination.h"

#include <map>
#include <mutex>
#include <set>
#include <string>

namespace hello {
namespace {

using exportd::sdk::Audience;
using exportd::sdk::RecordBatch;
using exportd::sdk::RecordOutcome;
using exportd::sdk::RunContext;

class HelloConnection final : public exportd::sdk::Connection {
 public:
  exportd::sdk::SyncSpeed speed() const override { return {}; }

  absl::Status Check(RunContext& ctx) override {
    if (ctx.cancelled()) return absl::CancelledError("hello: cancelled");
    return absl::OkStatus();
  }

  absl::StatusOr<Audience> EnsureAudience(std::string_view segment_name, std::string_view,
                                          RunContext& ctx) override {
    if (ctx.cancelled()) return absl::CancelledError("hello: cancelled");
    std::lock_guard<std::mutex> lock(mu_);
    Audience audience;
    audience.name = std::string(segment_name);
    audience.id = "hello-" + audience.name;
    audience.created = members_.emplace(audience.id, std::set<std::string>()).second;
    return audience;
  }

  absl::StatusOr<std::vector<RecordOutcome>> Upsert(const Audience& audience,
                                                    const RecordBatch& batch,
                                                    RunContext& ctx) override {
    return Apply(audience, batch, ctx, /*add=*/true);
  }
  absl::StatusOr<std::vector<RecordOutcome>> Remove(const Audience& audience,
                                                    const RecordBatch& batch,
                                                    RunContext& ctx) override {
    return Apply(audience, batch, ctx, /*add=*/false);
  }

 private:
  absl::StatusOr<std::vector<RecordOutcome>> Apply(const Audience& audience,
                                                   const RecordBatch& batch, RunContext& ctx,
                                                   bool add) {
    if (ctx.cancelled()) return absl::CancelledError("hello: cancelled");
    const int greeting = batch.FieldIndex("greeting");
    std::lock_guard<std::mutex> lock(mu_);
    std::set<std::string>& members = members_[audience.id];
    std::vector<RecordOutcome> outcomes;
    for (std::size_t row = 0; row < batch.size(); ++row) {
      if (add && (greeting < 0 || batch.at(row, greeting).is_null)) {
        outcomes.push_back(RecordOutcome::Rejected("missing_greeting", "greeting",
                                                   "the record has no greeting"));
        continue;
      }
      if (add) {
        members.insert(batch.profile_ids[row]);
      } else {
        members.erase(batch.profile_ids[row]);
      }
      outcomes.push_back(RecordOutcome::Delivered());
    }
    return outcomes;
  }

  std::mutex mu_;
  std::map<std::string, std::set<std::string>> members_;
};

class HelloDestination final : public exportd::sdk::Destination {
 public:
  HelloDestination() {
    manifest_.name = "hello";
    manifest_.display_name = "Hello";
    manifest_.version = "0.1.0";
    exportd::sdk::SettingSpec token;
    token.name = "token";
    token.display_name = "Token";
    token.required = true;
    token.secret = true;
    manifest_.settings.push_back(token);
    manifest_.mapping_fields.push_back({"greeting", "What to say", true});
    manifest_.supports_removal = true;
    manifest_.privacy_statement =
        "Greetings are kept in the memory of the exportd process and are gone when it stops.";
    manifest_.privacy_statement_version = "2026-12-01";
  }
  const exportd::sdk::Manifest& manifest() const override { return manifest_; }
  absl::StatusOr<std::unique_ptr<exportd::sdk::Connection>> Connect(
      const exportd::sdk::Settings&) override {
    return std::make_unique<HelloConnection>();
  }

 private:
  exportd::sdk::Manifest manifest_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> CreateHelloDestination() {
  return std::make_unique<HelloDestination>();
}

}  // namespace hello

#ifndef HELLO_NO_PLUGIN_EXPORTS
EXPORTD_DESTINATION_PLUGIN(hello::CreateHelloDestination)
#endif
