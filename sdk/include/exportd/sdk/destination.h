// exportd destination plugin SDK.
//
// A destination is a shared library that exportd loads at start-up with
// Boost.DLL. The library exports two symbols through EXPORTD_DESTINATION_PLUGIN:
// the ABI version it was built against, and a factory that creates the
// `Destination`. The host checks the ABI version before it calls anything else.
//
// Usage (a complete plugin):
//
//   #include "exportd/sdk/destination.h"
//
//   namespace {
//   class MyConnection final : public exportd::sdk::Connection { ... };
//   class MyDestination final : public exportd::sdk::Destination {
//    public:
//     const exportd::sdk::Manifest& manifest() const override { return manifest_; }
//     absl::StatusOr<std::unique_ptr<exportd::sdk::Connection>> Connect(
//         const exportd::sdk::Settings& settings) override { ... }
//    private:
//     exportd::sdk::Manifest manifest_ = ...;
//   };
//   absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> CreateMine() {
//     return std::make_unique<MyDestination>();
//   }
//   }  // namespace
//
//   EXPORTD_DESTINATION_PLUGIN(CreateMine)
//
// Rules for plugin authors:
// - Nothing throws across the boundary: every call returns absl::Status or
//   absl::StatusOr with a canonical code (INVALID_ARGUMENT for bad settings,
//   UNAUTHENTICATED for rejected credentials, UNAVAILABLE for an unreachable
//   destination, CANCELLED when the run context was cancelled, ...).
// - Build with -fvisibility=hidden and the same toolchain, Abseil and C++
//   standard library as exportd. The SDK itself needs only Abseil.
// - Secrets (settings declared `secret`) must never appear in a log line, an
//   error message or an outcome.
#ifndef EXPORTD_SDK_DESTINATION_H_
#define EXPORTD_SDK_DESTINATION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "exportd/sdk/record.h"

