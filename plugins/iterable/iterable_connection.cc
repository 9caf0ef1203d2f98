#include "iterable_connection.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "response_parser.h"
#include "retry_policy.h"
#include "status_macros.h"

namespace exportd::iterable {
namespace {

using sdk::LogLevel;
using sdk::RecordOutcome;

double Uniform01() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
}

const char* PathFor(ListOperation operation) {
  return operation == ListOperation::kSubscribe ? "/api/lists/subscribe" : "/api/lists/unsubscribe";
}

const char* VerbFor(ListOperation operation) {
  return operation == ListOperation::kSubscribe ? "subscribe" : "unsubscribe";
}

bool Is2xx(int status) { return status >= 200 && status <= 299; }

std::string DurationText(absl::Duration d) {
  return absl::FormatDuration(absl::Floor(d, absl::Milliseconds(1)));
}

// The Debian Abseil's string_view is its own type, not std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The plugin counts a request's tries, never "attempts": those are the
// engine's run attempts, which the run's message names next to this one.
std::string GaveUpAfterTries(int tries, absl::string_view what, absl::string_view detail) {
  return absl::StrCat("Iterable request failed after ", tries, tries == 1 ? " try: " : " tries: ",
                      what, ": ", detail);
}

// "; retrying in 1.5s (try 2 of 6)", for the log line of a retried request.
std::string RetryingIn(absl::Duration delay, bool retry_after, int next_try, int max_tries) {
  return absl::StrCat("; retrying in ", DurationText(delay), retry_after ? " (Retry-After)" : "",
                      " (try ", next_try, " of ", max_tries, ")");
}

absl::Status CancelledWhile(absl::string_view what) {
  return absl::CancelledError(absl::StrCat("cancelled while ", what));
}

// The RESOURCE_EXHAUSTED of a 429 that was reported with ReportThrottle(wait):
// "Iterable rate-limited GET /api/lists (HTTP 429 ...); it asked for a pause
// of 2m30s, until 14:05:03 UTC". The engine waits and calls again.
absl::Status RateLimited(absl::string_view what, absl::string_view described, absl::Duration wait,
                         absl::Time now) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "Iterable rate-limited ", what, " (", described, ")",
      wait > absl::ZeroDuration()
          ? absl::StrCat("; it asked for a pause of ", DurationText(wait), ", until ",
                         absl::FormatTime("%H:%M:%S UTC", now + wait, absl::UTCTimeZone()))
          : std::string("; it did not say for how long")));
}

// An invalidData* failure is about a data field, not the identity: Iterable
// does not say which, so the rejection names the one field sent with a value
// when there is one, else every candidate.
RecordOutcome InvalidDataOutcome(const sdk::RecordBatch& batch, size_t row,
                                 const std::string& explained) {
  const std::vector<std::string> fields = SentDataFields(batch, row);
  if (fields.size() == 1) {
    const sdk::Value& value = batch.at(row, batch.FieldIndex(fields[0]));
    return RecordOutcome::Rejected(
        "invalid_data", fields[0],
        absl::StrCat("Iterable refused data field '", fields[0], "' (", FieldTypeName(value.type),
                     " here): it holds another type in Iterable; ", explained));
  }
  return RecordOutcome::Rejected(
      "invalid_data", "dataFields",
      absl::StrCat("Iterable refused one of the data fields ",
                   fields.empty() ? std::string("(none sent)") : absl::StrJoin(fields, ", "),
                   " (a value of another type than the field holds in Iterable); ", explained));
}

}  // namespace

absl::StatusOr<std::unique_ptr<IterableConnection>> IterableConnection::Create(
    ConnectionOptions options) {
  HttpClient::Options http;
  http.base_url = options.base_url;
  http.api_key = options.api_key;
  http.connect_timeout = options.connect_timeout;
  http.total_timeout = options.timeout;
  http.user_agent = absl::StrCat("exportd-iterable/", kPluginVersion);
  ITERABLE_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> client, HttpClient::Create(http));
  return std::unique_ptr<IterableConnection>(
      new IterableConnection(std::move(options), std::move(client)));
}

