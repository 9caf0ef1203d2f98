// The Iterable connection against a scripted HTTP peer: answers the sandbox
// does not give (a server echoing the key, non-JSON bodies, 501, a
// Retry-After date), and what goes on the wire (headers, no key in the URL).
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "exportd/sdk/testing/test_run_context.h"
#include "gtest/gtest.h"
#include "iterable_connection.h"
#include "iterable_settings.h"
#include "test_batches.h"
#include "tests/sandbox/http_server.h"

namespace exportd::iterable {
namespace {

using sdk::OutcomeKind;
using sdk::testing::TestRunContext;
using namespace exportd::iterable::testing;

constexpr char kKey[] = "scripted-key-0123456789abcdef012";

class ScriptedPeerTest : public ::testing::Test {
 protected:
  using Script = std::function<void(const sandbox::HttpRequest&, sandbox::HttpResponse*)>;

  void SetUp() override {
    auto server = sandbox::HttpServer::Create(
        {}, [this](const sandbox::HttpRequest& request, sandbox::HttpResponse* response) {
          Script script;
          {
            absl::MutexLock lock(&mu_);
            requests_.push_back(request);
            if (!scripts_.empty()) {
              script = std::move(scripts_.front());
              scripts_.pop_front();
            }
          }
          if (script) {
            script(request, response);
          } else {
            response->body = R"({"successCount":1,"failCount":0})";
          }
        });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void Then(Script script) {
    absl::MutexLock lock(&mu_);
    scripts_.push_back(std::move(script));
  }

  std::vector<sandbox::HttpRequest> Requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  std::unique_ptr<IterableConnection> Connect() {
    auto options = ParseSettings(
        {{"api_key", kKey}, {"base_url", "http://127.0.0.1:" + std::to_string(server_->port())}});
    EXPECT_TRUE(options.ok()) << options.status();
    options->retry.initial_backoff = absl::Milliseconds(5);
    options->retry.max_backoff = absl::Milliseconds(20);
    auto connection = IterableConnection::Create(*options);
    EXPECT_TRUE(connection.ok()) << connection.status();
    return *std::move(connection);
  }

  const sdk::Audience list_{"10000000007", "Scripted", false, ""};
  absl::Mutex mu_;
  std::deque<Script> scripts_ ABSL_GUARDED_BY(mu_);
  std::vector<sandbox::HttpRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<sandbox::HttpServer> server_;
};

TEST_F(ScriptedPeerTest, KeyTravelsOnlyInTheApiKeyHeaderAndExpectIsOff) {
  auto connection = Connect();
  TestRunContext ctx;
  sdk::RecordBatch batch = PeopleBatch(20);  // A body well above 1 KB.
  ASSERT_TRUE(connection->Upsert(list_, batch, ctx).ok());
  connection->Check(ctx).IgnoreError();  // A GET as well; its answer does not matter.
  for (const sandbox::HttpRequest& request : Requests()) {
    EXPECT_EQ(request.target.find(kKey), std::string::npos) << request.target;
    ASSERT_NE(request.Header("api-key"), nullptr);
    EXPECT_EQ(*request.Header("api-key"), kKey);
    EXPECT_EQ(request.Header("expect"), nullptr) << "Expect: 100-continue must be disabled";
    EXPECT_EQ(request.Header("authorization"), nullptr);
  }
  const sandbox::HttpRequest first = Requests().front();
  EXPECT_EQ(first.method, "POST");
  EXPECT_EQ(first.path, "/api/lists/subscribe");
  ASSERT_NE(first.Header("content-type"), nullptr);
  EXPECT_EQ(*first.Header("content-type"), "application/json");
}

TEST_F(ScriptedPeerTest, AKeyEchoedByTheServerIsRedactedEverywhere) {
  auto echo = [](int status) {
    return [status](const sandbox::HttpRequest& request, sandbox::HttpResponse* response) {
      response->status = status;
      response->body =
          R"({"code":"BadParams","msg":"bad key )" + *request.Header("api-key") + R"("})";
    };
  };
  auto connection = Connect();
  TestRunContext ctx;
  std::vector<std::string> texts;
  Then(echo(400));  // Rejected outcome.
  auto rejected = connection->Upsert(list_, PeopleBatch(2), ctx);
  ASSERT_TRUE(rejected.ok());
  for (const auto& o : *rejected) {
    EXPECT_EQ(o.kind, OutcomeKind::kRejected);
    EXPECT_EQ(o.reason_code, "BadParams");
    texts.push_back(o.message);
  }
  Then(echo(503));  // Logged retries, then retryable outcomes.
  Then(echo(503));
  Then(echo(503));
  Then(echo(503));
  Then(echo(503));
  Then(echo(503));
  auto retryable = connection->Upsert(list_, PeopleBatch(2), ctx);
  ASSERT_TRUE(retryable.ok());
  for (const auto& o : *retryable) {
    EXPECT_EQ(o.kind, OutcomeKind::kRetryable);
    texts.push_back(o.message);
  }
  Then(echo(401));  // Whole-call status.
  texts.emplace_back(connection->Upsert(list_, PeopleBatch(2), ctx).status().message());
  Then(echo(403));
  texts.emplace_back(connection->Check(ctx).message());
  Then(echo(404));
  texts.emplace_back(connection->EnsureAudience("x", "", ctx).status().message());
  for (const auto& line : ctx.logs()) texts.push_back(line.message);
  ASSERT_GE(texts.size(), 10u);
  for (const std::string& text : texts) {
    EXPECT_EQ(text.find(kKey), std::string::npos) << text;
  }
  EXPECT_TRUE(ctx.LogsContain("[redacted]"));
}

TEST_F(ScriptedPeerTest, NonJsonAnswersAreHandledTolerantly) {
  auto connection = Connect();
  TestRunContext ctx;
  Then([](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
    response->content_type = "text/plain";
    response->body = "OK";  // 2xx without JSON: delivered.
  });
  auto ok = connection->Upsert(list_, PeopleBatch(2), ctx);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[0].kind, OutcomeKind::kDelivered);
  Then([](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
    response->status = 422;
    response->content_type = "text/html";
    response->body = "<html>" + std::string(500, 'x') + "</html>";
  });
  auto rejected = connection->Upsert(list_, PeopleBatch(2), ctx);
  ASSERT_TRUE(rejected.ok());
  EXPECT_EQ((*rejected)[0].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*rejected)[0].reason_code, "http_422");
  EXPECT_NE((*rejected)[0].message.find("HTTP 422: <html>xxx"), std::string::npos);
  EXPECT_LT((*rejected)[0].message.size(), 300u);
}

TEST_F(ScriptedPeerTest, NotImplementedIsNotRetried) {
  auto connection = Connect();
  TestRunContext ctx;
  Then([](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
    response->status = 501;
    response->body = R"({"code":"GenericError","msg":"no"})";
  });
  auto outcomes = connection->Upsert(list_, PeopleBatch(1), ctx);
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kRejected);
  EXPECT_EQ((*outcomes)[0].reason_code, "GenericError");
  EXPECT_EQ(Requests().size(), 1u);
}