namespace exportd::sdk {

// The ABI version of this SDK. The host refuses a plugin whose exported
// version differs. Bump it on any change to a class layout or virtual table in
// this folder.
inline constexpr std::uint32_t kAbiVersion = 4;
// ABI history:
//   1  the first SDK.
//   2  MappingFieldSpec::identifier, Destination::CanonicalIdentifier,
//      SyncSpeed::requests_per_second, Connection::speed(),
//      RunContext::ReportThrottle, Destination::ValidateMapping. The engine
//      owns batching, parallelism and rate: a plugin makes one request per
//      call and reports throttling. Which mapping field identifies a member
//      may depend on a connection's settings (ValidateMapping).
//   3  RunContext::RequestDone: a plugin reports every request it makes to
//      the destination (endpoint, HTTP status, latency) for the metrics.
//   4  Connection::DeleteAudience (optional: UNIMPLEMENTED by default), and
//      MappingCheck::keyed_by: a change of how members are keyed (Iterable:
//      the project type) makes the next run a full resync.
//      Manifest::privacy_statement and Manifest::privacy_statement_version:
//      the data privacy and compliance statement an admin agrees to when
//      creating a connection is the destination's own; a plugin without one
//      is refused at load.

// ---------------------------------------------------------------------------
// Manifest: what a destination declares about itself. The core validates
// connections and exports generically against it.
// ---------------------------------------------------------------------------

// The type of a connection setting's value. Settings travel as strings; the
// core checks that the string parses as the declared type.
enum class SettingType { kString, kInt, kDouble, kBool, kEnum };

struct SettingSpec {
  std::string name;          // e.g. "api_key"; [a-z0-9_]+.
  std::string display_name;  // e.g. "API key".
  std::string description;
  SettingType type = SettingType::kString;
  bool required = false;
  // Write-only: never returned by the API, never logged, encrypted at rest.
  bool secret = false;
  // For kEnum: the allowed values.
  std::vector<std::string> allowed_values;
  // Used when the setting is absent; empty means no default.
  std::string default_value;
};

// A destination field that an export maps a profile field onto.
struct MappingFieldSpec {
  std::string name;  // e.g. "email".
  std::string description;
  bool required = false;
  // The destination keys its members by this field (Iterable: `email`). The
  // engine diffs a segment against what was delivered by the canonical form
  // of this field's value (Destination::CanonicalIdentifier), so that a
  // changed identifier removes the old one and several profiles with one
  // identifier are one member. Which of an export's identifier fields is the
  // key is Destination::ValidateMapping's answer (by default the first one it
  // maps).
  bool identifier = false;
};

// How fast a destination may be driven. The engine owns batching,
// parallelism and rate: it sends batches of at most `max_records_per_batch`
// records and about `max_bytes_per_batch` bytes, up to
// `max_parallel_batches` at once, and keeps one limiter per connection that
// every run on the connection shares. A connection's settings can lower
// these (Connection::speed()).
struct SyncSpeed {
  int max_records_per_batch = 1000;
  std::int64_t max_bytes_per_batch = 4'000'000;
  int max_parallel_batches = 1;
  // Records per second across every run of one connection; 0: no limit.
  double records_per_second = 0;
  // Upsert/Remove calls per second across every run of one connection; 0: no
  // limit. A plugin makes one request per call.
  double requests_per_second = 0;
};

struct Manifest {
  std::string name;          // Registry key, e.g. "iterable". [a-z0-9_-]+.
  std::string display_name;  // e.g. "Iterable".
  std::string version;       // The plugin's own version, e.g. "1.0.0".
  std::string description;
  std::vector<SettingSpec> settings;
  std::vector<MappingFieldSpec> mapping_fields;
  // Whether mappings may name destination fields beyond `mapping_fields`
  // (Iterable: any name becomes a data field).
  bool allows_extra_fields = false;
  // Destination field names an export may never map onto (Iterable-managed
  // fields). The core refuses such a mapping when the export is saved.
  std::vector<std::string> reserved_fields;
  // Whether the destination can remove members (mirror mode needs it).
  bool supports_removal = false;
  SyncSpeed speed;
  // The data privacy and compliance statement an admin agrees to when they
  // create a connection: where the exported profile data goes, who receives
  // it, under which terms, and who can read it there. Plain text, paragraphs
  // separated by a blank line ("\n\n"); shown in full by the console and by
  // `exportctl connection create`. Required: the host refuses a plugin whose
  // statement is empty.
  std::string privacy_statement;
  // The statement's version, e.g. "2026-12-01". Change it whenever the text
  // changes in substance: a connection records the version its admin
  // accepted, and a create request that names an older version is refused.
  // Required, like the statement.
  std::string privacy_statement_version;
};

// What Destination::ValidateMapping says about a mapping it accepts.
struct MappingCheck {
  // The destination field whose canonical value keys a member (one of the
  // mapped fields, declared `identifier` in the manifest); empty: members are
  // keyed by profile id.
  std::string identifier_field;
  // How the destination keys members under these settings, in words for a
  // run's message, e.g. "userId (project_type user_id)". The engine keeps a
  // fingerprint of it with each segment's delivered state: when it differs
  // at the next run (a setting or the identifier mapping changed), what was
  // delivered is keyed by something else, and the run sends every member
  // again (a full resync) and says why. Empty: the identifier field alone.
  std::string keyed_by;
};

// The first of `fields` that the manifest declares an identifier, or empty.
inline std::string FirstIdentifierField(const Manifest& manifest,
                                        const std::vector<std::string>& fields) {
  for (const std::string& field : fields) {
    for (const MappingFieldSpec& spec : manifest.mapping_fields) {
      if (spec.identifier && spec.name == field) return field;
    }
  }
  return std::string();
}

// Connection settings, secrets included, keyed by SettingSpec::name. The core
// fills in defaults and checks types before a plugin sees them.
using Settings = std::map<std::string, std::string, std::less<>>;

// ---------------------------------------------------------------------------
// Run context: what the host gives a plugin for one call.
// ---------------------------------------------------------------------------

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Every method may be called from several threads at once: the engine
// shares one context between the parallel batches of a run, and a plugin
// may share it between the parallel requests of one call. Hosts and test
// contexts implement it thread-safely.
class RunContext {
 public:
  virtual ~RunContext() = default;
  // True once the run was cancelled or the server is shutting down. Long
  // calls check it between requests and return absl::CancelledError().
  virtual bool cancelled() const = 0;
  // Waits up to `d` (for a backoff). Returns false early when cancelled.
  virtual bool SleepFor(absl::Duration d) = 0;
  virtual absl::Time Now() const = 0;
  // Logs a line attributed to the plugin and, during a run, to the run.
  virtual void Log(LogLevel level, std::string_view message) = 0;
  // Reports that the destination throttled a request (HTTP 429 or the like).
  // `retry_after` is how long it asked for nothing to be sent (Retry-After, a
  // rate-reset time; zero when it did not say). The engine lowers the
  // connection's shared rate and waits before it sends again; the plugin
  // does not sleep for it. After reporting, an Upsert, Remove or
  // EnsureAudience returns absl::ResourceExhaustedError: the engine waits on
  // the connection's rate budget and makes the same call again (a throttle
  // is not a failed run attempt).
  // The default ignores the report (contexts outside a run).
  virtual void ReportThrottle(absl::Duration retry_after) { (void)retry_after; }
  // Reports one request the plugin made to the destination, once its answer
  // (or its failure) is in, retries and throttled requests included; the
  // server counts them in exportd_destination_requests_total and
  // exportd_destination_request_duration_seconds. `endpoint` names what was
  // called without ids, query or host, from a small fixed set (Iterable:
  // "/api/lists/subscribe"); never an id, an identifier or a secret.
  // `http_status` is the answer's HTTP status, 0 when none came (a transport
  // failure or a timeout). `latency` is how long the request took. The
  // default ignores the report; it may be called from several threads.
  virtual void RequestDone(std::string_view endpoint, int http_status, absl::Duration latency) {
    (void)endpoint;
    (void)http_status;
    (void)latency;
  }
};

// ---------------------------------------------------------------------------
// The destination and its connections.
// ---------------------------------------------------------------------------

// An audience at the destination: the place a segment's members go (an
// Iterable list).
struct Audience {
  std::string id;    // Destination's id, e.g. an Iterable list id "12345".
  std::string name;  // Exactly the segment's name.
  bool created = false;  // True when EnsureAudience created it just now.
  // A note for the run log, e.g. "2 lists are named 'VIP'; using 17 (oldest)".
  std::string note;
};

// One connection's worth of state: credentials and HTTP clients. A
// Connection may be called from several threads at once (the engine runs up
// to SyncSpeed::max_parallel_batches writes in parallel).
class Connection {
 public:
  virtual ~Connection() = default;