IterableConnection::IterableConnection(ConnectionOptions options,
                                       std::unique_ptr<HttpClient> client)
    : options_(std::move(options)), client_(std::move(client)) {}

// ---------------------------------------------------------------------------
// Plumbing: redaction, logging, single requests.
// ---------------------------------------------------------------------------

std::string IterableConnection::Redact(std::string text) const {
  const std::string& key = options_.api_key;
  if (key.size() < 4) return text;
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
    text.replace(at, key.size(), "[redacted]");
  }
  return text;
}

absl::Status IterableConnection::Redact(const absl::Status& status) const {
  if (status.ok()) return status;
  return absl::Status(status.code(), Redact(std::string(status.message())));
}

void IterableConnection::Log(sdk::RunContext& ctx, LogLevel level, std::string message) const {
  ctx.Log(level, Redact(std::move(message)));
}

std::optional<absl::Duration> IterableConnection::ThrottleWait(const HttpResponse& response,
                                                               absl::Time now) {
  std::optional<absl::Duration> wait;
  if (response.retry_after) wait = ParseRetryAfter(*response.retry_after, now);
  if (std::optional<std::int64_t> reset = RateLimitResetMillis(response.body)) {
    const absl::Duration until_reset =
        std::max(absl::ZeroDuration(), absl::FromUnixMillis(*reset) - now);
    wait = std::max(wait.value_or(absl::ZeroDuration()), until_reset);
  }
  return wait;
}

absl::Status IterableConnection::StatusForAnswer(int http_status, std::string_view body,
                                                 absl::string_view what) {
  const Envelope envelope = ParseEnvelope(body);
  const std::string described = DescribeErrorAnswer(http_status, body);
  switch (http_status) {
    case 401:
      return absl::UnauthenticatedError(
          absl::StrCat("Iterable rejected the API key (",
                       envelope.code.empty() ? std::string("HTTP 401") : envelope.code,
                       "): check the key, and that it belongs to a project in this region (",
                       client_->host(), ")"));
    case 403:
      return absl::PermissionDeniedError(
          absl::StrCat("Iterable refused ", what, " for this API key (", described,
                       "): use a server-side key allowed to manage lists"));
    case 400:
    case 409:
    case 413:
    case 422:
      return absl::InvalidArgumentError(absl::StrCat("Iterable refused ", what, ": ", described));
    case 404:
      return absl::NotFoundError(
          absl::StrCat("Iterable answered ", what, " with ", described, "; is base_url right?"));
    case 408:
      return absl::DeadlineExceededError(absl::StrCat(what, " timed out: ", described));
    case 429:
      return absl::ResourceExhaustedError(
          absl::StrCat("Iterable rate-limited ", what, " and retries ran out: ", described));
    default:
      break;
  }
  if (http_status >= 500) {
    return absl::UnavailableError(absl::StrCat("Iterable failed ", what, ": ", described));
  }
  return absl::UnknownError(absl::StrCat("unexpected answer to ", what, ": ", described));
}

absl::StatusOr<HttpResponse> IterableConnection::Send(std::string_view method,
                                                      std::string_view path, std::string_view body,
                                                      sdk::RunContext& ctx,
                                                      std::string_view endpoint) {
  // Latency on the steady clock: what the request took, whatever ctx.Now() says.
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<HttpResponse> response = client_->Send(method, path, body);
  const absl::Duration took = absl::FromChrono(std::chrono::steady_clock::now() - start);
  ctx.RequestDone(endpoint.empty() ? path.substr(0, path.find('?')) : endpoint,
                  response.ok() ? response->status : 0, took);
  return response;
}

