// The differ on its own: delivered state + snapshot -> adds, updates, moves,
// duplicates and removals by identifier.
#include "server/sync/differ.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::sync {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Hashes are chosen by the test: profile "pN" has id hash N.
store::DeliveredView Delivered(absl::string_view id, std::uint64_t id_hash,
                               std::uint64_t ident_hash, std::uint64_t value_hash) {
  store::DeliveredView row;
  row.profile_id = id;
  row.id_hash = id_hash;
  row.ident_hash = ident_hash;
  row.value_hash = value_hash;
  return row;
}

Member M(absl::string_view id, std::uint64_t id_hash, std::uint64_t ident_hash,
         std::uint64_t value_hash) {
  return {id, id_hash, ident_hash, value_hash};
}

std::vector<std::string> Ids(const std::vector<Candidate>& candidates) {
  std::vector<std::string> out;
  for (const auto& c : candidates) out.emplace_back(c.profile_id);
  return out;
}

// The differ as the merge in segment_sync.cc drives it: the delivered
// entries by profile id, handed to Classify with their members, and the
// removal candidates read off the entries afterwards (in profile-id order).
class Diff {
 public:
  explicit Diff(DifferOptions options) : differ_(options) {}

  absl::Status AddDelivered(const store::DeliveredView& row, bool this_run) {
    DeliveredEntry e;
    e.value_hash = row.value_hash;
    e.ident_hash = row.ident_hash;
    e.state = row.state;
    e.this_run = this_run;
    delivered_[std::string(row.profile_id)] = e;
    return absl::OkStatus();
  }
  void ReserveIdentifiers(std::int64_t n) { differ_.ReserveIdentifiers(n); }
  void AddIdentifiers(absl::Span<const std::uint64_t> h) {
    EXPECT_TRUE(differ_.AddIdentifiers(h).ok());
  }
  void SealIdentifiers() { EXPECT_TRUE(differ_.SealIdentifiers().ok()); }
  bool InSnapshot(std::uint64_t h) const { return differ_.InSnapshot(h); }
  bool IsDuplicate(std::uint64_t h) const { return differ_.IsDuplicate(h); }
  Change Classify(const Member& m, bool resolved = false, bool* retry = nullptr) {
    return differ_.Classify(m, Entry(m.profile_id), resolved, retry);
  }
  size_t ResolveDuplicates(absl::Span<const Member> group) {
    std::vector<DeliveredEntry*> entries;
    for (const Member& m : group) entries.push_back(Entry(m.profile_id));
    return differ_.ResolveDuplicates(group, entries);
  }
  std::vector<Candidate> RemovalCandidates() const {
    std::vector<Candidate> out;
    for (const auto& [id, e] : delivered_) {
      if (auto why = differ_.RemovalReason(e)) {
        out.push_back({id, *why, e.delivered(), e.ident_hash});
      }
    }
    return out;
  }
  Fate Decide(const Candidate& c, std::uint64_t old_ident) const {
    return differ_.Decide(c, old_ident);
  }

 private:
  DeliveredEntry* Entry(absl::string_view id) {
    auto it = delivered_.find(std::string(id));
    return it == delivered_.end() ? nullptr : &it->second;
  }
  Differ differ_;
  std::map<std::string, DeliveredEntry> delivered_;
};

// Runs pass 0 over `snapshot`.
void Seal(Diff& differ, const std::vector<Member>& snapshot) {
  std::vector<std::uint64_t> hashes;
  for (const auto& m : snapshot) {
    if (m.ident_hash != 0) hashes.push_back(m.ident_hash);
  }
  differ.AddIdentifiers(hashes);
  differ.SealIdentifiers();
}

