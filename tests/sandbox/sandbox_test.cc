#include "tests/sandbox/sandbox.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace exportd::sandbox {
namespace {

constexpr char kKey[] = "0123456789abcdef0123456789abcdef";

// A clock the test moves by hand.
class FakeClock {
 public:
  absl::Time Now() const { return absl::FromUnixNanos(nanos_.load()); }
  void Advance(absl::Duration by) { nanos_.fetch_add(absl::ToInt64Nanoseconds(by)); }

 private:
  std::atomic<int64_t> nanos_{absl::ToUnixNanos(absl::FromUnixMillis(1'700'000'000'000))};
};

struct HttpResult {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // Lowercase names.
  long new_connections = 0;
  double seconds = 0;

  nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
};

size_t AppendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

size_t AppendHeader(char* data, size_t size, size_t count, void* out) {
  std::string line(data, size * count);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    (*static_cast<std::map<std::string, std::string>*>(
        out))[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * count;
}

// A libcurl client that keeps one connection alive across calls.
class Client {
 public:
  explicit Client(std::string base_url) : base_url_(std::move(base_url)), curl_(curl_easy_init()) {}
  ~Client() { curl_easy_cleanup(curl_); }

  HttpResult Call(const std::string& method, const std::string& path, const std::string& body = "",
                  const std::string& api_key = kKey, std::vector<std::string> extra_headers = {}) {
    HttpResult result;
    curl_easy_reset(curl_);
    std::string url = base_url_ + path;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST" || !body.empty()) {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    if (!api_key.empty()) headers = curl_slist_append(headers, ("Api-Key: " + api_key).c_str());
    for (const std::string& header : extra_headers) {
      headers = curl_slist_append(headers, header.c_str());
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, AppendBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &result.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, AppendHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &result.headers);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 20'000L);
    auto start = std::chrono::steady_clock::now();
    result.code = curl_easy_perform(curl_);
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &result.status);
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &result.new_connections);
    curl_slist_free_all(headers);
    return result;
  }

  HttpResult Post(const std::string& path, const nlohmann::json& body) {
    return Call("POST", path, body.dump());
  }

 private:
  std::string base_url_;
  CURL* curl_;
};

// Sends raw bytes and reads until the peer closes or `expected_responses` complete
// responses ("HTTP/1.1 " at line start, counted crudely) arrived.
std::string RawExchange(int port, const std::string& bytes, int expected_responses) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return "";
  send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string received;
  char buffer[4096];
  auto complete = [&] {
    int count = 0;
    size_t pos = 0;
    while ((pos = received.find("HTTP/1.1 ", pos)) != std::string::npos) {
      size_t head_end = received.find("\r\n\r\n", pos);
      size_t length_at = received.find("Content-Length: ", pos);
      if (head_end == std::string::npos || length_at == std::string::npos) break;
      size_t length = std::stoul(received.substr(length_at + 16));
      if (received.size() < head_end + 4 + length) break;
      ++count;
      pos = head_end + 4 + length;
    }
    return count >= expected_responses;
  };
  while (!complete()) {
    ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got <= 0) break;
    received.append(buffer, static_cast<size_t>(got));
  }
  close(fd);
  return received;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(ProjectType::kHybrid); }

  void Start(ProjectType project_type, bool lean = false) {
    client_.reset();
    sandbox_.reset();
    Options options;
    options.api_keys = {kKey};
    options.project_type = project_type;
    options.lean = lean;
    options.clock = [clock = clock_] { return clock->Now(); };
    auto sandbox = Sandbox::Create(options);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = std::move(*sandbox);
    client_ = std::make_unique<Client>(sandbox_->base_url());
  }

  int64_t CreateList(const std::string& name) {
    HttpResult result = client_->Post("/api/lists", {{"name", name}});
    EXPECT_EQ(result.status, 200) << result.body;
    return result.Json().value("listId", int64_t{0});
  }

  HttpResult Subscribe(int64_t list_id, nlohmann::json subscribers, nlohmann::json extra = {}) {
    nlohmann::json body = {{"listId", list_id}, {"subscribers", std::move(subscribers)}};
    if (extra.is_object()) body.update(extra);
    return client_->Post("/api/lists/subscribe", body);
  }

  nlohmann::json Members(int64_t list_id) {
    return client_->Call("GET", absl::StrCat("/_sandbox/lists/", list_id, "/members")).Json();
  }

  void SetFaults(const nlohmann::json& patch) {
    HttpResult result = client_->Post("/_sandbox/faults", patch);
    ASSERT_EQ(result.status, 200) << result.body;
  }

  std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>();
  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<Client> client_;
};

