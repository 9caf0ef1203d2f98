// The store conformance suite, resources: connections, segments and
// snapshots, exports, audit, delivered rows, meta values, learned rates and
// run logs.
// Every test runs against SQLite and PostgreSQL (store_test_fixture.h).
#include <algorithm>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/status_macros.h"
#include "server/store/store_test_fixture.h"

namespace exportd::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class StoreConformanceTest : public StoreTest {
 protected:
  StoredConnection Connection(std::string id, std::string name) {
    StoredConnection c;
    c.connection.set_id(std::move(id));
    c.connection.set_display_name(std::move(name));
    c.connection.set_destination_type("iterable");
    c.sealed_secrets = "sealed";
    return c;
  }
  v1::Export Export(std::string id, std::string name, std::string connection_id,
                    std::string segment_id) {
    v1::Export e;
    e.set_id(std::move(id));
    e.set_name(std::move(name));
    e.set_connection_id(std::move(connection_id));
    e.add_segments(std::move(segment_id));
    e.set_active(true);
    return e;
  }
  void CreateSegment(const std::string& id, const std::string& name) {
    v1::Segment segment;
    segment.set_id(id);
    segment.set_name(name);
    ASSERT_TRUE(store_->CreateSegment(segment).ok());
  }
  v1::UploadMembersRequest::Chunk Chunk(std::vector<std::string> ids) {
    v1::UploadMembersRequest::Chunk chunk;
    for (auto& id : ids) chunk.add_rows()->set_profile_id(id);
    return chunk;
  }
  std::vector<std::string> Members(const std::string& segment, std::int64_t version) {
    std::vector<std::string> ids;
    EXPECT_TRUE(store_
                    ->ForEachChunk(segment, version,
                                   [&](const v1::UploadMembersRequest::Chunk& c) {
                                     for (const auto& r : c.rows()) ids.push_back(r.profile_id());
                                     return absl::OkStatus();
                                   })
                    .ok());
    return ids;
  }

};