// Members whose last attempt was rejected: retried apart from real changes;
// one never delivered is new again, and when it leaves only its row goes.
TEST(DifferTest, RejectedMembersAreRetriedAndNeverDeliveredOnesAreNotRemoved) {
  Diff differ({.by_identifier = true, .mirror = true});
  store::DeliveredView never = Delivered("p1", 1, 100, 10);
  never.state = store::DeliveredState::kRejected;
  store::DeliveredView update_rejected = Delivered("p2", 2, 200, 20);
  update_rejected.state = store::DeliveredState::kUpdateRejected;
  store::DeliveredView gone = Delivered("p3", 3, 300, 30);
  gone.state = store::DeliveredState::kRejected;
  ASSERT_TRUE(differ.AddDelivered(never, false).ok());
  ASSERT_TRUE(differ.AddDelivered(update_rejected, false).ok());
  ASSERT_TRUE(differ.AddDelivered(gone, false).ok());
  ASSERT_TRUE(differ.AddDelivered(Delivered("p4", 4, 400, 40), false).ok());
  std::vector<Member> snapshot = {M("p1", 1, 100, 10), M("p2", 2, 200, 21), M("p4", 4, 400, 41)};
  Seal(differ, snapshot);
  bool retry = false;
  EXPECT_EQ(differ.Classify(snapshot[0], false, &retry), Change::kAdd) << "never delivered";
  EXPECT_TRUE(retry);
  EXPECT_EQ(differ.Classify(snapshot[1], false, &retry), Change::kUpdate);
  EXPECT_TRUE(retry);
  EXPECT_EQ(differ.Classify(snapshot[2], false, &retry), Change::kUpdate);
  EXPECT_FALSE(retry) << "a real change";
  std::vector<Candidate> candidates = differ.RemovalCandidates();
  ASSERT_EQ(Ids(candidates), std::vector<std::string>({"p3"}));
  EXPECT_FALSE(candidates[0].delivered);
  EXPECT_EQ(differ.Decide(candidates[0], 300), Fate::kForget) << "nothing of p3 is at the destination";
}

TEST(DifferTest, ByProfileIdWithoutAnIdentifier) {
  Diff differ({/*by_identifier=*/false, /*full=*/false, /*mirror=*/true});
  ASSERT_TRUE(differ.AddDelivered(Delivered("p1", 1, 0, 10), false).ok());
  ASSERT_TRUE(differ.AddDelivered(Delivered("p2", 2, 0, 20), false).ok());
  ASSERT_TRUE(differ.AddDelivered(Delivered("p3", 3, 0, 30), true).ok());
  ASSERT_TRUE(differ.AddDelivered(Delivered("p4", 4, 0, 40), false).ok());
  Seal(differ, {});
  EXPECT_EQ(differ.Classify(M("p1", 1, 0, 10)), Change::kUnchanged);
  EXPECT_EQ(differ.Classify(M("p2", 2, 0, 21)), Change::kUpdate);
  EXPECT_EQ(differ.Classify(M("p3", 3, 0, 31)), Change::kDone);
  EXPECT_EQ(differ.Classify(M("p5", 5, 0, 50)), Change::kAdd);
  std::vector<Candidate> removals = differ.RemovalCandidates();
  EXPECT_THAT(Ids(removals), ElementsAre("p4"));
  EXPECT_EQ(differ.Decide(removals[0], 0), Fate::kRemove);
}

TEST(DifferTest, FullResendsUnchangedMembers) {
  Diff differ({false, /*full=*/true, true});
  ASSERT_TRUE(differ.AddDelivered(Delivered("p1", 1, 0, 10), false).ok());
  Seal(differ, {});
  EXPECT_EQ(differ.Classify(M("p1", 1, 0, 10)), Change::kUpdate);
}

TEST(DifferTest, AChangedIdentifierIsAMoveAndItsOldOneIsRemoved) {
  Diff differ({/*by_identifier=*/true, false, /*mirror=*/true});
  // p1 was sent as identifier 100; now maps to 101.
  ASSERT_TRUE(differ.AddDelivered(Delivered("p1", 1, 100, 10), false).ok());
  std::vector<Member> snapshot = {M("p1", 1, 101, 10)};
  Seal(differ, snapshot);
  EXPECT_EQ(differ.Classify(snapshot[0]), Change::kMove);
  std::vector<Candidate> removals = differ.RemovalCandidates();
  ASSERT_THAT(Ids(removals), ElementsAre("p1"));
  EXPECT_EQ(removals[0].why, Candidate::Why::kMoved);
  EXPECT_EQ(differ.Decide(removals[0], 100), Fate::kRemove);
}

