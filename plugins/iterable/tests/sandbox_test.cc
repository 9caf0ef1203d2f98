// The Iterable connection against iterable-sandbox (in-process, port 0): every
// call, every fault the sandbox can inject, and the API key never leaking.
#include "tests/sandbox/sandbox.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "exportd/sdk/testing/test_run_context.h"
#include "gtest/gtest.h"
#include "http_client.h"
#include "iterable_connection.h"
#include "iterable_settings.h"
#include "nlohmann/json.hpp"
#include "test_batches.h"

namespace exportd::iterable {
namespace {

using nlohmann::json;
using sdk::OutcomeKind;
using sdk::RecordOutcome;
using sdk::testing::TestRunContext;
using namespace exportd::iterable::testing;

constexpr char kKey[] = "itbl-test-key-0123456789abcdef01";
constexpr char kWrongKey[] = "wrong-key-abcdefabcdefabcdefabcd";

class IterableSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sandbox::Options options;
    options.api_keys = {kKey};
    auto sandbox = sandbox::Sandbox::Create(options);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = *std::move(sandbox);
  }

  // Settings as the core would pass them, with fast retries for tests.
  ConnectionOptions Options(sdk::Settings extra = {}) {
    sdk::Settings settings = {{"api_key", kKey}, {"base_url", sandbox_->base_url()}};
    for (auto& [k, v] : extra) settings[k] = v;
    auto options = ParseSettings(settings);
    EXPECT_TRUE(options.ok()) << options.status();
    options->retry.initial_backoff = absl::Milliseconds(5);
    options->retry.max_backoff = absl::Milliseconds(50);
    options->invalid_list_initial_backoff = absl::Milliseconds(20);
    return *options;
  }

  std::unique_ptr<IterableConnection> Connect(ConnectionOptions options) {
    auto connection = IterableConnection::Create(std::move(options));
    EXPECT_TRUE(connection.ok()) << connection.status();
    return connection.ok() ? *std::move(connection) : nullptr;
  }
  std::unique_ptr<IterableConnection> Connect() { return Connect(Options()); }

  sdk::Audience MakeList(IterableConnection& connection, const std::string& name) {
    TestRunContext ctx;
    auto audience = connection.EnsureAudience(name, "", ctx);
    EXPECT_TRUE(audience.ok()) << audience.status();
    return audience.ok() ? *audience : sdk::Audience{};
  }

  json Members(const sdk::Audience& audience) {
    auto members = sandbox_->state().AdminMembersJson(std::stoll(audience.id));
    EXPECT_TRUE(members.has_value());
    return members.value_or(json::array());
  }

  std::vector<std::string> MemberEmails(const sdk::Audience& audience) {
    std::vector<std::string> emails;
    for (const json& m : Members(audience)) emails.push_back(m.value("email", ""));
    return emails;
  }

  int64_t RequestCount(const std::string& route, const std::string& outcome) {
    const json stats = sandbox_->StatsJson();
    if (!stats["requests"].contains(route)) return 0;
    return stats["requests"][route].value(outcome, int64_t{0});
  }

  // Everything a caller could see: logs, status messages, outcome messages.
  void ExpectNoKey(const TestRunContext& ctx, const std::vector<std::string>& texts,
                   const std::string& key = kKey) {
    for (const auto& line : ctx.logs()) {
      EXPECT_EQ(line.message.find(key), std::string::npos) << "log line: " << line.message;
    }
    for (const std::string& text : texts) {
      EXPECT_EQ(text.find(key), std::string::npos) << text;
    }
  }

  void SetFaults(const std::function<void(sandbox::FaultOptions&)>& edit) {
    sandbox::FaultOptions faults = sandbox_->faults();
    edit(faults);
    sandbox_->SetFaults(faults);
  }

  // Starts a fresh sandbox whose project identifies users as `type`.
  void RestartAs(sandbox::ProjectType type) {
    sandbox_.reset();
    sandbox::Options options;
    options.api_keys = {kKey};
    options.project_type = type;
    auto sandbox = sandbox::Sandbox::Create(options);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = *std::move(sandbox);
  }

  // Starts a fresh sandbox with `faults` on the time of `ctx` (a fake clock):
  // the sandbox's rate-limit resets and the plugin's waits then agree.
  void RestartOnClock(const TestRunContext& ctx, sandbox::FaultOptions faults) {
    sandbox_.reset();
    sandbox::Options options;
    options.api_keys = {kKey};
    options.clock = [clock = &ctx] { return clock->Now(); };
    options.faults = std::move(faults);
    auto sandbox = sandbox::Sandbox::Create(options);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = *std::move(sandbox);
  }

  std::unique_ptr<sandbox::Sandbox> sandbox_;
};

std::vector<std::string> Messages(const std::vector<RecordOutcome>& outcomes) {
  std::vector<std::string> out;
  for (const RecordOutcome& o : outcomes) out.push_back(o.message);
  return out;
}

// ----- Check -----------------------------------------------------------------

TEST_F(IterableSandboxTest, CheckAcceptsAGoodKey) {
  auto connection = Connect();
  TestRunContext ctx;
  EXPECT_TRUE(connection->Check(ctx).ok());
  EXPECT_EQ(RequestCount("GET /api/lists", "200"), 1);
}

TEST_F(IterableSandboxTest, CheckRefusesABadKeyWithIterablesCode) {
  ConnectionOptions options = Options();
  options.api_key = kWrongKey;
  auto connection = Connect(options);
  TestRunContext ctx;
  const absl::Status status = connection->Check(ctx);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(status.message().find("Iterable rejected the API key (BadApiKey)"),
            absl::string_view::npos)
      << status;
  ExpectNoKey(ctx, {std::string(status.message())}, kWrongKey);
}

