// The run engine against real stores (SQLite and PostgreSQL) and the in-process fake
// destination: diff correctness, modes, resume after a crash, cancel, retry,
// rejections, concurrency, states.
#include "server/engine/engine.h"

#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/common/log.h"
#include "server/crypto/secret_map.h"
#include "server/common/run_states.h"
#include "server/engine/lease.h"
#include "server/notify/notifier.h"
#include "server/notify/webhook.h"
#include "server/observability/metrics.h"
#include "server/observability/testing/exposition.h"
#include "server/store/sqlite_store.h"
#include "server/store/sqlite_util.h"
#include "server/store/store_test_fixture.h"
#include "tests/fakes/fake_destination.h"
#include "tests/support/webhook_receiver.h"

namespace exportd::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Every engine test runs on SQLite and on PostgreSQL (the parameter).
class EngineTest : public store::StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (HasFatalFailure()) return;
    box_ = *crypto::SecretBox::FromKey(std::string(32, 'k'));
    state_ = std::make_shared<testing::FakeState>();
    state_->key_by_identifier = KeyByIdentifier();
    registry_ = std::make_unique<destinations::DestinationRegistry>();
    ASSERT_TRUE(registry_->Register(testing::MakeFakeDestination(state_), "").ok());

    store::StoredConnection c;
    c.connection.set_id("conn-1");
    c.connection.set_display_name("fake");
    c.connection.set_destination_type("fake");
    c.sealed_secrets = *crypto::SealMap(*box_, "conn-1", {{"token", "t0ken"}});
    ASSERT_TRUE(store_->CreateConnection(c).ok());
    v1::Segment segment;
    segment.set_id("seg-1");
    segment.set_name("VIP");
    auto* f = segment.add_schema();
    f->set_name("Email");
    f->set_type(v1::FIELD_TYPE_STRING);
    ASSERT_TRUE(store_->CreateSegment(segment).ok());
    export_.set_id("exp-1");
    export_.set_name("vip");
    export_.set_connection_id("conn-1");
    export_.add_segments("seg-1");
    export_.add_segment_names("VIP");
    auto* m = export_.add_mappings();
    m->set_destination_field("key");
    m->set_profile_field("Email");
    export_.set_mode(v1::EXPORT_MODE_MIRROR);
    export_.set_active(true);
    ASSERT_TRUE(store_->CreateExport(export_).ok());
  }
  // Whether the fake destination keys members by their `key` (identifier).
  virtual bool KeyByIdentifier() const { return false; }
  void TearDown() override {
    engine_.reset();
    StoreTest::TearDown();
  }
  // Runs `sql` on the store's database directly (what an older exportd left).
  void ExecSql(const std::string& sql) {
    if (postgres()) {
      auto conn = store::PgConnection::Open(conninfo_, "test");
      ASSERT_TRUE(conn.ok()) << conn.status();
      ASSERT_TRUE((*conn)->Exec(sql).ok());
      return;
    }
    auto db = store::Database::Open(dir_ + "/exportd.db", /*read_only=*/false);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec(sql).ok());
  }
  void StartEngine(EngineOptions options = {}) {
    engine_.reset();
    engine_ = MakeEngine(std::move(options));
  }
  // An engine over the fixture's store (a replica, with its own replica_id).
  std::unique_ptr<Engine> MakeEngine(EngineOptions options) {
    if (options.retry_base == EngineOptions().retry_base) {
      options.retry_base = absl::Milliseconds(10);
    }
    options.schedule_tick = absl::Milliseconds(20);
    if (KeyByIdentifier()) {
      // The identifier tests keep one identifier hash in memory: their runs
      // take the on-disk path that segments of millions take. (The in-memory
      // one is identifier_set_test's and the differ tests'.)
      options.identifier_memory_hashes = 1;
    }
    auto engine = Engine::Create(store_.get(), box_.get(), registry_.get(), std::move(options));
    EXPECT_TRUE(engine.ok()) << engine.status();
    if (!engine.ok()) return nullptr;
    absl::Status started = (*engine)->Start();
    EXPECT_TRUE(started.ok()) << started;
    return std::move(*engine);
  }
  int UpsertCalls() {
    absl::MutexLock lock(&state_->mu);
    return state_->upsert_calls;
  }
  // Members p<from>..p<to> with emails e<i>@x.com (suffix appended).
  void Upload(int from, int to, const std::string& suffix = "") {
    auto writer = store_->BeginSnapshot("seg-1", {store_->GetSegment("seg-1")->schema(0)});
    ASSERT_TRUE(writer.ok()) << writer.status();
    v1::UploadMembersRequest::Chunk chunk;
    for (int i = from; i <= to; ++i) {
      auto* row = chunk.add_rows();
      row->set_profile_id("p" + std::to_string(i));
      row->add_values()->set_string_value("e" + std::to_string(i) + suffix + "@x.com");
      if (chunk.rows_size() == 1000) {
        ASSERT_TRUE((*writer)->Append(chunk).ok());
        chunk.Clear();
      }
    }
    if (chunk.rows_size() > 0) {
      ASSERT_TRUE((*writer)->Append(chunk).ok());
    }
    ASSERT_TRUE((*writer)->Commit().ok());
  }
  // Members (profile id, email), in this order.
  void UploadRows(const std::vector<std::pair<std::string, std::string>>& rows) {
    auto writer = store_->BeginSnapshot("seg-1", {store_->GetSegment("seg-1")->schema(0)});
    ASSERT_TRUE(writer.ok()) << writer.status();
    v1::UploadMembersRequest::Chunk chunk;
    for (const auto& [id, email] : rows) {
      auto* row = chunk.add_rows();
      row->set_profile_id(id);
      row->add_values()->set_string_value(email);
    }
    ASSERT_TRUE((*writer)->Append(chunk).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
  }
  // The delivered state of exp-1's seg-1, by profile id.
  std::map<std::string, store::DeliveredState> DeliveredStates() {
    std::map<std::string, store::DeliveredState> states;
    const absl::Status read = store_->ForEachDelivered(
        "exp-1", "seg-1", [&](const store::DeliveredView& row) {
          states[std::string(row.profile_id)] = row.state;
          return absl::OkStatus();
        });
    EXPECT_TRUE(read.ok()) << read;
    return states;
  }
  v1::Run RunToEnd(TriggerOptions options = {}) {
    auto run = engine_->Trigger("vip", options);
    EXPECT_TRUE(run.ok()) << run.status();
    return WaitFinal(run->id());
  }
  // The run as the store has it once it is in `state` (or after 30 s).
  v1::Run WaitStored(const std::string& id, v1::RunState state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    v1::Run run;
    do {
      run = *store_->GetRun(id);
      if (run.state() == state) break;
      absl::SleepFor(absl::Milliseconds(2));
    } while (absl::Now() < deadline);
    return run;
  }
  v1::Run WaitFinal(const std::string& id) { return WaitFinal(*engine_, id); }
  v1::Run WaitFinal(Engine& engine, const std::string& id) {
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    v1::Run run;
    do {
      auto got = engine.GetRun(id);
      EXPECT_TRUE(got.ok());
      run = *got;
      if (IsFinal(run.state())) {
        // Written before it is shown: whoever sees the run end finds it
        // ended in the store too.
        auto stored = store_->GetRun(id);
        EXPECT_TRUE(stored.ok() && IsFinal(stored->state()))
            << "run " << id << " is " << v1::RunState_Name(run.state())
            << " in the engine's view but not in the store: "
            << (stored.ok() ? v1::RunState_Name(stored->state()) : stored.status().ToString());
        return run;
      }
      absl::SleepFor(absl::Milliseconds(1));
    } while (absl::Now() < deadline);
    ADD_FAILURE() << "run " << id << " did not end: " << run.DebugString();
    return run;
  }
  std::map<std::string, std::string> Audience() {
    absl::MutexLock lock(&state_->mu);
    return state_->audiences["VIP"];
  }

  std::unique_ptr<crypto::SecretBox> box_;
  std::shared_ptr<testing::FakeState> state_;
  std::unique_ptr<destinations::DestinationRegistry> registry_;
  // A test's fake clock; declared before engine_, which reads it until it is
  // destroyed (a clock local to the test body would go first).
  std::unique_ptr<FakeClock> fake_clock_;
  // Holds the engine's worker at its `n`-th committed batch until `resume`
  // is notified; `stalled` is notified when it gets there.
  void StallAtBatch(int n, absl::Notification* stalled, absl::Notification* resume) {
    auto batches = std::make_shared<std::atomic<int>>(0);
    engine_->SetCrashHookForTesting([n, stalled, resume, batches](const std::string&) {
      if (++*batches == n) {
        stalled->Notify();
        resume->WaitForNotification();
      }
      return true;
    });
  }
  FakeClock& UseFakeClock(absl::Time start) {
    fake_clock_ = std::make_unique<FakeClock>(start);
    return *fake_clock_;
  }
  // A clock that stands still in the middle of the current minute, for a
  // schedule firing every minute: on the real one, a minute passing during
  // the test fired it once more.
  FakeClock& UseMidMinuteClock() {
    return UseFakeClock(absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) / 60 * 60 + 30));
  }
  std::unique_ptr<Engine> engine_;
  v1::Export export_;
};

TEST(RunStatesTest, TransitionsAreWrittenDown) {
  EXPECT_TRUE(CanTransition(v1::RUN_STATE_QUEUED, v1::RUN_STATE_RUNNING));
  EXPECT_TRUE(CanTransition(v1::RUN_STATE_RUNNING, v1::RUN_STATE_FAILED_RETRYING));
  EXPECT_TRUE(CanTransition(v1::RUN_STATE_FAILED_RETRYING, v1::RUN_STATE_QUEUED));
  EXPECT_TRUE(CanTransition(v1::RUN_STATE_RUNNING, v1::RUN_STATE_QUEUED));  // restart
  EXPECT_FALSE(CanTransition(v1::RUN_STATE_SUCCEEDED, v1::RUN_STATE_RUNNING));
  EXPECT_FALSE(CanTransition(v1::RUN_STATE_QUEUED, v1::RUN_STATE_SUCCEEDED));
  EXPECT_FALSE(CanTransition(v1::RUN_STATE_CANCELED, v1::RUN_STATE_QUEUED));
  for (auto s : {v1::RUN_STATE_SUCCEEDED, v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS,
                 v1::RUN_STATE_FAILED, v1::RUN_STATE_CANCELED, v1::RUN_STATE_SKIPPED}) {
    EXPECT_TRUE(IsFinal(s));
    EXPECT_FALSE(CanTransition(s, v1::RUN_STATE_QUEUED));
  }
  EXPECT_THAT(std::string(CheckTransition(v1::RUN_STATE_FAILED, v1::RUN_STATE_RUNNING).message()),
              HasSubstr("RUN_STATE_FAILED to RUN_STATE_RUNNING"));
}

TEST_P(EngineTest, FirstRunSendsEverythingThenOnlyJoinsChangesAndLeaves) {
  Upload(1, 1000);
  StartEngine();
  v1::Run first = RunToEnd();
  ASSERT_EQ(first.state(), v1::RUN_STATE_SUCCEEDED) << first.message();
  EXPECT_EQ(first.segments(0).added(), 1000);
  EXPECT_EQ(first.segments(0).audience_id(), "aud-VIP");
  EXPECT_EQ(Audience().size(), 1000u);

  // Unchanged: nothing is sent.
  int calls_before;
  {
    absl::MutexLock lock(&state_->mu);
    calls_before = state_->upsert_calls;
  }
  v1::Run idle = RunToEnd();
  EXPECT_EQ(idle.segments(0).unchanged(), 1000);
  EXPECT_EQ(idle.segments(0).to_add() + idle.segments(0).to_update(), 0);
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->upsert_calls, calls_before);
  }

  // p1..p10 leave, p991..p1000 change, p1001..p1020 join.
  {
    auto writer = store_->BeginSnapshot("seg-1", {store_->GetSegment("seg-1")->schema(0)});
    v1::UploadMembersRequest::Chunk chunk;
    for (int i = 11; i <= 1020; ++i) {
      auto* row = chunk.add_rows();
      row->set_profile_id("p" + std::to_string(i));
      row->add_values()->set_string_value("e" + std::to_string(i) + (i > 990 ? "new" : "") +
                                          "@x.com");
    }
    ASSERT_TRUE((*writer)->Append(chunk).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
  }
  v1::Run diff = RunToEnd();
  ASSERT_EQ(diff.state(), v1::RUN_STATE_SUCCEEDED) << diff.message();
  const auto& p = diff.segments(0);
  EXPECT_EQ(p.to_add(), 20);
  EXPECT_EQ(p.to_update(), 10);
  EXPECT_EQ(p.to_remove(), 10);
  EXPECT_EQ(p.unchanged(), 980);
  EXPECT_EQ(p.added(), 20);
  EXPECT_EQ(p.updated(), 10);
  EXPECT_EQ(p.removed(), 10);
  auto audience = Audience();
  EXPECT_EQ(audience.size(), 1010u);
  EXPECT_EQ(audience.count("p1"), 0u);
  EXPECT_EQ(audience["p995"], "e995new@x.com");

  // --full resends everything.
  TriggerOptions full;
  full.full = true;
  v1::Run again = RunToEnd(full);
  EXPECT_EQ(again.segments(0).updated(), 1010);
}

