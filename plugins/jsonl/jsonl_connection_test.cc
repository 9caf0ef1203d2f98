#include "jsonl_connection.h"

#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "exportd/sdk/testing/test_run_context.h"
#include "gtest/gtest.h"
#include "jsonl_destination.h"
#include "jsonl_test_util.h"
#include "nlohmann/json.hpp"

namespace exportd::jsonl {
namespace {

using sdk::OutcomeKind;
using sdk::testing::TestRunContext;
using testing::EmailAgeBatch;
using testing::ReadLines;
using testing::TempDir;

class JsonlConnectionTest : public ::testing::Test {
 protected:
  std::unique_ptr<sdk::Connection> Connect(bool fsync = false) {
    auto destination = CreateJsonlDestination();
    EXPECT_TRUE(destination.ok());
    auto connection = (*destination)->Connect(
        {{"directory", dir_.path().string()}, {"fsync", fsync ? "true" : "false"}});
    EXPECT_TRUE(connection.ok()) << connection.status();
    return *std::move(connection);
  }
  std::vector<nlohmann::json> Members(const std::string& file) {
    std::vector<nlohmann::json> out;
    for (const std::string& line : ReadLines(dir_.path() / file)) {
      out.push_back(nlohmann::json::parse(line));
    }
    return out;
  }

  TempDir dir_;
  TestRunContext ctx_;
};

TEST_F(JsonlConnectionTest, CheckNamesAMissingDirectory) {
  auto destination = CreateJsonlDestination();
  auto connection = (*destination)->Connect({{"directory", (dir_.path() / "missing").string()}});
  ASSERT_TRUE(connection.ok());
  absl::Status status = (*connection)->Check(ctx_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find((dir_.path() / "missing").string() + "' does not exist"),
            absl::string_view::npos)
      << status;
}

TEST_F(JsonlConnectionTest, CheckRefusesANonWritableDirectory) {
  if (::geteuid() == 0) GTEST_SKIP() << "root can write anywhere";
  const auto ro = dir_.path() / "ro";
  std::filesystem::create_directory(ro);
  ::chmod(ro.c_str(), 0555);
  auto destination = CreateJsonlDestination();
  auto connection = (*destination)->Connect({{"directory", ro.string()}});
  absl::Status status = (*connection)->Check(ctx_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("is not writable"), absl::string_view::npos) << status;
}

TEST_F(JsonlConnectionTest, RelativeDirectoryIsInvalid) {
  auto destination = CreateJsonlDestination();
  absl::Status status = (*destination)->ValidateSettings({{"directory", "out"}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'out' is not an absolute path"), absl::string_view::npos);
}

TEST_F(JsonlConnectionTest, EnsureAudienceCreatesTheFileOnce) {
  auto c = Connect();
  auto first = c->EnsureAudience("VIP", "", ctx_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->id, "VIP.jsonl");
  EXPECT_TRUE(first->created);
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "VIP.jsonl"));
  auto second = c->EnsureAudience("VIP", "", ctx_);
  EXPECT_EQ(second->id, "VIP.jsonl");
  EXPECT_FALSE(second->created);
}

TEST_F(JsonlConnectionTest, SegmentNameWithSlashStaysInTheDirectory) {
  auto c = Connect();
  auto audience = c->EnsureAudience("../escape/VIP", "", ctx_);
  ASSERT_TRUE(audience.ok()) << audience.status();
  EXPECT_EQ(audience->id, "%2E.%2Fescape%2FVIP.jsonl");
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / audience->id));
  EXPECT_FALSE(std::filesystem::exists(dir_.path().parent_path() / "escape"));
  EXPECT_NE(audience->note.find("escaped"), std::string::npos);
  // A forged audience id cannot point outside either.
  sdk::Audience forged{"../outside.jsonl", "x", false, ""};
  auto outcomes = c->Upsert(forged, EmailAgeBatch({"p1"}), ctx_);
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JsonlConnectionTest, RememberedIdIsPreferredWhenItExists) {
  auto c = Connect();
  auto old = c->EnsureAudience("Old name", "", ctx_);
  auto renamed = c->EnsureAudience("New name", old->id, ctx_);
  EXPECT_EQ(renamed->id, "Old name.jsonl");
  auto gone = c->EnsureAudience("New name", "Deleted.jsonl", ctx_);
  EXPECT_EQ(gone->id, "New name.jsonl");
}

