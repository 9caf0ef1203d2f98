#include "tests/sandbox/faults.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace exportd::sandbox {
namespace {

constexpr absl::string_view kEndpoints[] = {"lists",     "create_list", "delete_list",
                                            "subscribe", "unsubscribe", "all"};

absl::Status CheckRatio(absl::string_view key, double value) {
  if (value < 0 || value > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("fault '", key, "' is ", value, "; it must be between 0 and 1"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsKnownEndpoint(absl::string_view endpoint) {
  return std::find(std::begin(kEndpoints), std::end(kEndpoints), endpoint) != std::end(kEndpoints);
}

absl::Status ParseRateLimitFlag(absl::string_view text, FaultOptions* faults) {
  size_t equals = text.find('=');
  if (equals == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rate-limit '", text, "' must look like ENDPOINT=N/s, e.g. subscribe=5/s"));
  }
  std::string endpoint(absl::StripAsciiWhitespace(text.substr(0, equals)));
  absl::string_view rate_text = absl::StripAsciiWhitespace(text.substr(equals + 1));
  absl::ConsumeSuffix(&rate_text, "/s");
  double rate = 0;
  if (!IsKnownEndpoint(endpoint)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rate-limit names endpoint '", endpoint,
                     "'; known: lists, create_list, delete_list, subscribe, unsubscribe, all"));
  }
  if (!absl::SimpleAtod(rate_text, &rate) || rate < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rate-limit '", text, "': rate must be a non-negative number per second"));
  }
  if (rate == 0) {
    faults->rate_limits.erase(endpoint);
  } else {
    faults->rate_limits[endpoint] = rate;
  }
  return absl::OkStatus();
}

nlohmann::json FaultsToJson(const FaultOptions& faults) {
  nlohmann::json rate_limits = nlohmann::json::object();
  for (const auto& [endpoint, rate] : faults.rate_limits) rate_limits[endpoint] = rate;
  return {
      {"rateLimits", std::move(rate_limits)},
      {"rateLimitBody", faults.rate_limit_body == RateLimitBody::kJson ? "json" : "text"},
      {"retryAfterSeconds", faults.retry_after_seconds},
      {"rateLimitReset", faults.rate_limit_reset},
      {"fail5xxRatio", faults.fail_5xx_ratio},
      {"failStatus", faults.fail_status},
      {"seed", faults.seed},
      {"latencyMs", faults.latency_ms},
      {"invalidListWindowMs", faults.invalid_list_window_ms},
      {"dropRatio", faults.drop_ratio},
      {"failNext", faults.fail_next},
      {"failNextEndpoint", faults.fail_next_endpoint},
      {"maxBatch", faults.max_batch},
      {"maxBodyBytes", faults.max_body_bytes},
  };
}

absl::StatusOr<FaultOptions> ApplyFaultsJson(const FaultOptions& base,
                                             const nlohmann::json& patch) {
  if (!patch.is_object()) {
    return absl::InvalidArgumentError("fault settings must be a JSON object");
  }
  FaultOptions faults = base;
  for (const auto& [key, value] : patch.items()) {
    auto need_number = [&]() -> absl::Status {
      if (!value.is_number()) {
        return absl::InvalidArgumentError(
            absl::StrCat("fault '", key, "' must be a number, got ", value.dump()));
      }
      return absl::OkStatus();
    };
    auto need_non_negative = [&]() -> absl::Status {
      absl::Status status = need_number();
      if (status.ok() && value.get<double>() < 0) {
        return absl::InvalidArgumentError(absl::StrCat("fault '", key, "' must be >= 0"));
      }
      return status;
    };
    absl::Status status;
    if (key == "rateLimits") {
      if (!value.is_object()) {
        return absl::InvalidArgumentError(
            "fault 'rateLimits' must be an object like {\"subscribe\":5}");
      }
      for (const auto& [endpoint, rate] : value.items()) {
        if (!IsKnownEndpoint(endpoint)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "rateLimits names endpoint '", endpoint,
              "'; known: lists, create_list, delete_list, subscribe, unsubscribe, all"));
        }
        if (rate.is_null() || (rate.is_number() && rate.get<double>() == 0)) {
          faults.rate_limits.erase(endpoint);
        } else if (rate.is_number() && rate.get<double>() > 0) {
          faults.rate_limits[endpoint] = rate.get<double>();
        } else {
          return absl::InvalidArgumentError(absl::StrCat(
              "rateLimits.", endpoint, " must be a positive number or null, got ", rate.dump()));
        }
      }
    } else if (key == "rateLimitBody") {
      if (value == "json") {
        faults.rate_limit_body = RateLimitBody::kJson;
      } else if (value == "text") {
        faults.rate_limit_body = RateLimitBody::kText;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("fault 'rateLimitBody' must be \"json\" or \"text\", got ", value.dump()));
      }
    } else if (key == "rateLimitReset") {
      if (!value.is_boolean()) {
        return absl::InvalidArgumentError(
            absl::StrCat("fault 'rateLimitReset' must be true or false, got ", value.dump()));
      }
      faults.rate_limit_reset = value.get<bool>();
    } else if (key == "retryAfterSeconds") {
      if (!(status = need_non_negative()).ok()) return status;
      faults.retry_after_seconds = value.get<int>();
    } else if (key == "fail5xxRatio") {
      if (!(status = need_number()).ok()) return status;
      if (!(status = CheckRatio(key, value.get<double>())).ok()) return status;
      faults.fail_5xx_ratio = value.get<double>();
    } else if (key == "failStatus") {
      if (!(status = need_number()).ok()) return status;
      int code = value.get<int>();
      if (code != 0 && (code < 400 || code > 599)) {
        return absl::InvalidArgumentError("fault 'failStatus' must be 0 or 400..599");
      }
      faults.fail_status = code;
    } else if (key == "seed") {
      if (!(status = need_non_negative()).ok()) return status;
      faults.seed = value.get<uint64_t>();
    } else if (key == "latencyMs") {
      if (!(status = need_non_negative()).ok()) return status;
      faults.latency_ms = value.get<int>();
    } else if (key == "invalidListWindowMs") {
      if (!(status = need_non_negative()).ok()) return status;
      faults.invalid_list_window_ms = value.get<int>();
    } else if (key == "dropRatio") {
      if (!(status = need_number()).ok()) return status;
      if (!(status = CheckRatio(key, value.get<double>())).ok()) return status;
      faults.drop_ratio = value.get<double>();
    } else if (key == "failNext") {
      if (!(status = need_non_negative()).ok()) return status;
      faults.fail_next = value.get<int>();
    } else if (key == "failNextEndpoint") {
      if (!value.is_string() ||
          (!value.get<std::string>().empty() && !IsKnownEndpoint(value.get<std::string>()))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "fault 'failNextEndpoint' must be \"\" or an endpoint name, got ", value.dump()));
      }
      faults.fail_next_endpoint = value.get<std::string>();
    } else if (key == "maxBatch") {
      if (!(status = need_number()).ok()) return status;
      if (value.get<int64_t>() < 1) {
        return absl::InvalidArgumentError("fault 'maxBatch' must be >= 1");
      }
      faults.max_batch = value.get<int>();
    } else if (key == "maxBodyBytes") {
      if (!(status = need_number()).ok()) return status;
      if (value.get<int64_t>() < 1) {
        return absl::InvalidArgumentError("fault 'maxBodyBytes' must be >= 1");
      }
      faults.max_body_bytes = value.get<int64_t>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown fault setting '", key, "'; GET /_sandbox/faults lists the known ones"));
    }
  }
  if (faults.fail_next_endpoint == "all") faults.fail_next_endpoint.clear();
  return faults;
}