TEST_F(IterableSandboxTest, CheckNamesTheHostWhenUnreachable) {
  ConnectionOptions options = Options();
  const int port = sandbox_->port();
  sandbox_->Shutdown();  // Nothing listens on the port any more.
  auto connection = Connect(options);
  TestRunContext ctx;
  const absl::Status status = connection->Check(ctx);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_NE(status.message().find("127.0.0.1:" + std::to_string(port)), absl::string_view::npos)
      << status;
  EXPECT_NE(status.message().find("curl error"), absl::string_view::npos) << status;
  ExpectNoKey(ctx, {std::string(status.message())});
  // A request that got no answer is reported with HTTP status 0.
  ASSERT_EQ(ctx.requests().size(), 1u);
  EXPECT_EQ(ctx.requests()[0].endpoint, "/api/lists");
  EXPECT_EQ(ctx.requests()[0].http_status, 0);
}

// ----- EnsureAudience --------------------------------------------------------

TEST_F(IterableSandboxTest, EnsureAudienceCreatesThenFindsTheSameList) {
  auto connection = Connect();
  TestRunContext ctx;
  auto first = connection->EnsureAudience("VIP customers", "", ctx);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->name, "VIP customers");
  EXPECT_GT(std::stoll(first->id), int64_t{1} << 32) << "64-bit ids survive";
  auto second = connection->EnsureAudience("VIP customers", "", ctx);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->id, first->id);
  EXPECT_FALSE(second->created);
  auto remembered = connection->EnsureAudience("VIP customers", first->id, ctx);
  ASSERT_TRUE(remembered.ok());
  EXPECT_EQ(remembered->id, first->id);
  EXPECT_TRUE(remembered->note.empty()) << remembered->note;
  // Exact names only.
  auto other = connection->EnsureAudience("vip customers", "", ctx);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->id, first->id);
  EXPECT_EQ(RequestCount("POST /api/lists", "200"), 2);
}

TEST_F(IterableSandboxTest, EnsureAudiencePrefersRememberedThenOldestDuplicate) {
  HttpClient::Options http;
  http.base_url = sandbox_->base_url();
  http.api_key = kKey;
  auto client = HttpClient::Create(http);
  ASSERT_TRUE(client.ok());
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto response = (*client)->Send("POST", "/api/lists", R"({"name":"Dup"})");
    ASSERT_TRUE(response.ok()) << response.status();
    ids.push_back(std::to_string(json::parse(response->body)["listId"].get<int64_t>()));
  }
  auto connection = Connect();
  TestRunContext ctx;
  auto oldest = connection->EnsureAudience("Dup", "", ctx);
  ASSERT_TRUE(oldest.ok());
  EXPECT_EQ(oldest->id, ids[0]);
  EXPECT_FALSE(oldest->created);
  EXPECT_NE(oldest->note.find("3 Iterable lists are named 'Dup'"), std::string::npos)
      << oldest->note;
  EXPECT_NE(oldest->note.find("oldest"), std::string::npos) << oldest->note;
  auto remembered = connection->EnsureAudience("Dup", ids[2], ctx);
  ASSERT_TRUE(remembered.ok());
  EXPECT_EQ(remembered->id, ids[2]);
  // A remembered id that is gone falls back to the oldest, saying so.
  auto gone = connection->EnsureAudience("Dup", "99", ctx);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->id, ids[0]);
  EXPECT_NE(gone->note.find("99"), std::string::npos) << gone->note;
}

// ----- Upsert and Remove -----------------------------------------------------

TEST_F(IterableSandboxTest, UpsertNormalizesEmailsRejectsInvalidOnesAndSendsTypedFields) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "Upsert");
  sdk::RecordBatch batch;
  batch.fields = {{"email", sdk::FieldType::kString},   {"firstName", sdk::FieldType::kString},
                  {"age", sdk::FieldType::kInt},        {"score", sdk::FieldType::kDouble},
                  {"vip", sdk::FieldType::kBool},       {"joined", sdk::FieldType::kTimestamp},
                  {"nickname", sdk::FieldType::kString}};
  auto add = [&](std::string id, std::vector<sdk::Value> values) {
    batch.profile_ids.push_back(std::move(id));
    for (auto& v : values) batch.values.push_back(std::move(v));
  };
  add("ann", {Str("  Ann@Example.COM "), Str("Ann \"Q\" \u00e9"), Int(41), Dbl(2.5), Bool(true),
              Time(1'700'000'000'000'000), Null()});
  add("bad", {Str("not an email"), Str("x"), Int(1), Dbl(1), Bool(false), Time(0), Null()});
  add("none", {Null(), Str("x"), Int(1), Dbl(1), Bool(false), Time(0), Null()});
  add("bob",
      {Str("bob@example.com"), Str("Bob"), Int(7), Dbl(-1e-3), Bool(false), Time(0), Str("bobby")});
  TestRunContext ctx;
  auto outcomes = connection->Upsert(list, batch, ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 4u);
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kDelivered) << (*outcomes)[0].message;
  EXPECT_EQ((*outcomes)[1].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*outcomes)[1].reason_code, "invalid_email");
  EXPECT_EQ((*outcomes)[1].field, "email");
  EXPECT_EQ((*outcomes)[2].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*outcomes)[2].reason_code, "missing_email");
  EXPECT_EQ((*outcomes)[3].kind, OutcomeKind::kDelivered);
  EXPECT_EQ(sandbox_->StatsJson()["subscribeRecordsReceived"], 2) << "invalid ones never sent";

  const json members = Members(list);
  ASSERT_EQ(members.size(), 2u) << members.dump();
  EXPECT_EQ(members[0]["email"], "ann@example.com");
  const json& ann = members[0]["dataFields"];
  EXPECT_EQ(ann["firstName"], "Ann \"Q\" \u00e9");
  EXPECT_EQ(ann["age"], 41);
  EXPECT_EQ(ann["score"], 2.5);
  EXPECT_EQ(ann["vip"], true);
  EXPECT_EQ(ann["joined"], "2023-11-14 22:13:20 +00:00");
  EXPECT_FALSE(ann.contains("nickname")) << "null removes the field: " << ann.dump();
  EXPECT_EQ(members[1]["email"], "bob@example.com");
  EXPECT_EQ(members[1]["dataFields"]["nickname"], "bobby");
  ExpectNoKey(ctx, Messages(*outcomes));
}

