#include "server/notify/notifier.h"

#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/backoff.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/notify/webhook.h"
#include "server/notify/webhook_client.h"

namespace exportd::notify {
namespace {

bool IsSuccessStatus(int status) { return status >= 200 && status < 300; }

// Answers worth another attempt: the receiver is failing, slow or throttling.
bool IsRetryableStatus(int status) { return status >= 500 || status == 408 || status == 429; }

}  // namespace

absl::StatusOr<std::unique_ptr<Notifier>> Notifier::Create(store::Store* store,
                                                           const crypto::SecretBox* box,
                                                           NotifierOptions options) {
  if (store == nullptr || box == nullptr || options.clock == nullptr) {
    return absl::InvalidArgumentError("the notifier needs a store, a secret box and a clock");
  }
  if (options.replica_id.empty()) {
    return absl::InvalidArgumentError("the notifier needs the replica id (--replica-id)");
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "notification attempts must be at least 1, got ", options.max_attempts));
  }
  return std::unique_ptr<Notifier>(new Notifier(store, box, std::move(options)));
}

Notifier::~Notifier() { Shutdown(); }

void Notifier::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void Notifier::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Notifier::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void Notifier::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; };
      mu_.AwaitWithTimeout(absl::Condition(&ready), options_.poll_interval);
      if (stopping_) return;
      woken_ = false;
    }
    DeliverDue();
  }
}

void Notifier::DeliverDue() {
  // One at a time, each under a lease longer than its request: another
  // replica never sends the one this replica is sending.
  store::NotificationClaim claim;
  claim.holder = options_.replica_id;
  claim.lease = options_.request_timeout * 3 + absl::Seconds(30);
  claim.limit = 1;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    claim.now_micros = options_.clock->NowMicros();
    absl::StatusOr<std::vector<store::Notification>> claimed =
        store_->ClaimNotifications(claim);
    if (!claimed.ok()) {
      Log(LogLevel::kError, {"notifier"},
          absl::StrCat("cannot read the notification outbox: ", claimed.status().ToString()));
      return;
    }
    if (claimed->empty()) return;
    Deliver(std::move(claimed->front()));
  }
}

absl::Status Notifier::Attempt(const store::Notification& n, bool* permanent) {
  *permanent = false;
  absl::StatusOr<std::string> sealed = store_->GetNotifySecret(n.export_id);
  if (!sealed.ok()) {
    *permanent = true;
    return absl::FailedPreconditionError(absl::StrCat(
        "the export has no webhook signing secret any more (webhook removed or export "
        "deleted): ",
        sealed.status().message()));
  }
  absl::StatusOr<std::string> secret = OpenSigningSecret(*box_, n.export_id, *sealed);
  if (!secret.ok()) {
    *permanent = true;
    return secret.status();
  }
  const std::int64_t timestamp = absl::ToUnixSeconds(options_.clock->Now());
  WebhookRequest request;
  request.url = n.url;
  request.body = n.body;
  request.timeout = options_.request_timeout;
  request.headers = {{"Content-Type", "application/json"},
                     {kTimestampHeader, absl::StrCat(timestamp)},
                     {kSignatureHeader, Sign(*secret, timestamp, n.body)},
                     {kDeliveryHeader, absl::StrCat(n.run_id, "/", n.trigger)}};
  EXPORTD_ASSIGN_OR_RETURN(int status, PostWebhook(request));
  if (IsSuccessStatus(status)) return absl::OkStatus();
  *permanent = !IsRetryableStatus(status);
  return absl::UnavailableError(absl::StrCat("the webhook at ", WebhookHost(n.url),
                                             " answered HTTP ", status));
}

void Notifier::Deliver(store::Notification n) {
  bool permanent = false;
  const absl::Status sent = Attempt(n, &permanent);
  ++n.attempts;
  const std::string what =
      absl::StrCat("notification '", n.trigger, "' of run ", n.run_id, " (attempt ", n.attempts,
                   " of ", options_.max_attempts, ")");
  if (sent.ok()) {
    Count(n, "delivered");
    absl::Status gone = store_->DeleteNotification(n.run_id, n.trigger);
    if (!gone.ok()) {
      Log(LogLevel::kError, {"notifier", n.run_id, n.export_name},
          absl::StrCat(what, " was delivered but stays in the outbox (it may be sent again): ",
                       gone.ToString()));
    }
    return;
  }
  if (permanent || n.attempts >= options_.max_attempts) {
    Count(n, "gave_up");
    Log(LogLevel::kWarning, {"notifier", n.run_id, n.export_name},
        absl::StrCat(what, " was given up: ", sent.message()));
    store_->DeleteNotification(n.run_id, n.trigger).IgnoreError();
    return;
  }
  double jitter;
  if (options_.jitter) {
    jitter = options_.jitter();
  } else {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    jitter = std::uniform_real_distribution<double>(0, 1)(rng);
  }
  const absl::Duration wait =
      ExponentialBackoff(options_.backoff_base, n.attempts, jitter, options_.backoff_max);
  n.next_attempt_at_micros = absl::ToUnixMicros(options_.clock->Now() + wait);
  n.last_error = std::string(sent.message());
  Count(n, "retried");
  Log(LogLevel::kInfo, {"notifier", n.run_id, n.export_name},
      absl::StrCat(what, " failed, next attempt in ", absl::FormatDuration(wait), ": ",
                   sent.message()));
  absl::Status rescheduled = store_->RescheduleNotification(n, options_.replica_id);
  if (!rescheduled.ok()) {
    Log(LogLevel::kError, {"notifier", n.run_id, n.export_name},
        absl::StrCat("cannot reschedule ", what, ": ", rescheduled.ToString()));
  }
}

void Notifier::Count(const store::Notification& n, absl::string_view outcome) {
  if (options_.metrics != nullptr) options_.metrics->Notification(n.export_name, outcome);
}

}  // namespace exportd::notify