// A row whose bytes did not change since it was delivered is known unchanged
// without reading its values; one whose unmapped value changed is read and
// found unchanged; one whose mapped value changed is sent. The same bytes
// under a schema whose columns moved are read again: they map differently.
TEST_P(EngineTest, UnchangedRowsAreKnownByTheirBytesUnderTheSameColumns) {
  v1::SchemaField email = store_->GetSegment("seg-1")->schema(0);
  v1::SchemaField note;
  note.set_name("Note");
  note.set_type(v1::FIELD_TYPE_STRING);
  auto upload = [&](std::vector<v1::SchemaField> schema,
                    const std::vector<std::vector<std::string>>& rows) {
    auto writer = store_->BeginSnapshot("seg-1", std::move(schema));
    ASSERT_TRUE(writer.ok()) << writer.status();
    v1::UploadMembersRequest::Chunk chunk;
    for (const auto& values : rows) {
      auto* row = chunk.add_rows();
      row->set_profile_id(values[0]);
      for (size_t i = 1; i < values.size(); ++i) row->add_values()->set_string_value(values[i]);
    }
    ASSERT_TRUE((*writer)->Append(chunk).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
  };
  upload({email, note}, {{"p1", "a1@x.com", "b1@x.com"},
                         {"p2", "a2@x.com", "note"},
                         {"p3", "a3@x.com", "note"}});
  StartEngine();
  v1::Run first = RunToEnd();
  ASSERT_EQ(first.state(), v1::RUN_STATE_SUCCEEDED) << first.message();
  EXPECT_EQ(first.segments(0).added(), 3);

  // p1 as it was, p2's note changed, p3's email changed.
  upload({email, note}, {{"p1", "a1@x.com", "b1@x.com"},
                         {"p2", "a2@x.com", "another note"},
                         {"p3", "a3-new@x.com", "note"}});
  v1::Run second = RunToEnd();
  ASSERT_EQ(second.state(), v1::RUN_STATE_SUCCEEDED) << second.message();
  EXPECT_EQ(second.segments(0).unchanged(), 2);
  EXPECT_EQ(second.segments(0).updated(), 1);
  EXPECT_EQ(Audience()["p3"], "a3-new@x.com");

  // The schema's columns swapped, p1's bytes as before: its Email is now
  // b1@x.com.
  upload({note, email}, {{"p1", "a1@x.com", "b1@x.com"},
                         {"p2", "another note", "a2@x.com"},
                         {"p3", "note", "a3-new@x.com"}});
  v1::Run third = RunToEnd();
  ASSERT_EQ(third.state(), v1::RUN_STATE_SUCCEEDED) << third.message();
  EXPECT_EQ(third.segments(0).unchanged(), 2);
  EXPECT_EQ(third.segments(0).updated(), 1);
  EXPECT_EQ(Audience()["p1"], "b1@x.com");
  EXPECT_EQ(Audience()["p2"], "a2@x.com");
}

// A replica of an older version (during an upgrade) writes a member's new
// values without knowing of row digests and leaves the digest as it was: as
// the digest is bound to the values' hash, the next run does not take the
// member's earlier row, uploaded again, for unchanged.
TEST_P(EngineTest, ARowDigestLeftByAnOlderReplicaDoesNotHideAChange) {
  Upload(1, 10);
  StartEngine();
  v1::Run first = RunToEnd();
  ASSERT_EQ(first.state(), v1::RUN_STATE_SUCCEEDED) << first.message();
  ASSERT_EQ(first.segments(0).added(), 10);
  // What the older replica's delivery of other values leaves behind.
  ExecSql("UPDATE delivered SET value_hash = value_hash + 1 WHERE profile_id = 'p3'");
  v1::Run next = RunToEnd();
  ASSERT_EQ(next.state(), v1::RUN_STATE_SUCCEEDED) << next.message();
  EXPECT_EQ(next.segments(0).unchanged(), 9);
  EXPECT_EQ(next.segments(0).updated(), 1);
}

TEST_P(EngineTest, AddOnlyNeverRemovesAndDryRunSendsNothing) {
  export_.set_mode(v1::EXPORT_MODE_ADD_ONLY);
  ASSERT_TRUE(store_->UpdateExport(export_).ok());
  Upload(1, 100);
  StartEngine();
  TriggerOptions dry;
  dry.dry_run = true;
  v1::Run preview = RunToEnd(dry);
  EXPECT_EQ(preview.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(preview.segments(0).to_add(), 100);
  EXPECT_EQ(preview.segments(0).added(), 0);
  EXPECT_TRUE(Audience().empty());
  ASSERT_EQ(RunToEnd().segments(0).added(), 100);
  Upload(51, 100);
  v1::Run second = RunToEnd();
  EXPECT_EQ(second.segments(0).to_remove(), 0);
  EXPECT_EQ(Audience().size(), 100u);
}

TEST_P(EngineTest, RejectionsAreKeptAndRetriedOnTheNextRun) {
  Upload(1, 50);
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject = {"p3", "p7"};
  }
  StartEngine();
  v1::Run run = RunToEnd();
  ASSERT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS);
  EXPECT_EQ(run.segments(0).rejected(), 2);
  EXPECT_EQ(run.segments(0).added(), 48);
  std::string next;
  auto rejections = store_->ListRejections(run.id(), {10, ""}, &next);
  ASSERT_EQ(rejections->size(), 2u);
  EXPECT_EQ(rejections->at(0).profile_id(), "p3");
  EXPECT_EQ(rejections->at(0).reason_code(), "fake_reject");
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject.clear();
  }
  v1::Run retry = RunToEnd();
  EXPECT_EQ(retry.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(retry.segments(0).added(), 2);
}

TEST_P(EngineTest, PreviouslyRejectedMembersAreRetriedInBatchesOfTheirOwn) {
  Upload(1, 10);
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject = {"p3"};
  }
  StartEngine();
  ASSERT_EQ(RunToEnd().segments(0).rejected(), 1);
  Upload(1, 20);
  int calls_before;
  {
    absl::MutexLock lock(&state_->mu);
    calls_before = state_->upsert_calls;
  }
  v1::Run second = RunToEnd();
  EXPECT_EQ(second.state(), v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS);
  EXPECT_EQ(second.segments(0).added(), 10);
  EXPECT_EQ(second.segments(0).rejected(), 1);
  absl::MutexLock lock(&state_->mu);
  // The 10 new members in one batch, the retried p3 in another.
  EXPECT_EQ(state_->upsert_calls - calls_before, 2);
}

// A retried member rejected again, unchanged, keeps its delivered row as it
// was (the run only marks it), and a run interrupted among such retries
// resumes without sending or counting the marked ones again.
TEST_P(EngineTest, MembersRejectedAgainKeepTheirRowsAndAResumedRunCountsThemOnce) {
  Upload(1, 1000);
  {
    absl::MutexLock lock(&state_->mu);
    for (int i = 4; i <= 1000; i += 4) state_->reject.insert("p" + std::to_string(i));
  }
  StartEngine();
  v1::Run first = RunToEnd();
  ASSERT_EQ(first.segments(0).rejected(), 250);
  auto rejected_rows_of = [&](const std::string& run_id) {
    int n = 0;
    EXPECT_TRUE(store_
                    ->ForEachDelivered("exp-1", "seg-1",
                                       [&](const store::DeliveredView& row) {
                                         if (row.state == store::DeliveredState::kRejected &&
                                             row.run_id == run_id) {
                                           ++n;
                                         }
                                         return absl::OkStatus();
                                       })
                    .ok());
    return n;
  };
  auto marks_of = [&](const std::string& run_id) {
    int n = 0;
    EXPECT_TRUE(store_
                    ->ForEachRejectedAgain(run_id, "exp-1", "seg-1",
                                           [&](absl::string_view) {
                                             ++n;
                                             return absl::OkStatus();
                                           })
                    .ok());
    return n;
  };
  ASSERT_EQ(rejected_rows_of(first.id()), 250);

  // The second run retries the 250 in batches of 100 and "crashes" after two.
  int batches = 0;
  engine_->SetCrashHookForTesting([&](const std::string&) { return ++batches < 2; });
  auto second = engine_->Trigger("vip", {});
  ASSERT_TRUE(second.ok()) << second.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline && store_->GetRun(second->id())->segments(0).rejected() < 200) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  engine_.reset();
  v1::Run interrupted = *store_->GetRun(second->id());
  ASSERT_EQ(interrupted.state(), v1::RUN_STATE_RUNNING);
  ASSERT_EQ(interrupted.segments(0).rejected(), 200);
  EXPECT_EQ(marks_of(second->id()), 200);
  EXPECT_EQ(rejected_rows_of(first.id()), 250) << "rejected again: the rows stay as they were";

  const int calls_before = UpsertCalls();
  StartEngine();
  v1::Run resumed = WaitFinal(second->id());
  EXPECT_EQ(resumed.state(), v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS) << resumed.message();
  EXPECT_EQ(resumed.attempt(), 2);
  EXPECT_EQ(resumed.segments(0).rejected(), 250);
  EXPECT_EQ(resumed.segments(0).added(), 0);
  EXPECT_EQ(UpsertCalls() - calls_before, 1) << "only the 50 not tried yet";
  EXPECT_EQ(marks_of(second->id()), 0) << "the marks go when the run ends";
  EXPECT_EQ(rejected_rows_of(first.id()), 250);

  // A member whose values changed and who is rejected again is rewritten.
  Upload(1, 1000, "-new");
  v1::Run third = RunToEnd();
  EXPECT_EQ(third.segments(0).rejected(), 250);
  EXPECT_EQ(rejected_rows_of(third.id()), 250);
}

// The delivered state remembers rejected members (not the capped rejections
// list): one rejected on its first attempt and then gone is forgotten, and
// nothing is removed for it; one whose update was rejected is still at the
// destination and is removed when it leaves.
TEST_P(EngineTest, RejectedMembersWhoLeaveAreRemovedOnlyIfTheyWereDelivered) {
  Upload(1, 10);
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject = {"p3"};
  }
  StartEngine();
  ASSERT_EQ(RunToEnd().segments(0).rejected(), 1);
  std::map<std::string, store::DeliveredState> states = DeliveredStates();
  EXPECT_EQ(states.size(), 10u);
  EXPECT_EQ(states["p3"], store::DeliveredState::kRejected);
  EXPECT_EQ(states["p4"], store::DeliveredState::kDelivered);

  // p4's update is rejected: it stays delivered, marked.
  Upload(1, 10, "-new");
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject = {"p3", "p4"};
  }
  v1::Run second = RunToEnd();
  EXPECT_EQ(second.segments(0).rejected(), 2);
  EXPECT_EQ(second.segments(0).updated(), 8);
  states = DeliveredStates();
  EXPECT_EQ(states["p3"], store::DeliveredState::kRejected);
  EXPECT_EQ(states["p4"], store::DeliveredState::kUpdateRejected);

  // Both leave: only p4 was ever at the destination.
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject.clear();
    state_->removed_records = 0;
  }
  Upload(5, 10, "-new");
  v1::Run third = RunToEnd();
  EXPECT_EQ(third.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(third.segments(0).removed(), 3) << "p1, p2 and p4; p3 was never delivered";
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->removed_records, 3);
  }
  states = DeliveredStates();
  EXPECT_EQ(states.size(), 6u);
  EXPECT_EQ(states.count("p3"), 0u) << "forgotten";
}

TEST_P(EngineTest, RetryableFailuresRetryWithBackoffThenFail) {
  Upload(1, 10);
  EngineOptions options;
  options.max_attempts = 3;
  StartEngine(options);
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 1;  // EnsureAudience fails once.
  }
  v1::Run run = RunToEnd();
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_EQ(run.attempt(), 2);
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 100;
  }
  Upload(1, 20);
  v1::Run failed = RunToEnd();
  EXPECT_EQ(failed.state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(failed.attempt(), 3);
  EXPECT_THAT(failed.message(), HasSubstr("fake destination is unavailable"));
  EXPECT_THAT(failed.message(), HasSubstr("; gave up after run attempt 3 of 3"));
}

