#include "tests/sandbox/sandbox.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace exportd::sandbox {
namespace {

constexpr char kRateLimitText[] = "Rate limit exceeded. Please try again later.";

void SetJson(int status, const nlohmann::json& body, HttpResponse* response) {
  response->status = status;
  response->content_type = "application/json";
  response->body = body.dump();
}

void SetEnvelope(int status, absl::string_view msg, absl::string_view code,
                 HttpResponse* response) {
  SetJson(status, Envelope(msg, code), response);
}

// Parses a JSON body; on failure fills the BadJsonBody answer and returns false.
bool ParseJsonBody(const std::string& body, nlohmann::json* parsed, HttpResponse* response) {
  try {
    *parsed = nlohmann::json::parse(body);
    return true;
  } catch (const nlohmann::json::exception& error) {
    SetEnvelope(400, absl::StrCat("Could not parse request body as JSON: ", error.what()),
                "BadJsonBody", response);
    return false;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Sandbox>> Sandbox::Create(Options options) {
  // Validate through the same code path as POST /_sandbox/faults.
  absl::StatusOr<FaultOptions> faults =
      ApplyFaultsJson(FaultOptions(), FaultsToJson(options.faults));
  if (!faults.ok()) return faults.status();
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("max_connections (--threads) must be >= 1");
  }
  std::unique_ptr<Sandbox> sandbox(new Sandbox(std::move(options)));
  HttpServer::Options server_options;
  server_options.host = sandbox->options_.host;
  server_options.port = sandbox->options_.port;
  server_options.max_body_bytes = static_cast<size_t>(sandbox->options_.faults.max_body_bytes);
  server_options.max_connections = sandbox->options_.max_connections;
  Sandbox* raw = sandbox.get();
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Create(server_options, [raw](const HttpRequest& request, HttpResponse* response) {
        raw->Handle(request, response);
      });
  if (!server.ok()) return server.status();
  sandbox->server_ = std::move(*server);
  return sandbox;
}

Sandbox::Sandbox(Options options)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : std::function<absl::Time()>(absl::Now)),
      api_keys_(options_.api_keys.empty() ? std::vector<std::string>{kDefaultApiKey}
                                          : options_.api_keys),
      state_(clock_, options_.first_list_id, options_.project_type, options_.lean),
      faults_(options_.faults, clock_) {}

Sandbox::~Sandbox() { Shutdown(); }

int Sandbox::port() const { return server_->port(); }

std::string Sandbox::base_url() const { return absl::StrCat("http://127.0.0.1:", port()); }

void Sandbox::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  if (!stopping_.HasBeenNotified()) stopping_.Notify();
  if (server_) server_->Shutdown();
}

void Sandbox::SetFaults(FaultOptions faults) {
  server_->SetMaxBodyBytes(static_cast<size_t>(std::max<int64_t>(1, faults.max_body_bytes)));
  faults_.Set(std::move(faults));
}

FaultOptions Sandbox::faults() const { return faults_.Get(); }

void Sandbox::Reset() {
  state_.Reset();
  SetFaults(options_.faults);
  absl::MutexLock lock(&stats_mu_);
  requests_.clear();
  channel_unsubscribe_true_ = channel_unsubscribe_false_ = channel_unsubscribe_missing_ = 0;
  update_existing_users_only_true_ = 0;
  max_subscribers_seen_ = subscribe_records_ = unsubscribe_records_ = 0;
  max_body_bytes_seen_ = 0;
  connections_at_reset_ = server_->connections_accepted();
  request_log_.clear();
}