TEST_P(StoreConformanceTest, ConnectionsRoundTripByIdOrNameAndSurviveReopen) {
  ASSERT_TRUE(store_->CreateConnection(Connection("c1", "Iterable EU")).ok());
  auto dup = store_->CreateConnection(Connection("c2", "Iterable EU"));
  EXPECT_EQ(dup.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(dup.message(), HasSubstr("'Iterable EU' already exists"));
  Reopen();
  auto by_name = store_->GetConnection("Iterable EU");
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_EQ(by_name->connection.id(), "c1");
  EXPECT_EQ(by_name->sealed_secrets, "sealed");
  auto missing = store_->GetConnection("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("'nope'"));
  StoredConnection renamed = *by_name;
  renamed.connection.set_display_name("Iterable US");
  ASSERT_TRUE(store_->UpdateConnection(renamed).ok());
  EXPECT_EQ(store_->ListConnections()->at(0).connection.display_name(), "Iterable US");
}

TEST_P(StoreConformanceTest, DeletingAConnectionInUseIsRefusedUnlessDetachedOrDeleted) {
  ASSERT_TRUE(store_->CreateConnection(Connection("c1", "conn")).ok());
  ASSERT_TRUE(store_->CreateExport(Export("e1", "vip", "c1", "s1")).ok());
  ASSERT_TRUE(store_->CreateExport(Export("e2", "all", "c1", "s1")).ok());
  absl::Status taken = store_->CreateExport(Export("e9", "all", "c1", "s1"));
  EXPECT_EQ(taken.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(taken.message(), "an export named 'all' already exists; choose another name");
  auto refused = store_->DeleteConnection("c1", ExportDisposition::kRefuse);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("all, vip"));
  auto detached = store_->DeleteConnection("c1", ExportDisposition::kDetach);
  ASSERT_TRUE(detached.ok()) << detached.status();
  EXPECT_THAT(detached->detached_exports, ElementsAre("all", "vip"));
  auto vip = store_->GetExport("vip");
  ASSERT_TRUE(vip.ok());
  EXPECT_FALSE(vip->active());
  EXPECT_TRUE(vip->connection_id().empty());
  EXPECT_EQ(vip->segments(0), "s1");

  ASSERT_TRUE(store_->CreateConnection(Connection("c2", "conn2")).ok());
  ASSERT_TRUE(store_->CreateExport(Export("e3", "third", "c2", "s1")).ok());
  auto deleted = store_->DeleteConnection("c2", ExportDisposition::kDelete);
  ASSERT_TRUE(deleted.ok());
  EXPECT_THAT(deleted->deleted_exports, ElementsAre("third"));
  EXPECT_EQ(store_->GetExport("third").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, SnapshotIsVisibleOnlyAfterCommitAndAbortKeepsTheOldOne) {
  CreateSegment("s1", "VIP");
  {
    auto writer = store_->BeginSnapshot("VIP", {});
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append(Chunk({"a", "b"})).ok());
    ASSERT_TRUE((*writer)->Append(Chunk({"c"})).ok());
    EXPECT_TRUE(store_->GetSegment("s1")->upload_in_progress());
    EXPECT_EQ(store_->GetSegment("s1")->member_count(), 0);
    auto committed = (*writer)->Commit();
    ASSERT_TRUE(committed.ok()) << committed.status();
    EXPECT_EQ(committed->member_count(), 3);
    EXPECT_EQ(committed->snapshot_version(), 1);
  }
  {
    auto writer = store_->BeginSnapshot("s1", {});
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ(store_->BeginSnapshot("s1", {}).status().code(),
              absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE((*writer)->Append(Chunk({"x"})).ok());
    // Readers still see version 1 while version 2 is staged.
    EXPECT_THAT(Members("s1", 1), ElementsAre("a", "b", "c"));
  }  // Aborted.
  EXPECT_FALSE(store_->GetSegment("s1")->upload_in_progress());
  EXPECT_EQ(store_->GetSegment("s1")->snapshot_version(), 1);
  EXPECT_THAT(Members("s1", 1), ElementsAre("a", "b", "c"));
  EXPECT_TRUE(Members("s1", 2).empty());
  Reopen();
  EXPECT_THAT(Members("s1", 1), ElementsAre("a", "b", "c"));
}

// A snapshot is stored in profile-id order (bytewise), whatever order its
// rows came in, sorted through runs on disk when they do not fit the sort's
// memory; a profile id appended twice fails the commit and changes nothing.
TEST_P(StoreConformanceTest, SnapshotsAreStoredInProfileIdOrderAndSaySo) {
  CreateSegment("s1", "VIP");
  MemberSorterOptions sort;
  sort.memory_bytes = 64;  // Nearly every row a sorted run of its own.
  sort.chunk_bytes = 16;
  const std::string big = "m" + std::string(9 << 20, 'x');  // Over the 8 MB of a flush.
  {
    auto writer = store_->BeginSnapshot("s1", {}, sort);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append(Chunk({"p10", "b", big, "p9"})).ok());
    ASSERT_TRUE((*writer)->Append(Chunk({"\xc3\xa9", "a", "p1"})).ok());
    auto committed = (*writer)->Commit();
    ASSERT_TRUE(committed.ok()) << committed.status();
    EXPECT_EQ(committed->member_count(), 7);
  }
  std::vector<std::string> ids = Members("s1", 1);
  ASSERT_EQ(ids.size(), 7u);
  EXPECT_TRUE(ids[2] == big) << ids[2].substr(0, 20);  // (Not printed whole.)
  ids[2] = "big";
  EXPECT_THAT(ids, ElementsAre("a", "b", "big", "p1", "p10", "p9", "\xc3\xa9"));
  auto ordered = store_->SnapshotInMemberOrder("s1", 1);
  ASSERT_TRUE(ordered.ok()) << ordered.status();
  EXPECT_TRUE(*ordered);

  {
    auto writer = store_->BeginSnapshot("s1", {}, sort);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append(Chunk({"q", "r", "s"})).ok());
    ASSERT_TRUE((*writer)->Append(Chunk({"t", "r"})).ok());
    auto refused = (*writer)->Commit();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(refused.status().message(),
              "profile id 'r' appears twice (rows 2 and 5); profile ids must be unique");
  }
  EXPECT_EQ(store_->GetSegment("s1")->snapshot_version(), 1);
  EXPECT_FALSE(store_->GetSegment("s1")->upload_in_progress());
  EXPECT_EQ(Members("s1", 1).size(), 7u);
  EXPECT_TRUE(Members("s1", 2).empty());
  Reopen();
  EXPECT_TRUE(*store_->SnapshotInMemberOrder("s1", 1));
  ASSERT_TRUE(store_->DeleteSegment("s1").ok());
  EXPECT_TRUE(Members("s1", 1).empty());
}

TEST_P(StoreConformanceTest, SegmentInUseCannotBeDeleted) {
  CreateSegment("s1", "VIP");
  ASSERT_TRUE(store_->CreateExport(Export("e1", "vip-export", "", "s1")).ok());
  auto refused = store_->DeleteSegment("s1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  // Named as the user knows them: the segment and the exports by name.
  EXPECT_THAT(refused.message(), HasSubstr("segment 'VIP' is used by exports: vip-export;"));
  EXPECT_THAT(refused.message(), Not(HasSubstr("s1")));
  ASSERT_TRUE(store_->DeleteExport("e1").ok());
  EXPECT_TRUE(store_->DeleteSegment("s1").ok());
  EXPECT_EQ(store_->DeleteSegment("s1").code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, AuditIsNewestFirstAndPaged) {
  for (int i = 0; i < 5; ++i) {
    v1::AuditEntry entry;
    entry.set_method("m" + std::to_string(i));
    ASSERT_TRUE(store_->AppendAudit(entry).ok());
  }
  std::string cursor;
  auto first = store_->ListAudit({3, ""}, &cursor);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ(first->at(0).method(), "m4");
  ASSERT_FALSE(cursor.empty());
  auto second = store_->ListAudit({3, cursor}, &cursor);
  ASSERT_EQ(second->size(), 2u);
  EXPECT_EQ(second->at(1).method(), "m0");
  EXPECT_TRUE(cursor.empty());
}

// Audience state for (exp-1, seg-1) and a claimed run "run-1" of exp-1, as
// batch commits need them.
absl::StatusOr<std::optional<ClaimedRun>> ClaimNewRun(Store& store) {
  EXPORTD_RETURN_IF_ERROR(store.PutAudienceState("exp-1", "seg-1", {"aud-1", 7}));
  v1::Run run;
  run.set_id("run-1");
  run.set_export_id("exp-1");
  run.set_state(v1::RUN_STATE_QUEUED);
  EXPORTD_RETURN_IF_ERROR(store.CreateRun(run));
  return store.ClaimNextRun({"replica-a", absl::ToUnixMicros(absl::Now()), absl::Seconds(15)});
}

// One batch of `claimed`'s run for (exp-1, seg-1).
absl::Status CommitRows(Store& store, const ClaimedRun& claimed, std::vector<DeliveredRow> delivered,
                        std::vector<DeliveredRow> rejected) {
  BatchCommit c;
  c.export_id = "exp-1";
  c.segment_id = "seg-1";
  c.lease = claimed.lease;
  c.checkpoint = claimed.run;
  c.delivered = std::move(delivered);
  c.rejected = std::move(rejected);
  return store.CommitBatch(c);
}

TEST_P(StoreConformanceTest, DeliveredRowsKeepTheIdentifierSentOrNoneWhenUnknown) {
  ASSERT_TRUE(store_->PutAudienceState("exp-1", "seg-1", {"aud-1", 7}).ok());
  BatchCommit commit;
  commit.export_id = "exp-1";
  commit.segment_id = "seg-1";
  commit.checkpoint.set_id("run-1");
  commit.checkpoint.set_export_id("exp-1");
  commit.checkpoint.set_state(v1::RUN_STATE_QUEUED);
  DeliveredRow with_identifier{11, "p1", 21, "run-1", "v1", 31};
  DeliveredRow unknown{12, "p2", 22, "run-1", "v2", 0};  // No identifier: stored as NULL.
  commit.delivered = {with_identifier, unknown};
  ASSERT_TRUE(store_->CreateRun(commit.checkpoint).ok());
  // Batches are committed under the run's lease.
  auto claimed = store_->ClaimNextRun({"replica-a", absl::ToUnixMicros(absl::Now()), absl::Seconds(15)});
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  commit.lease = (*claimed)->lease;
  commit.checkpoint = (*claimed)->run;
  ASSERT_TRUE(store_->CommitBatch(commit).ok());
  std::map<std::string, std::uint64_t> ident_hashes;
  ASSERT_TRUE(store_
                  ->ForEachDelivered("exp-1", "seg-1",
                                     [&](const DeliveredView& row) {
                                       ident_hashes[std::string(row.profile_id)] = row.ident_hash;
                                       return absl::OkStatus();
                                     })
                  .ok());
  EXPECT_EQ(ident_hashes["p1"], 31u);
  EXPECT_EQ(ident_hashes["p2"], 0u);
  std::vector<std::string> looked_up;
  ASSERT_TRUE(store_
                  ->LookupDelivered("exp-1", "seg-1", {"p1", "p2"},
                                    [&](const DeliveredRow& row) {
                                      looked_up.push_back(row.profile_id);
                                      EXPECT_EQ(row.ident_hash, row.profile_id == "p1" ? 31u : 0u);
                                      return absl::OkStatus();
                                    })
                  .ok());
  EXPECT_THAT(looked_up, ElementsAre("p1", "p2"));
}

// A batch of many delivered rows (more than one write statement holds, and
// not a multiple of it) is stored whole: every member once, the last row of
// a member given twice winning, a rejected member's row becoming delivered.
TEST_P(StoreConformanceTest, ABatchOfManyDeliveredRowsIsStoredWholeEachMemberOnce) {
  auto claimed = ClaimNewRun(*store_);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  auto commit = [&](std::vector<DeliveredRow> delivered, std::vector<DeliveredRow> rejected) {
    ASSERT_TRUE(CommitRows(*store_, **claimed, std::move(delivered), std::move(rejected)).ok());
  };
  auto id = [](int i) { return absl::StrCat("p", absl::Dec(i, absl::kZeroPad4)); };
  DeliveredRow rejected{7, id(7), 70, "run-1", "", 0};
  rejected.state = DeliveredState::kRejected;
  commit({}, {rejected});
  std::vector<DeliveredRow> rows;
  for (int i = 0; i < 150; ++i) {
    rows.push_back({static_cast<std::uint64_t>(i + 1), id(i), static_cast<std::uint64_t>(i + 1000),
                    "run-1", absl::StrCat("v", i), static_cast<std::uint64_t>(i + 5000)});
  }
  rows.push_back({6, id(5), 999, "run-1", "again", 0});  // p0005 twice: this one wins.
  commit(rows, {});
  std::vector<std::string> ids;
  std::map<std::string, std::pair<std::uint64_t, DeliveredState>> seen;
  ASSERT_TRUE(store_
                  ->ForEachDelivered("exp-1", "seg-1",
                                     [&](const DeliveredView& row) {
                                       ids.emplace_back(row.profile_id);
                                       seen[std::string(row.profile_id)] = {row.value_hash,
                                                                            row.state};
                                       return absl::OkStatus();
                                     })
                  .ok());
  ASSERT_EQ(ids.size(), 150u);
  for (int i = 0; i < 150; ++i) EXPECT_EQ(ids[i], id(i));
  EXPECT_EQ(seen[id(5)].first, 999u);
  EXPECT_EQ(seen[id(149)].first, 1149u);
  EXPECT_EQ(seen[id(7)].second, DeliveredState::kDelivered) << "delivered since its rejection";
  std::vector<std::string> values;
  ASSERT_TRUE(store_
                  ->LookupDelivered("exp-1", "seg-1", {id(5), id(128), id(149)},
                                    [&](const DeliveredRow& row) {
                                      values.push_back(row.values);
                                      return absl::OkStatus();
                                    })
                  .ok());
  EXPECT_THAT(values, ElementsAre("again", "v128", "v149"));
}

// Each delivered row keeps the digest of the snapshot row it was mapped from
// (0 when not given, read back as 0, as every 64-bit value is, the high bit
// set included); delivering the member again replaces it.
TEST_P(StoreConformanceTest, DeliveredRowsKeepTheDigestOfTheirSnapshotRow) {
  auto claimed = ClaimNewRun(*store_);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  auto commit = [&](std::vector<DeliveredRow> delivered) {
    ASSERT_TRUE(CommitRows(*store_, **claimed, std::move(delivered), {}).ok());
  };
  auto id = [](int i) { return absl::StrCat("p", absl::Dec(i, absl::kZeroPad4)); };
  auto digest = [](int i) { return 0x8000000000000000ULL + static_cast<std::uint64_t>(i); };
  std::vector<DeliveredRow> rows;
  for (int i = 0; i < 70; ++i) {  // More rows than one write statement takes.
    DeliveredRow row{static_cast<std::uint64_t>(i + 1), id(i), 100, "run-1", "v", 0};
    row.row_hash = i == 3 ? 0 : digest(i);
    rows.push_back(row);
  }
  commit(rows);
  DeliveredRow again{6, id(5), 101, "run-1", "v2", 0};
  again.row_hash = 77;
  commit({again});
  std::map<std::string, std::uint64_t> seen;
  ASSERT_TRUE(store_
                  ->ForEachDelivered("exp-1", "seg-1",
                                     [&](const DeliveredView& row) {
                                       seen[std::string(row.profile_id)] = row.row_hash;
                                       return absl::OkStatus();
                                     })
                  .ok());
  ASSERT_EQ(seen.size(), 70u);
  EXPECT_EQ(seen[id(0)], digest(0));
  EXPECT_EQ(seen[id(3)], 0u);
  EXPECT_EQ(seen[id(5)], 77u);
  EXPECT_EQ(seen[id(69)], digest(69));
}

// Rejected members are remembered: a new member's rejection gets a row of
// its own (never over a delivered row); a delivered member's rejected update
// only marks its row, keeping what was delivered; a later delivery clears it.
TEST_P(StoreConformanceTest, RejectedMembersAreRememberedWithoutLosingWhatWasDelivered) {
  auto claimed = ClaimNewRun(*store_);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  auto commit = [&](std::vector<DeliveredRow> delivered, std::vector<DeliveredRow> rejected) {
    ASSERT_TRUE(CommitRows(*store_, **claimed, std::move(delivered), std::move(rejected)).ok());
  };
  auto rejected = [](std::uint64_t id_hash, const std::string& id, std::uint64_t value_hash,
                     DeliveredState state) {
    DeliveredRow row{id_hash, id, value_hash, "run-1", "", 0};
    row.state = state;
    return row;
  };
  commit({{1, "p1", 10, "run-1", "v1", 0}},
         {rejected(2, "p2", 20, DeliveredState::kRejected),
          // A rejected "new" member that is delivered already: the row stays.
          rejected(1, "p1", 11, DeliveredState::kRejected)});
  commit({}, {rejected(1, "p1", 12, DeliveredState::kUpdateRejected),
              rejected(2, "p2", 21, DeliveredState::kRejected)});
  struct Seen {
    std::uint64_t value_hash;
    DeliveredState state;
  };
  std::map<std::string, Seen> rows;
  auto read = [&] {
    rows.clear();
    ASSERT_TRUE(store_
                    ->ForEachDelivered("exp-1", "seg-1",
                                       [&](const DeliveredView& row) {
                                         rows[std::string(row.profile_id)] = {row.value_hash,
                                                                              row.state};
                                         return absl::OkStatus();
                                       })
                    .ok());
  };
  read();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows["p1"].value_hash, 10u) << "what was delivered stays";
  EXPECT_EQ(rows["p1"].state, DeliveredState::kUpdateRejected);
  EXPECT_EQ(rows["p2"].value_hash, 21u) << "the last rejected attempt";
  EXPECT_EQ(rows["p2"].state, DeliveredState::kRejected);
  std::vector<DeliveredState> looked_up;
  ASSERT_TRUE(store_
                  ->LookupDelivered("exp-1", "seg-1", {"p1", "p2"},
                                    [&](const DeliveredRow& row) {
                                      looked_up.push_back(row.state);
                                      return absl::OkStatus();
                                    })
                  .ok());
  EXPECT_THAT(looked_up, ElementsAre(DeliveredState::kUpdateRejected, DeliveredState::kRejected));

  commit({{1, "p1", 13, "run-1", "v1b", 0}, {2, "p2", 22, "run-1", "v2", 0}}, {});
  read();
  EXPECT_EQ(rows["p1"].state, DeliveredState::kDelivered);
  EXPECT_EQ(rows["p2"].state, DeliveredState::kDelivered);
  EXPECT_EQ(rows["p2"].value_hash, 22u);
}

// A member rejected again, unchanged, is only marked for the run: its row
// stays as it was (no rewrite for the run id alone), the marks are the run's
// and its segment's, each member once, and they go when the run ends.
TEST_P(StoreConformanceTest, MembersRejectedAgainAreMarkedForTheRunUntilItEnds) {
  auto claimed = ClaimNewRun(*store_);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  DeliveredRow earlier{2, "p2", 20, "run-0", "", 0};
  earlier.state = DeliveredState::kRejected;
  ASSERT_TRUE(CommitRows(*store_, **claimed, {}, {earlier}).ok());
  auto again = [&](std::vector<std::string> ids) {
    BatchCommit c;
    c.export_id = "exp-1";
    c.segment_id = "seg-1";
    c.lease = (*claimed)->lease;
    c.checkpoint = (*claimed)->run;
    c.rejected_again = std::move(ids);
    return store_->CommitBatch(c);
  };
  ASSERT_TRUE(again({"p2", "p9"}).ok());
  ASSERT_TRUE(again({"p2"}).ok()) << "marked twice is marked once";
  auto marks = [&](absl::string_view run_id, absl::string_view segment_id) {
    std::vector<std::string> out;
    EXPECT_TRUE(store_
                    ->ForEachRejectedAgain(run_id, "exp-1", segment_id,
                                           [&](absl::string_view id) {
                                             out.emplace_back(id);
                                             return absl::OkStatus();
                                           })
                    .ok());
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_THAT(marks("run-1", "seg-1"), ElementsAre("p2", "p9"));
  EXPECT_THAT(marks("run-2", "seg-1"), ElementsAre());
  EXPECT_THAT(marks("run-1", "seg-2"), ElementsAre());
  std::vector<std::string> runs;
  ASSERT_TRUE(store_
                  ->ForEachDelivered("exp-1", "seg-1",
                                     [&](const DeliveredView& row) {
                                       runs.push_back(absl::StrCat(row.profile_id, " ",
                                                                   row.run_id, " ", row.value_hash));
                                       return absl::OkStatus();
                                     })
                  .ok());
  EXPECT_THAT(runs, ElementsAre("p2 run-0 20")) << "the row is not rewritten";

  v1::Run run = (*claimed)->run;
  run.set_state(v1::RUN_STATE_RUNNING);
  ASSERT_TRUE(store_->UpdateLeasedRun(run, (*claimed)->lease).ok());
  EXPECT_THAT(marks("run-1", "seg-1"), ElementsAre("p2", "p9")) << "kept while it runs";
  run.set_state(v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS);
  ASSERT_TRUE(store_->EndLeasedRun(run, (*claimed)->lease, {}).ok());
  EXPECT_THAT(marks("run-1", "seg-1"), ElementsAre()) << "gone when it ended";
}

TEST_P(StoreConformanceTest, AForgottenMemberIsRememberedOverWhatWasDelivered) {
  auto claimed = ClaimNewRun(*store_);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  auto commit = [&](std::vector<DeliveredRow> delivered, std::vector<DeliveredRow> rejected) {
    ASSERT_TRUE(CommitRows(*store_, **claimed, std::move(delivered), std::move(rejected)).ok());
  };
  auto row = [](std::uint64_t id_hash, const std::string& id, std::uint64_t ident_hash,
                DeliveredState state) {
    DeliveredRow r{id_hash, id, 30, "run-1", "", ident_hash};
    r.state = state;
    return r;
  };
  auto states = [&] {
    std::map<std::string, std::pair<DeliveredState, std::uint64_t>> out;
    EXPECT_TRUE(store_
                    ->ForEachDelivered("exp-1", "seg-1",
                                       [&](const DeliveredView& v) {
                                         out[std::string(v.profile_id)] = {v.state, v.ident_hash};
                                         return absl::OkStatus();
                                       })
                    .ok());
    return out;
  };
  // p1 delivered, then forgotten; p2 forgotten without ever being delivered.
  commit({{1, "p1", 10, "run-1", "v1", 100}}, {});
  commit({}, {row(1, "p1", 100, DeliveredState::kForgotten),
              row(2, "p2", 200, DeliveredState::kForgotten)});
  auto seen = states();
  EXPECT_EQ(seen["p1"].first, DeliveredState::kForgotten);
  EXPECT_EQ(seen["p2"].first, DeliveredState::kForgotten);
  EXPECT_EQ(seen["p2"].second, 200u);
  // p2 under another identifier, rejected: a rejected row again, with it.
  commit({}, {row(2, "p2", 201, DeliveredState::kRejected)});
  seen = states();
  EXPECT_EQ(seen["p2"].first, DeliveredState::kRejected);
  EXPECT_EQ(seen["p2"].second, 201u);
  // p1 under another identifier, delivered.
  commit({{1, "p1", 11, "run-1", "v2", 101}}, {});
  EXPECT_EQ(states()["p1"].first, DeliveredState::kDelivered);
}

TEST_P(StoreConformanceTest, MetaValuesAreReplacedAndSurviveAReopen) {
  auto missing = store_->GetMeta("master_key_check");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("master_key_check"));
  ASSERT_TRUE(store_->PutMeta("master_key_check", "one").ok());
  ASSERT_TRUE(store_->PutMeta("master_key_check", std::string("t\0wo", 4)).ok());
  Reopen();
  EXPECT_EQ(*store_->GetMeta("master_key_check"), std::string("t\0wo", 4));
}

TEST_P(StoreConformanceTest, ConnectionRatesAreReplacedSurviveAReopenAndGoWithTheConnection) {
  ASSERT_TRUE(store_->CreateConnection(Connection("c1", "conn")).ok());
  auto missing = store_->GetConnectionRate("c1");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("c1"));
  ASSERT_TRUE(store_->PutConnectionRate("c1", {8, 0, 1}).ok());
  ASSERT_TRUE(store_->PutConnectionRate("c1", {2.5, 500, 2}).ok());
  Reopen();
  auto rate = store_->GetConnectionRate("c1");
  ASSERT_TRUE(rate.ok()) << rate.status();
  EXPECT_DOUBLE_EQ(rate->requests_per_second, 2.5);
  EXPECT_DOUBLE_EQ(rate->records_per_second, 500);
  EXPECT_EQ(rate->updated_at_micros, 2);
  ASSERT_TRUE(store_->DeleteConnection("c1", ExportDisposition::kRefuse).ok());
  EXPECT_EQ(store_->GetConnectionRate("c1").status().code(), absl::StatusCode::kNotFound);
}

// The diff merges the delivered state with the snapshot: both come in
// bytewise profile-id order (PostgreSQL: whatever the database's collation).
TEST_P(StoreConformanceTest, DeliveredStateIsStreamedInProfileIdOrder) {
  auto claimed = ClaimNewRun(*store_);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  BatchCommit commit;
  commit.export_id = "exp-1";
  commit.segment_id = "seg-1";
  commit.lease = (*claimed)->lease;
  commit.checkpoint = (*claimed)->run;
  std::vector<std::string> ids = {"b", "\xc3\xa9", "aa", "B", "a", "a b", "_x", "Z9", "10", "9"};
  for (const auto& id : ids) commit.delivered.push_back({1, id, 2, "run-1", "v", 3});
  ASSERT_TRUE(store_->CommitBatch(commit).ok());
  std::vector<std::string> read;
  ASSERT_TRUE(store_
                  ->ForEachDelivered("exp-1", "seg-1",
                                     [&](const DeliveredView& row) {
                                       read.emplace_back(row.profile_id);
                                       return absl::OkStatus();
                                     })
                  .ok());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(read, ids);
}

v1::RunLogLine LogLine(v1::RunLogLevel level, std::string source, std::string message,
                       std::int64_t at = 1) {
  v1::RunLogLine line;
  line.set_seq(77);  // Ignored: the store numbers the lines.
  line.set_at_micros(at);
  line.set_level(level);
  line.set_source(std::move(source));
  line.set_message(std::move(message));
  return line;
}

std::vector<std::int64_t> Seqs(const std::vector<v1::RunLogLine>& lines) {
  std::vector<std::int64_t> seqs;
  for (const auto& line : lines) seqs.push_back(line.seq());
  return seqs;
}

TEST_P(StoreConformanceTest, RunLogLinesAreNumberedFilteredPagedAndSurviveAReopen) {
  ASSERT_TRUE(store_
                  ->AppendRunLog("run-1", {LogLine(v1::RUN_LOG_LEVEL_INFO, "engine", "started", 10),
                                           LogLine(v1::RUN_LOG_LEVEL_DEBUG, "destination",
                                                   "GET /api/lists", 11)})
                  .ok());
  ASSERT_TRUE(
      store_->AppendRunLog("run-2", {LogLine(v1::RUN_LOG_LEVEL_ERROR, "engine", "other")}).ok());
  ASSERT_TRUE(store_->AppendRunLog("run-1", {}).ok());
  ASSERT_TRUE(store_
                  ->AppendRunLog(
                      "run-1", {LogLine(v1::RUN_LOG_LEVEL_WARNING, "segment VIP", "throttled", 12),
                                LogLine(v1::RUN_LOG_LEVEL_INFO, "engine", "run SUCCEEDED", 13)})
                  .ok());
  Reopen();
  bool more = true;
  auto all = store_->ListRunLog("run-1", 0, 100, v1::RUN_LOG_LEVEL_UNSPECIFIED, &more);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(Seqs(*all), ElementsAre(1, 2, 3, 4));
  EXPECT_FALSE(more);
  EXPECT_EQ((*all)[1].at_micros(), 11);
  EXPECT_EQ((*all)[1].level(), v1::RUN_LOG_LEVEL_DEBUG);
  EXPECT_EQ((*all)[1].source(), "destination");
  EXPECT_EQ((*all)[1].message(), "GET /api/lists");
  EXPECT_EQ((*all)[3].message(), "run SUCCEEDED");

  auto page = store_->ListRunLog("run-1", 1, 2, v1::RUN_LOG_LEVEL_UNSPECIFIED, &more);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Seqs(*page), ElementsAre(2, 3));
  EXPECT_TRUE(more);
  page = store_->ListRunLog("run-1", 3, 2, v1::RUN_LOG_LEVEL_UNSPECIFIED, &more);
  EXPECT_THAT(Seqs(*page), ElementsAre(4));
  EXPECT_FALSE(more);

  auto warnings = store_->ListRunLog("run-1", 0, 100, v1::RUN_LOG_LEVEL_WARNING, &more);
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  EXPECT_THAT(Seqs(*warnings), ElementsAre(3));
  auto infos = store_->ListRunLog("run-1", 0, 100, v1::RUN_LOG_LEVEL_INFO, nullptr);
  EXPECT_THAT(Seqs(*infos), ElementsAre(1, 3, 4));

  auto other = store_->ListRunLog("run-2", 0, 100, v1::RUN_LOG_LEVEL_UNSPECIFIED, &more);
  EXPECT_THAT(Seqs(*other), ElementsAre(1));
  auto none = store_->ListRunLog("no-such-run", 0, 100, v1::RUN_LOG_LEVEL_UNSPECIFIED, &more);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreConformanceTest, ARunLogKeepsAThousandLinesAndTheLastCountsTheDropped) {
  std::vector<v1::RunLogLine> lines;
  for (int i = 1; i <= 998; ++i) {
    lines.push_back(LogLine(v1::RUN_LOG_LEVEL_INFO, "engine", "line " + std::to_string(i), i));
  }
  ASSERT_TRUE(store_->AppendRunLog("run-1", lines).ok());
  // Line 999 is kept; the next four are dropped and counted in line 1000.
  std::vector<v1::RunLogLine> more_lines;
  for (int i = 999; i <= 1003; ++i) {
    more_lines.push_back(LogLine(i == 1001 ? v1::RUN_LOG_LEVEL_WARNING : v1::RUN_LOG_LEVEL_INFO,
                                 "destination", "line " + std::to_string(i), i));
  }
  ASSERT_TRUE(store_->AppendRunLog("run-1", more_lines).ok());
  auto tail = store_->ListRunLog("run-1", 997, 100, v1::RUN_LOG_LEVEL_UNSPECIFIED, nullptr);
  ASSERT_TRUE(tail.ok()) << tail.status();
  ASSERT_THAT(Seqs(*tail), ElementsAre(998, 999, 1000));
  EXPECT_EQ((*tail)[1].message(), "line 999");
  EXPECT_EQ((*tail)[2].message(),
            "4 more log lines were dropped (a run keeps 1000); the newest: line 1003");
  EXPECT_EQ((*tail)[2].level(), v1::RUN_LOG_LEVEL_WARNING);
  EXPECT_EQ((*tail)[2].at_micros(), 1003);

  // Later appends go on counting in the same last line: the final state of
  // a long run is still there.
  ASSERT_TRUE(store_
                  ->AppendRunLog("run-1", {LogLine(v1::RUN_LOG_LEVEL_INFO, "engine", "x", 2000),
                                           LogLine(v1::RUN_LOG_LEVEL_ERROR, "engine",
                                                   "run FAILED: it broke", 2001)})
                  .ok());
  Reopen();
  ASSERT_TRUE(
      store_->AppendRunLog("run-1", {LogLine(v1::RUN_LOG_LEVEL_DEBUG, "engine", "y", 2002)}).ok());
  auto all = store_->ListRunLog("run-1", 0, 1000, v1::RUN_LOG_LEVEL_UNSPECIFIED, nullptr);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1000u);
  EXPECT_EQ(all->back().seq(), 1000);
  EXPECT_EQ(all->back().message(),
            "7 more log lines were dropped (a run keeps 1000); the newest: y");
  EXPECT_EQ(all->back().level(), v1::RUN_LOG_LEVEL_ERROR) << "the highest level dropped";
  auto errors = store_->ListRunLog("run-1", 0, 1000, v1::RUN_LOG_LEVEL_ERROR, nullptr);
  EXPECT_THAT(Seqs(*errors), ElementsAre(1000));
}