TEST_F(IterableSandboxTest, RemoveUnsubscribesWithoutChannelUnsubscribe) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "Remove");
  TestRunContext ctx;
  ASSERT_TRUE(connection->Upsert(list, PeopleBatch(5), ctx).ok());
  ASSERT_EQ(Members(list).size(), 5u);
  auto removed = connection->Remove(
      list, EmailBatch({"USER1@example.com", "user3@example.com", "bogus", "never@example.com"}),
      ctx);
  ASSERT_TRUE(removed.ok()) << removed.status();
  ASSERT_EQ(removed->size(), 4u);
  EXPECT_EQ((*removed)[0].kind, OutcomeKind::kDelivered) << (*removed)[0].message;
  EXPECT_EQ((*removed)[1].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*removed)[2].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*removed)[2].reason_code, "invalid_email");
  EXPECT_EQ((*removed)[3].kind, OutcomeKind::kDelivered) << "not on the list is what we want";
  EXPECT_EQ(MemberEmails(list), (std::vector<std::string>{"user0@example.com", "user2@example.com",
                                                          "user4@example.com"}));
  const json stats = sandbox_->StatsJson();
  EXPECT_GE(stats["channelUnsubscribeFalse"].get<int>(), 1);
  EXPECT_EQ(stats["channelUnsubscribeTrue"], 0);
  EXPECT_EQ(stats["channelUnsubscribeMissing"], 0);
}

TEST_F(IterableSandboxTest, TypeConflictIsRejectedAsInvalidData) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "Types");
  TestRunContext ctx;
  sdk::RecordBatch first;
  first.fields = {{"email", sdk::FieldType::kString}, {"level", sdk::FieldType::kInt}};
  first.profile_ids = {"a"};
  first.values = {Str("a@example.com"), Int(3)};
  ASSERT_TRUE(connection->Upsert(list, first, ctx).ok());
  sdk::RecordBatch second;
  second.fields = {{"email", sdk::FieldType::kString}, {"level", sdk::FieldType::kString}};
  second.profile_ids = {"b", "c"};
  second.values = {Str("B@example.com"), Str("gold"), Str("c@example.com"), Null()};
  auto outcomes = connection->Upsert(list, second, ctx);
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kRejected) << (*outcomes)[0].message;
  EXPECT_EQ((*outcomes)[0].reason_code, "invalid_data");
  EXPECT_EQ((*outcomes)[0].field, "level") << "the data field, not the email";
  EXPECT_NE((*outcomes)[0].message.find("data field 'level' (text here)"), std::string::npos)
      << (*outcomes)[0].message;
  EXPECT_EQ((*outcomes)[1].kind, OutcomeKind::kDelivered);

  // With several data fields sent, the rejection names the candidates.
  sdk::RecordBatch third;
  third.fields = {{"email", sdk::FieldType::kString},
                  {"level", sdk::FieldType::kString},
                  {"city", sdk::FieldType::kString}};
  third.profile_ids = {"d"};
  third.values = {Str("d@example.com"), Str("gold"), Str("Oslo")};
  outcomes = connection->Upsert(list, third, ctx);
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ((*outcomes)[0].reason_code, "invalid_data");
  EXPECT_EQ((*outcomes)[0].field, "dataFields");
  EXPECT_NE((*outcomes)[0].message.find("level, city"), std::string::npos)
      << (*outcomes)[0].message;
}

// Iterable lists the data fields a request created: each is logged once per
// connection (one run), however many batches carry it.
TEST_F(IterableSandboxTest, CreatedDataFieldsAreLoggedOncePerField) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "Fields");
  TestRunContext ctx;
  auto count = [&](const std::string& needle) {
    int n = 0;
    for (const auto& line : ctx.logs()) {
      if (line.message.find(needle) != std::string::npos) ++n;
    }
    return n;
  };
  ASSERT_TRUE(connection->Upsert(list, PeopleBatch(3), ctx).ok());
  ASSERT_TRUE(connection->Upsert(list, PeopleBatch(3, 3), ctx).ok());
  EXPECT_EQ(count("Iterable created data fields: "), 1);
  EXPECT_EQ(count("Iterable created data fields: firstName, score, signedUp, vip"), 1)
      << ctx.logs()[0].message;
  for (const auto& line : ctx.logs()) {
    if (line.message.find("created data fields") != std::string::npos) {
      EXPECT_EQ(line.level, sdk::LogLevel::kInfo);
    }
  }
  // A field new to the project later in the run is logged, the old ones not again.
  sdk::RecordBatch more = PeopleBatch(1, 6);
  more.fields.push_back({"city", sdk::FieldType::kString});
  more.values.push_back(Str("Oslo"));
  ASSERT_TRUE(connection->Upsert(list, more, ctx).ok());
  EXPECT_EQ(count("Iterable created data fields: city"), 1);
  EXPECT_EQ(count("Iterable created data fields: "), 2);
}