absl::StatusOr<HttpResponse> IterableConnection::Call(std::string_view method,
                                                      std::string_view path, std::string_view body,
                                                      absl::string_view what, bool retry_transport,
                                                      sdk::RunContext& ctx) {
  RetryState retry(options_.retry, ctx.Now());
  while (true) {
    if (ctx.cancelled()) return CancelledWhile(what);
    absl::StatusOr<HttpResponse> response = Send(method, path, body, ctx);
    std::optional<absl::Duration> retry_after;
    absl::Status failure;
    // What went wrong, without `what`: the transport's error or the answer.
    std::string detail;
    if (!response.ok()) {
      if (absl::IsCancelled(response.status()) || !retry_transport) return response.status();
      failure = response.status();
      detail = std::string(failure.message());
    } else if (Is2xx(response->status)) {
      return response;
    } else if (response->status == 429) {
      // Not retried here: the engine owns the connection's rate. It waits on
      // the connection's budget (however far the reset is) and calls again.
      const absl::Time now = ctx.Now();
      const absl::Duration wait = ThrottleWait(*response, now).value_or(absl::ZeroDuration());
      ctx.ReportThrottle(wait);
      return RateLimited(what, DescribeErrorAnswer(response->status, response->body), wait, now);
    } else {
      failure = StatusForAnswer(response->status, response->body, what);
      if (!IsRetryableHttpStatus(response->status)) return failure;
      detail = DescribeErrorAnswer(response->status, response->body);
      if (response->retry_after) retry_after = ParseRetryAfter(*response->retry_after, ctx.Now());
    }
    const std::optional<absl::Duration> delay =
        retry.NextDelay(ctx.Now(), retry_after, Uniform01());
    if (!delay) {
      return absl::Status(failure.code(), GaveUpAfterTries(retry.attempts(), what, detail));
    }
    Log(ctx, LogLevel::kWarning,
        absl::StrCat(what, ": ", detail,
                     RetryingIn(*delay, retry_after.has_value(), retry.attempts() + 1,
                                options_.retry.max_attempts)));
    if (!ctx.SleepFor(*delay)) return CancelledWhile(what);
  }
}

// ---------------------------------------------------------------------------
// Check and EnsureAudience.
// ---------------------------------------------------------------------------

sdk::SyncSpeed IterableConnection::speed() const {
  sdk::SyncSpeed speed;
  speed.max_records_per_batch = options_.batch_size;
  speed.max_bytes_per_batch = options_.max_body_bytes;
  speed.max_parallel_batches = options_.parallel_requests;
  speed.requests_per_second = options_.requests_per_second;
  return speed;
}

absl::Status IterableConnection::Check(sdk::RunContext& ctx) {
  absl::StatusOr<HttpResponse> response =
      Call("GET", "/api/lists", "", "GET /api/lists", /*retry_transport=*/false, ctx);
  if (absl::IsResourceExhausted(response.status())) {
    // A connection test does not wait for a rate limit, however near.
    return Redact(absl::ResourceExhaustedError(absl::StrCat(
        response.status().message(), "; the connection was not checked: test it again later")));
  }
  if (!response.ok()) return Redact(response.status());
  absl::StatusOr<std::vector<ListInfo>> lists = ParseLists(response->body);
  if (!lists.ok()) {
    return Redact(absl::UnavailableError(
        absl::StrCat(client_->host(), " answered GET /api/lists, but not like Iterable: ",
                     lists.status().message(), "; is base_url right?")));
  }
  return absl::OkStatus();
}