  // The speed this connection may be driven at: the manifest's, lowered by
  // the connection's settings (never raised above the manifest's). The
  // engine batches, parallelises and throttles by it.
  virtual SyncSpeed speed() const = 0;

  // Verifies the settings against the destination with a real, cheap call
  // (Iterable: GET /api/lists). UNAUTHENTICATED for rejected credentials,
  // UNAVAILABLE for an unreachable destination.
  virtual absl::Status Check(RunContext& ctx) = 0;

  // Finds or creates the audience named exactly `segment_name`. Idempotent.
  // `remembered_id` is the id this export got last time (empty on the first
  // run); the plugin prefers it when it still exists. RESOURCE_EXHAUSTED
  // after RunContext::ReportThrottle: the engine waits as for a throttled
  // batch and calls again.
  virtual absl::StatusOr<Audience> EnsureAudience(std::string_view segment_name,
                                                  std::string_view remembered_id,
                                                  RunContext& ctx) = 0;

  // Adds or updates the batch's records in the audience with one request
  // (a batch larger than the destination's byte limit may take more). Returns
  // exactly one outcome per record, in order. A returned error status means
  // the whole call failed and nothing can be said per record (e.g. credentials
  // revoked); the engine treats every record as not delivered.
  // RESOURCE_EXHAUSTED after RunContext::ReportThrottle: the engine waits and
  // sends the batch again. NOT_FOUND: the audience no longer exists at the
  // destination (deleted there); the engine calls EnsureAudience again without
  // a remembered id, once per segment and run, and sends the whole segment.
  virtual absl::StatusOr<std::vector<RecordOutcome>> Upsert(const Audience& audience,
                                                            const RecordBatch& batch,
                                                            RunContext& ctx) = 0;