// DELETE /api/lists/{id}: the list goes; one gone already is fine; one in use
// (409) is kept and said so.
TEST_F(IterableSandboxTest, DeleteAudienceDeletesTheListAndKeepsOneInUse) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "Doomed");
  TestRunContext ctx;
  EXPECT_TRUE(connection->DeleteAudience(list, ctx).ok());
  EXPECT_FALSE(sandbox_->state().AdminMembersJson(std::stoll(list.id)).has_value());
  EXPECT_EQ(RequestCount("DELETE /api/lists/{id}", "200"), 1);
  EXPECT_TRUE(connection->DeleteAudience(list, ctx).ok()) << "gone already";
  ASSERT_FALSE(ctx.requests().empty());
  EXPECT_EQ(ctx.requests().back().endpoint, "/api/lists/{id}") << "no id in the endpoint";

  const sdk::Audience used = MakeList(*connection, "Used");
  HttpClient::Options http;
  http.base_url = sandbox_->base_url();
  http.api_key = kKey;
  auto admin = HttpClient::Create(http);
  ASSERT_TRUE(admin.ok()) << admin.status();
  auto in_use = [&](bool yes) {
    auto set = (*admin)->Send("POST", "/_sandbox/lists/" + used.id + "/in-use",
                              yes ? R"({"inUse":true})" : R"({"inUse":false})");
    ASSERT_TRUE(set.ok()) << set.status();
    ASSERT_EQ(set->status, 200) << set->body;
  };
  in_use(true);
  absl::Status kept = connection->DeleteAudience(used, ctx);
  EXPECT_EQ(kept.code(), absl::StatusCode::kFailedPrecondition) << kept;
  EXPECT_NE(kept.message().find("List is in use"), std::string::npos) << kept;
  EXPECT_NE(kept.message().find("'Used'"), std::string::npos) << kept;
  EXPECT_TRUE(sandbox_->state().AdminMembersJson(std::stoll(used.id)).has_value());

  SetFaults([](sandbox::FaultOptions& f) {
    f.fail_next = 1;
    f.fail_next_endpoint = "delete_list";
  });
  in_use(false);
  EXPECT_TRUE(connection->DeleteAudience(used, ctx).ok()) << "a 503 is retried";
  ExpectNoKey(ctx, {std::string(kept.message())});
}

TEST_F(IterableSandboxTest, SplitsLargeBatchesAndReturnsOutcomesInOrder) {
  auto connection = Connect(Options({{"batch_size", "7"}, {"max_body_bytes", "2000"}}));
  const sdk::Audience list = MakeList(*connection, "Split");
  sdk::RecordBatch batch = PeopleBatch(100);
  batch.values[50 * 5] = Str("broken@");  // Record 50's email.
  TestRunContext ctx;
  auto outcomes = connection->Upsert(list, batch, ctx);
  ASSERT_TRUE(outcomes.ok());
  ASSERT_EQ(outcomes->size(), 100u);
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_EQ((*outcomes)[i].kind, i == 50 ? OutcomeKind::kRejected : OutcomeKind::kDelivered) << i;
  }
  EXPECT_EQ(Members(list).size(), 99u);
  const json stats = sandbox_->StatsJson();
  EXPECT_LE(stats["maxSubscribersSeen"].get<int>(), 7);
  EXPECT_LE(stats["maxBodyBytesSeen"].get<int>(), 2000);
}

TEST_F(IterableSandboxTest, UpdateExistingUsersOnlyRejectsUnknownUsersAsNotFound) {
  auto creating = Connect();
  const sdk::Audience list = MakeList(*creating, "Existing");
  TestRunContext ctx;
  ASSERT_TRUE(creating->Upsert(list, EmailBatch({"known@example.com"}), ctx).ok());
  auto connection = Connect(Options({{"update_existing_users_only", "true"}}));
  auto outcomes =
      connection->Upsert(list, EmailBatch({"known@example.com", "unknown@example.com"}), ctx);
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ(sandbox_->StatsJson()["updateExistingUsersOnlyTrue"], 1);
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*outcomes)[1].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*outcomes)[1].reason_code, "not_found");
}

TEST_F(IterableSandboxTest, RevokedKeyFailsTheWholeWrite) {
  auto good = Connect();
  const sdk::Audience list = MakeList(*good, "Revoked");
  ConnectionOptions options = Options();
  options.api_key = kWrongKey;
  auto connection = Connect(options);
  TestRunContext ctx;
  auto outcomes = connection->Upsert(list, PeopleBatch(3), ctx);
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kUnauthenticated) << outcomes.status();
  ExpectNoKey(ctx, {std::string(outcomes.status().message())}, kWrongKey);
}

// ----- Project types ---------------------------------------------------------