nlohmann::json Sandbox::StatsJson() const {
  StateCounts counts = state_.Counts();
  int64_t connections = server_->connections_accepted();
  absl::MutexLock lock(&stats_mu_);
  nlohmann::json requests = nlohmann::json::object();
  int64_t total = 0;
  for (const auto& [route, by_outcome] : requests_) {
    nlohmann::json entry = nlohmann::json::object();
    for (const auto& [outcome, count] : by_outcome) {
      entry[outcome] = count;
      total += count;
    }
    requests[route] = std::move(entry);
  }
  return {
      {"requests", std::move(requests)},
      {"totalRequests", total},
      {"connectionsAccepted", connections - connections_at_reset_},
      {"channelUnsubscribeTrue", channel_unsubscribe_true_},
      {"channelUnsubscribeFalse", channel_unsubscribe_false_},
      {"channelUnsubscribeMissing", channel_unsubscribe_missing_},
      {"updateExistingUsersOnlyTrue", update_existing_users_only_true_},
      {"maxSubscribersSeen", max_subscribers_seen_},
      {"subscribeRecordsReceived", subscribe_records_},
      {"unsubscribeRecordsReceived", unsubscribe_records_},
      {"maxBodyBytesSeen", max_body_bytes_seen_},
      {"lists", counts.lists},
      {"users", counts.users},
      {"fields", counts.fields},
  };
}

void Sandbox::Record(const std::string& route, const std::string& outcome, absl::Time arrived) {
  constexpr size_t kMaxRequestLog = 1'000'000;
  absl::MutexLock lock(&stats_mu_);
  ++requests_[route][outcome];
  if (request_log_.size() >= kMaxRequestLog) request_log_.pop_front();
  request_log_.push_back({arrived, route, outcome});
}

std::vector<absl::Time> Sandbox::RequestTimes(absl::string_view route,
                                              absl::string_view outcome) const {
  absl::MutexLock lock(&stats_mu_);
  std::vector<absl::Time> times;
  for (const LoggedRequest& r : request_log_) {
    if (r.route == route && (outcome.empty() || r.outcome == outcome)) times.push_back(r.arrived);
  }
  return times;
}

nlohmann::json Sandbox::RequestsJson() const {
  absl::MutexLock lock(&stats_mu_);
  nlohmann::json out = nlohmann::json::array();
  for (const LoggedRequest& r : request_log_) {
    out.push_back({{"route", r.route},
                   {"outcome", r.outcome},
                   {"atMicros", absl::ToUnixMicros(r.arrived)}});
  }
  return out;
}

int MaxInSlidingWindow(std::vector<absl::Time> times, absl::Duration window) {
  std::sort(times.begin(), times.end());
  int best = 0;
  size_t first = 0;
  for (size_t last = 0; last < times.size(); ++last) {
    while (times[last] - times[first] >= window) ++first;
    best = std::max(best, static_cast<int>(last - first + 1));
  }
  return best;
}

void Sandbox::Handle(const HttpRequest& request, HttpResponse* response) {
  if (request.path == "/_sandbox" || absl::StartsWith(request.path, "/_sandbox/")) {
    HandleAdmin(request, response);
    return;
  }
  const absl::Time arrived = clock_();
  Route route;
  const std::string& method = request.method;
  const std::string& path = request.path;
  if (path == "/api/lists" && method == "GET") {
    route = {"GET /api/lists", "lists"};
  } else if (path == "/api/lists" && method == "POST") {
    route = {"POST /api/lists", "create_list"};
  } else if (path == "/api/lists/subscribe" && method == "POST") {
    route = {"POST /api/lists/subscribe", "subscribe"};
  } else if (path == "/api/lists/unsubscribe" && method == "POST") {
    route = {"POST /api/lists/unsubscribe", "unsubscribe"};
  } else if (method == "DELETE" && absl::StartsWith(path, "/api/lists/")) {
    route = {"DELETE /api/lists/{id}", "delete_list"};
  } else {
    route = {absl::StrCat(method, " ", path), ""};
  }
  HandleApi(request, route, response);
  Record(route.stats_key,
         response->drop_connection ? std::string("dropped") : absl::StrCat(response->status),
         arrived);
}