TEST(EmailValidationTest, AcceptsPlausibleAndRejectsBadAddresses) {
  EXPECT_TRUE(IsValidEmail("a@b.co"));
  EXPECT_TRUE(IsValidEmail("First.Last+tag@Sub.Example.COM"));
  EXPECT_FALSE(IsValidEmail("no-at-sign.com"));
  EXPECT_FALSE(IsValidEmail("two@@example.com"));
  EXPECT_FALSE(IsValidEmail("a@example.c"));    // TLD too short.
  EXPECT_FALSE(IsValidEmail("a@example.c0m"));  // TLD not letters.
  EXPECT_FALSE(IsValidEmail("a@localhost"));    // No TLD.
  EXPECT_FALSE(IsValidEmail(".a@example.com"));
  EXPECT_FALSE(IsValidEmail("a..b@example.com"));
  EXPECT_FALSE(IsValidEmail("a b@example.com"));
  EXPECT_FALSE(IsValidEmail("a@-example.com"));
  EXPECT_FALSE(IsValidEmail("a@example..com"));
  EXPECT_TRUE(IsValidUserId("user-1"));
  EXPECT_FALSE(IsValidUserId("trailing "));
  EXPECT_FALSE(IsValidUserId(std::string(53, 'x')));
}

TEST_F(SandboxTest, MissingApiKeyIs401BadAuthorizationHeader) {
  HttpResult result = client_->Call("GET", "/api/lists", "", /*api_key=*/"");
  EXPECT_EQ(result.status, 401);
  EXPECT_EQ(result.Json()["code"], "BadAuthorizationHeader");
}

TEST_F(SandboxTest, WrongApiKeyIs401BadApiKey) {
  HttpResult result = client_->Call("GET", "/api/lists", "", "not-the-key");
  EXPECT_EQ(result.status, 401);
  EXPECT_EQ(result.Json(),
            nlohmann::json::parse(R"({"msg":"Invalid API key","code":"BadApiKey","params":null})"));
  EXPECT_EQ(result.headers["content-type"], "application/json");
}

TEST_F(SandboxTest, DefaultKeyIsAcceptedWhenNoKeysAreConfigured) {
  auto sandbox = Sandbox::Create(Options());
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  Client client((*sandbox)->base_url());
  EXPECT_EQ(client.Call("GET", "/api/lists", "", kDefaultApiKey).status, 200);
  EXPECT_EQ(client.Call("GET", "/api/lists", "", kKey).status, 401);
}

TEST_F(SandboxTest, ListsCreateGetDelete) {
  HttpResult created =
      client_->Post("/api/lists", {{"name", "VIP"}, {"description", "best customers"}});
  ASSERT_EQ(created.status, 200) << created.body;
  int64_t id = created.Json()["listId"].get<int64_t>();
  EXPECT_GT(id, int64_t{1} << 32);  // Ids need 64 bits.

  nlohmann::json lists = client_->Call("GET", "/api/lists").Json()["lists"];
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0]["id"], id);
  EXPECT_EQ(lists[0]["name"], "VIP");
  EXPECT_EQ(lists[0]["description"], "best customers");
  EXPECT_EQ(lists[0]["listType"], "Standard");
  EXPECT_EQ(lists[0]["createdAt"], absl::ToUnixMillis(clock_->Now()));

  HttpResult deleted = client_->Call("DELETE", absl::StrCat("/api/lists/", id));
  EXPECT_EQ(deleted.status, 200);
  EXPECT_EQ(deleted.Json()["code"], "Success");
  EXPECT_TRUE(client_->Call("GET", "/api/lists").Json()["lists"].empty());

  HttpResult again = client_->Call("DELETE", absl::StrCat("/api/lists/", id));
  EXPECT_EQ(again.status, 404);
  EXPECT_EQ(again.Json()["code"], "NotFound");
}