TEST_F(ScriptedPeerTest, FailedUpdatesMapBackToTheRecordsSent) {
  auto connection = Connect();
  TestRunContext ctx;
  Then([](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
    response->body = R"({"successCount":1,"failCount":4,
        "failedUpdates":{"conflictEmails":["USER0@example.com"],
                         "forgottenEmails":["user1@example.com"],
                         "notFoundEmails":["user3@example.com"],
                         "invalidDataEmails":["someone-else@example.com"]},
        "invalidEmails":["user4@example.com"]})";
  });
  auto outcomes = connection->Upsert(list_, PeopleBatch(6), ctx);
  ASSERT_TRUE(outcomes.ok());
  ASSERT_EQ(outcomes->size(), 6u);
  EXPECT_EQ((*outcomes)[0].reason_code, "conflict");
  EXPECT_EQ((*outcomes)[1].reason_code, "forgotten");
  EXPECT_EQ((*outcomes)[2].kind, OutcomeKind::kDelivered);
  EXPECT_EQ((*outcomes)[3].reason_code, "not_found");
  EXPECT_EQ((*outcomes)[4].reason_code, "invalid_email");
  EXPECT_EQ((*outcomes)[5].kind, OutcomeKind::kDelivered);
  for (size_t i : {0, 1, 3, 4}) {
    EXPECT_EQ((*outcomes)[i].kind, OutcomeKind::kRejected);
    EXPECT_EQ((*outcomes)[i].field, "email");
  }
}

