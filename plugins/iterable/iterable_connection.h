// One Iterable connection: an HTTP client and the request retry logic behind
// the SDK's Connection calls. Thread-safe: the engine calls Upsert/Remove from
// several threads at once (up to parallel_requests). The engine owns batching,
// parallelism and rate: each Upsert/Remove is one request (more only when a
// batch exceeds max_body_bytes), no thread of its own, and a 429 (on the
// list calls of EnsureAudience too) is reported to the engine
// (RunContext::ReportThrottle with Retry-After or rateLimitReset, then
// RESOURCE_EXHAUSTED) instead of slept on here.
//
//   ITERABLE_ASSIGN_OR_RETURN(ConnectionOptions options, ParseSettings(settings));
//   ITERABLE_ASSIGN_OR_RETURN(auto connection, IterableConnection::Create(options));
//   ITERABLE_RETURN_IF_ERROR(connection->Check(ctx));
//   ITERABLE_ASSIGN_OR_RETURN(sdk::Audience list, connection->EnsureAudience("VIP", "", ctx));
//   ITERABLE_ASSIGN_OR_RETURN(auto outcomes, connection->Upsert(list, batch, ctx));
#ifndef EXPORTD_PLUGINS_ITERABLE_ITERABLE_CONNECTION_H_
#define EXPORTD_PLUGINS_ITERABLE_ITERABLE_CONNECTION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "exportd/sdk/destination.h"
#include "http_client.h"
#include "iterable_settings.h"
#include "request_builder.h"
#include "response_parser.h"

namespace exportd::iterable {

// Iterable's code for a request refused because a data field's value has
// another type than the field has in the project.
inline constexpr char kTypesMismatchedCode[] = "RequestFieldsTypesMismatched";

class IterableConnection final : public sdk::Connection {
 public:
  static absl::StatusOr<std::unique_ptr<IterableConnection>> Create(ConnectionOptions options);

  // GET /api/lists. UNAUTHENTICATED "Iterable rejected the API key (BadApiKey)"
  // for a refused key, UNAVAILABLE naming the host for an unreachable one,
  // RESOURCE_EXHAUSTED at once for a 429, naming when the limit resets
  // ("... until 14:05:03 UTC; the connection was not checked: ...").
  absl::Status Check(sdk::RunContext& ctx) override;

  // batch_size, max_body_bytes, parallel_requests and requests_per_second.
  sdk::SyncSpeed speed() const override;

  // Finds the list named exactly `segment_name` (the remembered one, else the
  // oldest when several share the name), or creates it. A 429 on GET or POST
  // /api/lists: ctx.ReportThrottle(wait) and RESOURCE_EXHAUSTED; the engine
  // waits on the connection's rate budget and calls again.
  absl::StatusOr<sdk::Audience> EnsureAudience(std::string_view segment_name,
                                               std::string_view remembered_id,
                                               sdk::RunContext& ctx) override;

  // POST /api/lists/subscribe: one request, split only when the batch is over
  // batch_size or max_body_bytes. One outcome per record, in order. A 429:
  // ctx.ReportThrottle(wait) and RESOURCE_EXHAUSTED (the engine resends).
  // 5xx, 408 and network failures are retried here ("request attempt N of M").
  // NOT_FOUND when Iterable answers invalidListId outside the window after the
  // list's creation: the list was deleted in Iterable.
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Upsert(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext& ctx) override;

  // POST /api/lists/unsubscribe with "channelUnsubscribe": false.
  absl::StatusOr<std::vector<sdk::RecordOutcome>> Remove(const sdk::Audience& audience,
                                                         const sdk::RecordBatch& batch,
                                                         sdk::RunContext& ctx) override;

  // DELETE /api/lists/{id}. OK when Iterable no longer knows the list (404,
  // or invalidListId); FAILED_PRECONDITION for 409 "List is in use" (a
  // campaign or journey references it). 5xx, 408, 429 and network failures
  // are retried here (this call is not paced by the engine).
  absl::Status DeleteAudience(const sdk::Audience& audience, sdk::RunContext& ctx) override;