void Sandbox::HandleApi(const HttpRequest& request, const Route& route, HttpResponse* response) {
  FaultOptions faults = faults_.Get();
  {
    absl::MutexLock lock(&stats_mu_);
    max_body_bytes_seen_ =
        std::max<int64_t>(max_body_bytes_seen_, static_cast<int64_t>(request.declared_body_bytes));
  }
  if (request.body_too_large) {
    SetEnvelope(413,
                absl::StrCat("Request body too large: ", request.declared_body_bytes,
                             " bytes (maximum ", faults.max_body_bytes, ")"),
                "BatchTooLarge", response);
    return;
  }
  if (faults.latency_ms > 0) {
    // Wakes early on Shutdown(); other connections are served meanwhile.
    stopping_.WaitForNotificationWithTimeout(absl::Milliseconds(faults.latency_ms));
  }
  FaultDecision decision = faults_.Decide(route.endpoint);
  if (decision.kind == FaultDecision::Kind::kDrop) {
    response->drop_connection = true;
    return;
  }
  if (decision.kind == FaultDecision::Kind::kFail) {
    if (decision.json_body) {
      SetEnvelope(decision.status, "Injected failure (iterable-sandbox)", "GenericError", response);
    } else {
      std::string title = absl::StrCat(decision.status, " ", ReasonPhrase(decision.status));
      response->status = decision.status;
      response->content_type = "text/html";
      response->body = absl::StrCat("<html><head><title>", title, "</title></head><body><h1>",
                                    title, "</h1></body></html>\n");
    }
    return;
  }
  const std::string* key = request.Header("api-key");
  if (key == nullptr || key->empty()) {
    SetEnvelope(401, "No API key found on request: send it in the Api-Key header",
                "BadAuthorizationHeader", response);
    return;
  }
  if (std::find(api_keys_.begin(), api_keys_.end(), *key) == api_keys_.end()) {
    SetEnvelope(401, "Invalid API key", "BadApiKey", response);
    return;
  }
  absl::Time next_token;
  double limit = 0;
  if (!route.endpoint.empty() && !faults_.TakeRateToken(route.endpoint, &next_token, &limit)) {
    response->status = 429;
    if (faults.rate_limit_body == RateLimitBody::kJson) {
      nlohmann::json body = Envelope(kRateLimitText, "RateLimitExceeded");
      if (faults.rate_limit_reset) {
        body["params"] = {{"rateLimitLimit", limit},
                          {"rateLimitRemaining", 0},
                          {"rateLimitReset", absl::ToUnixMillis(next_token) + 1}};
      }
      SetJson(429, body, response);
    } else {
      response->content_type = "text/plain";
      response->body = kRateLimitText;
    }
    if (faults.retry_after_seconds > 0) {
      response->headers.emplace_back("Retry-After", absl::StrCat(faults.retry_after_seconds));
    }
    return;
  }
  Dispatch(request, route, faults, response);
}