// A list a campaign or journey uses is not deleted through the API: 409.
TEST_F(SandboxTest, DeletingAListInUseIsAConflict) {
  int64_t id = client_->Post("/api/lists", {{"name", "Used"}}).Json()["listId"].get<int64_t>();
  const std::string in_use = absl::StrCat("/_sandbox/lists/", id, "/in-use");
  EXPECT_EQ(client_->Call("POST", in_use, R"({"inUse": true})").status, 200);
  HttpResult refused = client_->Call("DELETE", absl::StrCat("/api/lists/", id));
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(refused.Json()["msg"], "List is in use");
  EXPECT_EQ(client_->Call("GET", "/api/lists").Json()["lists"].size(), 1u);
  EXPECT_EQ(client_->Call("POST", in_use, R"({"inUse": false})").status, 200);
  EXPECT_EQ(client_->Call("DELETE", absl::StrCat("/api/lists/", id)).status, 200);
  EXPECT_EQ(client_->Call("POST", in_use, R"({"inUse": true})").status, 404);
  EXPECT_EQ(client_->Call("POST", in_use, R"({"inUse": 1})").status, 400);
}

TEST_F(SandboxTest, CreateListWithoutNameIsBadParams) {
  HttpResult result = client_->Post("/api/lists", {{"description", "x"}});
  EXPECT_EQ(result.status, 400);
  EXPECT_EQ(result.Json()["code"], "BadParams");
}

TEST_F(SandboxTest, DuplicateNamesCreateTwoLists) {
  int64_t first = CreateList("Same");
  int64_t second = CreateList("Same");
  EXPECT_NE(first, second);
  nlohmann::json lists = client_->Call("GET", "/api/lists").Json()["lists"];
  ASSERT_EQ(lists.size(), 2u);
  EXPECT_EQ(lists[0]["name"], "Same");
  EXPECT_EQ(lists[1]["name"], "Same");
}

TEST_F(SandboxTest, SubscribeStoresLowercaseEmailsAndRejectsInvalidOnes) {
  int64_t list = CreateList("L");
  HttpResult result =
      Subscribe(list, {{{"email", "Ann@Example.COM"}, {"dataFields", {{"tier", "gold"}}}},
                       {{"email", "not-an-email"}},
                       {{"email", "bob@example.c"}},
                       {{"email", "carl@example.org"}}});
  ASSERT_EQ(result.status, 200) << result.body;
  nlohmann::json body = result.Json();
  EXPECT_EQ(body["successCount"], 2);
  EXPECT_EQ(body["failCount"], 2);
  EXPECT_EQ(body["failedUpdates"]["invalidEmails"],
            nlohmann::json({"not-an-email", "bob@example.c"}));
  EXPECT_EQ(body["failedUpdates"]["notFoundEmails"], nlohmann::json::array());
  nlohmann::json expected = nlohmann::json::parse(
      R"([{"email":"ann@example.com","dataFields":{"tier":"gold"}},
          {"email":"carl@example.org","dataFields":{}}])");
  EXPECT_EQ(Members(list), expected);
  // The same user in another case is the same user.
  Subscribe(list, {{{"email", "ANN@example.com"}, {"dataFields", {{"tier", "silver"}}}}});
  EXPECT_EQ(Members(list)[0]["dataFields"]["tier"], "silver");
  EXPECT_EQ(sandbox_->StatsJson()["users"], 2);
}

TEST_F(SandboxTest, UserIdProjectKeysUsersByUserIdAndNeedsOne) {
  Start(ProjectType::kUserId);
  int64_t list = CreateList("L");
  HttpResult result = Subscribe(list, {{{"userId", "u1"}, {"email", "A@example.com"}},
                                       {{"userId", "u2"}, {"email", "a@example.com"}},
                                       {{"email", "b@example.com"}}});
  ASSERT_EQ(result.status, 200) << result.body;
  nlohmann::json body = result.Json();
  EXPECT_EQ(body["successCount"], 2);
  EXPECT_EQ(body["failedUpdates"]["invalidUserIds"], nlohmann::json({""}));
  EXPECT_EQ(body["failedUpdates"]["conflictEmails"], nlohmann::json::array())
      << "an email is an ordinary field in a userID-based project";
  nlohmann::json members = Members(list);
  ASSERT_EQ(members.size(), 2u) << members.dump();
  EXPECT_EQ(members[0]["email"], "a@example.com");
  EXPECT_EQ(members[1]["email"], "a@example.com");
  // Failures are named by userId there.
  result = Subscribe(list, {{{"userId", "u1"}, {"email", "a@example.com"},
                             {"dataFields", {{"n", 1}}}},
                            {{"userId", "u2"}, {"dataFields", {{"n", "one"}}}}});
  EXPECT_EQ(result.Json()["failedUpdates"]["invalidDataUserIds"], nlohmann::json({"u2"}));
}

