// The Notifier against a webhook receiver on 127.0.0.1 (tests/support), on
// SQLite and PostgreSQL: signed deliveries that verify, retries after a 500,
// giving up, the outbox across a restart, and two replicas sending each
// notification once.
#include "server/notify/notifier.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/notify/outbox.h"
#include "server/notify/webhook.h"
#include "server/observability/testing/exposition.h"
#include "server/store/store_test_fixture.h"
#include "tests/support/webhook_receiver.h"

namespace exportd::notify {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// HMAC-SHA256 of "<timestamp>.<body>" under `secret`, computed here with
// libcrypto's one-shot EVP_MAC-free API, apart from webhook.cc.
std::string ExpectedSignature(const std::string& secret, const std::string& timestamp,
                              const std::string& body) {
  const std::string message = timestamp + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &size);
  return "sha256=" + absl::BytesToHexString(std::string(reinterpret_cast<char*>(mac), size));
}

class NotifierTest : public store::StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (HasFatalFailure()) return;
    box_ = *crypto::SecretBox::FromKey(std::string(32, 'k'));
    auto receiver = testing::WebhookReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = std::move(*receiver);
    v1::Export e;
    e.set_id("exp-1");
    e.set_name("vip");
    e.set_notify_url(receiver_->url());
    e.add_notify_on("failed");
    e.add_notify_on("recovered");
    e.set_notify_secret_set(true);
    ASSERT_TRUE(store_->CreateExport(e).ok());
    secret_ = *NewSigningSecret();
    ASSERT_EQ(secret_.size(), 64u);
    ASSERT_TRUE(store_->PutNotifySecret("exp-1", *SealSigningSecret(*box_, "exp-1", secret_)).ok());
  }
  void TearDown() override {
    notifiers_.clear();
    receiver_.reset();
    StoreTest::TearDown();
  }
  NotifierOptions Options(const std::string& replica = "replica-a") {
    NotifierOptions options;
    options.replica_id = replica;
    options.max_attempts = 3;
    options.backoff_base = absl::Milliseconds(20);
    options.poll_interval = absl::Milliseconds(10);
    options.request_timeout = absl::Seconds(5);
    options.jitter = [] { return 0.0; };
    options.metrics = &metrics_;
    return options;
  }
  Notifier& StartNotifier(store::Store* store, NotifierOptions options) {
    auto notifier = Notifier::Create(store, box_.get(), std::move(options));
    EXPECT_TRUE(notifier.ok()) << notifier.status();
    (*notifier)->Start();
    notifiers_.push_back(std::move(*notifier));
    return *notifiers_.back();
  }
  // A failed run of exp-1, its notification enqueued as the engine does.
  void EnqueueFailedRun(const std::string& run_id) {
    v1::Run run;
    run.set_id(run_id);
    run.set_export_id("exp-1");
    run.set_export_name("vip");
    run.set_state(v1::RUN_STATE_FAILED);
    run.set_message("the destination refused the API key");
    run.set_attempt(3);
    run.set_finished_at_micros(absl::ToUnixMicros(absl::FromUnixSeconds(1'800'000'000)));
    auto* p = run.add_segments();
    p->set_segment_id("seg-1");
    p->set_segment_name("VIP");
    p->set_added(7);
    p->set_rejected(1);
    ASSERT_TRUE(store_->CreateRun(run).ok());
    auto queued = RunNotifications(*store_, run, absl::ToUnixMicros(absl::Now()));
    ASSERT_TRUE(queued.ok()) << queued.status();
    ASSERT_EQ(queued->size(), 1u);
    ASSERT_TRUE(store_->EnqueueNotification(queued->front()).ok());
  }
  // Polls until the outbox is empty; false after a deadline.
  bool OutboxEmpties() {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      auto pending = store_->ListNotifications();
      if (pending.ok() && pending->empty()) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }
  double Counted(const std::string& outcome) {
    auto e = observability::testing::ParseExposition(metrics_.Text());
    EXPECT_TRUE(e.ok()) << e.status();
    return e->Value("exportd_notifications_total", {{"export", "vip"}, {"outcome", outcome}});
  }

  observability::Metrics metrics_{"test", 1};
  std::unique_ptr<crypto::SecretBox> box_;
  std::unique_ptr<testing::WebhookReceiver> receiver_;
  std::string secret_;
  std::vector<std::unique_ptr<Notifier>> notifiers_;
};

TEST_P(NotifierTest, DeliversASignedBodyThatVerifiesWithTheSecret) {
  EnqueueFailedRun("run-1");
  StartNotifier(store_.get(), Options()).Wake();
  ASSERT_TRUE(receiver_->WaitForRequests(1, absl::Seconds(30)));
  const auto request = receiver_->requests().front();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/hook");
  EXPECT_EQ(request.Header("content-type"), "application/json");
  EXPECT_EQ(request.Header("x-exportd-delivery"), "run-1/failed");
  const std::string timestamp = request.Header("x-exportd-timestamp");
  std::int64_t seconds = 0;
  ASSERT_TRUE(absl::SimpleAtoi(timestamp, &seconds)) << timestamp;
  EXPECT_LE(std::abs(absl::ToUnixSeconds(absl::Now()) - seconds), 60);
  EXPECT_EQ(request.Header("x-exportd-signature"),
            ExpectedSignature(secret_, timestamp, request.body));
  EXPECT_NE(request.Header("x-exportd-signature"),
            ExpectedSignature(std::string(64, '0'), timestamp, request.body));

  const auto body = nlohmann::json::parse(request.body);
  EXPECT_EQ(body["run_id"], "run-1");
  EXPECT_EQ(body["export"]["id"], "exp-1");
  EXPECT_EQ(body["export"]["name"], "vip");
  EXPECT_EQ(body["state"], "failed");
  EXPECT_EQ(body["trigger"], "failed");
  EXPECT_EQ(body["message"], "the destination refused the API key");
  EXPECT_EQ(body["finished_at"], "2027-01-15T08:00:00+00:00");
  ASSERT_EQ(body["segments"].size(), 1u);
  EXPECT_EQ(body["segments"][0]["segment_name"], "VIP");
  EXPECT_EQ(body["segments"][0]["added"], 7);
  EXPECT_EQ(body["segments"][0]["rejected"], 1);
  EXPECT_EQ(body["segments"][0]["unchanged"], 0);
  // The secret is nowhere in what was sent.
  EXPECT_THAT(request.body, Not(HasSubstr(secret_)));

  EXPECT_TRUE(OutboxEmpties());
  EXPECT_EQ(Counted("delivered"), 1);
}

TEST_P(NotifierTest, A500IsRetriedThenDelivered) {
  receiver_->AnswerNext({500});
  EnqueueFailedRun("run-1");
  StartNotifier(store_.get(), Options()).Wake();
  ASSERT_TRUE(receiver_->WaitForRequests(2, absl::Seconds(30)));
  const auto requests = receiver_->requests();
  EXPECT_EQ(requests[0].answered, 500);
  EXPECT_EQ(requests[1].answered, 200);
  EXPECT_EQ(requests[0].body, requests[1].body);
  EXPECT_EQ(requests[1].Header("x-exportd-delivery"), "run-1/failed");
  EXPECT_EQ(requests[1].Header("x-exportd-signature"),
            ExpectedSignature(secret_, requests[1].Header("x-exportd-timestamp"),
                              requests[1].body));
  EXPECT_TRUE(OutboxEmpties());
  EXPECT_EQ(Counted("retried"), 1);
  EXPECT_EQ(Counted("delivered"), 1);
}

TEST_P(NotifierTest, GivesUpAfterItsAttempts) {
  receiver_->AnswerNext({500, 503, 500, 500});
  EnqueueFailedRun("run-1");
  Notifier& notifier = StartNotifier(store_.get(), Options());  // 3 attempts
  notifier.Wake();
  ASSERT_TRUE(receiver_->WaitForRequests(3, absl::Seconds(30)));
  EXPECT_TRUE(OutboxEmpties());
  notifier.DeliverDue();
  EXPECT_EQ(receiver_->requests().size(), 3u);
  EXPECT_EQ(Counted("retried"), 2);
  EXPECT_EQ(Counted("gave_up"), 1);
  EXPECT_EQ(Counted("delivered"), 0);
}

TEST_P(NotifierTest, AClientErrorIsNotRetried) {
  receiver_->AnswerNext({404});
  EnqueueFailedRun("run-1");
  StartNotifier(store_.get(), Options()).Wake();
  ASSERT_TRUE(receiver_->WaitForRequests(1, absl::Seconds(30)));
  EXPECT_TRUE(OutboxEmpties());
  EXPECT_EQ(receiver_->requests().size(), 1u);
  EXPECT_EQ(Counted("gave_up"), 1);
}

TEST_P(NotifierTest, ANewInstanceDeliversWhatWasPending) {
  // The first instance gets a 500 and stops before its retry is due.
  receiver_->AnswerNext({500});
  EnqueueFailedRun("run-1");
  NotifierOptions slow = Options();
  slow.backoff_base = absl::Hours(1);
  {
    auto first = Notifier::Create(store_.get(), box_.get(), slow);
    ASSERT_TRUE(first.ok());
    (*first)->DeliverDue();
  }
  // The receiver records a request just after answering it: wait for it.
  ASSERT_TRUE(receiver_->WaitForRequests(1, absl::Seconds(30)));
  ASSERT_EQ(receiver_->requests().size(), 1u);
  auto pending = store_->ListNotifications();
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ(pending->front().attempts, 1);
  EXPECT_THAT(pending->front().last_error, HasSubstr("answered HTTP 500"));

  // A restart: a new store and notifier on the same data, an hour later.
  Reopen();
  FakeClock later(absl::Now() + absl::Hours(2));
  NotifierOptions options = Options();
  options.clock = &later;
  StartNotifier(store_.get(), options).Wake();
  ASSERT_TRUE(receiver_->WaitForRequests(2, absl::Seconds(30)));
  EXPECT_EQ(receiver_->requests()[1].answered, 200);
  EXPECT_TRUE(OutboxEmpties());
}

TEST_P(NotifierTest, TwoReplicasSendEachNotificationOnce) {
  for (int i = 0; i < 10; ++i) EnqueueFailedRun("run-" + std::to_string(i));
  auto other = OpenAnother();
  ASSERT_TRUE(other.ok()) << other.status();
  StartNotifier(store_.get(), Options("replica-a")).Wake();
  StartNotifier(other->get(), Options("replica-b")).Wake();
  ASSERT_TRUE(receiver_->WaitForRequests(10, absl::Seconds(30)));
  EXPECT_TRUE(OutboxEmpties());
  notifiers_.clear();
  std::multiset<std::string> deliveries;
  for (const auto& r : receiver_->requests()) deliveries.insert(r.Header("x-exportd-delivery"));
  EXPECT_EQ(deliveries.size(), 10u);
  for (const std::string& d : deliveries) EXPECT_EQ(deliveries.count(d), 1u) << d;
}

TEST_P(NotifierTest, ARemovedWebhookIsGivenUpNotSentUnsigned) {
  EnqueueFailedRun("run-1");
  ASSERT_TRUE(store_->PutNotifySecret("exp-1", "").ok());
  auto notifier = Notifier::Create(store_.get(), box_.get(), Options());
  ASSERT_TRUE(notifier.ok());
  (*notifier)->DeliverDue();
  EXPECT_TRUE(receiver_->requests().empty());
  EXPECT_TRUE(store_->ListNotifications()->empty());
  EXPECT_EQ(Counted("gave_up"), 1);
}

INSTANTIATE_TEST_SUITE_P(Stores, NotifierTest, store::EveryStore(), store::StoreName());

}  // namespace
}  // namespace exportd::notify