// A userID-based project: subscribers go by userId (never preferUserId), the
// email is sent as the user's email, bad userIds never leave the plugin.
TEST_F(IterableSandboxTest, UserIdProjectSubscribesAndRemovesByUserId) {
  RestartAs(sandbox::ProjectType::kUserId);
  auto connection = Connect(Options({{"project_type", "user_id"}}));
  const sdk::Audience list = MakeList(*connection, "by user id");
  TestRunContext ctx;
  auto outcomes = connection->Upsert(
      list, UserIdBatch({{"u1", "Ann@Example.com"}, {"u2", ""}, {" u3", ""}, {"u4", "ann@example.com"}}),
      ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kDelivered) << (*outcomes)[0].message;
  EXPECT_EQ((*outcomes)[1].kind, OutcomeKind::kDelivered) << (*outcomes)[1].message;
  EXPECT_EQ((*outcomes)[2].reason_code, "invalid_user_id");
  EXPECT_EQ((*outcomes)[2].field, "userId");
  EXPECT_EQ((*outcomes)[3].kind, OutcomeKind::kDelivered)
      << "in a userID-based project two users may share an email: " << (*outcomes)[3].message;
  json members = Members(list);
  ASSERT_EQ(members.size(), 3u) << members.dump();
  std::map<std::string, std::string> email_of;
  for (const json& m : members) email_of[m.value("userId", "")] = m.value("email", "");
  EXPECT_EQ(email_of, (std::map<std::string, std::string>{
                          {"u1", "ann@example.com"}, {"u2", ""}, {"u4", "ann@example.com"}}));
  EXPECT_EQ(sandbox_->StatsJson()["subscribeRecordsReceived"], 3) << "the bad userId was sent";

  auto removed = connection->Remove(list, UserIdBatch({{"u1", ""}, {"u9", ""}}), ctx);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ((*removed)[0].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*removed)[1].kind, OutcomeKind::kDelivered) << "not on the list: nothing to remove";
  EXPECT_EQ(Members(list).size(), 2u);
}

// Iterable's failures named by userId map back to the records sent.
TEST_F(IterableSandboxTest, UserIdProjectFailuresComeBackByUserId) {
  RestartAs(sandbox::ProjectType::kUserId);
  auto connection = Connect(Options({{"project_type", "user_id"}}));
  const sdk::Audience list = MakeList(*connection, "user id failures");
  TestRunContext ctx;
  ASSERT_TRUE(connection->Upsert(list, UserIdBatch({{"u1", ""}}), ctx).ok());
  sdk::RecordBatch numbers = UserIdBatch({{"u2", ""}, {"u3", ""}});
  numbers.values[1 * 3 + 2] = Int(7);  // u3's plan: a number where Iterable holds text.
  auto outcomes = connection->Upsert(list, numbers, ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*outcomes)[1].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*outcomes)[1].reason_code, "invalid_data");
  EXPECT_EQ((*outcomes)[1].field, "plan");
  EXPECT_NE((*outcomes)[1].message.find("'plan' (an integer here)"), std::string::npos)
      << (*outcomes)[1].message;
  EXPECT_NE((*outcomes)[1].message.find("invalidDataUserIds"), std::string::npos)
      << (*outcomes)[1].message;
}

// An email-based project refuses subscribers without an email, so the plugin
// keys by email there; in a hybrid project the export's first identity field
// keys members.
TEST_F(IterableSandboxTest, HybridProjectKeysByTheFirstMappedIdentity) {
  RestartAs(sandbox::ProjectType::kHybrid);
  auto connection = Connect(Options({{"project_type", "hybrid"}}));
  const sdk::Audience list = MakeList(*connection, "hybrid");
  TestRunContext ctx;
  // userId comes first in UserIdBatch: it keys; a record without email is fine.
  auto outcomes =
      connection->Upsert(list, UserIdBatch({{"h1", "h1@example.com"}, {"h2", ""}, {"", "x@example.com"}}), ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*outcomes)[1].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*outcomes)[2].reason_code, "missing_user_id");
  EXPECT_EQ(Members(list).size(), 2u);

  RestartAs(sandbox::ProjectType::kEmail);
  connection = Connect(Options());  // project_type email, the default.
  const sdk::Audience email_list = MakeList(*connection, "email based");
  outcomes = connection->Upsert(email_list, UserIdBatch({{"e1", "e1@example.com"}, {"e2", ""}}), ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*outcomes)[1].reason_code, "missing_email");
  json members = Members(email_list);
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0]["userId"], "e1") << "a mapped userId is sent along with the email";
}

// A list deleted in Iterable (from the sandbox's admin API, as a customer
// would in the UI): writes with its id are NOT_FOUND, for the engine to
// create it again.
TEST_F(IterableSandboxTest, AListDeletedInIterableIsNotFound) {
  auto connection = Connect();
  sdk::Audience list = MakeList(*connection, "deleted");
  TestRunContext ctx;
  ASSERT_TRUE(connection->Upsert(list, PeopleBatch(1), ctx).ok());
  HttpClient::Options http;
  http.base_url = sandbox_->base_url();
  http.api_key = kKey;
  auto admin = HttpClient::Create(http);
  ASSERT_TRUE(admin.ok()) << admin.status();
  auto deleted = (*admin)->Send("DELETE", "/_sandbox/lists/" + list.id, "");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  ASSERT_EQ(deleted->status, 200) << deleted->body;
  list.created = false;
  auto later = Connect();  // A later run's connection.
  auto outcomes = later->Upsert(list, PeopleBatch(1), ctx);
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kNotFound) << outcomes.status();
  auto removed = later->Remove(list, PeopleBatch(1), ctx);
  EXPECT_EQ(removed.status().code(), absl::StatusCode::kNotFound) << removed.status();
  // EnsureAudience without the remembered id creates it again by name.
  auto again = later->EnsureAudience("deleted", "", ctx);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->created);
  EXPECT_NE(again->id, list.id);
}

// ----- Faults ----------------------------------------------------------------