TEST_F(SandboxTest, LeanModeCountsMembersAsUsualButKeepsNoRecords) {
  Start(ProjectType::kHybrid, /*lean=*/true);
  int64_t list = CreateList("L");
  HttpResult result =
      Subscribe(list, {{{"email", "Ann@Example.COM"}, {"dataFields", {{"n", 1}}}},
                       {{"email", "ann@example.com"}, {"dataFields", {{"n", 2}}}},
                       {{"email", "not-an-email"}},
                       {{"email", "bob@example.com"}, {"dataFields", {{"n", "two"}}}},
                       {{"userId", "u1"}}});
  ASSERT_EQ(result.status, 200) << result.body;
  nlohmann::json body = result.Json();
  EXPECT_EQ(body["successCount"], 3);
  EXPECT_EQ(body["failedUpdates"]["invalidEmails"], nlohmann::json({"not-an-email"}));
  EXPECT_EQ(body["failedUpdates"]["invalidDataEmails"], nlohmann::json({"bob@example.com"}));
  EXPECT_EQ(client_->Call("GET", "/_sandbox/lists").Json()[0]["memberCount"], 2)
      << "one user for both spellings of ann's email, and the userId-only one";
  EXPECT_EQ(sandbox_->StatsJson()["users"], 2);
  // Unsubscribing counts as usual too.
  result = client_->Post("/api/lists/unsubscribe",
                         {{"listId", list},
                          {"subscribers", {{{"email", "ANN@example.com"}}, {{"email", "x@y.com"}}}}});
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(result.Json()["successCount"], 1);
  EXPECT_EQ(result.Json()["failedUpdates"]["notFoundEmails"], nlohmann::json({"x@y.com"}));
  EXPECT_EQ(client_->Call("GET", "/_sandbox/lists").Json()[0]["memberCount"], 1);
  EXPECT_EQ(client_->Call("GET", absl::StrCat("/_sandbox/lists/", list, "/members")).status, 409);
}

TEST_F(SandboxTest, EmailProjectNeedsAnEmail) {
  Start(ProjectType::kEmail);
  int64_t list = CreateList("L");
  HttpResult result = Subscribe(list, {{{"userId", "u1"}}, {{"email", "a@example.com"}}});
  nlohmann::json body = result.Json();
  EXPECT_EQ(body["successCount"], 1);
  EXPECT_EQ(body["failedUpdates"]["invalidEmails"], nlohmann::json({""}));
}

TEST_F(SandboxTest, AListDeletedThroughTheAdminApiIsAnInvalidListId) {
  int64_t list = CreateList("L");
  ASSERT_EQ(Subscribe(list, {{{"email", "a@example.com"}}}).status, 200);
  EXPECT_EQ(client_->Call("DELETE", absl::StrCat("/_sandbox/lists/", list)).status, 200);
  EXPECT_EQ(client_->Call("DELETE", absl::StrCat("/_sandbox/lists/", list)).status, 404);
  HttpResult result = Subscribe(list, {{{"email", "a@example.com"}}});
  EXPECT_EQ(result.status, 400);
  EXPECT_EQ(result.Json()["msg"], absl::StrCat("error.lists.invalidListId(", list, ")"));
}

TEST_F(SandboxTest, FieldTypeIsFixedByFirstValue) {
  int64_t list = CreateList("L");
  ASSERT_EQ(Subscribe(list, {{{"email", "a@example.com"}, {"dataFields", {{"age", 30}}}}})
                .Json()["createdFields"],
            nlohmann::json({"age"}));
  HttpResult result =
      Subscribe(list, {{{"email", "b@example.com"}, {"dataFields", {{"age", "thirty"}}}},
                       {{"email", "c@example.com"}, {"dataFields", {{"age", 31.5}}}}});
  nlohmann::json body = result.Json();
  EXPECT_EQ(body["successCount"], 1);
  EXPECT_EQ(body["failCount"], 1);
  EXPECT_EQ(body["failedUpdates"]["invalidDataEmails"], nlohmann::json({"b@example.com"}));
  nlohmann::json members = Members(list);
  ASSERT_EQ(members.size(), 2u);  // b was not applied.
  EXPECT_EQ(members[1]["email"], "c@example.com");
  EXPECT_EQ(client_->Call("GET", "/_sandbox/fields").Json(), nlohmann::json({{"age", "number"}}));
}

