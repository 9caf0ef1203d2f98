// The store conformance suite, the run queue: claims, leases, heartbeats and
// the fencing of every write by the lease's epoch, on SQLite and PostgreSQL.
#include <cstdlib>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/store_test_fixture.h"

namespace exportd::store {
namespace {

using ::testing::HasSubstr;

constexpr std::int64_t kT0 = 1'700'000'000'000'000;  // micros
constexpr std::int64_t kSecond = 1'000'000;

class RunQueueTest : public StoreTest {
 protected:
  v1::Run Queue(const std::string& id, const std::string& export_id) {
    v1::Run run;
    run.set_id(id);
    run.set_export_id(export_id);
    run.set_state(v1::RUN_STATE_QUEUED);
    run.add_segments()->set_segment_id("seg-1");
    EXPECT_TRUE(store_->CreateRun(run).ok());
    return run;
  }
  std::optional<ClaimedRun> Claim(const std::string& holder, std::int64_t now) {
    ClaimRequest request;
    request.holder = holder;
    request.now_micros = now;
    request.lease = absl::Seconds(15);
    auto claimed = store_->ClaimNextRun(request);
    EXPECT_TRUE(claimed.ok()) << claimed.status();
    return claimed.ok() ? *claimed : std::nullopt;
  }
  BatchCommit Batch(const ClaimedRun& claimed, const std::string& profile_id) {
    BatchCommit commit;
    commit.export_id = claimed.run.export_id();
    commit.segment_id = "seg-1";
    commit.delivered.push_back({1, profile_id, 2, claimed.run.id(), "v"});
    commit.checkpoint = claimed.run;
    commit.checkpoint.mutable_segments(0)->set_added(1);
    commit.lease = claimed.lease;
    return commit;
  }

};

TEST_P(RunQueueTest, AClaimHoldsTheRunUntilItsLeaseExpiresOrIsReleased) {
  Queue("run-1", "exp-1");
  std::optional<ClaimedRun> a = Claim("replica-a", kT0);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->run.id(), "run-1");
  EXPECT_EQ(a->lease.holder, "replica-a");
  EXPECT_EQ(a->lease.epoch, 1);
  EXPECT_EQ(a->lease.expires_at_micros, kT0 + 15 * kSecond);
  EXPECT_EQ(a->run.replica(), "replica-a");
  EXPECT_EQ(store_->GetRun("run-1")->replica(), "replica-a");
  EXPECT_EQ(store_->GetRun("run-1")->lease_expires_at_micros(), kT0 + 15 * kSecond);
  // Held: nobody else gets it, however often they ask before the expiry.
  EXPECT_FALSE(Claim("replica-b", kT0 + 14 * kSecond).has_value());

  // The heartbeat moves the expiry.
  auto renewed = store_->RenewLease(a->lease, kT0 + 10 * kSecond, absl::Seconds(15));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->expires_at_micros, kT0 + 25 * kSecond);
  EXPECT_FALSE(Claim("replica-b", kT0 + 20 * kSecond).has_value());

  // Released: claimable at once, with the next epoch.
  a->lease.expires_at_micros = renewed->expires_at_micros;
  ASSERT_TRUE(store_->ReleaseLease(a->lease).ok());
  EXPECT_EQ(store_->GetRun("run-1")->lease_expires_at_micros(), 0);
  std::optional<ClaimedRun> b = Claim("replica-b", kT0 + 21 * kSecond);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->lease.epoch, 2);
  EXPECT_EQ(b->run.replica(), "replica-b");
}