absl::StatusOr<sdk::Audience> IterableConnection::EnsureAudience(std::string_view segment_name,
                                                                 std::string_view remembered_id,
                                                                 sdk::RunContext& ctx) {
  const absl::string_view name = AV(segment_name);
  if (segment_name.empty()) {
    return absl::InvalidArgumentError("an Iterable list needs a name: the segment name is empty");
  }
  std::int64_t remembered = 0;
  const bool has_remembered =
      !remembered_id.empty() && absl::SimpleAtoi(AV(remembered_id), &remembered);

  // Find, else create. A create whose answer was lost is followed by another
  // look-up, so a retry never makes a second list.
  constexpr int kRounds = 3;
  absl::Status last_create_error;
  for (int round = 0; round < kRounds; ++round) {
    absl::StatusOr<HttpResponse> response =
        Call("GET", "/api/lists", "", "GET /api/lists", /*retry_transport=*/true, ctx);
    if (!response.ok()) return Redact(response.status());
    absl::StatusOr<std::vector<ListInfo>> lists = ParseLists(response->body);
    if (!lists.ok()) return Redact(absl::UnavailableError(lists.status().message()));

    // Only standard lists take subscribers; a dynamic, suppression or
    // internal list of the same name is left alone.
    std::vector<ListInfo> matches;
    int skipped = 0;
    for (ListInfo& list : *lists) {
      if (list.name != segment_name) continue;
      if (list.list_type.empty() || list.list_type == "Standard") {
        matches.push_back(std::move(list));
      } else {
        ++skipped;
      }
    }
    sdk::Audience audience;
    audience.name = std::string(segment_name);
    if (skipped > 0) {
      audience.note = absl::StrCat(skipped, " Iterable list(s) named '", name,
                                   "' are not standard lists (dynamic, suppression or internal) "
                                   "and were ignored");
    }
    if (!matches.empty()) {
      auto remembered_it = std::find_if(matches.begin(), matches.end(), [&](const ListInfo& l) {
        return has_remembered && l.id == remembered;
      });
      if (remembered_it != matches.end()) {
        audience.id = std::to_string(remembered_it->id);
        if (matches.size() > 1) {
          absl::StrAppend(&audience.note, audience.note.empty() ? "" : "; ", matches.size(),
                          " Iterable lists are named '", name, "'; using ", audience.id,
                          ", the one this export used before");
        }
        return audience;
      }
      std::sort(matches.begin(), matches.end(), [](const ListInfo& a, const ListInfo& b) {
        return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
      });
      audience.id = std::to_string(matches.front().id);
      if (matches.size() > 1) {
        absl::StrAppend(&audience.note, audience.note.empty() ? "" : "; ", matches.size(),
                        " Iterable lists are named '", name, "'; using ", audience.id, " (oldest)");
      }
      if (!remembered_id.empty()) {
        absl::StrAppend(&audience.note, audience.note.empty() ? "" : "; ", "list ",
                        AV(remembered_id), " used before is gone or renamed; using ", audience.id);
      }
      return audience;
    }

    std::string body = "{\"name\":";
    AppendJsonString(segment_name, &body);
    body.push_back('}');
    absl::StatusOr<HttpResponse> created = Call("POST", "/api/lists", body, "POST /api/lists",
                                                /*retry_transport=*/false, ctx);
    if (!created.ok()) {
      if (absl::IsUnavailable(created.status()) || absl::IsDeadlineExceeded(created.status())) {
        // The list may exist now: look again before creating.
        last_create_error = created.status();
        Log(ctx, LogLevel::kWarning,
            absl::StrCat("creating Iterable list '", name, "' failed (", created.status().message(),
                         "); checking whether it exists"));
        continue;
      }
      return Redact(created.status());
    }
    absl::StatusOr<std::int64_t> id = ParseCreatedListId(created->body);
    if (!id.ok()) return Redact(id.status());
    {
      absl::MutexLock lock(&lists_mu_);
      created_lists_[*id] = ctx.Now();
    }
    audience.id = std::to_string(*id);
    audience.created = true;
    if (!remembered_id.empty()) {
      absl::StrAppend(&audience.note, audience.note.empty() ? "" : "; ", "list ", AV(remembered_id),
                      " used before is gone; created ", audience.id);
    }
    Log(ctx, LogLevel::kInfo,
        absl::StrCat("created Iterable list '", name, "' (", audience.id, ")"));
    return audience;
  }
  return Redact(absl::UnavailableError(
      absl::StrCat("cannot create Iterable list '", name, "': ", last_create_error.message())));
}

// ---------------------------------------------------------------------------
// Upsert and Remove.
// ---------------------------------------------------------------------------