TEST_F(SandboxTest, ManagedFieldsAreFilteredOutButTheRecordIsSubscribed) {
  int64_t list = CreateList("L");
  HttpResult result = Subscribe(
      list, {{{"email", "a@example.com"},
              {"dataFields", {{"signupDate", "2020-01-01"}, {"emailListIds", {1}}, {"x", true}}}},
             {{"email", "b@example.com"}, {"dataFields", {{"signupDate", "2020-01-02"}}}}});
  nlohmann::json body = result.Json();
  EXPECT_EQ(body["successCount"], 2);
  EXPECT_EQ(body["filteredOutFields"], nlohmann::json({"emailListIds", "signupDate"}));
  EXPECT_EQ(Members(list)[0]["dataFields"], nlohmann::json({{"x", true}}));
}

TEST_F(SandboxTest, UpdateExistingUsersOnlyReportsUnknownUsers) {
  int64_t list = CreateList("L");
  Subscribe(list, {{{"email", "known@example.com"}}});
  HttpResult result =
      Subscribe(list, {{{"email", "known@example.com"}}, {{"email", "new@example.com"}}},
                {{"updateExistingUsersOnly", true}});
  nlohmann::json body = result.Json();
  EXPECT_EQ(body["successCount"], 1);
  EXPECT_EQ(body["failedUpdates"]["notFoundEmails"], nlohmann::json({"new@example.com"}));
  EXPECT_EQ(sandbox_->StatsJson()["updateExistingUsersOnlyTrue"], 1);
}

TEST_F(SandboxTest, UnsubscribeRemovesMembersAndCountsChannelUnsubscribe) {
  int64_t list = CreateList("L");
  Subscribe(list, {{{"email", "a@example.com"}}, {{"email", "b@example.com"}}});
  HttpResult result = client_->Post(
      "/api/lists/unsubscribe",
      {{"listId", list},
       {"subscribers", {{{"email", "A@example.com"}}, {{"email", "zed@example.com"}}}},
       {"channelUnsubscribe", false}});
  ASSERT_EQ(result.status, 200) << result.body;
  nlohmann::json body = result.Json();
  EXPECT_EQ(body["successCount"], 1);
  EXPECT_EQ(body["failedUpdates"]["notFoundEmails"], nlohmann::json({"zed@example.com"}));
  EXPECT_EQ(Members(list), nlohmann::json::parse(R"([{"email":"b@example.com","dataFields":{}}])"));
  client_->Post(
      "/api/lists/unsubscribe",
      {{"listId", list}, {"subscribers", nlohmann::json::array()}, {"channelUnsubscribe", true}});
  client_->Post("/api/lists/unsubscribe",
                {{"listId", list}, {"subscribers", nlohmann::json::array()}});
  nlohmann::json stats = sandbox_->StatsJson();
  EXPECT_EQ(stats["channelUnsubscribeFalse"], 1);
  EXPECT_EQ(stats["channelUnsubscribeTrue"], 1);
  EXPECT_EQ(stats["channelUnsubscribeMissing"], 1);
}

TEST_F(SandboxTest, UnknownListIs400WithCodeSuccess) {
  HttpResult result = Subscribe(999999999, {{{"email", "a@example.com"}}});
  EXPECT_EQ(result.status, 400);
  nlohmann::json expected = {
      {"msg", "error.lists.invalidListId(999999999)"}, {"code", "Success"}, {"params", nullptr}};
  EXPECT_EQ(result.Json(), expected);
}

TEST_F(SandboxTest, MalformedJsonIsBadJsonBody) {
  HttpResult result = client_->Call("POST", "/api/lists/subscribe", "{\"listId\": 1,");
  EXPECT_EQ(result.status, 400);
  EXPECT_EQ(result.Json()["code"], "BadJsonBody");
}

TEST_F(SandboxTest, BatchTooLarge) {
  SetFaults({{"maxBatch", 3}});
  int64_t list = CreateList("L");
  nlohmann::json four = nlohmann::json::array();
  for (int i = 0; i < 4; ++i) four.push_back({{"email", absl::StrCat("u", i, "@example.com")}});
  HttpResult result = Subscribe(list, four);
  EXPECT_EQ(result.status, 400);
  EXPECT_EQ(result.Json()["code"], "BatchTooLarge");
  four.erase(3);
  EXPECT_EQ(Subscribe(list, four).status, 200);
  EXPECT_EQ(sandbox_->StatsJson()["maxSubscribersSeen"], 4);
}