// Records the destination could not take yet make the run retry; its message
// says why, in the destination's words, before the engine's run attempt.
TEST_P(EngineTest, RetryableRecordsSayWhyTheRunIsTriedAgain) {
  Upload(1, 10);
  {
    absl::MutexLock lock(&state_->mu);
    state_->retryable = {"p3", "p4"};
    state_->retryable_message = "Iterable request failed after 6 tries: subscribe: HTTP 503";
  }
  EngineOptions options;
  options.max_attempts = 3;
  options.retry_base = absl::Hours(1);  // Stays FAILED_RETRYING while the test looks.
  StartEngine(options);
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok()) << run.status();
  v1::Run retrying = WaitStored(run->id(), v1::RUN_STATE_FAILED_RETRYING);
  ASSERT_EQ(retrying.state(), v1::RUN_STATE_FAILED_RETRYING) << retrying.DebugString();
  EXPECT_THAT(retrying.message(),
              ::testing::StartsWith("2 records could not be delivered yet (Iterable request "
                                    "failed after 6 tries: subscribe: HTTP 503); the run will be "
                                    "tried again (run attempt 2 of 3) in 1h"));
  ASSERT_TRUE(engine_->Cancel(run->id()).ok());
}

// Records that came back retryable are sent again by the run's next attempt,
// not left for the next run: the attempt ends SUCCEEDED only once they are
// delivered, and nothing is counted twice.
TEST_P(EngineTest, RetryableRecordsAreSentByTheNextRunAttempt) {
  Upload(1, 10);
  {
    absl::MutexLock lock(&state_->mu);
    state_->retryable = {"p3", "p4"};
    state_->retryable_times = 1;
  }
  EngineOptions options;
  options.max_attempts = 3;
  StartEngine(options);
  v1::Run run = RunToEnd();
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_EQ(run.attempt(), 2);
  ASSERT_EQ(run.segments_size(), 1);
  EXPECT_EQ(run.segments(0).added(), 10);
  EXPECT_EQ(run.segments(0).retryable(), 0);
  EXPECT_TRUE(run.segments(0).done());
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->audiences.begin()->second.size(), 10u);
    EXPECT_EQ(state_->retryable_answers["p3"], 1);
    EXPECT_EQ(state_->upserted_records, 12) << "10, then p3 and p4 again; nothing else resent";
  }
  std::map<std::string, store::DeliveredState> states = DeliveredStates();
  EXPECT_EQ(states.size(), 10u);
  EXPECT_EQ(states["p3"], store::DeliveredState::kDelivered);

  // Still retryable on every attempt: the run fails after its attempts, and
  // the records are not delivered.
  {
    absl::MutexLock lock(&state_->mu);
    state_->retryable = {"p11"};
    state_->retryable_times = -1;
  }
  Upload(1, 11);
  v1::Run failed = RunToEnd();
  EXPECT_EQ(failed.state(), v1::RUN_STATE_FAILED) << failed.message();
  EXPECT_EQ(failed.attempt(), 3);
  EXPECT_THAT(failed.message(), HasSubstr("1 records could not be delivered yet"));
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->retryable_answers["p11"], 3) << "sent once per run attempt";
}

// An audience deleted at the destination during a run (Upsert answers
// NOT_FOUND) is created again once and gets the whole segment; a second
// disappearance in the same run fails it instead of looping.
TEST_P(EngineTest, AnAudienceGoneMidRunIsCreatedAgainOnceThenTheRunFails) {
  Upload(1, 10);
  StartEngine();
  {
    absl::MutexLock lock(&state_->mu);
    state_->gone_calls = 1;
  }
  v1::Run run = RunToEnd();
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_THAT(run.message(), HasSubstr("no longer exists"));
  EXPECT_THAT(run.message(), HasSubstr("created it again as aud-"));
  EXPECT_THAT(run.message(), HasSubstr("sent the whole segment"));
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->ensure_calls, 2);
    EXPECT_EQ(state_->gone_calls, 0);
    EXPECT_EQ(state_->audiences.begin()->second.size(), 10u);
    state_->gone_calls = 2;
    state_->ensure_calls = 0;
  }
  Upload(1, 20);
  v1::Run failed = RunToEnd();
  EXPECT_EQ(failed.state(), v1::RUN_STATE_FAILED) << failed.message();
  EXPECT_THAT(failed.message(), HasSubstr("disappeared again in this run"));
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->ensure_calls, 2) << "created again once, not in a loop";
}

// A destination's answer quoted in a plugin's log line cannot start a line
// of its own in exportd's log, nor move the cursor.
TEST_P(EngineTest, PluginLogLinesEscapeWhatTheDestinationSaid) {
  Upload(1, 3);
  {
    absl::MutexLock lock(&state_->mu);
    state_->log_line = "slow answer\nexportd: run run-x: forged\x1b[2J";
  }
  StartEngine();
  ::testing::internal::CaptureStderr();
  v1::Run run = RunToEnd();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_THAT(log, HasSubstr("exportd: run " + run.id() +
                             ": slow answer\\nexportd: run run-x: forged\\x1b[2J\n"));
  EXPECT_THAT(log, Not(HasSubstr("\nexportd: run run-x")));
  EXPECT_THAT(log, Not(HasSubstr("\x1b")));
}

// The run's message, built from a destination's error, is one line without
// control characters, live and as stored.
// --log-format json: one object per line, with the run, export and segment.
TEST_P(EngineTest, JsonLogLinesNameTheRunExportAndSegment) {
  Upload(1, 3);
  {
    absl::MutexLock lock(&state_->mu);
    state_->log_line = "slow \"answer\"\nnext";
  }
  StartEngine();
  SetLogFormat(LogFormat::kJson);
  ::testing::internal::CaptureStderr();
  v1::Run run = RunToEnd();
  const std::string log = ::testing::internal::GetCapturedStderr();
  SetLogFormat(LogFormat::kText);
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_THAT(log, HasSubstr("\"level\":\"warning\",\"component\":\"engine\",\"run_id\":\"" +
                             run.id() + "\",\"export\":\"vip\",\"segment\":\"VIP\","
                             "\"message\":\"slow \\\"answer\\\"\\\\nnext\"}\n"));
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "{\"time\":\"") && absl::EndsWith(line, "}")) << line;
  }
  EXPECT_THAT(log, Not(HasSubstr("t0ken")));
}

// The run's log lines as a viewer reads them (RunService.ListRunLog).
std::vector<v1::RunLogLine> StoredLog(store::Store& store, const std::string& run_id) {
  auto lines = store.ListRunLog(run_id, 0, 1000, v1::RUN_LOG_LEVEL_UNSPECIFIED, nullptr);
  EXPECT_TRUE(lines.ok()) << lines.status();
  return lines.ok() ? *lines : std::vector<v1::RunLogLine>();
}

std::string Describe(const std::vector<v1::RunLogLine>& lines) {
  std::string out;
  for (const auto& line : lines) {
    absl::StrAppend(&out, line.seq(), " ",
                    absl::StripPrefix(v1::RunLogLevel_Name(line.level()), "RUN_LOG_LEVEL_"), " [",
                    line.source(), "] ", line.message(), "\n");
  }
  return out;
}

// The run's log: its start, each segment's start and end, the plugin's
// lines (the destination's, escaped, with the connection's secret hidden),
// and the final state, stored before the final state shows.
TEST_P(EngineTest, ARunsLogHasItsStartThePluginsLinesAndItsEnd) {
  Upload(1, 3);
  {
    absl::MutexLock lock(&state_->mu);
    state_->log_line = "slow answer for key t0ken\nforged";
    state_->reject = {"p2"};
  }
  StartEngine();
  TriggerOptions options;
  options.requested_by = "ann";
  auto triggered = engine_->Trigger("vip", options);
  ASSERT_TRUE(triggered.ok()) << triggered.status();
  // The moment the engine shows the run final, its last line is stored.
  std::vector<v1::RunLogLine> lines;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  v1::Run run;
  while (absl::Now() < deadline) {
    run = *engine_->GetRun(triggered->id());
    if (IsFinal(run.state())) {
      lines = StoredLog(*store_, run.id());
      break;
    }
    absl::SleepFor(absl::Microseconds(200));
  }
  ASSERT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS) << run.message();
  ASSERT_GE(lines.size(), 5u) << Describe(lines);
  EXPECT_EQ(lines.back().message(),
            "run SUCCEEDED_WITH_REJECTIONS: 1 records were rejected; see 'exportctl run "
            "rejections " +
                run.id() + "'")
      << Describe(lines);
  EXPECT_EQ(lines.back().level(), v1::RUN_LOG_LEVEL_WARNING);
  EXPECT_EQ(lines.back().source(), "engine");
  WaitFinal(run.id());

  EXPECT_EQ(lines.front().source(), "engine");
  EXPECT_EQ(lines.front().message(),
            "run started (attempt 1 of 3): on demand, requested by ann; incremental, mirror "
            "mode; segments: VIP (3 members)");
  std::vector<std::string> segment, destination;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].seq(), static_cast<std::int64_t>(i + 1));
    EXPECT_GE(lines[i].at_micros(), run.created_at_micros());
    if (lines[i].source() == "segment VIP") segment.push_back(lines[i].message());
    if (lines[i].source() == "destination") {
      destination.push_back(lines[i].message());
      EXPECT_EQ(lines[i].level(), v1::RUN_LOG_LEVEL_WARNING);
    }
    EXPECT_THAT(lines[i].message(), Not(HasSubstr("t0ken")));
  }
  ASSERT_FALSE(destination.empty()) << Describe(lines);
  EXPECT_EQ(destination[0], "slow answer for key [hidden]\\nforged");
  ASSERT_GE(segment.size(), 2u) << Describe(lines);
  EXPECT_THAT(segment.front(), ::testing::StartsWith("started: 3 members to audience "));
  EXPECT_EQ(segment.back(), "done: 2 added, 0 updated, 0 removed, 1 rejected, 0 unchanged");
  // The engine's own lines about the segment (the sync stages') are the
  // segment's, not the destination's.
  EXPECT_THAT(Describe(lines), HasSubstr("[segment VIP] segment 'VIP': delivered state of"));
}

// Throttling and the engine's retries are in the run's log, attempt by
// attempt.
TEST_P(EngineTest, ARunsLogTellsOfThrottlingAndOfEachAttempt) {
  Upload(1, 5);
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 1;  // EnsureAudience of attempt 1 fails.
    state_->throttle_calls = 1;
    state_->throttle_retry_after = absl::Milliseconds(10);
  }
  StartEngine();
  v1::Run run = RunToEnd();
  ASSERT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  ASSERT_EQ(run.attempt(), 2);
  const std::string log = Describe(StoredLog(*store_, run.id()));
  EXPECT_THAT(log, HasSubstr("INFO [engine] run started (attempt 1 of 3)")) << log;
  EXPECT_THAT(log, HasSubstr("WARNING [engine] run FAILED_RETRYING: "))
      << log;
  EXPECT_THAT(log, HasSubstr("; the run will be tried again (run attempt 2 of 3) in ")) << log;
  EXPECT_THAT(log, HasSubstr("fake destination is unavailable")) << log;
  EXPECT_THAT(log, HasSubstr("INFO [engine] run started (attempt 2 of 3): on demand; "
                             "incremental, mirror mode; resuming from the last committed batch"))
      << log;
  EXPECT_THAT(log, HasSubstr("[segment VIP] the destination throttled a batch of 5 records"))
      << log;
  EXPECT_THAT(log, ::testing::EndsWith("INFO [engine] run SUCCEEDED\n")) << log;
}

// A run canceled before it started has one line: how it ended.
TEST_P(EngineTest, ARunCanceledInTheQueueLogsItsEnd) {
  Upload(1, 5);
  // No engine runs it: it stays queued.
  auto engine = Engine::Create(store_.get(), box_.get(), registry_.get(), {});
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto run = (*engine)->Trigger("vip", {});
  ASSERT_TRUE(run.ok()) << run.status();
  auto canceled = (*engine)->Cancel(run->id());
  ASSERT_TRUE(canceled.ok()) << canceled.status();
  EXPECT_EQ(canceled->state(), v1::RUN_STATE_CANCELED);
  const std::string log = Describe(StoredLog(*store_, run->id()));
  EXPECT_EQ(log, "1 INFO [engine] run CANCELED: canceled before it started\n");
}

TEST_P(EngineTest, RunMessageEscapesTheDestinationsError) {
  Upload(1, 3);
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 100;
    state_->fail_message = "down\nexportd: run run-x: forged\x1b[2J";
  }
  EngineOptions options;
  options.max_attempts = 2;
  StartEngine(options);
  v1::Run run = RunToEnd();
  EXPECT_EQ(run.state(), v1::RUN_STATE_FAILED);
  const std::string escaped = "down\\nexportd: run run-x: forged\\x1b[2J";
  EXPECT_THAT(run.message(), HasSubstr("segment 'VIP': the destination audience: " + escaped +
                                       "; gave up after run attempt 2 of 2"));
  auto stored = store_->GetRun(run.id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_THAT(stored->message(), HasSubstr(escaped));
  EXPECT_THAT(stored->message(), Not(HasSubstr("\n")));
}