absl::StatusOr<std::vector<RecordOutcome>> IterableConnection::Upsert(const sdk::Audience& audience,
                                                                      const sdk::RecordBatch& batch,
                                                                      sdk::RunContext& ctx) {
  return WriteList(ListOperation::kSubscribe, audience, batch, ctx);
}

absl::StatusOr<std::vector<RecordOutcome>> IterableConnection::Remove(const sdk::Audience& audience,
                                                                      const sdk::RecordBatch& batch,
                                                                      sdk::RunContext& ctx) {
  return WriteList(ListOperation::kUnsubscribe, audience, batch, ctx);
}

absl::Status IterableConnection::DeleteAudience(const sdk::Audience& audience,
                                                sdk::RunContext& ctx) {
  std::int64_t list_id = 0;
  if (!absl::SimpleAtoi(audience.id, &list_id) || list_id <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", audience.id, "' is not an Iterable list id (audience '", audience.name, "')"));
  }
  const std::string path = absl::StrCat("/api/lists/", list_id);
  const std::string what =
      absl::StrCat("deleting Iterable list ", list_id, " ('", audience.name, "')");
  RetryState retry(options_.retry, ctx.Now());
  while (true) {
    if (ctx.cancelled()) return CancelledWhile(what);
    absl::StatusOr<HttpResponse> response = Send("DELETE", path, "", ctx, "/api/lists/{id}");
    std::optional<absl::Duration> retry_after;
    absl::Status failure;
    if (!response.ok()) {
      if (absl::IsCancelled(response.status())) return response.status();
      failure = absl::UnavailableError(absl::StrCat(what, ": ", response.status().message()));
    } else if (Is2xx(response->status)) {
      Log(ctx, LogLevel::kInfo,
          absl::StrCat("deleted Iterable list '", AV(audience.name), "' (", list_id, ")"));
      return absl::OkStatus();
    } else {
      const int status = response->status;
      const Envelope envelope = ParseEnvelope(response->body);
      const std::string described = DescribeErrorAnswer(status, response->body);
      // Gone already: deleted in Iterable, or never there. A 404 counts only
      // with Iterable's JSON envelope (an HTML 404 means a wrong base_url).
      if ((status == 404 && envelope.is_json) || (status == 400 && InvalidListIdIn(envelope.msg))) {
        Log(ctx, LogLevel::kInfo,
            absl::StrCat("Iterable list '", AV(audience.name), "' (", list_id,
                         ") is gone already (", described, ")"));
        return absl::OkStatus();
      }
      if (status == 409) {
        return Redact(absl::FailedPreconditionError(absl::StrCat(
            "Iterable keeps list '", AV(audience.name), "' (", list_id, "): ", described,
            "; a campaign or journey uses it: remove it from them, then delete the list in "
            "Iterable")));
      }
      failure = StatusForAnswer(status, response->body, what);
      if (!IsRetryableHttpStatus(status)) return Redact(failure);
      if (status == 429) {
        retry_after = ThrottleWait(*response, ctx.Now());
      } else if (response->retry_after) {
        retry_after = ParseRetryAfter(*response->retry_after, ctx.Now());
      }
    }
    const std::optional<absl::Duration> delay =
        retry.NextDelay(ctx.Now(), retry_after, Uniform01());
    if (!delay) {
      return Redact(
          absl::Status(failure.code(), absl::StrCat(failure.message(), " (gave up after ",
                                                    retry.attempts(), " request attempts)")));
    }
    Log(ctx, LogLevel::kWarning,
        absl::StrCat(what, ": ", failure.message(), "; retrying in ", DurationText(*delay),
                     " (request attempt ", retry.attempts() + 1, " of ",
                     options_.retry.max_attempts, ")"));
    if (!ctx.SleepFor(*delay)) return CancelledWhile(what);
  }
}

absl::Time IterableConnection::InvalidListDeadline(std::int64_t list_id) const {
  absl::MutexLock lock(&lists_mu_);
  auto it = created_lists_.find(list_id);
  if (it == created_lists_.end()) return absl::InfinitePast();
  return it->second + options_.invalid_list_window;
}

