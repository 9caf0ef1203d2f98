// What every exportd RPC handler shares: its dependencies, authentication,
// authorization, the audit trail, and the conversion to grpc::Status.
//
//   grpc::ServerUnaryReactor* Foo(grpc::CallbackServerContext* ctx, const Req* req, Resp* resp) {
//     return HandleUnary(ctx, deps_, "/exportd.v1.X/Foo", auth::Action::kManageExports,
//                        Audit::kYes, [&](const auth::Principal& who, std::string& resource) {
//                          resource = "export/" + req->name();
//                          return DoFoo(who, *req, resp);
//                        });
//   }
#ifndef EXPORTD_SERVER_API_RPC_SUPPORT_H_
#define EXPORTD_SERVER_API_RPC_SUPPORT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/common/ids.h"
#include "server/auth/auth.h"
#include "server/crypto/secret_box.h"
#include "server/destinations/registry.h"
#include "server/observability/metrics.h"
#include "server/store/store.h"

namespace exportd::engine {
class Engine;
}

namespace exportd::api {

// Everything the services call into; owned by the Server, which outlives them.
struct ServiceDeps {
  store::Store* store = nullptr;
  const crypto::SecretBox* secrets = nullptr;
  const auth::Authenticator* authenticator = nullptr;
  destinations::DestinationRegistry* registry = nullptr;
  engine::Engine* engine = nullptr;
  // Where uploads are counted; null: nowhere.
  observability::Metrics* metrics = nullptr;
};

enum class Audit { kNo, kYes };

// Metadata that exportd's HTTP gateway (server/http) adds to the calls it
// makes through the gRPC server's in-process channel: the HTTP caller's
// address, for the failed-authentication log, and the PEM of the client
// certificate the HTTPS handshake verified. Believed only on a call that also
// carries InProcessGatewayKey() as kHttpGatewayKeyMetadata, a random value
// made at start-up that never leaves the process; on any other call they are
// ignored, so a network caller cannot claim a certificate or an address.
inline constexpr char kHttpGatewayKeyMetadata[] = "exportd-http-gateway-key";
inline constexpr char kHttpPeerMetadata[] = "exportd-http-peer";
inline constexpr char kHttpClientCertificateMetadata[] = "exportd-http-client-cert-bin";
const std::string& InProcessGatewayKey();

// The caller of this RPC: from its `authorization` metadata when it has one;
// without, from the client certificate of a mutual-TLS connection that the
// tokens file maps to a principal. UNAUTHENTICATED otherwise. A failure is
// logged with the caller's address (ctx.peer(), or for a call from the HTTP
// gateway the HTTP caller's).
absl::StatusOr<auth::Principal> Authenticate(const grpc::ServerContextBase& ctx,
                                             const auth::Authenticator& authenticator);

using UnaryBody = std::function<absl::Status(const auth::Principal& who, std::string& resource)>;

// Authenticates, authorizes `action`, runs `body`, records an audit entry for
// mutations (also refused ones), and finishes the call.
grpc::ServerUnaryReactor* HandleUnary(grpc::CallbackServerContext* ctx, const ServiceDeps& deps,
                                      absl::string_view method, auth::Action action, Audit audit,
                                      const UnaryBody& body);

// Records one audit entry.
void RecordAudit(const ServiceDeps& deps, const auth::Principal& who, absl::string_view method,
                 absl::string_view resource, const absl::Status& outcome);

// Checks a name (of a connection, segment, export, schema field or mapping
// field): valid UTF-8 of 1 to kMaxNameCharacters characters (code points),
// with no C0 or C1 control character, DEL, bidirectional control (U+061C,
// U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) or zero-width character
// (U+200B-U+200D, U+2060, U+FEFF), any of which could make a name look like
// another one or forge a line of output. INVALID_ARGUMENT naming `field`,
// showing the name escaped and the offending code point as U+XXXX:
//   display_name 'Iterable\u202eUE' contains U+202E (a bidirectional control
//   character) at character 9; ...
absl::Status ValidateName(absl::string_view field, absl::string_view name);

// `name` for an error message: ASCII controls as C escapes ("\n", "\x01"),
// the characters ValidateName refuses as "\u202e", bytes that are not UTF-8
// as "\xe9", quotes and backslashes escaped, cut after kMaxNameCharacters
// characters with "…".
std::string EscapeName(absl::string_view name);

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_RPC_SUPPORT_H_