TEST_F(SandboxTest, BodyOverLimitIs413AndTheConnectionStaysUsable) {
  SetFaults({{"maxBodyBytes", 2000}});
  std::string big = absl::StrCat("{\"name\":\"", std::string(5000, 'x'), "\"}");
  // Without Expect: the body is drained, the connection survives.
  HttpResult result = client_->Call("POST", "/api/lists", big, kKey, {"Expect:"});
  EXPECT_EQ(result.status, 413);
  EXPECT_EQ(result.Json()["code"], "BatchTooLarge");
  HttpResult next = client_->Call("GET", "/api/lists");
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(next.new_connections, 0);
  // With Expect: 100-continue the answer comes before the body is sent.
  HttpResult expecting = client_->Call("POST", "/api/lists", big, kKey, {"Expect: 100-continue"});
  EXPECT_EQ(expecting.status, 413);
  EXPECT_LT(expecting.seconds, 0.9);  // curl would wait 1 s for a 100 that never comes.
}

TEST_F(SandboxTest, ExpectContinueIsAnswered) {
  int64_t list = CreateList("L");
  nlohmann::json subscribers = nlohmann::json::array();
  for (int i = 0; i < 200; ++i)
    subscribers.push_back({{"email", absl::StrCat("u", i, "@example.com")}});
  nlohmann::json body = {{"listId", list}, {"subscribers", subscribers}};
  HttpResult result =
      client_->Call("POST", "/api/lists/subscribe", body.dump(), kKey, {"Expect: 100-continue"});
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.Json()["successCount"], 200);
  EXPECT_LT(result.seconds, 0.9);
}

TEST_F(SandboxTest, InvalidListWindowFollowsTheClock) {
  SetFaults({{"invalidListWindowMs", 5000}});
  int64_t list = CreateList("Fresh");
  HttpResult early = Subscribe(list, {{{"email", "a@example.com"}}});
  EXPECT_EQ(early.status, 400);
  EXPECT_EQ(early.Json()["msg"], absl::StrCat("error.lists.invalidListId(", list, ")"));
  EXPECT_EQ(early.Json()["code"], "Success");
  clock_->Advance(absl::Milliseconds(4999));
  EXPECT_EQ(Subscribe(list, {{{"email", "a@example.com"}}}).status, 400);
  clock_->Advance(absl::Milliseconds(1));
  EXPECT_EQ(Subscribe(list, {{{"email", "a@example.com"}}}).status, 200);
}

TEST_F(SandboxTest, RateLimitJsonBodyWithoutRetryAfter) {
  SetFaults({{"rateLimits", {{"lists", 2}}}});
  EXPECT_EQ(client_->Call("GET", "/api/lists").status, 200);
  EXPECT_EQ(client_->Call("GET", "/api/lists").status, 200);
  HttpResult limited = client_->Call("GET", "/api/lists");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.Json()["code"], "RateLimitExceeded");
  EXPECT_EQ(limited.headers.count("retry-after"), 0u);
  // Other endpoints have their own budget.
  EXPECT_EQ(client_->Post("/api/lists", {{"name", "x"}}).status, 200);
  clock_->Advance(absl::Milliseconds(500));  // One token back at 2/s.
  EXPECT_EQ(client_->Call("GET", "/api/lists").status, 200);
  EXPECT_EQ(client_->Call("GET", "/api/lists").status, 429);
  EXPECT_EQ(sandbox_->StatsJson()["requests"]["GET /api/lists"]["429"], 2);
}

TEST_F(SandboxTest, RateLimitTextBodyWithRetryAfter) {
  SetFaults(
      {{"rateLimits", {{"subscribe", 1}}}, {"rateLimitBody", "text"}, {"retryAfterSeconds", 3}});
  int64_t list = CreateList("L");
  EXPECT_EQ(Subscribe(list, nlohmann::json::array()).status, 200);
  HttpResult limited = Subscribe(list, nlohmann::json::array());
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.body, "Rate limit exceeded. Please try again later.");
  EXPECT_EQ(limited.headers["content-type"], "text/plain");
  EXPECT_EQ(limited.headers["retry-after"], "3");
}

TEST_F(SandboxTest, RateLimitResetNamesWhenTheNextTokenComes) {
  SetFaults({{"rateLimits", {{"subscribe", 2}}}, {"rateLimitReset", true}});
  int64_t list = CreateList("L");
  EXPECT_EQ(Subscribe(list, nlohmann::json::array()).status, 200);
  EXPECT_EQ(Subscribe(list, nlohmann::json::array()).status, 200);
  HttpResult limited = Subscribe(list, nlohmann::json::array());
  ASSERT_EQ(limited.status, 429);
  nlohmann::json params = limited.Json()["params"];
  EXPECT_EQ(params["rateLimitLimit"], 2);
  EXPECT_EQ(params["rateLimitRemaining"], 0);
  // An empty bucket at 2/s has a token again in 500 ms.
  EXPECT_EQ(params["rateLimitReset"].get<int64_t>(),
            absl::ToUnixMillis(clock_->Now() + absl::Milliseconds(500)) + 1);
  EXPECT_EQ(sandbox_->faults().rate_limit_reset, true);
}