FaultInjector::FaultInjector(FaultOptions faults, std::function<absl::Time()> clock)
    : clock_(std::move(clock)), faults_(std::move(faults)) {
  absl::MutexLock lock(&mu_);
  ResetLocked();
}

void FaultInjector::Set(FaultOptions faults) {
  absl::MutexLock lock(&mu_);
  faults_ = std::move(faults);
  ResetLocked();
}

FaultOptions FaultInjector::Get() const {
  absl::MutexLock lock(&mu_);
  return faults_;
}

void FaultInjector::ResetLocked() {
  random_.seed(faults_.seed);
  buckets_.clear();
  absl::Time now = clock_();
  for (const auto& [endpoint, rate] : faults_.rate_limits) {
    buckets_[endpoint] = Bucket{std::max(1.0, rate), now};
  }
}

FaultDecision FaultInjector::Decide(absl::string_view endpoint) {
  absl::MutexLock lock(&mu_);
  FaultDecision decision;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  if (faults_.drop_ratio > 0 && uniform(random_) < faults_.drop_ratio) {
    decision.kind = FaultDecision::Kind::kDrop;
    return decision;
  }
  if (faults_.fail_next > 0 &&
      (faults_.fail_next_endpoint.empty() || faults_.fail_next_endpoint == endpoint)) {
    --faults_.fail_next;
    decision.kind = FaultDecision::Kind::kFail;
    decision.status = 503;
    decision.json_body = true;
    return decision;
  }
  if (faults_.fail_5xx_ratio > 0 && uniform(random_) < faults_.fail_5xx_ratio) {
    static constexpr int kStatuses[] = {500, 502, 503};
    decision.kind = FaultDecision::Kind::kFail;
    decision.status = faults_.fail_status != 0 ? faults_.fail_status : kStatuses[random_() % 3];
    decision.json_body = random_() % 2 == 0;
    return decision;
  }
  return decision;
}

bool FaultInjector::TakeFromBucketLocked(const std::string& endpoint, absl::Time now) {
  auto rate = faults_.rate_limits.find(endpoint);
  if (rate == faults_.rate_limits.end()) return true;
  double capacity = std::max(1.0, rate->second);
  Bucket& bucket = buckets_.try_emplace(endpoint, Bucket{capacity, now}).first->second;
  if (now > bucket.last) {
    bucket.tokens =
        std::min(capacity, bucket.tokens + absl::ToDoubleSeconds(now - bucket.last) * rate->second);
    bucket.last = now;
  }
  if (bucket.tokens < 1.0) return false;
  bucket.tokens -= 1.0;
  return true;
}

bool FaultInjector::TakeRateToken(absl::string_view endpoint, absl::Time* next_token,
                                  double* limit) {
  absl::MutexLock lock(&mu_);
  if (faults_.rate_limits.empty()) return true;
  absl::Time now = clock_();
  // Check both before taking from either, so a refusal costs no token.
  std::string name(endpoint);
  for (const std::string& key : {name, std::string("all")}) {
    auto rate = faults_.rate_limits.find(key);
    if (rate == faults_.rate_limits.end()) continue;
    auto bucket = buckets_.find(key);
    if (bucket == buckets_.end()) continue;
    double tokens = bucket->second.tokens;
    if (now > bucket->second.last) {
      tokens += absl::ToDoubleSeconds(now - bucket->second.last) * rate->second;
    }
    if (tokens < 1.0) {
      if (next_token != nullptr) *next_token = now + absl::Seconds((1.0 - tokens) / rate->second);
      if (limit != nullptr) *limit = rate->second;
      return false;
    }
  }
  bool ok = TakeFromBucketLocked(name, now);
  if (name != "all") ok = TakeFromBucketLocked("all", now) && ok;
  return ok;
}

}  // namespace exportd::sandbox