TEST_P(StoreConformanceTest, LongRunLogMessagesAreCutAtACharacterWithAnEllipsis) {
  std::string accents;
  for (int i = 0; i < 1500; ++i) accents += "\xc3\xa9";  // é, 2 bytes: 3000 bytes
  const std::string exact(kMaxRunLogMessageBytes, 'a');
  ASSERT_TRUE(store_
                  ->AppendRunLog("run-1", {LogLine(v1::RUN_LOG_LEVEL_INFO, "destination", accents),
                                           LogLine(v1::RUN_LOG_LEVEL_INFO, "destination", exact)})
                  .ok());
  auto lines = store_->ListRunLog("run-1", 0, 10, v1::RUN_LOG_LEVEL_UNSPECIFIED, nullptr);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_EQ(lines->size(), 2u);
  const std::string& cut = (*lines)[0].message();
  EXPECT_LE(cut.size(), kMaxRunLogMessageBytes);
  EXPECT_GE(cut.size(), kMaxRunLogMessageBytes - 4);
  EXPECT_EQ(cut.substr(cut.size() - 3), "\xe2\x80\xa6");
  // Whole characters only: é é ... é …
  const std::string body = cut.substr(0, cut.size() - 3);
  EXPECT_EQ(body.size() % 2, 0u);
  EXPECT_EQ(body, accents.substr(0, body.size()));
  EXPECT_EQ((*lines)[1].message(), exact) << "a message of exactly the limit stays whole";
}

TEST_P(StoreConformanceTest, ConcurrentRunLogAppendsNumberEveryLineOnce) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 25; ++i) {
        absl::Status appended = store_->AppendRunLog(
            "run-1", {LogLine(v1::RUN_LOG_LEVEL_INFO, "engine", absl::StrCat(t, "/", i)),
                      LogLine(v1::RUN_LOG_LEVEL_INFO, "engine", absl::StrCat(t, "/", i, "b"))});
        EXPECT_TRUE(appended.ok()) << appended;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  auto lines = store_->ListRunLog("run-1", 0, 1000, v1::RUN_LOG_LEVEL_UNSPECIFIED, nullptr);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_EQ(lines->size(), 200u);
  for (size_t i = 0; i < lines->size(); ++i) {
    EXPECT_EQ((*lines)[i].seq(), static_cast<std::int64_t>(i + 1));
    // Each append's lines stay together.
    if (i % 2 == 1) {
      EXPECT_EQ((*lines)[i].message(), (*lines)[i - 1].message() + "b");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformanceTest, EveryStore(), StoreName());

}  // namespace
}  // namespace exportd::store
