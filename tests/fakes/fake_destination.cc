#include "tests/fakes/fake_destination.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"

namespace exportd::testing {
namespace {

// The fake's identifier form: trimmed and lowercased (as Iterable's emails).
std::string CanonicalKey(std::string_view value) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(absl::string_view(value.data(), value.size())));
}

class FakeConnection final : public sdk::Connection {
 public:
  FakeConnection(std::shared_ptr<FakeState> state, sdk::SyncSpeed speed)
      : state_(std::move(state)), speed_(speed) {}

  sdk::SyncSpeed speed() const override { return speed_; }

  absl::Status Check(sdk::RunContext& ctx) override {
    LogLine(ctx);
    absl::Status failure = TakeFailure();
    ctx.RequestDone("/fake/check", failure.ok() ? 200 : 503, absl::Milliseconds(1));
    return failure;
  }

  absl::StatusOr<sdk::Audience> EnsureAudience(std::string_view segment_name, std::string_view,
                                               sdk::RunContext& ctx) override {
    if (absl::Status s = TakeFailure(); !s.ok()) return s;
    absl::MutexLock lock(&state_->mu);
    state_->ensure_times.push_back(ctx.Now());
    if (state_->ensure_throttle_calls > 0) {
      --state_->ensure_throttle_calls;
      ++state_->throttled;
      ctx.ReportThrottle(state_->throttle_retry_after);
      return absl::ResourceExhaustedError("fake destination: too many audience requests");
    }
    ++state_->ensure_calls;
    sdk::Audience audience;
    audience.name = std::string(segment_name);
    audience.id = "aud-" + audience.name;
    audience.created = state_->audiences.count(audience.name) == 0;
    state_->audiences[audience.name];
    return audience;
  }

  absl::StatusOr<std::vector<sdk::RecordOutcome>> Upsert(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext& ctx) override {
    return Write(audience, batch, ctx, /*remove=*/false);
  }

  absl::StatusOr<std::vector<sdk::RecordOutcome>> Remove(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext& ctx) override {
    return Write(audience, batch, ctx, /*remove=*/true);
  }

 private:
  absl::Status TakeFailure() {
    absl::MutexLock lock(&state_->mu);
    if (state_->fail_calls > 0) {
      --state_->fail_calls;
      return absl::UnavailableError(state_->fail_message);
    }
    return absl::OkStatus();
  }

  void LogLine(sdk::RunContext& ctx) {
    std::string line;
    {
      absl::MutexLock lock(&state_->mu);
      line = state_->log_line;
    }
    if (!line.empty()) ctx.Log(sdk::LogLevel::kWarning, line);
  }