 private:
  // How one subscribe/unsubscribe request ended.
  struct WriteResult {
    enum class Kind { kAccepted, kRejected, kRetryable, kThrottled };
    Kind kind = Kind::kAccepted;
    std::string body;         // kAccepted: Iterable's answer.
    std::string reason_code;  // kRejected / kRetryable.
    std::string message;      // Also kThrottled: what Iterable said.
    // kThrottled: how long Iterable asked for nothing to be sent (zero if it
    // did not say).
    absl::Duration retry_after = absl::ZeroDuration();
  };

  explicit IterableConnection(ConnectionOptions options, std::unique_ptr<HttpClient> client);

  absl::StatusOr<std::vector<sdk::RecordOutcome>> WriteList(ListOperation operation,
                                                            const sdk::Audience& audience,
                                                            const sdk::RecordBatch& batch,
                                                            sdk::RunContext& ctx);
  // Sends one request with retries (not for 429s: kThrottled). Statuses are
  // whole-call failures (UNAUTHENTICATED, PERMISSION_DENIED, CANCELLED).
  absl::StatusOr<WriteResult> SendListRequest(ListOperation operation, std::int64_t list_id,
                                              bool audience_created, const std::string& body,
                                              sdk::RunContext& ctx);
  void ApplyResult(ListOperation operation, const sdk::RecordBatch& batch,
                   const ListRequest& request, const WriteResult& result,
                   std::vector<sdk::RecordOutcome>* outcomes, sdk::RunContext& ctx);

  // Every request to Iterable goes through here: one HttpClient::Send,
  // reported to ctx.RequestDone with its path as the endpoint (Iterable's
  // paths here carry no ids or query) and its HTTP status (0: no answer).
  // `endpoint` replaces the path in that report when the path carries an id
  // ("/api/lists/{id}").
  absl::StatusOr<HttpResponse> Send(std::string_view method, std::string_view path,
                                    std::string_view body, sdk::RunContext& ctx,
                                    std::string_view endpoint = {});

  // GET/POST with retries for the list calls (5xx, 408, transport
  // failures); non-2xx answers become a status with a canonical code. A 429
  // is not retried: ctx.ReportThrottle(wait), then RESOURCE_EXHAUSTED naming
  // the pause (the engine waits and calls again). `retry_transport` is off
  // for Check.
  absl::StatusOr<HttpResponse> Call(std::string_view method, std::string_view path,
                                    std::string_view body, absl::string_view what,
                                    bool retry_transport, sdk::RunContext& ctx);
  // How long a 429 asks for nothing to be sent: Retry-After or
  // params.rateLimitReset, whichever is later; nullopt when it says neither.
  static std::optional<absl::Duration> ThrottleWait(const HttpResponse& response, absl::Time now);
  absl::Status StatusForAnswer(int http_status, std::string_view body, absl::string_view what);

  // Every record of a request Iterable refused as RequestFieldsTypesMismatched.
  void TypesMismatched(const sdk::RecordBatch& batch, const ListRequest& request,
                       const WriteResult& result, std::vector<sdk::RecordOutcome>* outcomes) const;
  // Logs the data fields Iterable created or filtered out, each field once
  // per connection (the engine connects once per run): "Iterable created
  // data fields: a, b" (info), "Iterable filtered out fields: x (...)"
  // (warning).
  void LogFieldChanges(const ListUpdateResult& parsed, sdk::RunContext& ctx);

  // The deadline until which invalidListId answers for `list_id` are retried.
  absl::Time InvalidListDeadline(std::int64_t list_id) const;

  // Replaces the API key in `text` (should a server ever echo it).
  std::string Redact(std::string text) const;
  absl::Status Redact(const absl::Status& status) const;
  void Log(sdk::RunContext& ctx, sdk::LogLevel level, std::string message) const;

  const ConnectionOptions options_;
  const std::unique_ptr<HttpClient> client_;

  mutable absl::Mutex lists_mu_;
  // Lists this connection created, and when.
  std::map<std::int64_t, absl::Time> created_lists_ ABSL_GUARDED_BY(lists_mu_);

  absl::Mutex fields_mu_;
  // The data fields already logged as created / filtered out.
  std::set<std::string> created_fields_logged_ ABSL_GUARDED_BY(fields_mu_);
  std::set<std::string> filtered_fields_logged_ ABSL_GUARDED_BY(fields_mu_);
};

}  // namespace exportd::iterable

#endif  // EXPORTD_PLUGINS_ITERABLE_ITERABLE_CONNECTION_H_