// createdFields and filteredOutFields that come back in several answers (as
// parallel batches can both create a field): logged once per field and
// connection (one run).
TEST_F(ScriptedPeerTest, CreatedAndFilteredOutFieldsAreLoggedOncePerField) {
  auto connection = Connect();
  TestRunContext ctx;
  for (int i = 0; i < 3; ++i) {
    Then([](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
      response->body =
          R"({"successCount":2,"failCount":0,"createdFields":["firstName"],"filteredOutFields":["score","vip"]})";
    });
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(connection->Upsert(list_, PeopleBatch(2), ctx).ok());
  int warned = 0, created = 0;
  for (const auto& line : ctx.logs()) {
    if (line.message.find("created data fields") != std::string::npos) {
      ++created;
      EXPECT_EQ(line.level, sdk::LogLevel::kInfo);
      EXPECT_EQ(line.message, "Iterable created data fields: firstName");
    }
    if (line.message.find("filtered out") == std::string::npos) continue;
    ++warned;
    EXPECT_EQ(line.level, sdk::LogLevel::kWarning);
    EXPECT_EQ(line.message,
              "Iterable filtered out fields: score, vip (not in the project's schema?); their "
              "values were not stored");
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(warned, 1);
}

// RequestFieldsTypesMismatched refuses the whole request. Where Iterable's
// answer names the field is not documented: nothing is parsed out of it; the
// rejection quotes it and names the request's data fields (the field itself
// only when there is just one).
TEST_F(ScriptedPeerTest, ATypesMismatchedRequestNamesTheDataFieldsItCarried) {
  auto connection = Connect();
  TestRunContext ctx;
  auto mismatched = [](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
    response->status = 400;
    response->body =
        R"({"msg":"Request fields types mismatched","code":"RequestFieldsTypesMismatched","params":null})";
  };
  Then(mismatched);
  auto outcomes = connection->Upsert(list_, PeopleBatch(2), ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 2u);
  for (const sdk::RecordOutcome& o : *outcomes) {
    EXPECT_EQ(o.kind, OutcomeKind::kRejected);
    EXPECT_EQ(o.reason_code, "RequestFieldsTypesMismatched");
    EXPECT_EQ(o.field, "dataFields");
    EXPECT_NE(o.message.find("Request fields types mismatched"), std::string::npos) << o.message;
    EXPECT_NE(o.message.find("firstName, score, signedUp, vip"), std::string::npos) << o.message;
    EXPECT_NE(o.message.find("not documented to name the field"), std::string::npos) << o.message;
  }
  Then(mismatched);
  sdk::RecordBatch one;
  one.fields = {{"email", sdk::FieldType::kString}, {"level", sdk::FieldType::kString}};
  one.profile_ids = {"a"};
  one.values = {Str("a@example.com"), Str("gold")};
  outcomes = connection->Upsert(list_, one, ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ((*outcomes)[0].field, "level");
  EXPECT_NE((*outcomes)[0].message.find("the request's only data field was 'level'"),
            std::string::npos)
      << (*outcomes)[0].message;
}

TEST_F(ScriptedPeerTest, RetryAfterAsAnHttpDateIsReportedToTheEngine) {
  auto connection = Connect();
  auto ctx = TestRunContext::WithFakeClock(absl::FromUnixSeconds(1'445'412'470));
  Then([](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
    response->status = 429;
    response->headers.push_back({"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"});
    response->body = "Rate limit exceeded. Please try again later.";
  });
  auto outcomes = connection->Upsert(list_, PeopleBatch(1), *ctx);
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kResourceExhausted) << outcomes.status();
  EXPECT_EQ(ctx->throttles(), std::vector<absl::Duration>{absl::Seconds(10)})
      << "Retry-After date (10 s after the fake now) not reported";
  EXPECT_TRUE(ctx->sleeps().empty());
}

// Retries of other failures stay in the plugin; their log lines count a
// request's tries (the engine's run attempts are another thing).
TEST_F(ScriptedPeerTest, ServerErrorRetriesCountTries) {
  auto connection = Connect();
  auto ctx = TestRunContext::WithFakeClock();
  Then([](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
    response->status = 503;
    response->body = "busy";
  });
  auto outcomes = connection->Upsert(list_, PeopleBatch(1), *ctx);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ((*outcomes)[0].kind, OutcomeKind::kDelivered);
  EXPECT_TRUE(ctx->LogsContain("(try 2 of ")) << "log: " << ctx->logs()[0].message;
}

// A request that keeps failing says how often it was tried, in the words the
// engine's run message builds on ("...; the run will be tried again (run
// attempt 2 of 3) in 30s"): tries are the plugin's, run attempts the engine's.
TEST_F(ScriptedPeerTest, ARequestThatKeepsFailingSaysHowOftenItWasTried) {
  auto options = ParseSettings(
      {{"api_key", kKey}, {"base_url", "http://127.0.0.1:" + std::to_string(server_->port())}});
  ASSERT_TRUE(options.ok()) << options.status();
  options->retry.max_attempts = 2;
  options->retry.initial_backoff = absl::Milliseconds(1);
  auto connection = IterableConnection::Create(*options);
  ASSERT_TRUE(connection.ok()) << connection.status();
  for (int i = 0; i < 2; ++i) {
    Then([](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
      response->status = 503;
      response->body = R"({"code":"GenericError","msg":"busy"})";
    });
  }
  TestRunContext ctx;
  auto audience = (*connection)->EnsureAudience("VIP", "", ctx);
  EXPECT_EQ(audience.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(audience.status().message(),
            "Iterable request failed after 2 tries: GET /api/lists: HTTP 503 GenericError: busy");
  EXPECT_TRUE(ctx.LogsContain("GET /api/lists: HTTP 503 GenericError: busy; retrying in "));
  EXPECT_TRUE(ctx.LogsContain("(try 2 of 2)"));
  EXPECT_EQ(Requests().size(), 2u);
}

TEST_F(ScriptedPeerTest, EnsureAudienceUsesOnlyStandardListsOfTheExactName) {
  Then([](const sandbox::HttpRequest&, sandbox::HttpResponse* response) {
    response->body = R"({"lists":[
        {"id":5,"name":"VIP","createdAt":1,"listType":"Dynamic"},
        {"id":9,"name":"VIP","createdAt":3,"listType":"Standard"},
        {"id":8,"name":"VIP ","createdAt":2,"listType":"Standard"},
        {"id":12000000000,"name":"VIP","createdAt":3}]})";
  });
  auto connection = Connect();
  TestRunContext ctx;
  auto audience = connection->EnsureAudience("VIP", "", ctx);
  ASSERT_TRUE(audience.ok()) << audience.status();
  EXPECT_EQ(audience->id, "9") << "same createdAt: the lower id wins";
  EXPECT_FALSE(audience->created);
  EXPECT_NE(audience->note.find("not standard lists"), std::string::npos) << audience->note;
  EXPECT_NE(audience->note.find("2 Iterable lists are named 'VIP'"), std::string::npos)
      << audience->note;
}

}  // namespace
}  // namespace exportd::iterable