void Sandbox::Dispatch(const HttpRequest& request, const Route& route, const FaultOptions& faults,
                       HttpResponse* response) {
  const std::string& endpoint = route.endpoint;
  if (endpoint.empty()) {
    SetEnvelope(404, absl::StrCat("No route for ", request.method, " ", request.path), "NotFound",
                response);
    return;
  }
  if (endpoint == "lists") {
    SetJson(200, state_.ListsJson(), response);
    return;
  }
  if (endpoint == "delete_list") {
    absl::string_view id_text = request.path;
    absl::ConsumePrefix(&id_text, "/api/lists/");
    int64_t list_id = 0;
    if (!absl::SimpleAtoi(id_text, &list_id)) {
      SetEnvelope(400, absl::StrCat("List id '", id_text, "' is not an integer"), "BadParams",
                  response);
    } else {
      switch (state_.DeleteListIfUnused(list_id)) {
        case State::ApiDelete::kNotFound:
          SetEnvelope(404, absl::StrCat("List ", list_id, " not found"), "NotFound", response);
          break;
        case State::ApiDelete::kInUse:
          // Iterable's code for this answer is not documented; the message is.
          SetEnvelope(409, "List is in use", "GenericError", response);
          break;
        case State::ApiDelete::kDeleted:
          SetEnvelope(200, absl::StrCat("Deleted list ", list_id), "Success", response);
          break;
      }
    }
    return;
  }
  if (endpoint == "create_list") {
    nlohmann::json body;
    if (!ParseJsonBody(request.body, &body, response)) return;
    auto name = body.is_object() ? body.find("name") : body.end();
    if (!body.is_object() || name == body.end() || !name->is_string() ||
        name->get_ref<const std::string&>().empty()) {
      SetEnvelope(400, "name is required and must be a non-empty string", "BadParams", response);
      return;
    }
    std::optional<std::string> description;
    auto found = body.find("description");
    if (found != body.end() && !found->is_null()) {
      if (!found->is_string()) {
        SetEnvelope(400, "description must be a string", "BadParams", response);
        return;
      }
      description = found->get<std::string>();
    }
    int64_t id = state_.CreateList(name->get<std::string>(), std::move(description));
    SetJson(200, {{"listId", id}}, response);
    return;
  }
  if (endpoint != "subscribe" && endpoint != "unsubscribe") return;  // Not reached.
  ApiReply reply = SubscribeOrUnsubscribe(request, route, faults);
  SetJson(reply.status, reply.body, response);
}

ApiReply Sandbox::SubscribeOrUnsubscribe(const HttpRequest& request, const Route& route,
                                         const FaultOptions& faults) {
  absl::StatusOr<ListRequest> parsed = ParseListRequest(request.body);
  if (!parsed.ok()) return ApiReply{400, Envelope(parsed.status().message(), "BadJsonBody")};
  // Note what the client sent before judging it.
  bool subscribe = route.endpoint == "subscribe";
  {
    absl::MutexLock lock(&stats_mu_);
    int64_t count = static_cast<int64_t>(parsed->subscribers.size());
    max_subscribers_seen_ = std::max(max_subscribers_seen_, count);
    (subscribe ? subscribe_records_ : unsubscribe_records_) += count;
    if (subscribe) {
      if (parsed->update_existing_users_only) ++update_existing_users_only_true_;
    } else if (!parsed->channel_unsubscribe) {
      ++channel_unsubscribe_missing_;
    } else if (*parsed->channel_unsubscribe) {
      ++channel_unsubscribe_true_;
    } else {
      ++channel_unsubscribe_false_;
    }
  }
  absl::Duration window = absl::Milliseconds(faults.invalid_list_window_ms);
  return subscribe ? state_.Subscribe(*parsed, faults.max_batch, window)
                   : state_.Unsubscribe(*parsed, faults.max_batch, window);
}

