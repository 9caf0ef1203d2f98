// The store conformance suite, webhook notifications: the export's sealed
// signing secret and the outbox (enqueue once, claims that two replicas never
// share, reschedule, delete, kept across a restart). Every test runs against
// SQLite and PostgreSQL (store_test_fixture.h).
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/store_test_fixture.h"

namespace exportd::store {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class NotificationStoreTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (HasFatalFailure()) return;
    v1::Export e;
    e.set_id("exp-1");
    e.set_name("vip");
    ASSERT_TRUE(store_->CreateExport(e).ok());
  }
  static Notification Make(const std::string& run_id, const std::string& trigger,
                           std::int64_t due) {
    Notification n;
    n.run_id = run_id;
    n.trigger = trigger;
    n.export_id = "exp-1";
    n.export_name = "vip";
    n.url = "http://127.0.0.1:1/hook";
    n.body = "{\"run_id\":\"" + run_id + "\"}";
    n.created_at_micros = due;
    n.next_attempt_at_micros = due;
    return n;
  }
  static NotificationClaim Claim(const std::string& holder, std::int64_t now, int limit = 16) {
    NotificationClaim claim;
    claim.holder = holder;
    claim.now_micros = now;
    claim.lease = absl::Seconds(60);
    claim.limit = limit;
    return claim;
  }
};

TEST_P(NotificationStoreTest, SigningSecretIsKeptWithTheExportAndGoesWithIt) {
  auto none = store_->GetNotifySecret("exp-1");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("no webhook signing secret"));
  ASSERT_TRUE(store_->PutNotifySecret("exp-1", std::string("\x02sealed\0bytes", 13)).ok());
  auto sealed = store_->GetNotifySecret("exp-1");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(*sealed, std::string("\x02sealed\0bytes", 13));
  // Updating the export keeps it; the export's data never holds it.
  v1::Export e = *store_->GetExport("exp-1");
  e.set_notify_url("http://127.0.0.1:1/hook");
  ASSERT_TRUE(store_->UpdateExport(e).ok());
  EXPECT_TRUE(store_->GetNotifySecret("exp-1").ok());
  EXPECT_THAT(store_->GetExport("exp-1")->SerializeAsString(), Not(HasSubstr("sealed")));
  // Removed with "", and gone with the export.
  ASSERT_TRUE(store_->PutNotifySecret("exp-1", "").ok());
  EXPECT_EQ(store_->GetNotifySecret("exp-1").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->PutNotifySecret("exp-1", "sealed").ok());
  ASSERT_TRUE(store_->DeleteExport("exp-1").ok());
  EXPECT_EQ(store_->GetNotifySecret("exp-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->PutNotifySecret("exp-1", "sealed").code(), absl::StatusCode::kNotFound);
}

TEST_P(NotificationStoreTest, EnqueueIsIdempotentPerRunAndTrigger) {
  ASSERT_TRUE(store_->EnqueueNotification(Make("run-1", "failed", 100)).ok());
  Notification again = Make("run-1", "failed", 100);
  again.body = "{}";
  ASSERT_TRUE(store_->EnqueueNotification(again).ok());
  ASSERT_TRUE(store_->EnqueueNotification(Make("run-1", "rejections", 100)).ok());
  auto all = store_->ListNotifications();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  for (const Notification& n : *all) {
    EXPECT_EQ(n.run_id, "run-1");
    EXPECT_EQ(n.body, "{\"run_id\":\"run-1\"}");  // The first enqueue's.
  }
}

TEST_P(NotificationStoreTest, AClaimedNotificationIsNobodyElsesUntilItsLeaseEnds) {
  ASSERT_TRUE(store_->EnqueueNotification(Make("run-1", "failed", 100)).ok());
  ASSERT_TRUE(store_->EnqueueNotification(Make("run-2", "failed", 200)).ok());
  ASSERT_TRUE(store_->EnqueueNotification(Make("run-3", "failed", 5000)).ok());  // Not due.
  auto other = OpenAnother();  // Another replica on the same data.
  ASSERT_TRUE(other.ok()) << other.status();

  auto mine = store_->ClaimNotifications(Claim("a", 1000, 1));
  ASSERT_TRUE(mine.ok()) << mine.status();
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ(mine->front().run_id, "run-1");  // Oldest due first.
  EXPECT_EQ(mine->front().body, "{\"run_id\":\"run-1\"}");
  auto theirs = (*other)->ClaimNotifications(Claim("b", 1000));
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  ASSERT_EQ(theirs->size(), 1u);
  EXPECT_EQ(theirs->front().run_id, "run-2");
  EXPECT_TRUE(store_->ClaimNotifications(Claim("a", 1000))->empty());

  // After the lease (60 s), run-1 is claimable again (its holder died).
  const std::int64_t later = 1000 + 61'000'000;
  auto taken = (*other)->ClaimNotifications(Claim("b", later));
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_EQ(taken->size(), 3u);
}

TEST_P(NotificationStoreTest, RescheduleIsForTheHolderAndDeleteEndsIt) {
  ASSERT_TRUE(store_->EnqueueNotification(Make("run-1", "failed", 100)).ok());
  auto claimed = store_->ClaimNotifications(Claim("a", 1000));
  ASSERT_TRUE(claimed.ok() && claimed->size() == 1u);
  Notification n = claimed->front();
  n.attempts = 1;
  n.next_attempt_at_micros = 2000;
  n.last_error = "HTTP 500";
  // Not the holder: nothing changes.
  ASSERT_TRUE(store_->RescheduleNotification(n, "b").ok());
  EXPECT_EQ(store_->ListNotifications()->front().attempts, 0);
  ASSERT_TRUE(store_->RescheduleNotification(n, "a").ok());
  auto listed = store_->ListNotifications();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().attempts, 1);
  EXPECT_EQ(listed->front().last_error, "HTTP 500");
  EXPECT_TRUE(store_->ClaimNotifications(Claim("a", 1999))->empty());  // Not due yet.
  auto again = store_->ClaimNotifications(Claim("b", 2000));
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ(again->front().attempts, 1);
  ASSERT_TRUE(store_->DeleteNotification("run-1", "failed").ok());
  EXPECT_TRUE(store_->ListNotifications()->empty());
}

TEST_P(NotificationStoreTest, TheOutboxSurvivesARestart) {
  ASSERT_TRUE(store_->EnqueueNotification(Make("run-1", "recovered", 100)).ok());
  Reopen();
  auto claimed = store_->ClaimNotifications(Claim("a", 1000));
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(claimed->front().trigger, "recovered");
  EXPECT_EQ(claimed->front().url, "http://127.0.0.1:1/hook");
  EXPECT_EQ(claimed->front().export_name, "vip");
}

INSTANTIATE_TEST_SUITE_P(Stores, NotificationStoreTest, EveryStore(), StoreName());

}  // namespace
}  // namespace exportd::store