TEST_F(SandboxTest, RequestTimesAreKeptForSlidingWindows) {
  int64_t list = CreateList("L");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Subscribe(list, nlohmann::json::array()).status, 200);
    clock_->Advance(absl::Milliseconds(300));
  }
  std::vector<absl::Time> times = sandbox_->RequestTimes("POST /api/lists/subscribe");
  ASSERT_EQ(times.size(), 5u);
  EXPECT_EQ(times[1] - times[0], absl::Milliseconds(300));
  EXPECT_EQ(MaxInSlidingWindow(times, absl::Seconds(1)), 4);  // 0, 300, 600, 900 ms.
  EXPECT_EQ(MaxInSlidingWindow(times, absl::Milliseconds(300)), 1);
  EXPECT_TRUE(sandbox_->RequestTimes("POST /api/lists/subscribe", "429").empty());
  nlohmann::json all = client_->Call("GET", "/_sandbox/requests").Json();
  ASSERT_EQ(all.size(), 6u);  // The list's creation too.
  EXPECT_EQ(all[1]["route"], "POST /api/lists/subscribe");
  EXPECT_EQ(all[1]["outcome"], "200");
  EXPECT_EQ(all[1]["atMicros"].get<int64_t>(), absl::ToUnixMicros(times[0]));
  sandbox_->Reset();
  EXPECT_TRUE(sandbox_->RequestTimes("POST /api/lists/subscribe").empty());
}

TEST_F(SandboxTest, Fail5xxRatioIsDeterministicForASeed) {
  auto run = [&] {
    SetFaults({{"fail5xxRatio", 0.3}, {"seed", 42}});
    std::vector<long> statuses;
    for (int i = 0; i < 100; ++i) statuses.push_back(client_->Call("GET", "/api/lists").status);
    return statuses;
  };
  std::vector<long> first = run();
  int failures = 0;
  for (long status : first) {
    if (status != 200) {
      EXPECT_TRUE(status == 500 || status == 502 || status == 503) << status;
      ++failures;
    }
  }
  EXPECT_GT(failures, 10);
  EXPECT_LT(failures, 55);
  EXPECT_EQ(run(), first);
  SetFaults({{"fail5xxRatio", 1}, {"failStatus", 504}});
  EXPECT_EQ(client_->Call("GET", "/api/lists").status, 504);
}

TEST_F(SandboxTest, FailNextForOneEndpoint) {
  int64_t list = CreateList("L");
  SetFaults({{"failNext", 2}, {"failNextEndpoint", "subscribe"}});
  EXPECT_EQ(client_->Call("GET", "/api/lists").status, 200);
  EXPECT_EQ(Subscribe(list, nlohmann::json::array()).status, 503);
  EXPECT_EQ(Subscribe(list, nlohmann::json::array()).status, 503);
  EXPECT_EQ(Subscribe(list, nlohmann::json::array()).status, 200);
  EXPECT_EQ(sandbox_->faults().fail_next, 0);
}

TEST_F(SandboxTest, DroppedRequestGetsNoResponse) {
  FaultOptions faults = sandbox_->faults();
  faults.drop_ratio = 1;
  sandbox_->SetFaults(faults);
  HttpResult result = client_->Call("GET", "/api/lists");
  EXPECT_EQ(result.code, CURLE_GOT_NOTHING) << curl_easy_strerror(result.code);
  faults.drop_ratio = 0;
  sandbox_->SetFaults(faults);
  EXPECT_EQ(client_->Call("GET", "/api/lists").status, 200);
  EXPECT_GE(sandbox_->StatsJson()["requests"]["GET /api/lists"]["dropped"], 1);
}

TEST_F(SandboxTest, LatencyDoesNotBlockOtherConnections) {
  SetFaults({{"latencyMs", 500}});
  auto start = std::chrono::steady_clock::now();
  HttpResult results[2];
  std::thread other([&] { results[1] = Client(sandbox_->base_url()).Call("GET", "/api/lists"); });
  results[0] = client_->Call("GET", "/api/lists");
  other.join();
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const HttpResult& result : results) {
    EXPECT_EQ(result.status, 200);
    EXPECT_GE(result.seconds, 0.49);
  }
  EXPECT_LT(total, 0.95);  // Served in parallel, not one after the other.
  // Admin calls are never delayed.
  EXPECT_LT(client_->Call("GET", "/_sandbox/stats").seconds, 0.49);
}