absl::StatusOr<std::vector<RecordOutcome>> IterableConnection::WriteList(
    ListOperation operation, const sdk::Audience& audience, const sdk::RecordBatch& batch,
    sdk::RunContext& ctx) {
  std::int64_t list_id = 0;
  if (!absl::SimpleAtoi(audience.id, &list_id) || list_id <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", audience.id, "' is not an Iterable list id (audience '", audience.name, "')"));
  }
  ListRequestOptions build;
  build.operation = operation;
  build.list_id = list_id;
  build.max_subscribers = options_.batch_size;
  build.max_body_bytes = options_.max_body_bytes;
  build.update_existing_users_only = options_.update_existing_users_only;
  std::vector<std::string> fields;
  fields.reserve(batch.fields.size());
  for (const sdk::BatchField& field : batch.fields) fields.push_back(field.name);
  ITERABLE_ASSIGN_OR_RETURN(build.key_field, IdentifierFieldFor(options_.project_type, fields));
  ITERABLE_ASSIGN_OR_RETURN(ListRequests requests, BuildListRequests(batch, build));
  if (ctx.cancelled())
    return CancelledWhile(absl::StrCat(VerbFor(operation), " to list ", list_id));

  // One request per call, unless the batch had to be split (max_body_bytes):
  // the engine decides batch sizes, parallelism and rate.
  for (const ListRequest& request : requests.requests) {
    absl::StatusOr<WriteResult> result =
        SendListRequest(operation, list_id, audience.created, request.body, ctx);
    if (!result.ok()) return Redact(result.status());
    if (result->kind == WriteResult::Kind::kThrottled) {
      // The engine slows the whole connection down and sends the batch again.
      ctx.ReportThrottle(result->retry_after);
      return Redact(RateLimited(absl::StrCat(VerbFor(operation), " to list ", list_id),
                                result->message, result->retry_after, ctx.Now()));
    }
    ApplyResult(operation, batch, request, *result, &requests.outcomes, ctx);
  }
  return std::move(requests.outcomes);
}