TEST_P(EngineTest, ResumeAfterACrashEndsInTheSameStateAndCounts) {
  Upload(1, 1000);
  for (int crash_after : {1, 4, 9}) {
    SCOPED_TRACE(crash_after);
    {
      absl::MutexLock lock(&state_->mu);
      state_->audiences.clear();
    }
    // A fresh export each time, so the first run sends everything.
    v1::Export e = export_;
    e.set_id("exp-crash-" + std::to_string(crash_after));
    e.set_name("crash" + std::to_string(crash_after));
    ASSERT_TRUE(store_->CreateExport(e).ok());
    StartEngine();
    int batches = 0;
    engine_->SetCrashHookForTesting([&](const std::string&) { return ++batches < crash_after; });
    auto run = engine_->Trigger(e.name(), {});
    ASSERT_TRUE(run.ok());
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline && store_->GetRun(run->id())->segments(0).added() <
                                         (crash_after * 100)) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    engine_.reset();  // The "process" is gone; the store says RUNNING.
    v1::Run interrupted = *store_->GetRun(run->id());
    EXPECT_EQ(interrupted.state(), v1::RUN_STATE_RUNNING);
    EXPECT_EQ(interrupted.segments(0).added(), crash_after * 100);
    StartEngine();  // Restart: the run resumes.
    v1::Run resumed = WaitFinal(run->id());
    EXPECT_EQ(resumed.state(), v1::RUN_STATE_SUCCEEDED) << resumed.message();
    EXPECT_EQ(resumed.segments(0).added(), 1000);
    EXPECT_EQ(resumed.segments(0).updated(), 0);
    EXPECT_EQ(resumed.attempt(), 2);
    EXPECT_EQ(Audience().size(), 1000u);
  }
}

TEST_P(EngineTest, CancelStopsARunningRunAndKeepsWhatWasDelivered) {
  Upload(1, 5000);
  StartEngine();
  absl::Notification reached;
  std::atomic<int> batches{0};
  engine_->SetCrashHookForTesting([&](const std::string&) {
    if (++batches == 3) reached.Notify();
    if (batches >= 3) absl::SleepFor(absl::Milliseconds(20));
    return true;
  });
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok());
  reached.WaitForNotification();
  absl::Time asked = absl::Now();
  ASSERT_TRUE(engine_->Cancel(run->id()).ok());
  v1::Run canceled = WaitFinal(run->id());
  EXPECT_LT(absl::Now() - asked, absl::Seconds(1));
  EXPECT_EQ(canceled.state(), v1::RUN_STATE_CANCELED);
  EXPECT_GE(canceled.segments(0).added(), 300);
  EXPECT_LT(canceled.segments(0).added(), 5000);
  EXPECT_EQ(static_cast<std::int64_t>(Audience().size()), canceled.segments(0).added());
  EXPECT_EQ(engine_->Cancel(run->id()).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(EngineTest, OneRunPerExportAndOneFollowUpAtMost) {
  Upload(1, 3000);
  StartEngine();
  absl::Notification release;
  engine_->SetCrashHookForTesting([&](const std::string&) {
    release.WaitForNotification();
    return true;
  });
  auto first = engine_->Trigger("vip", {});
  ASSERT_TRUE(first.ok());
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (engine_->GetRun(first->id())->state() != v1::RUN_STATE_RUNNING &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  auto second = engine_->Trigger("vip", {});
  auto third = engine_->Trigger("vip", {});
  ASSERT_TRUE(second.ok() && third.ok());
  EXPECT_NE(second->id(), first->id());
  EXPECT_EQ(second->id(), third->id());
  EXPECT_FALSE(second->joined_queued_run());
  EXPECT_TRUE(third->joined_queued_run());  // what exportctl says "joined" from
  EXPECT_FALSE(engine_->GetRun(third->id())->joined_queued_run());  // not stored
  EXPECT_EQ(engine_->GetRun(second->id())->state(), v1::RUN_STATE_QUEUED);
  release.Notify();
  EXPECT_EQ(WaitFinal(first->id()).state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(WaitFinal(second->id()).state(), v1::RUN_STATE_SUCCEEDED);
}

TEST_P(EngineTest, ARunWaitsForAnUploadInProgressAndUsesTheNewSnapshot) {
  Upload(1, 10);
  StartEngine();
  auto writer = store_->BeginSnapshot("seg-1", {store_->GetSegment("seg-1")->schema(0)});
  ASSERT_TRUE(writer.ok());
  v1::UploadMembersRequest::Chunk chunk;
  for (int i = 1; i <= 20; ++i) {
    auto* row = chunk.add_rows();
    row->set_profile_id("p" + std::to_string(i));
    row->add_values()->set_string_value("e" + std::to_string(i) + "@x.com");
  }
  ASSERT_TRUE((*writer)->Append(chunk).ok());
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok());
  // While the upload is open the run stays queued, however often workers look.
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(engine_->GetRun(run->id())->state(), v1::RUN_STATE_QUEUED);
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE((*writer)->Commit().ok());
  writer->reset();
  v1::Run done = WaitFinal(run->id());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.segments(0).added(), 20);
}

TEST_P(EngineTest, DetachedExportsCannotRunAndQueuedRunsAreSkipped) {
  Upload(1, 10);
  export_.set_active(false);
  export_.clear_connection_id();
  ASSERT_TRUE(store_->UpdateExport(export_).ok());
  StartEngine();
  auto run = engine_->Trigger("vip", {});
  EXPECT_EQ(run.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("inactive"));
}

// A connection's export users lend their authority to the runs exportd
// starts (schedule, run all): the first who may still use the connection,
// and none: SKIPPED saying why. On-demand runs run as who asked.
TEST_P(EngineTest, RunsExportdStartsRunAsTheConnectionsFirstExportUserWhoMayUseIt) {
  Upload(1, 10);
  auto stored = store_->GetConnection("conn-1");
  ASSERT_TRUE(stored.ok());
  stored->connection.add_export_users("gone");     // No token any more.
  stored->connection.add_export_users("carol");    // A contributor; the connection is not shared.
  stored->connection.add_export_users("alice");    // An admin.
  ASSERT_TRUE(store_->UpdateConnection(*stored).ok());
  // Run all takes exports with a schedule; this one's next firing is months away.
  export_.mutable_schedule()->set_cron("0 0 1 1 *");
  export_.mutable_schedule()->set_enabled(true);
  export_.set_updated_at_micros(absl::ToUnixMicros(absl::Now()));
  ASSERT_TRUE(store_->UpdateExport(export_).ok());
  std::map<std::string, v1::Role> roles = {{"carol", v1::ROLE_CONTRIBUTOR},
                                           {"alice", v1::ROLE_ADMIN},
                                           {"victor", v1::ROLE_VIEWER}};
  absl::Mutex mu;
  EngineOptions options;
  options.principal_role = [&](const std::string& who) -> std::optional<v1::Role> {
    absl::MutexLock lock(&mu);
    auto it = roles.find(who);
    if (it == roles.end()) return std::nullopt;
    return it->second;
  };
  StartEngine(options);
  auto all = engine_->TriggerAll("bob", v1::ROLE_ADMIN);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  v1::Run run = WaitFinal((*all)[0].id());
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_EQ(run.run_as(), "alice");
  EXPECT_EQ(run.requested_by(), "bob");
  EXPECT_EQ(store_->GetRun(run.id())->run_as(), "alice");
  auto lines = store_->ListRunLog(run.id(), 0, 100, v1::RUN_LOG_LEVEL_UNSPECIFIED, nullptr);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_FALSE(lines->empty());
  EXPECT_THAT((*lines)[0].message(), HasSubstr("with the authority of export user alice"));

  // On demand: the caller's own authority, no export user.
  v1::Run on_demand = RunToEnd();
  EXPECT_EQ(on_demand.state(), v1::RUN_STATE_SUCCEEDED) << on_demand.message();
  EXPECT_EQ(on_demand.run_as(), "");

  // alice's token is gone, carol is still a contributor on an unshared connection.
  {
    absl::MutexLock lock(&mu);
    roles.erase("alice");
  }
  all = engine_->TriggerAll("bob", v1::ROLE_ADMIN);
  ASSERT_TRUE(all.ok()) << all.status();
  run = WaitFinal((*all)[0].id());
  EXPECT_EQ(run.state(), v1::RUN_STATE_SKIPPED);
  EXPECT_THAT(run.message(), HasSubstr("no export user of connection 'fake' may run it"));
  EXPECT_THAT(run.message(), HasSubstr("'gone' holds no token"));
  EXPECT_THAT(run.message(), HasSubstr("'carol' is a contributor and the connection is not shared"));
  EXPECT_THAT(run.message(), HasSubstr("exportctl connection update fake --add-self-as-export-user"));

  // Shared with contributors: carol may run it now.
  stored = store_->GetConnection("conn-1");
  stored->connection.set_shared_with_contributors(true);
  ASSERT_TRUE(store_->UpdateConnection(*stored).ok());
  all = engine_->TriggerAll("bob", v1::ROLE_ADMIN);
  ASSERT_TRUE(all.ok()) << all.status();
  run = WaitFinal((*all)[0].id());
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_EQ(run.run_as(), "carol");
}

TEST_P(EngineTest, ConcurrentRunsOfDifferentExports) {
  Upload(1, 2000);
  v1::Export other = export_;
  other.set_id("exp-2");
  other.set_name("other");
  ASSERT_TRUE(store_->CreateExport(other).ok());
  EngineOptions options;
  options.workers = 2;
  StartEngine(options);
  // Each run's first committed batch waits (up to 30 s) for the other run's:
  // both get there only if the two runs execute at the same time.
  absl::Mutex mu;
  std::set<std::string> arrived;
  int max_in_flight = 0;
  engine_->SetCrashHookForTesting([&](const std::string& run_id) {
    absl::MutexLock lock(&mu);
    arrived.insert(run_id);
    max_in_flight = std::max<int>(max_in_flight, arrived.size());
    mu.AwaitWithTimeout(absl::Condition(
                            +[](std::set<std::string>* a) { return a->size() >= 2; }, &arrived),
                        absl::Seconds(30));
    return true;
  });
  auto a = engine_->Trigger("vip", {});
  auto b = engine_->Trigger("other", {});
  EXPECT_EQ(WaitFinal(a->id()).state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(WaitFinal(b->id()).state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(max_in_flight, 2);
}

// The engine batches by Connection::speed() (the manifest's, lowered by the
// connection's settings), one plugin call per batch.
TEST_P(EngineTest, BatchesFollowTheConnectionsSpeedNotTheManifest) {
  Upload(1, 50);
  {
    absl::MutexLock lock(&state_->mu);
    sdk::SyncSpeed speed;
    speed.max_records_per_batch = 10;  // The manifest says 100.
    state_->connection_speed = speed;
  }
  StartEngine();
  v1::Run run = RunToEnd();
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_EQ(Audience().size(), 50u);
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->upsert_calls, 5);
}

// A throttled batch (ReportThrottle + RESOURCE_EXHAUSTED) is sent again in
// the same attempt; the connection's rate is halved and kept in the store.
TEST_P(EngineTest, AThrottledBatchIsSentAgainAndTheLearnedRateIsKept) {
  Upload(1, 10);
  {
    absl::MutexLock lock(&state_->mu);
    sdk::SyncSpeed speed;
    speed.requests_per_second = 8;
    state_->connection_speed = speed;
    state_->throttle_calls = 2;
  }
  StartEngine();
  v1::Run run = RunToEnd();
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_EQ(run.attempt(), 1) << "a throttle is not a failed attempt";
  EXPECT_EQ(Audience().size(), 10u);
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->throttled, 2);
    EXPECT_EQ(state_->upsert_calls, 1);
  }
  auto rate = store_->GetConnectionRate("conn-1");
  ASSERT_TRUE(rate.ok()) << rate.status();
  EXPECT_DOUBLE_EQ(rate->requests_per_second, 4) << "halved once for one burst of throttles";
}