// A 429 is not slept on nor retried here: it is reported to the engine,
// which slows the whole connection down and sends the batch again.
TEST_F(IterableSandboxTest, RateLimitedJsonWithRetryAfterIsReportedToTheEngine) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "429 json");
  SetFaults([](sandbox::FaultOptions& f) {
    f.rate_limits["subscribe"] = 1;
    f.retry_after_seconds = 3;
  });
  TestRunContext ctx;
  ASSERT_TRUE(connection->Upsert(list, PeopleBatch(2), ctx).ok());  // The bucket's token.
  auto throttled = connection->Upsert(list, PeopleBatch(2), ctx);
  EXPECT_EQ(throttled.status().code(), absl::StatusCode::kResourceExhausted) << throttled.status();
  EXPECT_NE(throttled.status().message().find("rate-limited"), std::string::npos);
  EXPECT_EQ(ctx.throttles(), std::vector<absl::Duration>{absl::Seconds(3)});
  EXPECT_TRUE(ctx.sleeps().empty()) << "the plugin must not sleep for a 429";
  EXPECT_EQ(RequestCount("POST /api/lists/subscribe", "429"), 1) << "no retry in the plugin";
  ExpectNoKey(ctx, {std::string(throttled.status().message())});
  // Each request is reported for the metrics: its endpoint and HTTP status.
  const std::vector<sdk::testing::ReportedRequest> requests = ctx.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].endpoint, "/api/lists/subscribe");
  EXPECT_EQ(requests[0].http_status, 200);
  EXPECT_EQ(requests[1].endpoint, "/api/lists/subscribe");
  EXPECT_EQ(requests[1].http_status, 429);
  EXPECT_GT(requests[0].latency, absl::ZeroDuration());
}

TEST_F(IterableSandboxTest, RateLimitedTextWithoutRetryAfterIsReportedWithoutAWait) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "429 text");
  SetFaults([](sandbox::FaultOptions& f) {
    f.rate_limits["subscribe"] = 1;
    f.rate_limit_body = sandbox::RateLimitBody::kText;
  });
  TestRunContext ctx;
  ASSERT_TRUE(connection->Upsert(list, PeopleBatch(1), ctx).ok());
  auto throttled = connection->Remove(list, PeopleBatch(1), ctx);
  ASSERT_TRUE(throttled.ok()) << "unsubscribe has its own bucket: " << throttled.status();
  throttled = connection->Upsert(list, PeopleBatch(1), ctx);
  EXPECT_EQ(throttled.status().code(), absl::StatusCode::kResourceExhausted) << throttled.status();
  EXPECT_NE(throttled.status().message().find("Rate limit exceeded"), std::string::npos);
  EXPECT_EQ(ctx.throttles(), std::vector<absl::Duration>{absl::ZeroDuration()});
  EXPECT_TRUE(ctx.sleeps().empty());
}

// A JSON 429's params.rateLimitReset (epoch ms) is honoured like Retry-After.
TEST_F(IterableSandboxTest, RateLimitResetIsReportedAsTheWait) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "429 reset");
  SetFaults([](sandbox::FaultOptions& f) {
    f.rate_limits["subscribe"] = 0.5;  // The next token in 2 s.
    f.rate_limit_reset = true;
  });
  TestRunContext ctx;
  ASSERT_TRUE(connection->Upsert(list, PeopleBatch(1), ctx).ok());
  auto throttled = connection->Upsert(list, PeopleBatch(1), ctx);
  EXPECT_EQ(throttled.status().code(), absl::StatusCode::kResourceExhausted) << throttled.status();
  ASSERT_EQ(ctx.throttles().size(), 1u);
  EXPECT_GT(ctx.throttles()[0], absl::Milliseconds(1000));
  EXPECT_LE(ctx.throttles()[0], absl::Milliseconds(2100));
}