absl::StatusOr<IterableConnection::WriteResult> IterableConnection::SendListRequest(
    ListOperation operation, std::int64_t list_id, bool audience_created, const std::string& body,
    sdk::RunContext& ctx) {
  const std::string what = absl::StrCat(VerbFor(operation), " to Iterable list ", list_id);
  RetryState retry(options_.retry, ctx.Now());
  absl::Time invalid_list_deadline = absl::InfinitePast();
  bool invalid_list_seen = false;
  int invalid_list_retries = 0;
  WriteResult result;
  while (true) {
    if (ctx.cancelled()) return CancelledWhile(what);
    absl::StatusOr<HttpResponse> response = Send("POST", PathFor(operation), body, ctx);
    std::optional<absl::Duration> retry_after;
    std::string reason;
    std::string error;
    if (!response.ok()) {
      if (absl::IsCancelled(response.status())) return response.status();
      reason = absl::IsDeadlineExceeded(response.status()) ? "timeout" : "network_error";
      error = std::string(response.status().message());
    } else if (Is2xx(response->status)) {
      result.kind = WriteResult::Kind::kAccepted;
      result.body = std::move(response->body);
      return result;
    } else {
      const int status = response->status;
      if (status == 401 || status == 403) {
        return StatusForAnswer(status, response->body, what);
      }
      const Envelope envelope = ParseEnvelope(response->body);
      const std::string described = DescribeErrorAnswer(status, response->body);
      if (status == 429) {
        // Not retried here: the engine owns the connection's rate.
        result.kind = WriteResult::Kind::kThrottled;
        result.message = described;
        result.retry_after = ThrottleWait(*response, ctx.Now()).value_or(absl::ZeroDuration());
        return result;
      }
      if (status == 400 && InvalidListIdIn(envelope.msg)) {
        // A list created moments ago can be unknown to subscribe/unsubscribe
        // for a short while. Retry within a window, only for such lists.
        const absl::Time now = ctx.Now();
        if (!invalid_list_seen) {
          invalid_list_seen = true;
          invalid_list_deadline = InvalidListDeadline(list_id);
          if (audience_created) {
            invalid_list_deadline =
                std::max(invalid_list_deadline, now + options_.invalid_list_window);
          }
        }
        if (now < invalid_list_deadline) {
          absl::Duration wait =
              std::min(absl::Seconds(2), options_.invalid_list_initial_backoff *
                                             (1 << std::min(invalid_list_retries, 10)));
          wait = std::min(wait, invalid_list_deadline - now);
          ++invalid_list_retries;
          if (invalid_list_retries == 1) {
            Log(ctx, LogLevel::kInfo,
                absl::StrCat(what, ": Iterable does not know the new list yet (", envelope.msg,
                             "); retrying for up to ", DurationText(invalid_list_deadline - now)));
          }
          if (!ctx.SleepFor(wait)) return CancelledWhile(what);
          continue;
        }
        // Outside the window after creation: the list is gone (deleted in
        // Iterable). NOT_FOUND tells the engine the audience no longer exists.
        return absl::NotFoundError(
            absl::StrCat("Iterable list ", list_id, " no longer exists (", described,
                         invalid_list_retries > 0
                             ? absl::StrCat(", still after ", invalid_list_retries, " retries")
                             : std::string(),
                         "); someone may have deleted it in Iterable"));
      }
      if (!IsRetryableHttpStatus(status)) {
        result.kind = WriteResult::Kind::kRejected;
        result.reason_code = envelope.code.empty() || envelope.code == "Success"
                                 ? absl::StrCat("http_", status)
                                 : envelope.code;
        result.message =
            absl::StrCat("Iterable refused the ", VerbFor(operation), " request: ", described);
        return result;
      }
      reason = absl::StrCat("http_", status);
      error = described;
      if (response->retry_after) retry_after = ParseRetryAfter(*response->retry_after, ctx.Now());
    }

    const std::optional<absl::Duration> delay =
        retry.NextDelay(ctx.Now(), retry_after, Uniform01());
    if (!delay) {
      result.kind = WriteResult::Kind::kRetryable;
      result.reason_code = reason;
      result.message = GaveUpAfterTries(retry.attempts(), what, error);
      Log(ctx, LogLevel::kWarning, result.message);
      return result;
    }
    Log(ctx, LogLevel::kWarning,
        absl::StrCat(what, ": ", error,
                     RetryingIn(*delay, retry_after.has_value(), retry.attempts() + 1,
                                options_.retry.max_attempts)));
    if (!ctx.SleepFor(*delay)) return CancelledWhile(what);
  }
}

// Iterable refused the whole request because a data field's value has
// another type than the field has in the project. Where its answer names the
// field is not documented (shared/iterable-api.md), so nothing is parsed out
// of it: the rejection quotes Iterable and lists the data fields the request
// carried, and names the field only when the request carried just one.
void IterableConnection::TypesMismatched(const sdk::RecordBatch& batch, const ListRequest& request,
                                         const WriteResult& result,
                                         std::vector<RecordOutcome>* outcomes) const {
  std::set<std::string> sent;
  for (size_t row : request.rows) {
    for (std::string& field : SentDataFields(batch, row)) sent.insert(std::move(field));
  }
  const std::string field = sent.size() == 1 ? *sent.begin() : std::string("dataFields");
  std::string message =
      absl::StrCat(result.message,
                   " [a data field's value has another type than the field has in the "
                   "Iterable project, which fixed it by the first value it saw; ");
  if (sent.size() == 1) {
    absl::StrAppend(&message, "the request's only data field was '", field, "']");
  } else {
    absl::StrAppend(&message,
                    "Iterable's answer is not documented to name the field, so "
                    "check the request's data fields: ",
                    sent.empty() ? std::string("(none)") : absl::StrJoin(sent, ", "), "]");
  }
  message = Redact(std::move(message));
  for (size_t row : request.rows) {
    (*outcomes)[row] = RecordOutcome::Rejected(kTypesMismatchedCode, field, message);
  }
}