// A destination's rate-limit reset far ahead (an hour) is waited for in full,
// not cut short, and shown as the running run's message; a cancel ends the
// wait at once. The destination's time is a fake clock that never moves, so
// the wait can only end with the cancel. A reset on the next day (UTC) names
// its date as well: the second case starts at 23:30 UTC.
TEST_P(EngineTest, ARateLimitResetFarAheadIsWaitedForInFullShownAndCancellable) {
  struct Case {
    absl::Time start;
    std::string expected;
  };
  const Case cases[] = {
      {absl::FromUnixSeconds(1'700'000'000),  // 2023-11-14 22:13:20 UTC
       "waiting for Fake's rate limit until 23:13 UTC"},
      {absl::FromUnixSeconds(1'700'004'600),  // 2023-11-14 23:30:00 UTC
       "waiting for Fake's rate limit until 2023-11-15 00:30 UTC"},
  };
  Upload(1, 10);
  FakeClock& clock = UseFakeClock(cases[0].start);
  EngineOptions options;
  options.destination_clock = &clock;
  StartEngine(options);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    clock.Advance(c.start - clock.Now());  // Forward only: the first reset has passed.
    {
      absl::MutexLock lock(&state_->mu);
      state_->throttle_calls = 1;
      state_->throttle_retry_after = absl::Hours(1);
    }
    auto run = engine_->Trigger("vip", {});
    ASSERT_TRUE(run.ok()) << run.status();
    std::string message;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      message = engine_->GetRun(run->id())->message();
      if (absl::StrContains(message, "waiting for")) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    EXPECT_EQ(message, c.expected);
    EXPECT_EQ(engine_->GetRun(run->id())->state(), v1::RUN_STATE_RUNNING);
    const absl::Time seen = absl::Now();
    ASSERT_TRUE(engine_->Cancel(run->id()).ok());
    v1::Run canceled = WaitFinal(run->id());
    EXPECT_EQ(canceled.state(), v1::RUN_STATE_CANCELED) << canceled.message();
    EXPECT_LT(absl::Now() - seen, absl::Seconds(10)) << "the wait ends with the cancel";
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->upsert_calls, 0) << "nothing was sent before the reset";
  }
}

// A throttled audience call (Iterable: GET or POST /api/lists answering 429
// with a rateLimitReset minutes ahead) waits on the connection's budget until
// the reset, shown as the run's message, and is made again: nothing is called
// before the reset, and the run spends no attempt on it. The destination's
// time is a fake clock that the test moves.
TEST_P(EngineTest, AThrottledAudienceCallWaitsForTheResetThenTheRunSucceeds) {
  Upload(1, 10);
  const absl::Time start = absl::FromUnixSeconds(1'700'000'000);  // 22:13:20 UTC
  FakeClock& clock = UseFakeClock(start);
  {
    absl::MutexLock lock(&state_->mu);
    state_->ensure_throttle_calls = 2;  // The look-up, then the creation.
    state_->throttle_retry_after = absl::Minutes(3);
  }
  EngineOptions options;
  options.destination_clock = &clock;
  StartEngine(options);
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok()) << run.status();
  auto wait_for_message = [&](const std::string& expected) {
    std::string message;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      message = engine_->GetRun(run->id())->message();
      if (message == expected) break;
      absl::SleepFor(absl::Milliseconds(2));
    }
    EXPECT_EQ(message, expected);
  };
  auto ensure_times = [&] {
    absl::MutexLock lock(&state_->mu);
    return state_->ensure_times;
  };
  wait_for_message("waiting for Fake's rate limit until 22:16 UTC");
  EXPECT_EQ(engine_->GetRun(run->id())->state(), v1::RUN_STATE_RUNNING);
  EXPECT_THAT(ensure_times(), ElementsAre(start));
  clock.Advance(absl::Minutes(3));  // The reset: the call is made again, and throttled again.
  wait_for_message("waiting for Fake's rate limit until 22:19 UTC");
  EXPECT_THAT(ensure_times(), ElementsAre(start, start + absl::Minutes(3)));
  clock.Advance(absl::Minutes(3));
  // Past the second reset time goes on (the halved rate paces the batch).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!IsFinal(engine_->GetRun(run->id())->state()) && absl::Now() < deadline) {
    clock.Advance(absl::Seconds(1));
    absl::SleepFor(absl::Milliseconds(2));
  }
  v1::Run done = WaitFinal(run->id());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED) << done.message();
  EXPECT_EQ(done.attempt(), 1) << "a throttle is not a failed attempt";
  EXPECT_EQ(Audience().size(), 10u);
  const std::vector<absl::Time> times = ensure_times();
  ASSERT_EQ(times.size(), 3u);
  EXPECT_EQ(times[1] - times[0], absl::Minutes(3)) << "called again before the reset";
  EXPECT_GE(times[2] - times[1], absl::Minutes(3)) << "called again before the reset";
  const std::string log = Describe(StoredLog(*store_, run->id()));
  EXPECT_THAT(log, HasSubstr("[segment VIP] the destination throttled the call that finds or "
                             "creates the segment's audience (fake destination: too many "
                             "audience requests); the connection slows down and pauses for 3m; "
                             "sending it again (1 of 8 resends)"))
      << log;
  EXPECT_THAT(log, Not(HasSubstr("FAILED_RETRYING"))) << log;
}

// The metrics tell what the runs committed: the record counters equal the
// runs' counts, and the exposition parses.
TEST_P(EngineTest, MetricsCountWhatTheRunsCommitted) {
  observability::Metrics metrics("test", 1);
  Upload(1, 50);
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject = {"p3", "p7"};
    sdk::SyncSpeed speed;
    speed.requests_per_second = 8;
    speed.max_records_per_batch = 20;
    state_->connection_speed = speed;
    state_->throttle_calls = 2;
  }
  EngineOptions options;
  options.metrics = &metrics;
  StartEngine(options);
  std::vector<v1::Run> runs;
  runs.push_back(RunToEnd());
  ASSERT_EQ(runs.back().state(), v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS);
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject.clear();
  }
  Upload(1, 40);  // p41..p50 leave and are removed.
  runs.push_back(RunToEnd());
  ASSERT_EQ(runs.back().state(), v1::RUN_STATE_SUCCEEDED);

  std::int64_t delivered = 0, rejected = 0, removed = 0, retryable = 0;
  for (const v1::Run& run : runs) {
    for (const auto& p : run.segments()) {
      delivered += p.added() + p.updated();
      rejected += p.rejected();
      removed += p.removed();
      retryable += p.retryable();
    }
  }
  ASSERT_EQ(rejected, 2);
  ASSERT_EQ(removed, 10);
  auto e = observability::testing::ParseExposition(metrics.Text());
  ASSERT_TRUE(e.ok()) << e.status() << "\n" << metrics.Text();
  const std::map<std::string, std::string> vip = {{"export", "vip"}, {"destination", "fake"}};
  auto records = [&](const char* outcome) {
    auto labels = vip;
    labels["outcome"] = outcome;
    return static_cast<std::int64_t>(e->Value("exportd_records_total", labels));
  };
  EXPECT_EQ(records("delivered"), delivered);
  EXPECT_EQ(records("rejected"), rejected);
  EXPECT_EQ(records("removed"), removed);
  EXPECT_EQ(records("retryable"), retryable);
  EXPECT_EQ(e->Value("exportd_runs_started_total", {{"export", "vip"}}), 2);
  EXPECT_EQ(e->Value("exportd_runs_finished_total",
                     {{"export", "vip"}, {"state", "succeeded_with_rejections"}}),
            1);
  EXPECT_EQ(e->Value("exportd_runs_finished_total", {{"export", "vip"}, {"state", "succeeded"}}),
            1);
  EXPECT_EQ(e->Value("exportd_run_duration_seconds_count", {{"export", "vip"}}), 2);
  EXPECT_EQ(e->Value("exportd_destination_throttled_total", {{"destination", "fake"}}), 2);
  EXPECT_EQ(e->Value("exportd_destination_calls_total",
                     {{"destination", "fake"}, {"call", "upsert"},
                      {"status", "RESOURCE_EXHAUSTED"}}),
            2);
  EXPECT_GE(e->Value("exportd_destination_calls_total", {{"call", "remove"}, {"status", "OK"}}),
            1);
  // The requests the plugin reported (RunContext::RequestDone), by HTTP status.
  EXPECT_EQ(e->Value("exportd_destination_requests_total",
                     {{"destination", "fake"}, {"endpoint", "/fake/upsert"}, {"status", "429"}}),
            2);
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(e->Value("exportd_destination_requests_total",
                       {{"endpoint", "/fake/upsert"}, {"status", "200"}}),
              state_->upsert_calls);
    EXPECT_EQ(e->Value("exportd_destination_requests_total",
                       {{"endpoint", "/fake/remove"}, {"status", "200"}}),
              state_->remove_calls);
    EXPECT_EQ(e->Value("exportd_destination_request_duration_seconds_count",
                       {{"endpoint", "/fake/upsert"}}),
              state_->upsert_calls + 2);
  }
  // The budget was halved by the throttles and recovers with successes: it
  // is somewhere up to the connection's speed, never unlimited (0).
  const double rate =
      e->Value("exportd_connection_rate_limit_requests_per_second", {{"connection", "fake"}});
  EXPECT_GT(rate, 0);
  EXPECT_LE(rate, 8);
  // Labels are bounded: no profile id or identifier, no secret.
  EXPECT_THAT(metrics.Text(), Not(HasSubstr("p3")));
  EXPECT_THAT(metrics.Text(), Not(HasSubstr("@x.com")));
  EXPECT_THAT(metrics.Text(), Not(HasSubstr("t0ken")));
}

TEST_P(EngineTest, ABatchThrottledTooOftenFailsTheAttemptRetryably) {
  Upload(1, 10);
  EngineOptions options;
  options.max_attempts = 2;
  options.max_throttle_resends = 2;
  {
    absl::MutexLock lock(&state_->mu);
    state_->throttle_calls = 1000;
  }
  StartEngine(options);
  v1::Run run = RunToEnd();
  EXPECT_EQ(run.state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(run.attempt(), 2) << "retryable: the run was attempted again";
  EXPECT_THAT(run.message(), HasSubstr("throttled a batch of 10 records 3 times in a row"));
  EXPECT_THAT(run.message(), HasSubstr("requests_per_second"));
}

// What a connection's budget learned survives a restart: the next engine
// starts at the learned rate, not at the ceiling.
TEST_P(EngineTest, ARestartedEngineStartsAtTheLearnedRate) {
  Upload(1, 9);
  {
    absl::MutexLock lock(&state_->mu);
    sdk::SyncSpeed speed;
    speed.max_records_per_batch = 1;
    speed.requests_per_second = 8;
    state_->connection_speed = speed;
    state_->throttle_calls = 1;
  }
  StartEngine();
  ASSERT_EQ(RunToEnd().state(), v1::RUN_STATE_SUCCEEDED);
  ASSERT_DOUBLE_EQ(store_->GetConnectionRate("conn-1")->requests_per_second, 4);

  StartEngine();  // A new engine: nothing in memory.
  {
    absl::MutexLock lock(&state_->mu);
    state_->call_times.clear();
  }
  TriggerOptions full;
  full.full = true;
  ASSERT_EQ(RunToEnd(full).state(), v1::RUN_STATE_SUCCEEDED);
  absl::MutexLock lock(&state_->mu);
  ASSERT_EQ(state_->call_times.size(), 9u);
  // 4 requests/s with a burst of 4: the 9th goes 1.25 s after the first. At
  // the ceiling (8/s, burst 8) it would go after 0.125 s.
  EXPECT_GE(state_->call_times.back() - state_->call_times.front(), absl::Seconds(1));
}

TEST_P(EngineTest, ScheduledExportsRunOnceForMissedFirings) {
  Upload(1, 10);
  FakeClock& clock = UseMidMinuteClock();
  const absl::Time start = clock.Now();
  export_.mutable_schedule()->set_cron("* * * * *");
  export_.mutable_schedule()->set_enabled(true);
  // Saved two hours ago: 120 firings were missed; one catch-up run follows.
  export_.set_updated_at_micros(absl::ToUnixMicros(start - absl::Hours(2)));
  ASSERT_TRUE(store_->UpdateExport(export_).ok());
  EngineOptions options;
  options.clock = &clock;
  StartEngine(options);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::vector<v1::Run> runs;
  std::string next;
  while (absl::Now() < deadline) {
    runs = *store_->ListRuns("exp-1", {10, ""}, &next);
    if (!runs.empty() && IsFinal(runs[0].state())) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].trigger(), v1::RUN_TRIGGER_SCHEDULE);
  EXPECT_EQ(runs[0].state(), v1::RUN_STATE_SUCCEEDED);
  absl::Time next_run = engine_->NextScheduledRun(export_, clock.Now());
  EXPECT_LE(next_run - clock.Now(), absl::Minutes(1));
}