// The list calls (GET and POST /api/lists) answer a 429 as the batch calls
// do: reported to the engine with the rate-limit reset, however far, and
// RESOURCE_EXHAUSTED, without a retry or a sleep here (the engine waits on
// the connection's budget and calls EnsureAudience again). The sandbox and
// the context share one fake clock.
TEST_F(IterableSandboxTest, AListCallRateLimitedBeyondTheRetryBudgetIsReportedToTheEngine) {
  auto ctx = TestRunContext::WithFakeClock(absl::FromUnixSeconds(1'700'000'000));  // 22:13:20 UTC
  sandbox::FaultOptions faults;
  faults.rate_limits = {{"lists", 1.0 / 120}, {"create_list", 1.0 / 300}};
  faults.rate_limit_reset = true;
  RestartOnClock(*ctx, faults);
  auto connection = Connect();
  const absl::Time start = ctx->Now();
  // Takes both buckets' token: the next GET comes 120 s later, the next POST 300 s.
  ASSERT_TRUE(connection->EnsureAudience("First", "", *ctx).ok());

  auto throttled = connection->EnsureAudience("VIP", "", *ctx);
  EXPECT_EQ(throttled.status().code(), absl::StatusCode::kResourceExhausted) << throttled.status();
  EXPECT_NE(throttled.status().message().find(
                "Iterable rate-limited GET /api/lists (HTTP 429 RateLimitExceeded"),
            std::string::npos)
      << throttled.status();
  EXPECT_NE(
      throttled.status().message().find("it asked for a pause of 2m0.001s, until 22:15:20 UTC"),
      std::string::npos)
      << throttled.status();
  ASSERT_EQ(ctx->throttles().size(), 1u);
  EXPECT_EQ(ctx->throttles()[0], absl::Seconds(120) + absl::Milliseconds(1));
  ctx->Advance(ctx->throttles()[0]);  // What the engine's budget waits.

  throttled = connection->EnsureAudience("VIP", "", *ctx);
  EXPECT_EQ(throttled.status().code(), absl::StatusCode::kResourceExhausted) << throttled.status();
  EXPECT_NE(throttled.status().message().find("Iterable rate-limited POST /api/lists"),
            std::string::npos)
      << throttled.status();
  ASSERT_EQ(ctx->throttles().size(), 2u);
  EXPECT_EQ(ctx->throttles()[1], absl::Seconds(180)) << "the next POST token comes at 300 s";
  ctx->Advance(ctx->throttles()[1]);

  auto audience = connection->EnsureAudience("VIP", "", *ctx);
  ASSERT_TRUE(audience.ok()) << audience.status();
  EXPECT_TRUE(audience->created);
  EXPECT_TRUE(ctx->sleeps().empty()) << "the plugin must not wait for a 429";
  EXPECT_FALSE(ctx->LogsContain("retrying")) << "a 429 is not retried here";
  // One 429 each, and no list request before the reset it named.
  EXPECT_EQ(sandbox_->RequestTimes("GET /api/lists"),
            (std::vector<absl::Time>{start, start, start + absl::Milliseconds(120'001),
                                     start + absl::Milliseconds(300'001)}));
  EXPECT_EQ(sandbox_->RequestTimes("GET /api/lists", "429"), std::vector<absl::Time>{start});
  EXPECT_EQ(sandbox_->RequestTimes("POST /api/lists"),
            (std::vector<absl::Time>{start, start + absl::Milliseconds(120'001),
                                     start + absl::Milliseconds(300'001)}));
  EXPECT_EQ(sandbox_->RequestTimes("POST /api/lists", "429"),
            std::vector<absl::Time>{start + absl::Milliseconds(120'001)});
}

// A connection test does not wait for a rate limit: it fails at once and
// says when the limit resets.
TEST_F(IterableSandboxTest, CheckFailsAtOnceOnARateLimitAndSaysWhenItResets) {
  auto ctx = TestRunContext::WithFakeClock(absl::FromUnixSeconds(1'700'000'000));  // 22:13:20 UTC
  sandbox::FaultOptions faults;
  faults.rate_limits = {{"lists", 1.0 / 600}};
  faults.rate_limit_reset = true;
  RestartOnClock(*ctx, faults);
  auto connection = Connect();
  ASSERT_TRUE(connection->Check(*ctx).ok());
  const absl::Status status = connection->Check(*ctx);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_NE(status.message().find("until 22:23:20 UTC; the connection was not checked: test it "
                                  "again later"),
            absl::string_view::npos)
      << status;
  EXPECT_TRUE(ctx->sleeps().empty());
  EXPECT_EQ(RequestCount("GET /api/lists", "429"), 1);
  ExpectNoKey(*ctx, {std::string(status.message())});
}

TEST_F(IterableSandboxTest, ServerErrorsAreRetriedUntilSuccess) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "5xx");
  SetFaults([](sandbox::FaultOptions& f) {
    f.fail_next = 2;
    f.fail_next_endpoint = "subscribe";
  });
  TestRunContext ctx;
  auto outcomes = connection->Upsert(list, PeopleBatch(3), ctx);
  ASSERT_TRUE(outcomes.ok());
  for (const RecordOutcome& o : *outcomes) EXPECT_EQ(o.kind, OutcomeKind::kDelivered) << o.message;
  EXPECT_EQ(RequestCount("POST /api/lists/subscribe", "503"), 2);
  EXPECT_EQ(Members(list).size(), 3u);
}

TEST_F(IterableSandboxTest, ExhaustedRetriesLeaveRecordsRetryable) {
  ConnectionOptions options = Options();
  options.retry.max_attempts = 3;
  auto connection = Connect(options);
  const sdk::Audience list = MakeList(*connection, "exhausted");
  SetFaults([](sandbox::FaultOptions& f) {
    f.fail_next = 1000;
    f.fail_next_endpoint = "subscribe";
  });
  TestRunContext ctx;
  sdk::RecordBatch batch = EmailBatch({"a@example.com", "bad", "b@example.com"});
  auto outcomes = connection->Upsert(list, batch, ctx);
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kRetryable);
  EXPECT_EQ((*outcomes)[0].reason_code, "http_503");
  EXPECT_EQ((*outcomes)[0].message.rfind("Iterable request failed after 3 tries: subscribe to "
                                         "Iterable list ", 0),
            0u)
      << (*outcomes)[0].message;
  EXPECT_NE((*outcomes)[0].message.find(": HTTP 503"), std::string::npos) << (*outcomes)[0].message;
  EXPECT_EQ((*outcomes)[1].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*outcomes)[2].kind, OutcomeKind::kRetryable);
  EXPECT_EQ(RequestCount("POST /api/lists/subscribe", "503"), 3);
  ExpectNoKey(ctx, Messages(*outcomes));
}

TEST_F(IterableSandboxTest, DroppedConnectionsAreRetried) {
  ConnectionOptions options = Options({{"batch_size", "5"}});
  options.retry.max_attempts = 15;
  auto connection = Connect(options);
  const sdk::Audience list = MakeList(*connection, "dropped");
  SetFaults([](sandbox::FaultOptions& f) {
    f.drop_ratio = 0.4;
    f.seed = 7;
  });
  TestRunContext ctx;
  auto outcomes = connection->Upsert(list, PeopleBatch(30), ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  for (const RecordOutcome& o : *outcomes) EXPECT_EQ(o.kind, OutcomeKind::kDelivered) << o.message;
  EXPECT_GE(RequestCount("POST /api/lists/subscribe", "dropped"), 1);
  EXPECT_EQ(Members(list).size(), 30u);
}

TEST_F(IterableSandboxTest, InvalidListIdRightAfterCreationIsRetriedWithinTheWindow) {
  SetFaults([](sandbox::FaultOptions& f) { f.invalid_list_window_ms = 600; });
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "fresh");
  ASSERT_TRUE(list.created);
  TestRunContext ctx;
  auto outcomes = connection->Upsert(list, PeopleBatch(3), ctx);
  ASSERT_TRUE(outcomes.ok());
  for (const RecordOutcome& o : *outcomes) EXPECT_EQ(o.kind, OutcomeKind::kDelivered) << o.message;
  EXPECT_GE(RequestCount("POST /api/lists/subscribe", "400"), 1);
  EXPECT_TRUE(ctx.LogsContain("does not know the new list yet"));
  EXPECT_EQ(Members(list).size(), 3u);
}

TEST_F(IterableSandboxTest, InvalidListIdForAListWeDidNotJustCreateIsNotFound) {
  SetFaults([](sandbox::FaultOptions& f) { f.invalid_list_window_ms = 60'000; });
  auto creator = Connect();
  sdk::Audience list = MakeList(*creator, "someone else's");
  list.created = false;  // As a later run would see it.
  auto connection = Connect();
  TestRunContext ctx;
  auto outcomes = connection->Upsert(list, PeopleBatch(2), ctx);
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kNotFound) << outcomes.status();
  EXPECT_NE(outcomes.status().message().find("no longer exists"), std::string::npos);
  EXPECT_EQ(RequestCount("POST /api/lists/subscribe", "400"), 1) << "no retries";
}

TEST_F(IterableSandboxTest, InvalidListIdWindowIsBounded) {
  SetFaults([](sandbox::FaultOptions& f) { f.invalid_list_window_ms = 60'000; });
  ConnectionOptions options = Options();
  options.invalid_list_window = absl::Milliseconds(300);
  auto connection = Connect(options);
  const sdk::Audience list = MakeList(*connection, "never ready");
  TestRunContext ctx;
  const absl::Time start = absl::Now();
  auto outcomes = connection->Upsert(list, PeopleBatch(2), ctx);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kNotFound) << outcomes.status();
  EXPECT_NE(outcomes.status().message().find("still after"), std::string::npos)
      << outcomes.status();
  EXPECT_GE(RequestCount("POST /api/lists/subscribe", "400"), 2);
}

TEST_F(IterableSandboxTest, BatchTooLargeRejectsTheRequestsRecordsWithIterablesCode) {
  auto connection = Connect(Options({{"batch_size", "10"}}));
  const sdk::Audience list = MakeList(*connection, "too large");
  SetFaults([](sandbox::FaultOptions& f) { f.max_batch = 5; });
  TestRunContext ctx;
  auto outcomes = connection->Upsert(list, PeopleBatch(13), ctx);
  ASSERT_TRUE(outcomes.ok());
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ((*outcomes)[i].kind, OutcomeKind::kRejected) << i;
    EXPECT_EQ((*outcomes)[i].reason_code, "BatchTooLarge") << i;
    EXPECT_NE((*outcomes)[i].message.find("HTTP 400"), std::string::npos);
  }
  for (size_t i = 10; i < 13; ++i) EXPECT_EQ((*outcomes)[i].kind, OutcomeKind::kDelivered) << i;
  EXPECT_EQ(RequestCount("POST /api/lists/subscribe", "400"), 1) << "4xx are not retried";
}

// The engine decides batch sizes, parallelism and rate: a batch within the
// connection's speed is one request, whatever the requests_per_second.
TEST_F(IterableSandboxTest, ABatchIsOneRequestAndTheRateIsLeftToTheEngine) {
  auto connection = Connect(Options({{"requests_per_second", "1"}}));
  const sdk::Audience list = MakeList(*connection, "one request");
  TestRunContext ctx;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 3; ++i) {
    auto outcomes = connection->Upsert(list, PeopleBatch(40), ctx);
    ASSERT_TRUE(outcomes.ok()) << outcomes.status();
    for (const RecordOutcome& o : *outcomes) EXPECT_EQ(o.kind, OutcomeKind::kDelivered);
  }
  EXPECT_EQ(RequestCount("POST /api/lists/subscribe", "200"), 3);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "the plugin paced requests itself";
  EXPECT_TRUE(ctx.sleeps().empty());
  EXPECT_EQ(connection->speed().requests_per_second, 1) << "the engine paces by speed()";
}

// Only a batch over max_body_bytes is split.
TEST_F(IterableSandboxTest, ABatchOverTheBodyLimitIsSplit) {
  auto connection = Connect(Options({{"max_body_bytes", "2000"}}));
  const sdk::Audience list = MakeList(*connection, "split");
  TestRunContext ctx;
  auto outcomes = connection->Upsert(list, PeopleBatch(40), ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_GT(RequestCount("POST /api/lists/subscribe", "200"), 1);
  EXPECT_EQ(Members(list).size(), 40u);
}

// ----- Cancellation ----------------------------------------------------------

TEST_F(IterableSandboxTest, CancellationStopsRetries) {
  auto connection = Connect();
  const sdk::Audience list = MakeList(*connection, "cancel");
  SetFaults([](sandbox::FaultOptions& f) {
    f.fail_next = 1000;
    f.fail_next_endpoint = "subscribe";
  });
  TestRunContext ctx;
  ctx.CancelAfterPolls(3);
  auto outcomes = connection->Upsert(list, PeopleBatch(3), ctx);
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kCancelled) << outcomes.status();
  TestRunContext cancelled;
  cancelled.Cancel();
  EXPECT_EQ(connection->Check(cancelled).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(connection->EnsureAudience("x", "", cancelled).status().code(),
            absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace exportd::iterable