TEST_P(RunQueueTest, AReplicaThatLostItsLeaseCannotCommitNorUpdateTheRun) {
  Queue("run-1", "exp-1");
  ASSERT_TRUE(store_->PutAudienceState("exp-1", "seg-1", {"list-1", 7}).ok());
  std::optional<ClaimedRun> a = Claim("replica-a", kT0);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(store_->CommitBatch(Batch(*a, "p1")).ok());
  // replica-a stalls past its expiry; replica-b takes the run over.
  std::optional<ClaimedRun> b = Claim("replica-b", kT0 + 16 * kSecond);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->run.segments(0).added(), 1) << "resumes from the last committed batch";
  EXPECT_EQ(b->lease.epoch, 2);

  absl::Status refused = store_->CommitBatch(Batch(*a, "p2"));
  EXPECT_EQ(refused.code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(IsLeaseLost(refused));
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("run 'run-1': replica 'replica-a' lost its lease (epoch 1): replica "
                        "'replica-b' holds it now (epoch 2)"));
  // Nothing of the refused batch was written.
  int delivered = 0;
  ASSERT_TRUE(store_
                  ->ForEachDelivered("exp-1", "seg-1",
                                     [&](const DeliveredView& row) {
                                       ++delivered;
                                       EXPECT_EQ(row.profile_id, "p1");
                                       return absl::OkStatus();
                                     })
                  .ok());
  EXPECT_EQ(delivered, 1);

  v1::Run stale = a->run;
  stale.set_state(v1::RUN_STATE_FAILED);
  EXPECT_TRUE(IsLeaseLost(store_->UpdateLeasedRun(stale, a->lease)));
  EXPECT_TRUE(IsLeaseLost(store_->RenewLease(a->lease, kT0 + 17 * kSecond, absl::Seconds(15))
                              .status()));
  EXPECT_TRUE(IsLeaseLost(store_->ReleaseLease(a->lease)));
  EXPECT_EQ(store_->GetRun("run-1")->state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(store_->GetRun("run-1")->replica(), "replica-b");

  // The holder commits; a write without a lease is refused.
  ASSERT_TRUE(store_->CommitBatch(Batch(*b, "p2")).ok());
  BatchCommit unleased = Batch(*b, "p3");
  unleased.lease = RunLease();
  absl::Status no_lease = store_->CommitBatch(unleased);
  EXPECT_EQ(no_lease.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(no_lease.message()), HasSubstr("carries no lease"));
}

TEST_P(RunQueueTest, ClaimsAreOldestFirstOneRunPerExportAndWaitForTheBackoff) {
  Queue("run-1", "exp-1");
  Queue("run-2", "exp-1");  // A follow-up of the same export.
  v1::Run retrying = Queue("run-3", "exp-2");
  retrying.set_state(v1::RUN_STATE_FAILED_RETRYING);
  retrying.set_next_attempt_at_micros(kT0 + 5 * kSecond);
  ASSERT_TRUE(store_->UpdateRun(retrying).ok());
  Queue("run-4", "exp-3");

  std::optional<ClaimedRun> first = Claim("a", kT0);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->run.id(), "run-1");
  // run-2 waits for run-1 (same export); run-3 for its backoff.
  std::optional<ClaimedRun> second = Claim("b", kT0);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->run.id(), "run-4");
  EXPECT_FALSE(Claim("b", kT0).has_value());
  std::optional<ClaimedRun> due = Claim("b", kT0 + 6 * kSecond);
  ASSERT_TRUE(due.has_value());
  EXPECT_EQ(due->run.id(), "run-3");

  // A queued run nobody holds can be changed; a held one cannot.
  auto joined = store_->UpdateUnclaimedRun("run-2", kT0, [](v1::Run& run) {
    run.set_full(true);
    return absl::OkStatus();
  });
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_TRUE(store_->GetRun("run-2")->full());
  auto held = store_->UpdateUnclaimedRun("run-1", kT0, [](v1::Run&) { return absl::OkStatus(); });
  EXPECT_EQ(held.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(held.status().message()), HasSubstr("is held by replica 'a'"));
}

TEST_P(RunQueueTest, ARunWaitsUnclaimedWhileASegmentOfItsExportIsUploaded) {
  v1::Segment segment;
  segment.set_id("seg-1");
  segment.set_name("vip");
  ASSERT_TRUE(store_->CreateSegment(segment).ok());
  v1::Export e;
  e.set_id("exp-1");
  e.set_name("vip-export");
  e.set_connection_id("conn-1");
  e.add_segments("seg-1");
  e.set_active(true);
  ASSERT_TRUE(store_->CreateExport(e).ok());
  Queue("run-1", "exp-1");
  Queue("run-2", "exp-other");
  {
    auto upload = store_->BeginSnapshot("seg-1", {});
    ASSERT_TRUE(upload.ok()) << upload.status();
    // Never leased, not even for a moment: a trigger meanwhile can join it.
    std::optional<ClaimedRun> other = Claim("a", kT0);
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(other->run.id(), "run-2");
    EXPECT_FALSE(Claim("a", kT0).has_value());
    EXPECT_TRUE(store_->UpdateUnclaimedRun("run-1", kT0, [](v1::Run&) {
                        return absl::OkStatus();
                      }).ok());
  }  // The upload ends (aborted).
  std::optional<ClaimedRun> waited = Claim("a", kT0);
  ASSERT_TRUE(waited.has_value());
  EXPECT_EQ(waited->run.id(), "run-1");
}