// A scheduled run whose connection has no export user who may still use
// it is SKIPPED, with the reason in its message.
TEST_P(EngineTest, AScheduledRunWithoutAValidExportUserIsSkipped) {
  Upload(1, 10);
  auto stored = store_->GetConnection("conn-1");
  ASSERT_TRUE(stored.ok());
  stored->connection.add_export_users("victor");
  ASSERT_TRUE(store_->UpdateConnection(*stored).ok());
  FakeClock& clock = UseMidMinuteClock();
  export_.mutable_schedule()->set_cron("* * * * *");
  export_.mutable_schedule()->set_enabled(true);
  export_.set_updated_at_micros(absl::ToUnixMicros(clock.Now() - absl::Hours(2)));
  ASSERT_TRUE(store_->UpdateExport(export_).ok());
  EngineOptions options;
  options.clock = &clock;
  options.principal_role = [](const std::string& who) -> std::optional<v1::Role> {
    if (who == "victor") return v1::ROLE_VIEWER;
    return std::nullopt;
  };
  StartEngine(options);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::vector<v1::Run> runs;
  std::string next;
  while (absl::Now() < deadline) {
    runs = *store_->ListRuns("exp-1", {10, ""}, &next);
    if (!runs.empty() && IsFinal(runs[0].state())) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].trigger(), v1::RUN_TRIGGER_SCHEDULE);
  EXPECT_EQ(runs[0].state(), v1::RUN_STATE_SKIPPED);
  EXPECT_THAT(runs[0].message(), HasSubstr("'victor' is a viewer"));
  EXPECT_TRUE(Audience().empty());
}

// The fake destination keys members by the canonical `key` (the email).
class EngineIdentifierTest : public EngineTest {
 protected:
  bool KeyByIdentifier() const override { return true; }
  // Runs a dry run and then the real run, and checks that both found the same.
  v1::Run DryThenRun() {
    TriggerOptions dry;
    dry.dry_run = true;
    v1::Run preview = RunToEnd(dry);
    v1::Run run = RunToEnd();
    const auto& a = preview.segments(0);
    const auto& b = run.segments(0);
    EXPECT_EQ(a.to_add(), b.to_add());
    EXPECT_EQ(a.to_update(), b.to_update());
    EXPECT_EQ(a.to_remove(), b.to_remove());
    EXPECT_EQ(a.unchanged(), b.unchanged());
    EXPECT_EQ(a.duplicates(), b.duplicates());
    return run;
  }
  std::vector<v1::Rejection> Rejections(const std::string& run_id) {
    std::string next;
    auto page = store_->ListRejections(run_id, {100, ""}, &next);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? *page : std::vector<v1::Rejection>();
  }
};

TEST_P(EngineIdentifierTest, AChangedIdentifierRemovesTheOldOne) {
  UploadRows({{"p1", "x1@x.com"}, {"p2", "x2@x.com"}});
  StartEngine();
  ASSERT_EQ(RunToEnd().segments(0).added(), 2);
  UploadRows({{"p1", "X1new@x.com "}, {"p2", "x2@x.com"}});
  v1::Run run = DryThenRun();
  ASSERT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  const auto& p = run.segments(0);
  EXPECT_EQ(p.to_add(), 1);
  EXPECT_EQ(p.to_remove(), 1);
  EXPECT_EQ(p.unchanged(), 1);
  EXPECT_EQ(p.added(), 1);
  EXPECT_EQ(p.removed(), 1);
  auto audience = Audience();
  EXPECT_EQ(audience.count("x1@x.com"), 0u);
  EXPECT_EQ(audience["x1new@x.com"], "p1");
  EXPECT_EQ(audience.size(), 2u);
  // The new identifier is remembered: nothing to do next time.
  v1::Run idle = RunToEnd();
  EXPECT_EQ(idle.segments(0).unchanged(), 2);
  EXPECT_EQ(idle.segments(0).to_add() + idle.segments(0).to_remove(), 0);
}

TEST_P(EngineIdentifierTest, AddOnlyKeepsTheOldIdentifier) {
  export_.set_mode(v1::EXPORT_MODE_ADD_ONLY);
  ASSERT_TRUE(store_->UpdateExport(export_).ok());
  UploadRows({{"p1", "x1@x.com"}});
  StartEngine();
  RunToEnd();
  UploadRows({{"p1", "x1new@x.com"}});
  v1::Run run = DryThenRun();
  EXPECT_EQ(run.segments(0).to_remove(), 0);
  EXPECT_EQ(run.segments(0).added(), 1);
  auto audience = Audience();
  EXPECT_EQ(audience.count("x1@x.com"), 1u);
  EXPECT_EQ(audience.count("x1new@x.com"), 1u);
}

TEST_P(EngineIdentifierTest, ASharedIdentifierIsSentOnceAndStaysWhileAMemberHasIt) {
  UploadRows({{"p4", "shared@x.com"}, {"p3", "Shared@x.com"}, {"p5", "p5@x.com"}});
  StartEngine();
  v1::Run first = DryThenRun();
  // A duplicate is not a rejection: the run succeeds.
  ASSERT_EQ(first.state(), v1::RUN_STATE_SUCCEEDED) << first.message();
  EXPECT_EQ(first.segments(0).to_add(), 2);
  EXPECT_EQ(first.segments(0).added(), 2);
  EXPECT_EQ(first.segments(0).duplicates(), 1);
  EXPECT_EQ(first.segments(0).rejected(), 0);
  std::vector<v1::Rejection> rejections = Rejections(first.id());
  ASSERT_EQ(rejections.size(), 1u);
  EXPECT_EQ(rejections[0].profile_id(), "p3");
  EXPECT_EQ(rejections[0].reason_code(), "duplicate_identifier");
  EXPECT_THAT(rejections[0].message(), HasSubstr("informational"));
  EXPECT_THAT(rejections[0].message(), HasSubstr("'p4', which won"));
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->upserted_records, 2);  // shared@ once.
    EXPECT_EQ(state_->audiences["VIP"]["shared@x.com"], "p4");
  }

  // p3 leaves: p4 still has shared@, nothing is removed or resent.
  UploadRows({{"p4", "shared@x.com"}, {"p5", "p5@x.com"}});
  v1::Run second = DryThenRun();
  EXPECT_EQ(second.segments(0).to_remove(), 0);
  EXPECT_EQ(second.segments(0).unchanged(), 2);
  EXPECT_EQ(Audience().count("shared@x.com"), 1u);

  // p4 leaves and p3 comes back: shared@ stays, now sent for p3.
  UploadRows({{"p3", "shared@x.com"}, {"p5", "p5@x.com"}});
  v1::Run third = DryThenRun();
  EXPECT_EQ(third.segments(0).to_remove(), 0);
  EXPECT_EQ(third.segments(0).removed(), 0);
  EXPECT_EQ(third.segments(0).added(), 1);
  EXPECT_EQ(Audience()["shared@x.com"], "p3");
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->removed_records, 0);
  }

  // Both leave: now shared@ goes.
  UploadRows({{"p5", "p5@x.com"}});
  v1::Run fourth = DryThenRun();
  EXPECT_EQ(fourth.segments(0).removed(), 1);
  EXPECT_EQ(Audience().count("shared@x.com"), 0u);
}

// A joiner takes the identifier of a member whose row did not change. The
// diff reads the snapshot once and holds its changes (the joiner) until the
// identifiers are known; the unchanged member's share of the identifier is
// known only then, and the run reads the snapshot again to decide.
TEST_P(EngineIdentifierTest, AJoinerWithAnUnchangedMembersIdentifierIsADuplicate) {
  UploadRows({{"p3", "shared@x.com"}, {"p5", "p5@x.com"}});
  StartEngine();
  ASSERT_EQ(RunToEnd().segments(0).added(), 2);

  // p4 joins with shared@ and wins (the greater profile id): sent once, for p4.
  UploadRows({{"p3", "shared@x.com"}, {"p4", "Shared@x.com"}, {"p5", "p5@x.com"}});
  v1::Run second = DryThenRun();
  EXPECT_EQ(second.segments(0).duplicates(), 1);
  EXPECT_EQ(second.segments(0).to_remove(), 0);
  EXPECT_EQ(second.segments(0).added(), 1);
  std::vector<v1::Rejection> rejections = Rejections(second.id());
  ASSERT_EQ(rejections.size(), 1u);
  EXPECT_EQ(rejections[0].profile_id(), "p3");
  EXPECT_EQ(Audience()["shared@x.com"], "p4");

  // p2 joins with shared@ and loses to p4, whose row did not change:
  // nothing is sent.
  int upserted = 0;
  {
    absl::MutexLock lock(&state_->mu);
    upserted = state_->upserted_records;
  }
  UploadRows({{"p2", "shared@x.com"}, {"p3", "shared@x.com"}, {"p4", "Shared@x.com"},
              {"p5", "p5@x.com"}});
  v1::Run third = DryThenRun();
  EXPECT_EQ(third.segments(0).duplicates(), 2);
  EXPECT_EQ(third.segments(0).added() + third.segments(0).updated(), 0);
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->upserted_records, upserted);
  }

  // p4 leaves: shared@ stays, now sent for p3.
  UploadRows({{"p2", "shared@x.com"}, {"p3", "shared@x.com"}, {"p5", "p5@x.com"}});
  v1::Run fourth = DryThenRun();
  EXPECT_EQ(fourth.segments(0).removed(), 0);
  EXPECT_EQ(Audience()["shared@x.com"], "p3");
}

// Too many changes to hold (here a first run and a run where every email
// changes): the rest of the scan only collects identifiers, and the diff
// reads the snapshot again. A moved member's old identifier, taken by a
// member in the snapshot's last chunk, must stay.
TEST_P(EngineIdentifierTest, ManyChangesReadTheSnapshotAgainAndKeepWhatAMemberHas) {
  constexpr int kMembers = 60000;  // More than one stored chunk.
  Upload(1, kMembers);
  StartEngine();
  v1::Run first = RunToEnd();
  ASSERT_EQ(first.state(), v1::RUN_STATE_SUCCEEDED) << first.message();
  EXPECT_EQ(first.segments(0).added(), kMembers);

  // Every email changes (long ones: the snapshot takes several chunks);
  // p99999 (last in profile-id order) takes p1's old one.
  const std::string padding(48, 'v');
  std::vector<std::pair<std::string, std::string>> rows;
  for (int i = 1; i <= kMembers; ++i) {
    rows.emplace_back("p" + std::to_string(i), "e" + std::to_string(i) + padding + "@x.com");
  }
  rows.emplace_back("p99999", "e1@x.com");
  UploadRows(rows);
  v1::Run second = RunToEnd();
  ASSERT_EQ(second.state(), v1::RUN_STATE_SUCCEEDED) << second.message();
  EXPECT_EQ(second.segments(0).to_remove(), kMembers - 1);
  std::map<std::string, std::string> audience = Audience();
  EXPECT_EQ(audience.size(), static_cast<size_t>(kMembers + 1));
  EXPECT_EQ(audience["e1@x.com"], "p99999");
  EXPECT_EQ(audience["e2" + padding + "@x.com"], "p2");
  EXPECT_EQ(audience.count("e2@x.com"), 0u);
}

// An incremental run whose changes outgrow the memory it may hold them in
// stops holding, reads the snapshot again and ends as a one-pass run would.
TEST_P(EngineIdentifierTest, ChangesBeyondTheHeldMemoryReadTheSnapshotAgain) {
  constexpr int kMembers = 60000;  // More than one stored chunk.
  Upload(1, kMembers);
  EngineOptions options;
  options.held_memory_bytes = 4096;  // About 30 changed rows.
  StartEngine(options);
  v1::Run first = RunToEnd();
  ASSERT_EQ(first.state(), v1::RUN_STATE_SUCCEEDED) << first.message();

  // 600 members change their email, spread over every chunk; 100 leave.
  std::vector<std::pair<std::string, std::string>> rows;
  for (int i = 1; i <= kMembers; ++i) {
    if (i % 600 == 1) continue;  // Left.
    const bool changed = i % 100 == 0;
    rows.emplace_back("p" + std::to_string(i),
                      "e" + std::to_string(i) + (changed ? "-new" : "") + "@x.com");
  }
  UploadRows(rows);
  v1::Run second = RunToEnd();
  ASSERT_EQ(second.state(), v1::RUN_STATE_SUCCEEDED) << second.message();
  const auto& s = second.segments(0);
  EXPECT_EQ(s.to_remove(), 100 + 600);  // The leavers and the changed emails' old ones.
  EXPECT_EQ(s.unchanged(), kMembers - 100 - 600);
  EXPECT_EQ(s.added() + s.updated(), 600);
  bool read_again = false;
  for (const auto& line : StoredLog(*store_, second.id())) {
    if (line.message().find("the snapshot is read again") != std::string::npos) read_again = true;
  }
  EXPECT_TRUE(read_again);
  std::map<std::string, std::string> audience = Audience();
  EXPECT_EQ(audience.size(), static_cast<size_t>(kMembers - 100));
  EXPECT_EQ(audience["e300-new@x.com"], "p300");
  EXPECT_EQ(audience.count("e300@x.com"), 0u);
  EXPECT_EQ(audience.count("e601@x.com"), 0u);
  EXPECT_EQ(audience["e602@x.com"], "p602");
}