TEST(DifferTest, AddOnlyNeverRemoves) {
  Diff differ({true, false, /*mirror=*/false});
  ASSERT_TRUE(differ.AddDelivered(Delivered("p1", 1, 100, 10), false).ok());
  ASSERT_TRUE(differ.AddDelivered(Delivered("p2", 2, 200, 20), false).ok());
  std::vector<Member> snapshot = {M("p1", 1, 101, 10)};
  Seal(differ, snapshot);
  EXPECT_EQ(differ.Classify(snapshot[0]), Change::kMove);
  // p2 left and p1's old identifier is unused: both stay at the destination.
  EXPECT_THAT(differ.RemovalCandidates(), IsEmpty());
}

TEST(DifferTest, AnIdentifierStaysWhileAnotherMemberMapsToIt) {
  Diff differ({true, false, true});
  // p3 and p4 share identifier 300; p4 was sent for both.
  ASSERT_TRUE(differ.AddDelivered(Delivered("p4", 4, 300, 40), false).ok());
  // p5 had 500, p6 now has it (p5 left); p7 had 700 and left alone.
  ASSERT_TRUE(differ.AddDelivered(Delivered("p5", 5, 500, 50), false).ok());
  ASSERT_TRUE(differ.AddDelivered(Delivered("p7", 7, 700, 70), false).ok());
  std::vector<Member> snapshot = {M("p3", 3, 300, 30), M("p6", 6, 500, 60)};
  Seal(differ, snapshot);
  // p4 left: p3 now alone on 300 and is sent (an add of its profile).
  EXPECT_EQ(differ.Classify(snapshot[0]), Change::kAdd);
  EXPECT_EQ(differ.Classify(snapshot[1]), Change::kAdd);
  std::vector<Candidate> removals = differ.RemovalCandidates();
  ASSERT_THAT(Ids(removals), ElementsAre("p4", "p5", "p7"));
  EXPECT_EQ(differ.Decide(removals[0], 300), Fate::kForget);
  EXPECT_EQ(differ.Decide(removals[1], 500), Fate::kForget);
  EXPECT_EQ(differ.Decide(removals[2], 700), Fate::kRemove);
}

TEST(DifferTest, DuplicatesAreHeldAndTheGreatestProfileIdWins) {
  Diff differ({true, false, true});
  // p3 was delivered alone on 300; p4 joins with the same identifier.
  ASSERT_TRUE(differ.AddDelivered(Delivered("p3", 3, 300, 30), false).ok());
  std::vector<Member> snapshot = {M("p4", 4, 300, 40), M("p3", 3, 300, 30), M("p9", 9, 900, 90)};
  Seal(differ, snapshot);
  EXPECT_TRUE(differ.IsDuplicate(300));
  EXPECT_FALSE(differ.IsDuplicate(900));
  EXPECT_TRUE(differ.InSnapshot(900));
  EXPECT_FALSE(differ.InSnapshot(901));
  EXPECT_EQ(differ.Classify(snapshot[0]), Change::kDuplicate);
  EXPECT_EQ(differ.Classify(snapshot[1]), Change::kDuplicate);
  EXPECT_EQ(differ.Classify(snapshot[2]), Change::kAdd);
  std::vector<Member> group = {snapshot[1], snapshot[0]};
  size_t winner = differ.ResolveDuplicates(group);
  EXPECT_EQ(group[winner].profile_id, "p4");
  EXPECT_EQ(differ.Classify(group[winner], /*resolved=*/true), Change::kAdd);
  // p3's row goes without a removal: p4 now holds 300.
  std::vector<Candidate> removals = differ.RemovalCandidates();
  ASSERT_THAT(Ids(removals), ElementsAre("p3"));
  EXPECT_EQ(removals[0].why, Candidate::Why::kDuplicate);
  EXPECT_EQ(differ.Decide(removals[0], 300), Fate::kForget);
}