  absl::StatusOr<std::vector<sdk::RecordOutcome>> Write(const sdk::Audience& audience,
                                                        const sdk::RecordBatch& batch,
                                                        sdk::RunContext& ctx, bool remove) {
    if (ctx.cancelled()) return absl::CancelledError("canceled");
    if (absl::Status s = TakeFailure(); !s.ok()) return s;
    bool throttle = false;
    absl::Duration retry_after;
    {
      absl::MutexLock lock(&state_->mu);
      state_->call_times.push_back(absl::Now());
      if (state_->gone_calls > 0) {
        --state_->gone_calls;
        return absl::NotFoundError("fake destination: audience '" + audience.id +
                                   "' no longer exists");
      }
      if (state_->throttle_calls > 0) {
        --state_->throttle_calls;
        ++state_->throttled;
        throttle = true;
        retry_after = state_->throttle_retry_after;
      }
    }
    const char* endpoint = remove ? "/fake/remove" : "/fake/upsert";
    if (throttle) {
      ctx.RequestDone(endpoint, 429, absl::Milliseconds(1));
      ctx.ReportThrottle(retry_after);
      return absl::ResourceExhaustedError("fake destination: too many requests");
    }
    ctx.RequestDone(endpoint, 200, absl::Milliseconds(1));
    LogLine(ctx);
    absl::MutexLock lock(&state_->mu);
    ++(remove ? state_->remove_calls : state_->upsert_calls);
    auto& members = state_->audiences[audience.name];
    (remove ? state_->removed_records : state_->upserted_records) +=
        static_cast<int>(batch.size());
    std::vector<sdk::RecordOutcome> outcomes;
    outcomes.reserve(batch.size());
    for (size_t r = 0; r < batch.size(); ++r) {
      const std::string& id = batch.profile_ids[r];
      if (state_->retryable.count(id) &&
          (state_->retryable_times < 0 ||
           state_->retryable_answers[id] < state_->retryable_times)) {
        ++state_->retryable_answers[id];
        outcomes.push_back(sdk::RecordOutcome::Retryable("fake_busy", state_->retryable_message));
        continue;
      }
      if (state_->key_by_identifier) {
        std::string key = CanonicalKey(batch.at(r, 0).s);
        if (key.find('@') == std::string::npos) {
          outcomes.push_back(sdk::RecordOutcome::Rejected("invalid_key", "key", "not a key"));
          continue;
        }
        if (state_->forgotten.count(key)) {
          if (!remove) ++state_->forgotten_attempts;
          outcomes.push_back(sdk::RecordOutcome::Rejected(sdk::kReasonForgotten, "key",
                                                          "the user was forgotten"));
          continue;
        }
        if (remove) {
          members.erase(key);
        } else {
          members[key] = id;
        }
        outcomes.push_back(sdk::RecordOutcome::Delivered());
        continue;
      }
      if (state_->reject.count(id)) {
        outcomes.push_back(sdk::RecordOutcome::Rejected("fake_reject", "key", "rejected by test"));
        continue;
      }
      if (remove) {
        members.erase(id);
      } else {
        std::string first;
        if (!batch.fields.empty()) {
          const sdk::Value& v = batch.at(r, 0);
          first = v.is_null ? "" : v.type == sdk::FieldType::kString ? v.s : std::to_string(v.i);
        }
        members[id] = first;
      }
      outcomes.push_back(sdk::RecordOutcome::Delivered());
    }
    return outcomes;
  }

  std::shared_ptr<FakeState> state_;
  const sdk::SyncSpeed speed_;
};

class FakeDestination final : public sdk::Destination {
 public:
  explicit FakeDestination(std::shared_ptr<FakeState> state) : state_(std::move(state)) {
    manifest_.name = "fake";
    manifest_.display_name = "Fake";
    manifest_.version = "0.0.1";
    manifest_.description = "In-memory destination for tests";
    sdk::SettingSpec token;
    token.name = "token";
    token.display_name = "Token";
    token.required = true;
    token.secret = true;
    sdk::SettingSpec mode;
    mode.name = "mode";
    mode.display_name = "Mode";
    mode.type = sdk::SettingType::kEnum;
    mode.allowed_values = {"fast", "slow"};
    mode.default_value = "fast";
    sdk::SettingSpec limit;
    limit.name = "limit";
    limit.display_name = "Limit";
    limit.type = sdk::SettingType::kInt;
    manifest_.settings = {token, mode, limit};
    manifest_.mapping_fields = {{"key", "The profile's key", true}};
    {
      absl::MutexLock lock(&state_->mu);
      manifest_.mapping_fields[0].identifier = state_->key_by_identifier;
    }
    manifest_.allows_extra_fields = true;
    manifest_.reserved_fields = {"reserved"};
    manifest_.supports_removal = true;
    manifest_.speed.max_records_per_batch = 100;
    manifest_.privacy_statement =
        "Profile data sent to the fake destination stays in this process.\n\n"
        "It is gone when the test ends.";
    manifest_.privacy_statement_version = kFakePrivacyStatementVersion;
  }

  const sdk::Manifest& manifest() const override { return manifest_; }

  std::string CanonicalIdentifier(std::string_view field, std::string_view value) const override {
    (void)field;
    return CanonicalKey(value);
  }

  absl::StatusOr<std::unique_ptr<sdk::Connection>> Connect(const sdk::Settings& settings) override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->last_settings = settings;
    }
    absl::MutexLock lock(&state_->mu);
    return std::make_unique<FakeConnection>(state_,
                                            state_->connection_speed.value_or(manifest_.speed));
  }

 private:
  std::shared_ptr<FakeState> state_;
  sdk::Manifest manifest_;
};

}  // namespace

std::unique_ptr<sdk::Destination> MakeFakeDestination(std::shared_ptr<FakeState> state) {
  return std::make_unique<FakeDestination>(std::move(state));
}

}  // namespace exportd::testing