TEST_F(JsonlConnectionTest, UpsertWritesTypedObjectsKeyedByProfileId) {
  auto c = Connect(/*fsync=*/true);
  auto audience = c->EnsureAudience("S", "", ctx_);
  auto outcomes = c->Upsert(*audience, EmailAgeBatch({"p1", "p2"}), ctx_);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ(outcomes->size(), 2u);
  auto members = Members("S.jsonl");
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0], nlohmann::json::parse(R"({"id":"p1","email":"p1@example.com","age":20})"));
  // Replacing p1 keeps one line for it.
  sdk::RecordBatch update = EmailAgeBatch({"p1"});
  update.values[1] = testing::Int(99);
  ASSERT_TRUE(c->Upsert(*audience, update, ctx_).ok());
  members = Members("S.jsonl");
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0]["age"], 99);
}

TEST_F(JsonlConnectionTest, RemoveDeletesMembersAndIsIdempotent) {
  auto c = Connect();
  auto audience = c->EnsureAudience("S", "", ctx_);
  ASSERT_TRUE(c->Upsert(*audience, EmailAgeBatch({"p1", "p2", "p3"}), ctx_).ok());
  auto removed = c->Remove(*audience, EmailAgeBatch({"p2", "p9"}), ctx_);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ((*removed)[0].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*removed)[1].kind, OutcomeKind::kDelivered);
  auto members = Members("S.jsonl");
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0]["id"], "p1");
  EXPECT_EQ(members[1]["id"], "p3");
}

TEST_F(JsonlConnectionTest, EmptyProfileIdIsRejectedAlone) {
  auto c = Connect();
  auto audience = c->EnsureAudience("S", "", ctx_);
  auto outcomes = c->Upsert(*audience, EmailAgeBatch({"p1", "", "p3"}), ctx_);
  ASSERT_TRUE(outcomes.ok());
  ASSERT_EQ(outcomes->size(), 3u);
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*outcomes)[1].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*outcomes)[1].reason_code, "empty_profile_id");
  EXPECT_EQ((*outcomes)[2].kind, OutcomeKind::kDelivered);
  EXPECT_EQ(Members("S.jsonl").size(), 2u);
}

TEST_F(JsonlConnectionTest, InvalidUtf8IsRejectedWithTheField) {
  auto c = Connect();
  auto audience = c->EnsureAudience("S", "", ctx_);
  sdk::RecordBatch batch = EmailAgeBatch({"p1", "p2"});
  batch.values[2] = testing::Str("\xc3\x28");
  auto outcomes = c->Upsert(*audience, batch, ctx_);
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*outcomes)[1].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*outcomes)[1].message, "field 'email' is not valid UTF-8");
}

TEST_F(JsonlConnectionTest, ReservedIdFieldIsRefused) {
  auto c = Connect();
  auto audience = c->EnsureAudience("S", "", ctx_);
  sdk::RecordBatch batch = EmailAgeBatch({"p1"});
  batch.fields[0].name = "id";
  EXPECT_EQ(c->Upsert(*audience, batch, ctx_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(JsonlConnectionTest, StateSurvivesANewConnection) {
  {
    auto c = Connect();
    auto audience = c->EnsureAudience("S", "", ctx_);
    ASSERT_TRUE(c->Upsert(*audience, EmailAgeBatch({"p1", "p2"}), ctx_).ok());
  }
  auto c = Connect();
  auto audience = c->EnsureAudience("S", "", ctx_);
  EXPECT_FALSE(audience->created);
  ASSERT_TRUE(c->Upsert(*audience, EmailAgeBatch({"p3"}), ctx_).ok());
  ASSERT_TRUE(c->Remove(*audience, EmailAgeBatch({"p1"}), ctx_).ok());
  auto members = Members("S.jsonl");
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0]["id"], "p2");
  EXPECT_EQ(members[1]["id"], "p3");
}

TEST_F(JsonlConnectionTest, CancelledCallWritesNothing) {
  auto c = Connect();
  auto audience = c->EnsureAudience("S", "", ctx_);
  TestRunContext cancelled;
  cancelled.CancelAfterPolls(2);  // Cancelled after reading, before writing.
  auto outcomes = c->Upsert(*audience, EmailAgeBatch({"p1"}), cancelled);
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(Members("S.jsonl").empty());
}

TEST_F(JsonlConnectionTest, ConcurrentWritersToOneFileLoseNothing) {
  auto c = Connect();
  auto audience = c->EnsureAudience("S", "", ctx_);
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      TestRunContext ctx;
      for (int i = 0; i < 10; ++i) {
        auto outcomes = c->Upsert(
            *audience, EmailAgeBatch({"t" + std::to_string(t) + "-" + std::to_string(i)}), ctx);
        EXPECT_TRUE(outcomes.ok()) << outcomes.status();
      }
    });
  }
  for (std::thread& w : writers) w.join();
  EXPECT_EQ(Members("S.jsonl").size(), 40u);
}

}  // namespace
}  // namespace exportd::jsonl