TEST(DifferTest, ALoserWhoseOldIdentifierNobodyHasIsRemoved) {
  Diff differ({true, false, /*mirror=*/true});
  // p3 was sent as 350; now it has 300, as p4 (who wins).
  ASSERT_TRUE(differ.AddDelivered(Delivered("p3", 3, 350, 30), false).ok());
  std::vector<Member> snapshot = {M("p3", 3, 300, 30), M("p4", 4, 300, 40)};
  Seal(differ, snapshot);
  for (const auto& m : snapshot) EXPECT_EQ(differ.Classify(m), Change::kDuplicate);
  EXPECT_EQ(differ.ResolveDuplicates(snapshot), 1u);
  std::vector<Candidate> removals = differ.RemovalCandidates();
  ASSERT_THAT(Ids(removals), ElementsAre("p3"));
  EXPECT_EQ(differ.Decide(removals[0], 350), Fate::kRemove);
  // Add-only: the row goes, the identifier stays.
  Diff add_only({true, false, /*mirror=*/false});
  ASSERT_TRUE(add_only.AddDelivered(Delivered("p3", 3, 350, 30), false).ok());
  Seal(add_only, snapshot);
  for (const auto& m : snapshot) add_only.Classify(m);
  add_only.ResolveDuplicates(snapshot);
  removals = add_only.RemovalCandidates();
  ASSERT_THAT(Ids(removals), ElementsAre("p3"));
  EXPECT_EQ(add_only.Decide(removals[0], 350), Fate::kForget);
}

TEST(DifferTest, AWinnerDeliveredBeforeIsUnchanged) {
  Diff differ({true, false, true});
  ASSERT_TRUE(differ.AddDelivered(Delivered("p4", 4, 300, 40), false).ok());
  std::vector<Member> snapshot = {M("p3", 3, 300, 30), M("p4", 4, 300, 40)};
  Seal(differ, snapshot);
  for (const auto& m : snapshot) EXPECT_EQ(differ.Classify(m), Change::kDuplicate);
  size_t winner = differ.ResolveDuplicates(snapshot);
  EXPECT_EQ(winner, 1u);
  EXPECT_EQ(differ.Classify(snapshot[winner], true), Change::kUnchanged);
  EXPECT_THAT(differ.RemovalCandidates(), IsEmpty());
}

TEST(DifferTest, AnUnknownIdentifierIsResentOnce) {
  Diff differ({true, false, true});
  // Delivered before identifiers were kept (ident hash 0), same values.
  ASSERT_TRUE(differ.AddDelivered(Delivered("p1", 1, 0, 10), false).ok());
  std::vector<Member> snapshot = {M("p1", 1, 100, 10)};
  Seal(differ, snapshot);
  EXPECT_EQ(differ.Classify(snapshot[0]), Change::kUpdate);
  EXPECT_THAT(differ.RemovalCandidates(), IsEmpty());
}

TEST(DifferTest, ProfileIdsWithOneIdHashAreToldApart) {
  Diff differ({true, false, true});
  ASSERT_TRUE(differ.AddDelivered(Delivered("a", 7, 100, 10), false).ok());
  ASSERT_TRUE(differ.AddDelivered(Delivered("b", 7, 200, 20), false).ok());
  std::vector<Member> snapshot = {M("b", 7, 200, 20)};
  Seal(differ, snapshot);
  EXPECT_EQ(differ.Classify(snapshot[0]), Change::kUnchanged);
  EXPECT_THAT(Ids(differ.RemovalCandidates()), ElementsAre("a"));
}

TEST(DifferTest, ASegmentsWorthOfIdentifiersIsSortedAndItsDuplicatesFound) {
  // Enough hashes for the radix sort, spread over all 64 bits, some twice.
  std::vector<std::uint64_t> hashes;
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 20000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    hashes.push_back(x | 1);
    if (i % 1000 == 0) hashes.push_back(x | 1);
  }
  std::map<std::uint64_t, int> expected;
  for (std::uint64_t h : hashes) ++expected[h];
  Diff differ({true, false, true});
  differ.ReserveIdentifiers(static_cast<std::int64_t>(hashes.size()));
  differ.AddIdentifiers(absl::MakeConstSpan(hashes).subspan(0, 7000));
  differ.AddIdentifiers(absl::MakeConstSpan(hashes).subspan(7000));
  differ.SealIdentifiers();
  int duplicates = 0;
  for (const auto& [hash, count] : expected) {
    EXPECT_TRUE(differ.InSnapshot(hash));
    EXPECT_EQ(differ.IsDuplicate(hash), count > 1) << hash;
    duplicates += count > 1;
    EXPECT_FALSE(differ.InSnapshot(hash + 1));  // Even hashes are never added.
  }
  EXPECT_EQ(duplicates, 20);
}

}  // namespace
}  // namespace exportd::sync