TEST_P(RunQueueTest, ACancelRequestReachesTheHolderAndLeasesOfAReplicaEndAtOnce) {
  Queue("run-1", "exp-1");
  Queue("run-2", "exp-2");
  std::optional<ClaimedRun> a = Claim("replica-a", kT0);
  std::optional<ClaimedRun> b = Claim("replica-b", kT0);
  ASSERT_TRUE(a.has_value() && b.has_value());
  ASSERT_TRUE(store_->RequestCancel("run-1").ok());
  EXPECT_TRUE(store_->RenewLease(a->lease, kT0, absl::Seconds(15))->cancel_requested);
  EXPECT_FALSE(store_->RenewLease(b->lease, kT0, absl::Seconds(15))->cancel_requested);

  // replica-a restarts: its runs are claimable at once, replica-b's are not.
  ASSERT_TRUE(store_->ReleaseLeasesOf("replica-a").ok());
  std::optional<ClaimedRun> again = Claim("replica-a", kT0 + kSecond);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->run.id(), "run-1");
  EXPECT_TRUE(again->cancel_requested);
  EXPECT_FALSE(Claim("replica-c", kT0 + kSecond).has_value());
  ASSERT_TRUE(store_->ReleaseLeasesOf("").ok());
  std::optional<ClaimedRun> c = Claim("replica-c", kT0 + kSecond);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->run.id(), "run-1");  // Oldest first.
}

TEST_P(RunQueueTest, ARunEndsTogetherWithItsNotificationsOrNotAtAll) {
  v1::Export e;
  e.set_id("exp-1");
  e.set_name("vip");
  ASSERT_TRUE(store_->CreateExport(e).ok());
  Queue("run-1", "exp-1");
  std::optional<ClaimedRun> a = Claim("replica-a", kT0);
  ASSERT_TRUE(a.has_value());
  Notification n;
  n.run_id = "run-1";
  n.trigger = "failed";
  n.export_id = "exp-1";
  n.export_name = "vip";
  n.url = "http://127.0.0.1:1/hook";
  n.body = "{}";
  n.created_at_micros = n.next_attempt_at_micros = kT0;
  v1::Run ended = a->run;
  ended.set_state(v1::RUN_STATE_FAILED);

  // replica-a stalled past its lease and replica-b holds the run: neither the
  // end nor its notification is written.
  std::optional<ClaimedRun> b = Claim("replica-b", kT0 + 16 * kSecond);
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(IsLeaseLost(store_->EndLeasedRun(ended, a->lease, {n})));
  EXPECT_EQ(store_->GetRun("run-1")->state(), v1::RUN_STATE_QUEUED);
  EXPECT_TRUE(store_->ListNotifications()->empty());
  RunLease another = b->lease;
  another.run_id = "run-2";
  EXPECT_EQ(store_->EndLeasedRun(ended, another, {n}).code(),
            absl::StatusCode::kInvalidArgument)
      << "a run is written under its own lease only";

  // The holder ends it: both are there.
  ended = b->run;
  ended.set_state(v1::RUN_STATE_FAILED);
  ASSERT_TRUE(store_->EndLeasedRun(ended, b->lease, {n}).ok());
  EXPECT_EQ(store_->GetRun("run-1")->state(), v1::RUN_STATE_FAILED);
  auto queued = store_->ListNotifications();
  ASSERT_TRUE(queued.ok()) << queued.status();
  ASSERT_EQ(queued->size(), 1u);
  EXPECT_EQ(queued->front().run_id, "run-1");
  EXPECT_EQ(queued->front().trigger, "failed");
}

INSTANTIATE_TEST_SUITE_P(Stores, RunQueueTest, EveryStore(), StoreName());

}  // namespace
}  // namespace exportd::store