  // Removes the batch's records from the audience. Same contract as Upsert.
  virtual absl::StatusOr<std::vector<RecordOutcome>> Remove(const Audience& audience,
                                                            const RecordBatch& batch,
                                                            RunContext& ctx) = 0;

  // Deletes the audience itself at the destination (Iterable: DELETE
  // /api/lists/{id}), when an export is deleted with its audiences. The
  // engine calls it only for audiences the export created and no other
  // export uses. OK when it is gone already (deleted or never there).
  // FAILED_PRECONDITION when the destination keeps it (Iterable: 409 "List is
  // in use" by a campaign or journey), naming why. Optional: the default
  // answers UNIMPLEMENTED, and exportd then refuses to delete audiences of
  // this destination (FAILED_PRECONDITION) before it deletes anything.
  virtual absl::Status DeleteAudience(const Audience& audience, RunContext& ctx) {
    (void)audience;
    (void)ctx;
    return absl::UnimplementedError("this destination cannot delete its audiences");
  }
};

class Destination {
 public:
  virtual ~Destination() = default;
  virtual const Manifest& manifest() const = 0;
  // Validates settings beyond what the manifest can say (e.g. a URL's form).
  // The core has already checked required settings, types and enum values.
  virtual absl::Status ValidateSettings(const Settings& settings) const {
    (void)settings;
    return absl::OkStatus();
  }
  // Checks an export's mapping against a connection's settings, for rules the
  // static manifest cannot state (Iterable: which identifier the project type
  // needs), and says which mapped field identifies a member. `fields` are the
  // destination fields the export maps, in its order; `settings` are the
  // connection's with defaults filled in (secrets may be absent). The core
  // has already checked the manifest's rules (required, reserved and extra
  // fields). INVALID_ARGUMENT naming the field and the setting otherwise.
  // Cheap, no I/O. The default accepts the mapping; its identifier is the
  // first mapped field the manifest declares an identifier.
  virtual absl::StatusOr<MappingCheck> ValidateMapping(const Settings& settings,
                                                       const std::vector<std::string>& fields) const {
    (void)settings;
    return MappingCheck{FirstIdentifierField(manifest(), fields), std::string()};
  }
  // Creates a connection for the settings. Cheap: no network call.
  virtual absl::StatusOr<std::unique_ptr<Connection>> Connect(const Settings& settings) = 0;
  // The identifier as the destination keys it, for a value of the identifier
  // mapping field `field` (Iterable: an email trimmed and lowercased). Two
  // values with one canonical form are one member at the destination. Called
  // per record on the data path: cheap, no I/O, thread-safe. The default is
  // the value unchanged.
  virtual std::string CanonicalIdentifier(std::string_view field, std::string_view value) const {
    (void)field;
    return std::string(value);
  }
};

// The factory a plugin exports.
using DestinationFactory = absl::StatusOr<std::unique_ptr<Destination>>();

// Exported symbol names.
inline constexpr char kAbiVersionSymbol[] = "exportd_destination_abi_version";
inline constexpr char kFactorySymbol[] = "exportd_create_destination";

}  // namespace exportd::sdk

// Exports the factory `fn` (a function matching DestinationFactory) and the
// SDK's ABI version from a plugin library. Use once per library, at namespace
// scope, outside any namespace.
#include <boost/dll/alias.hpp>
#define EXPORTD_DESTINATION_PLUGIN(fn)                                             \
  namespace exportd_plugin_exports {                                              \
  const std::uint32_t abi_version = ::exportd::sdk::kAbiVersion;                  \
  ::absl::StatusOr<::std::unique_ptr<::exportd::sdk::Destination>> Create() {     \
    return fn();                                                                  \
  }                                                                               \
  }                                                                               \
  BOOST_DLL_ALIAS(exportd_plugin_exports::abi_version,                            \
                  exportd_destination_abi_version)                                \
  BOOST_DLL_ALIAS(exportd_plugin_exports::Create, exportd_create_destination)

#endif  // EXPORTD_SDK_DESTINATION_H_