// A user the destination erased on request (a privacy deletion) is not sent
// again while it keeps that identifier, and nothing is removed for it.
TEST_P(EngineIdentifierTest, AForgottenUserIsNotSentAgainUntilItsIdentifierChanges) {
  {
    absl::MutexLock lock(&state_->mu);
    state_->forgotten.insert("gone@x.com");
  }
  UploadRows({{"p1", "Gone@x.com"}, {"p2", "x2@x.com"}});
  StartEngine();
  v1::Run first = RunToEnd();
  EXPECT_EQ(first.segments(0).added(), 1);
  EXPECT_EQ(first.segments(0).rejected(), 1);
  std::vector<v1::Rejection> rejections = Rejections(first.id());
  ASSERT_EQ(rejections.size(), 1u);
  EXPECT_EQ(rejections[0].reason_code(), sdk::kReasonForgotten);

  // The same snapshot: p1 is not sent again (the dry run agrees).
  v1::Run second = DryThenRun();
  EXPECT_EQ(second.segments(0).to_add() + second.segments(0).to_update(), 0);
  EXPECT_EQ(second.segments(0).unchanged(), 2);
  EXPECT_EQ(second.segments(0).rejected(), 0);

  // p1 leaves: nothing is removed for it.
  UploadRows({{"p2", "x2@x.com"}});
  v1::Run third = DryThenRun();
  EXPECT_EQ(third.segments(0).to_remove(), 0);
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->forgotten_attempts, 1);
    EXPECT_EQ(state_->removed_records, 0);
  }

  // It comes back with another email: that one is sent.
  UploadRows({{"p1", "new@x.com"}, {"p2", "x2@x.com"}});
  v1::Run fourth = RunToEnd();
  EXPECT_EQ(fourth.segments(0).added(), 1);
  EXPECT_EQ(Audience()["new@x.com"], "p1");
}

// And when it changes its email while still a member, the new one is sent.
TEST_P(EngineIdentifierTest, AForgottenMemberWithANewIdentifierIsSent) {
  {
    absl::MutexLock lock(&state_->mu);
    state_->forgotten.insert("gone@x.com");
  }
  UploadRows({{"p1", "gone@x.com"}});
  StartEngine();
  EXPECT_EQ(RunToEnd().segments(0).rejected(), 1);
  UploadRows({{"p1", "back@x.com"}});
  v1::Run second = RunToEnd();
  EXPECT_EQ(second.segments(0).added(), 1);
  EXPECT_EQ(second.segments(0).to_remove(), 0);
  EXPECT_EQ(Audience()["back@x.com"], "p1");
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->removed_records, 0);
}

TEST_P(EngineIdentifierTest, AnIdentifierThatBecameInvalidIsRemoved) {
  UploadRows({{"p1", "x1@x.com"}, {"p2", "x2@x.com"}});
  StartEngine();
  RunToEnd();
  UploadRows({{"p1", "x1@x.com"}, {"p2", "not-a-key"}});
  v1::Run run = DryThenRun();
  ASSERT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS) << run.message();
  EXPECT_EQ(run.segments(0).removed(), 1);
  EXPECT_EQ(run.segments(0).rejected(), 1);
  EXPECT_EQ(Audience().count("x2@x.com"), 0u);
  std::vector<v1::Rejection> rejections = Rejections(run.id());
  ASSERT_EQ(rejections.size(), 1u);
  EXPECT_EQ(rejections[0].profile_id(), "p2");
  EXPECT_THAT(rejections[0].message(), HasSubstr("previous key was removed"));
}

TEST_P(EngineIdentifierTest, AMovedIdentifierIsNotRemovedButSentForItsNewProfile) {
  UploadRows({{"p1", "x1@x.com"}});
  StartEngine();
  RunToEnd();
  // p1 changes its email; p2 joins with p1's old one.
  UploadRows({{"p1", "x1new@x.com"}, {"p2", "x1@x.com"}});
  v1::Run run = DryThenRun();
  EXPECT_EQ(run.segments(0).to_remove(), 0);
  EXPECT_EQ(run.segments(0).added(), 2);
  auto audience = Audience();
  EXPECT_EQ(audience["x1@x.com"], "p2");
  EXPECT_EQ(audience["x1new@x.com"], "p1");
}

TEST_P(EngineIdentifierTest, RowsWithoutAnIdentifierAreResentOnceAndTheirLeaversDerived) {
  UploadRows({{"p1", "a@x.com"}, {"p2", "b@x.com"}});
  StartEngine();
  RunToEnd();
  {
    // As delivered before schema version 4: no identifier recorded.
    ExecSql("UPDATE delivered SET ident_hash = NULL");
  }
  // p1 leaves and p3 joins with p1's email: a@ must stay.
  UploadRows({{"p2", "b@x.com"}, {"p3", "a@x.com"}});
  v1::Run run = DryThenRun();
  EXPECT_EQ(run.segments(0).to_update(), 1);  // p2, resent once
  EXPECT_EQ(run.segments(0).to_add(), 1);     // p3
  EXPECT_EQ(run.segments(0).to_remove(), 0);
  auto audience = Audience();
  EXPECT_EQ(audience["a@x.com"], "p3");
  EXPECT_EQ(audience["b@x.com"], "p2");
  v1::Run idle = RunToEnd();
  EXPECT_EQ(idle.segments(0).unchanged(), 2);
}

// --- Leases: the store is the run queue; replicas share it -----------------

constexpr absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

TEST_P(EngineTest, ARunShowsItsReplicaAndRunAttemptAndReleasesItsLease) {
  Upload(1, 10);
  EngineOptions options;
  options.replica_id = "replica-a";
  StartEngine(options);
  EXPECT_EQ(engine_->replica_id(), "replica-a");
  v1::Run run = RunToEnd();
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_EQ(run.replica(), "replica-a");
  EXPECT_EQ(run.attempt(), 1);
  auto stored = store_->GetRun(run.id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->replica(), "replica-a");
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (store_->GetRun(run.id())->lease_expires_at_micros() != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_EQ(store_->GetRun(run.id())->lease_expires_at_micros(), 0) << "released at the end";
  // Without --replica-id: host:pid.
  EXPECT_THAT(DefaultReplicaId(), HasSubstr(":" + std::to_string(getpid())));
}

TEST_P(EngineTest, RetryMessagesCountRunAttemptsApartFromTheDestinationsOwn) {
  Upload(1, 10);
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 1;
    state_->fail_message = "busy after 6 tries";  // As a plugin counts its requests.
  }
  EngineOptions options;
  options.max_attempts = 3;
  options.retry_base = absl::Hours(1);  // --run-retry-backoff 1h
  StartEngine(options);
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok());
  v1::Run retrying = WaitStored(run->id(), v1::RUN_STATE_FAILED_RETRYING);
  ASSERT_EQ(retrying.state(), v1::RUN_STATE_FAILED_RETRYING) << retrying.DebugString();
  // The cause (quoting the plugin's tries), then the engine's run attempt.
  EXPECT_THAT(retrying.message(),
              ::testing::StartsWith("segment 'VIP': the destination audience: busy after 6 "
                                    "tries; the run will be tried again (run attempt 2 of 3) in "
                                    "1h"));
  const absl::Duration wait =
      absl::FromUnixMicros(retrying.next_attempt_at_micros()) - absl::Now();
  EXPECT_GT(wait, absl::Minutes(59));
  EXPECT_LT(wait, absl::Minutes(73));  // 1h plus at most 20% jitter.
  // Waiting for its backoff, it can be canceled.
  auto canceled = engine_->Cancel(run->id());
  ASSERT_TRUE(canceled.ok()) << canceled.status();
  EXPECT_EQ(WaitFinal(run->id()).state(), v1::RUN_STATE_CANCELED);
  EXPECT_EQ(store_->GetRun(run->id())->state(), v1::RUN_STATE_CANCELED);
}

// The backoff runs on the engine's clock: an hour of it passes in a moment,
// and the run does not start again before it has passed.
TEST_P(EngineTest, ARetryWaitsForItsBackoffOnTheEnginesClock) {
  Upload(1, 10);
  {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = 1;
  }
  FakeClock& clock = UseFakeClock(absl::Now());
  EngineOptions options;
  options.max_attempts = 2;
  options.retry_base = absl::Hours(1);
  options.clock = &clock;
  StartEngine(options);
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok());
  auto state = [&] { return store_->GetRun(run->id())->state(); };
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (state() != v1::RUN_STATE_FAILED_RETRYING && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  ASSERT_EQ(state(), v1::RUN_STATE_FAILED_RETRYING);
  const absl::Time due = absl::FromUnixMicros(store_->GetRun(run->id())->next_attempt_at_micros());
  EXPECT_EQ(due - clock.Now() >= absl::Hours(1), true);
  // Half an hour later (on the clock) the queue does not hand it out yet.
  clock.Advance(absl::Minutes(30));
  auto early = store_->ClaimNextRun({"probe", clock.NowMicros(), absl::Seconds(15)});
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_FALSE(early->has_value());
  EXPECT_EQ(state(), v1::RUN_STATE_FAILED_RETRYING);
  EXPECT_EQ(UpsertCalls(), 0);
  // Past the backoff: the second attempt runs and succeeds.
  clock.Advance(absl::Minutes(45));
  engine_->Wake();
  v1::Run done = WaitFinal(run->id());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED) << done.message();
  EXPECT_EQ(done.attempt(), 2);
}

// Fencing: replica A stalls longer than its lease; replica B takes the run
// over and finishes it; A's next commit is refused and A leaves the run alone.
TEST_P(EngineTest, AReplicaThatLostItsLeaseCannotCommitABatch) {
  Upload(1, 1000);
  FakeClock& clock = UseFakeClock(kStart);
  EngineOptions a_options;
  a_options.replica_id = "replica-a";
  a_options.clock = &clock;
  a_options.lease_renew_every = absl::Hours(1);  // A stalls: no heartbeat in time.
  a_options.workers = 1;  // Its only worker stalls (another one would claim the run).
  StartEngine(a_options);
  absl::Notification stalled, resume;
  StallAtBatch(3, &stalled, &resume);
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok());
  stalled.WaitForNotification();
  EXPECT_EQ(store_->GetRun(run->id())->replica(), "replica-a");

  clock.Advance(absl::Seconds(16));  // A's 15 s lease is over.
  EngineOptions b_options;
  b_options.replica_id = "replica-b";
  b_options.clock = &clock;
  std::unique_ptr<Engine> b = MakeEngine(b_options);
  ASSERT_NE(b, nullptr);
  v1::Run finished = WaitFinal(*b, run->id());
  EXPECT_EQ(finished.state(), v1::RUN_STATE_SUCCEEDED) << finished.message();
  EXPECT_EQ(finished.replica(), "replica-b");
  EXPECT_EQ(finished.attempt(), 2);
  EXPECT_EQ(finished.segments(0).added(), 1000);
  absl::Time released = absl::Now() + absl::Seconds(10);
  while (store_->GetRun(run->id())->lease_expires_at_micros() != 0 && absl::Now() < released) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  const v1::Run by_b = *store_->GetRun(run->id());
  EXPECT_EQ(by_b.lease_expires_at_micros(), 0) << "B released its lease";

  // A wakes up, sends its next batch and tries to commit it.
  const int upserts = UpsertCalls();
  ::testing::internal::CaptureStderr();
  resume.Notify();
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (UpsertCalls() == upserts && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  engine_.reset();  // Waits for A's worker to be done with the run.
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("this replica ('replica-a') lost its lease and stopped the run"));

  v1::Run after = *store_->GetRun(run->id());
  EXPECT_EQ(after.SerializeAsString(), by_b.SerializeAsString())
      << "A changed B's run:\n"
      << after.DebugString();
  EXPECT_EQ(after.segments(0).added(), 1000);
  EXPECT_EQ(Audience().size(), 1000u);
}