TEST_F(SandboxTest, KeepAliveReusesOneConnection) {
  for (int i = 0; i < 5; ++i) {
    HttpResult result = client_->Call("GET", "/api/lists");
    EXPECT_EQ(result.status, 200);
    EXPECT_EQ(result.new_connections, i == 0 ? 1 : 0);
  }
  EXPECT_EQ(sandbox_->StatsJson()["connectionsAccepted"], 1);
}

TEST_F(SandboxTest, PipelinedAndChunkedRequestsOnARawSocket) {
  std::string key = absl::StrCat("Api-Key: ", kKey, "\r\n");
  std::string two =
      absl::StrCat("POST /api/lists HTTP/1.1\r\nHost: x\r\n", key,
                   "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"nam\r\n7\r\ne\":\"A\"}\r\n0\r\n\r\n",
                   "GET /api/lists HTTP/1.1\r\nHost: x\r\n", key, "Connection: close\r\n\r\n");
  std::string received = RawExchange(sandbox_->port(), two, 2);
  EXPECT_NE(received.find("{\"listId\":"), std::string::npos) << received;
  EXPECT_NE(received.find("\"name\":\"A\""), std::string::npos) << received;
  EXPECT_NE(received.find("Connection: close"), std::string::npos) << received;
}

TEST_F(SandboxTest, IntrospectionAndReset) {
  int64_t list = CreateList("Intro");
  Subscribe(list, {{{"email", "z@example.com"}, {"dataFields", {{"n", 1}}}},
                   {{"email", "a@example.com"}, {"dataFields", {{"n", 2}}}}});
  nlohmann::json lists = client_->Call("GET", "/_sandbox/lists").Json();
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0]["memberCount"], 2);
  EXPECT_EQ(lists[0]["name"], "Intro");
  nlohmann::json members = Members(list);
  EXPECT_EQ(members[0]["email"], "a@example.com");
  EXPECT_EQ(members[1]["dataFields"]["n"], 1);
  nlohmann::json user = client_->Call("GET", "/_sandbox/users/Z@example.com").Json();
  EXPECT_EQ(user["listIds"], nlohmann::json({list}));
  nlohmann::json stats = client_->Call("GET", "/_sandbox/stats").Json();
  EXPECT_EQ(stats["requests"]["POST /api/lists/subscribe"]["200"], 1);
  EXPECT_EQ(stats["subscribeRecordsReceived"], 2);
  EXPECT_EQ(client_->Call("GET", "/_sandbox/lists/123/members").status, 404);
  EXPECT_EQ(client_->Post("/_sandbox/faults", {{"noSuchFault", 1}}).status, 400);

  SetFaults({{"latencyMs", 5}});
  EXPECT_EQ(client_->Post("/_sandbox/reset", nlohmann::json::object()).status, 200);
  EXPECT_TRUE(client_->Call("GET", "/_sandbox/lists").Json().empty());
  EXPECT_EQ(sandbox_->faults().latency_ms, 0);
  EXPECT_EQ(sandbox_->StatsJson()["totalRequests"], 0);
}

TEST(SandboxBinaryTest, PrintsListeningLineAndExitsCleanlyOnSigterm) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl(EXPORTD_SANDBOX_BINARY, EXPORTD_SANDBOX_BINARY, "--api-key", kKey, "--listen",
          "127.0.0.1:0", nullptr);
    _exit(127);
  }
  close(out[1]);
  FILE* stream = fdopen(out[0], "r");
  char line[256] = {};
  ASSERT_NE(fgets(line, sizeof(line), stream), nullptr);
  std::string text(line);
  ASSERT_EQ(text.rfind("listening on 127.0.0.1:", 0), 0u) << text;
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(text.substr(23)), &port)) << text;
  Client client(absl::StrCat("http://127.0.0.1:", port));
  EXPECT_EQ(client.Call("GET", "/api/lists").status, 200);
  EXPECT_EQ(client.Call("GET", "/api/lists", "", "wrong").status, 401);
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // Nothing else on stdout.
  EXPECT_EQ(fgets(line, sizeof(line), stream), nullptr);
  fclose(stream);
}

}  // namespace
}  // namespace exportd::sandbox