void Sandbox::HandleAdmin(const HttpRequest& request, HttpResponse* response) {
  const std::string& method = request.method;
  absl::string_view path = request.path;
  absl::ConsumePrefix(&path, "/_sandbox");
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  auto not_found = [&] {
    SetJson(404, {{"error", absl::StrCat("unknown admin route ", method, " ", request.path)}},
            response);
  };
  if (method == "GET" && parts.size() == 1 && parts[0] == "health") {
    SetJson(200, {{"ok", true}}, response);
  } else if (method == "GET" && parts.size() == 1 && parts[0] == "lists") {
    SetJson(200, state_.AdminListsJson(), response);
  } else if (method == "GET" && parts.size() == 3 && parts[0] == "lists" && parts[2] == "members") {
    int64_t list_id = 0;
    std::optional<nlohmann::json> members;
    if (absl::SimpleAtoi(parts[1], &list_id)) members = state_.AdminMembersJson(list_id);
    if (!members && state_.lean()) {
      SetJson(409, {{"error", "the sandbox runs with --lean true and keeps no member records"}},
              response);
    } else if (!members) {
      SetJson(404, {{"error", absl::StrCat("no list ", parts[1])}}, response);
    } else {
      SetJson(200, *members, response);
    }
  } else if (method == "DELETE" && parts.size() == 2 && parts[0] == "lists") {
    // A customer deleting the list in Iterable's UI.
    int64_t list_id = 0;
    if (!absl::SimpleAtoi(parts[1], &list_id) || !state_.DeleteList(list_id)) {
      SetJson(404, {{"error", absl::StrCat("no list ", parts[1])}}, response);
    } else {
      SetJson(200, {{"ok", true}}, response);
    }
  } else if (method == "POST" && parts.size() == 3 && parts[0] == "lists" && parts[2] == "in-use") {
    // {"inUse": true}: a campaign or journey references the list (false: no longer).
    nlohmann::json body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    int64_t list_id = 0;
    if (!body.is_object() || !body.contains("inUse") || !body["inUse"].is_boolean()) {
      SetJson(400, {{"error", "POST /_sandbox/lists/{id}/in-use takes {\"inUse\": true|false}"}},
              response);
    } else if (!absl::SimpleAtoi(parts[1], &list_id) ||
               !state_.SetListInUse(list_id, body["inUse"].get<bool>())) {
      SetJson(404, {{"error", absl::StrCat("no list ", parts[1])}}, response);
    } else {
      SetJson(200, {{"ok", true}}, response);
    }
  } else if (method == "GET" && parts.size() == 2 && parts[0] == "users") {
    std::optional<nlohmann::json> user = state_.AdminUserJson(parts[1]);
    if (!user && state_.lean()) {
      SetJson(409, {{"error", "the sandbox runs with --lean true and keeps no user records"}},
              response);
    } else if (!user) {
      SetJson(404, {{"error", absl::StrCat("no user with email ", parts[1])}}, response);
    } else {
      SetJson(200, *user, response);
    }
  } else if (method == "GET" && parts.size() == 1 && parts[0] == "fields") {
    SetJson(200, state_.FieldTypesJson(), response);
  } else if (method == "GET" && parts.size() == 1 && parts[0] == "stats") {
    SetJson(200, StatsJson(), response);
  } else if (method == "GET" && parts.size() == 1 && parts[0] == "requests") {
    SetJson(200, RequestsJson(), response);
  } else if (method == "GET" && parts.size() == 1 && parts[0] == "faults") {
    SetJson(200, FaultsToJson(faults()), response);
  } else if (method == "POST" && parts.size() == 1 && parts[0] == "faults") {
    nlohmann::json patch;
    try {
      patch = nlohmann::json::parse(request.body);
    } catch (const nlohmann::json::exception& error) {
      SetJson(400, {{"error", absl::StrCat("body is not JSON: ", error.what())}}, response);
      return;
    }
    absl::StatusOr<FaultOptions> updated = ApplyFaultsJson(faults(), patch);
    if (!updated.ok()) {
      SetJson(400, {{"error", std::string(updated.status().message())}}, response);
      return;
    }
    SetFaults(*updated);
    SetJson(200, FaultsToJson(*updated), response);
  } else if (method == "POST" && parts.size() == 1 && parts[0] == "forget") {
    // {"email": "..."} or {"userId": "..."}: a privacy deletion in Iterable.
    nlohmann::json body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || (!body.contains("email") && !body.contains("userId")) ||
        (body.contains("email") && !body["email"].is_string()) ||
        (body.contains("userId") && !body["userId"].is_string())) {
      SetJson(400, {{"error", "POST /_sandbox/forget takes {\"email\": \"...\"} or {\"userId\": \"...\"}"}},
              response);
      return;
    }
    state_.Forget(body.value("email", ""), body.value("userId", ""));
    SetJson(200, {{"ok", true}}, response);
  } else if (method == "POST" && parts.size() == 1 && parts[0] == "reset") {
    Reset();
    SetJson(200, {{"ok", true}}, response);
  } else {
    not_found();
  }
}

}  // namespace exportd::sandbox