// A replica dies mid-run: its lease expires, another replica claims the run
// and resumes it from the last committed batch, resending nothing committed.
TEST_P(EngineTest, AnExpiredLeaseIsTakenOverAndTheRunResumesFromItsLastCommittedBatch) {
  Upload(1, 1000);
  FakeClock& clock = UseFakeClock(kStart);
  EngineOptions a_options;
  a_options.replica_id = "replica-a";
  a_options.clock = &clock;
  StartEngine(a_options);
  int batches = 0;
  engine_->SetCrashHookForTesting([&](const std::string&) { return ++batches < 4; });
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok());
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (store_->GetRun(run->id())->segments(0).added() < 400 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  engine_.reset();  // Replica A is gone; its lease stays until it expires.
  v1::Run interrupted = *store_->GetRun(run->id());
  EXPECT_EQ(interrupted.state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(interrupted.replica(), "replica-a");
  EXPECT_EQ(interrupted.segments(0).added(), 400);
  const int upserts = UpsertCalls();

  EngineOptions b_options;
  b_options.replica_id = "replica-b";
  b_options.clock = &clock;
  std::unique_ptr<Engine> b = MakeEngine(b_options);
  ASSERT_NE(b, nullptr);
  // While A's lease lasts, nobody may take the run.
  store::ClaimRequest probe{"replica-c", clock.NowMicros(), absl::Seconds(15)};
  EXPECT_FALSE(store_->ClaimNextRun(probe)->has_value());
  EXPECT_EQ(store_->GetRun(run->id())->replica(), "replica-a");

  clock.Advance(absl::Seconds(16));
  v1::Run resumed = WaitFinal(*b, run->id());
  EXPECT_EQ(resumed.state(), v1::RUN_STATE_SUCCEEDED) << resumed.message();
  EXPECT_EQ(resumed.replica(), "replica-b");
  EXPECT_EQ(resumed.attempt(), 2);
  EXPECT_EQ(resumed.segments(0).added(), 1000);
  EXPECT_EQ(resumed.segments(0).updated(), 0);
  EXPECT_EQ(UpsertCalls() - upserts, 6) << "only the 6 batches A had not committed";
  EXPECT_EQ(Audience().size(), 1000u);
}

// A run that lasts longer than its lease keeps it while the heartbeat renews.
TEST_P(EngineTest, HeartbeatsKeepALongRunsLease) {
  Upload(1, 1000);
  FakeClock& clock = UseFakeClock(kStart);
  EngineOptions options;
  options.replica_id = "replica-a";
  options.clock = &clock;
  options.lease_renew_every = absl::Milliseconds(5);
  StartEngine(options);
  absl::Notification stalled, resume;
  StallAtBatch(2, &stalled, &resume);
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok());
  stalled.WaitForNotification();
  for (int i = 0; i < 4; ++i) {
    clock.Advance(absl::Seconds(10));  // 40 s in all: more than twice the lease.
    const std::int64_t renewed = clock.NowMicros() + absl::ToInt64Microseconds(absl::Seconds(15));
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (store_->GetRun(run->id())->lease_expires_at_micros() < renewed &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    EXPECT_EQ(store_->GetRun(run->id())->lease_expires_at_micros(), renewed) << "round " << i;
  }
  store::ClaimRequest other{"replica-b", clock.NowMicros(), absl::Seconds(15)};
  EXPECT_FALSE(store_->ClaimNextRun(other)->has_value());
  resume.Notify();
  v1::Run done = WaitFinal(run->id());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED) << done.message();
  EXPECT_EQ(done.replica(), "replica-a");
  EXPECT_EQ(done.attempt(), 1);
}

// A cancel reaches a run that another replica executes, through the store.
TEST_P(EngineTest, ACancelReachesARunThatAnotherReplicaExecutes) {
  Upload(1, 3000);
  EngineOptions a_options;
  a_options.replica_id = "replica-a";
  a_options.lease_renew_every = absl::Milliseconds(5);
  StartEngine(a_options);
  absl::Notification reached;
  std::atomic<int> batches{0};
  engine_->SetCrashHookForTesting([&](const std::string&) {
    if (++batches == 2) reached.Notify();
    if (batches >= 2) absl::SleepFor(absl::Milliseconds(5));
    return true;
  });
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok());
  reached.WaitForNotification();
  EngineOptions b_options;
  b_options.replica_id = "replica-b";
  std::unique_ptr<Engine> b = MakeEngine(b_options);
  ASSERT_NE(b, nullptr);
  auto asked = b->Cancel(run->id());
  ASSERT_TRUE(asked.ok()) << asked.status();
  v1::Run canceled = WaitFinal(run->id());
  EXPECT_EQ(canceled.state(), v1::RUN_STATE_CANCELED);
  EXPECT_EQ(canceled.replica(), "replica-a");
  EXPECT_LT(canceled.segments(0).added(), 3000);
}

// Webhook notifications of finished runs: the engine queues them in the
// store's outbox once, when a run ends; the notifier (server/notify) sends
// them on its own thread.
class EngineNotifyTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto receiver = testing::WebhookReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = std::move(*receiver);
  }
  void TearDown() override {
    engine_.reset();
    notifier_.reset();
    receiver_.reset();
    EngineTest::TearDown();
  }
  // Gives the export a webhook at `url` with `notify_on` and a secret.
  void SetWebhook(const std::string& url, std::vector<std::string> notify_on) {
    v1::Export e = *store_->GetExport("exp-1");
    e.set_notify_url(url);
    for (auto& value : notify_on) e.add_notify_on(value);
    e.set_notify_secret_set(true);
    ASSERT_TRUE(store_->UpdateExport(e).ok());
    ASSERT_TRUE(store_
                    ->PutNotifySecret("exp-1", *notify::SealSigningSecret(
                                                   *box_, "exp-1", std::string(64, 'a')))
                    .ok());
  }
  void StartWithNotifier(absl::Duration backoff, EngineOptions options = {}) {
    notify::NotifierOptions n;
    n.replica_id = "replica-a";
    n.backoff_base = backoff;
    n.poll_interval = absl::Milliseconds(10);
    n.jitter = [] { return 0.0; };
    auto notifier = notify::Notifier::Create(store_.get(), box_.get(), n);
    ASSERT_TRUE(notifier.ok()) << notifier.status();
    notifier_ = std::move(*notifier);
    notifier_->Start();
    options.max_attempts = 1;  // A failing run fails for good at once.
    options.notifications_queued = [this] { notifier_->Wake(); };
    StartEngine(options);
  }
  void FailCalls(int n) {
    absl::MutexLock lock(&state_->mu);
    state_->fail_calls = n;
  }
  // (run id, trigger) of every delivery so far.
  std::vector<std::pair<std::string, std::string>> Deliveries() {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& r : receiver_->requests()) {
      auto body = nlohmann::json::parse(r.body);
      out.emplace_back(body["run_id"], body["trigger"]);
    }
    return out;
  }

  std::unique_ptr<testing::WebhookReceiver> receiver_;
  std::unique_ptr<notify::Notifier> notifier_;
};

TEST_P(EngineNotifyTest, EachTriggerFiresOnceAndAPlainSuccessSendsNothing) {
  SetWebhook(receiver_->url(), {"failed", "recovered", "rejections>10%"});
  StartWithNotifier(absl::Milliseconds(10));
  Upload(1, 10);
  v1::Run first = RunToEnd();  // Succeeded, nothing failed before: nothing.
  ASSERT_EQ(first.state(), v1::RUN_STATE_SUCCEEDED);

  Upload(1, 10, "-v2");
  FailCalls(1000);
  v1::Run failed = RunToEnd();
  ASSERT_EQ(failed.state(), v1::RUN_STATE_FAILED);
  FailCalls(0);
  ASSERT_TRUE(receiver_->WaitForRequests(1, absl::Seconds(30)));

  v1::Run recovered = RunToEnd();
  ASSERT_EQ(recovered.state(), v1::RUN_STATE_SUCCEEDED);
  ASSERT_TRUE(receiver_->WaitForRequests(2, absl::Seconds(30)));

  Upload(1, 10, "-v3");
  v1::Run again = RunToEnd();  // Succeeded after a success: nothing.
  ASSERT_EQ(again.state(), v1::RUN_STATE_SUCCEEDED);

  Upload(1, 10, "-v4");
  {
    absl::MutexLock lock(&state_->mu);
    state_->reject = {"p1", "p2"};  // 2 of 10: 20% > 10%.
  }
  v1::Run rejecting = RunToEnd();
  ASSERT_EQ(rejecting.state(), v1::RUN_STATE_SUCCEEDED_WITH_REJECTIONS);
  ASSERT_TRUE(receiver_->WaitForRequests(3, absl::Seconds(30)));
  // Everything queued was delivered, and nothing else was queued.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!store_->ListNotifications()->empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(store_->ListNotifications()->empty());
  using Delivery = std::pair<std::string, std::string>;
  EXPECT_THAT(Deliveries(),
              ::testing::UnorderedElementsAre(Delivery(failed.id(), "failed"),
                                              Delivery(recovered.id(), "recovered"),
                                              Delivery(rejecting.id(), "rejections")));
}

TEST_P(EngineNotifyTest, ARunEndsOnlyTogetherWithItsNotification) {
  SetWebhook(receiver_->url(), {"failed"});
  EngineOptions options;
  options.lease = absl::Seconds(1);  // A run whose end was not stored resumes soon.
  StartWithNotifier(absl::Milliseconds(10), options);
  Upload(1, 10);
  FailCalls(1000);
  // The outbox refuses the notification (a full disk): the run may not be
  // stored as ended without it, or its alert would be lost for good.
  if (postgres()) {
    ExecSql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$");
    ExecSql("CREATE TRIGGER refuse BEFORE INSERT ON notifications FOR EACH ROW "
            "EXECUTE FUNCTION refuse()");
  } else {
    ExecSql("CREATE TRIGGER refuse BEFORE INSERT ON notifications "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
  }
  auto run = engine_->Trigger("vip", {});
  ASSERT_TRUE(run.ok()) << run.status();
  // The engine tried to end it (its last log line is stored first)...
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool tried = false;
  while (!tried && absl::Now() < deadline) {
    for (const auto& line : StoredLog(*store_, run->id())) {
      if (absl::StrContains(line.message(), "run FAILED")) tried = true;
    }
    if (!tried) absl::SleepFor(absl::Milliseconds(2));
  }
  ASSERT_TRUE(tried) << Describe(StoredLog(*store_, run->id()));
  // ...and neither it nor anyone else sees it ended.
  EXPECT_FALSE(IsFinal(store_->GetRun(run->id())->state()));
  EXPECT_FALSE(IsFinal(engine_->GetRun(run->id())->state()));

  // Once the outbox takes notifications again, the run resumes after its
  // lease runs out, ends, and its alert is sent.
  ExecSql(postgres() ? "DROP TRIGGER refuse ON notifications" : "DROP TRIGGER refuse");
  v1::Run failed = WaitFinal(run->id());
  EXPECT_EQ(failed.state(), v1::RUN_STATE_FAILED);
  EXPECT_GE(failed.attempt(), 2);
  ASSERT_TRUE(receiver_->WaitForRequests(1, absl::Seconds(30)));
  using Delivery = std::pair<std::string, std::string>;
  EXPECT_THAT(Deliveries(), ElementsAre(Delivery(run->id(), "failed")));
}

TEST_P(EngineNotifyTest, ADownReceiverDoesNotHoldUpRuns) {
  const std::string url = receiver_->url();
  receiver_->Stop();  // A closed port: every delivery fails.
  SetWebhook(url, {"failed"});
  StartWithNotifier(absl::Hours(1));  // The retry waits long after the first attempt.
  Upload(1, 10);
  FailCalls(1000);
  v1::Run failed = RunToEnd();
  ASSERT_EQ(failed.state(), v1::RUN_STATE_FAILED);
  FailCalls(0);
  // The first attempt failed and the notification waits for its retry...
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::vector<store::Notification> pending;
  while (absl::Now() < deadline) {
    pending = *store_->ListNotifications();
    if (!pending.empty() && pending.front().attempts >= 1) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(pending.size(), 1u);
  ASSERT_GE(pending.front().attempts, 1);
  EXPECT_THAT(pending.front().last_error, HasSubstr("cannot deliver to the webhook at 127.0.0.1"));
  // ...while the export's next run runs and ends.
  v1::Run next = RunToEnd();
  EXPECT_EQ(next.state(), v1::RUN_STATE_SUCCEEDED);
  pending = *store_->ListNotifications();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending.front().run_id, failed.id());
}

TEST_P(EngineNotifyTest, ADryRunNeitherNotifiesNorCountsAsThePreviousRun) {
  SetWebhook(receiver_->url(), {"recovered"});
  StartWithNotifier(absl::Milliseconds(10));
  Upload(1, 10);
  FailCalls(1000);
  ASSERT_EQ(RunToEnd().state(), v1::RUN_STATE_FAILED);  // Not watched: nothing.
  FailCalls(0);
  TriggerOptions dry;
  dry.dry_run = true;
  v1::Run dry_run = RunToEnd(dry);
  ASSERT_EQ(dry_run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_TRUE(store_->ListNotifications()->empty());
  // The real run after it recovers from the failed one.
  v1::Run recovered = RunToEnd();
  ASSERT_EQ(recovered.state(), v1::RUN_STATE_SUCCEEDED);
  ASSERT_TRUE(receiver_->WaitForRequests(1, absl::Seconds(30)));
  using Delivery = std::pair<std::string, std::string>;
  EXPECT_THAT(Deliveries(), ElementsAre(Delivery(recovered.id(), "recovered")));
}

INSTANTIATE_TEST_SUITE_P(Stores, EngineTest, store::EveryStore(), store::StoreName());
INSTANTIATE_TEST_SUITE_P(Stores, EngineIdentifierTest, store::EveryStore(), store::StoreName());
INSTANTIATE_TEST_SUITE_P(Stores, EngineNotifyTest, store::EveryStore(), store::StoreName());

}  // namespace
}  // namespace exportd::engine