void IterableConnection::LogFieldChanges(const ListUpdateResult& parsed, sdk::RunContext& ctx) {
  if (parsed.created_fields.empty() && parsed.filtered_out_fields.empty()) return;
  std::vector<std::string> created, filtered;
  {
    absl::MutexLock lock(&fields_mu_);
    for (const std::string& field : parsed.created_fields) {
      if (created_fields_logged_.insert(field).second) created.push_back(field);
    }
    for (const std::string& field : parsed.filtered_out_fields) {
      if (filtered_fields_logged_.insert(field).second) filtered.push_back(field);
    }
  }
  if (!created.empty()) {
    Log(ctx, LogLevel::kInfo,
        absl::StrCat("Iterable created data fields: ", absl::StrJoin(created, ", ")));
  }
  if (!filtered.empty()) {
    Log(ctx, LogLevel::kWarning,
        absl::StrCat("Iterable filtered out fields: ", absl::StrJoin(filtered, ", "),
                     " (not in the project's schema?); their values were not stored"));
  }
}

void IterableConnection::ApplyResult(ListOperation operation, const sdk::RecordBatch& batch,
                                     const ListRequest& request,
                                     const WriteResult& result,
                                     std::vector<RecordOutcome>* outcomes, sdk::RunContext& ctx) {
  if (result.kind == WriteResult::Kind::kRejected && result.reason_code == kTypesMismatchedCode) {
    TypesMismatched(batch, request, result, outcomes);
    return;
  }
  if (result.kind != WriteResult::Kind::kAccepted) {
    const std::string message = Redact(result.message);
    for (size_t row : request.rows) {
      (*outcomes)[row] = result.kind == WriteResult::Kind::kRejected
                             ? RecordOutcome::Rejected(result.reason_code, "", message)
                             : RecordOutcome::Retryable(result.reason_code, message);
    }
    return;
  }
  const ListUpdateResult parsed = ParseListUpdateResponse(result.body);
  LogFieldChanges(parsed, ctx);
  if (parsed.failures.empty()) {
    if (parsed.fail_count.value_or(0) > 0) {
      Log(ctx, LogLevel::kWarning,
          absl::StrCat("Iterable reported ", *parsed.fail_count, " failed ", VerbFor(operation),
                       " updates without naming them; counting the records as delivered"));
    }
    return;  // Every record keeps its kDelivered placeholder.
  }
  // Iterable names failures by the email or the userId sent.
  std::unordered_map<std::string_view, std::vector<size_t>> by_email, by_user_id;
  by_email.reserve(request.rows.size());
  for (size_t i = 0; i < request.rows.size(); ++i) {
    if (!request.email(i).empty()) by_email[request.email(i)].push_back(request.rows[i]);
    if (!request.user_id(i).empty()) by_user_id[request.user_id(i)].push_back(request.rows[i]);
  }
  for (const IdentityFailure& failure : parsed.failures) {
    const auto& index = failure.user_id ? by_user_id : by_email;
    auto it = index.find(failure.identity);
    if (it == index.end()) continue;  // Not one we sent; nothing to attribute.
    // Unsubscribing someone Iterable does not know leaves them off the list:
    // that is what Remove wants.
    if (operation == ListOperation::kUnsubscribe && failure.reason_code == "not_found") continue;
    const std::string message =
        Redact(absl::StrCat(ExplainFailure(failure.reason_code), " [", failure.source, "]"));
    const char* field = failure.user_id ? kUserIdField : kEmailField;
    for (size_t row : it->second) {
      if (failure.reason_code == "invalid_data") {
        (*outcomes)[row] = InvalidDataOutcome(batch, row, message);
      } else {
        (*outcomes)[row] = RecordOutcome::Rejected(failure.reason_code, field, message);
      }
    }
  }
}

}  // namespace exportd::iterable
