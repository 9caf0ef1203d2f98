// What exportd sends to an export's webhook (docs/notifications.md): the
// JSON body of a notification, its signature, and the export's signing
// secret (made here, sealed at rest like connection secrets).
//
// A receiver verifies a delivery by computing
//   HMAC-SHA256(key = the secret as shown, message = "<timestamp>.<body>")
// with <timestamp> the X-Exportd-Timestamp header and <body> the exact body
// bytes, and comparing "sha256=<hex>" with X-Exportd-Signature.
//
//   EXPORTD_ASSIGN_OR_RETURN(std::string secret, NewSigningSecret());  // shown once
//   EXPORTD_ASSIGN_OR_RETURN(std::string sealed, SealSigningSecret(box, e.id(), secret));
//   std::string body = NotificationBody(run, kFailed);
//   std::string signature = Sign(secret, absl::ToUnixSeconds(absl::Now()), body);
#ifndef EXPORTD_SERVER_NOTIFY_WEBHOOK_H_
#define EXPORTD_SERVER_NOTIFY_WEBHOOK_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "exportd/v1/run.pb.h"
#include "server/crypto/secret_box.h"

namespace exportd::notify {

inline constexpr char kSignatureHeader[] = "X-Exportd-Signature";
inline constexpr char kTimestampHeader[] = "X-Exportd-Timestamp";
// "<run id>/<trigger>": the same for every attempt of one notification, so
// that a receiver can drop a repeated delivery.
inline constexpr char kDeliveryHeader[] = "X-Exportd-Delivery";

// A new signing secret: 32 bytes from a cryptographic random source, as 64
// lowercase hex characters. The HMAC key is this text.
absl::StatusOr<std::string> NewSigningSecret();

// Seals `secret` for the export `export_id` with the master key, exactly as
// a connection's secrets are sealed (crypto::SealMap, bound to the id).
absl::StatusOr<std::string> SealSigningSecret(const crypto::SecretBox& box,
                                              absl::string_view export_id,
                                              absl::string_view secret);
// Reverses SealSigningSecret. DATA_LOSS when it does not open.
absl::StatusOr<std::string> OpenSigningSecret(const crypto::SecretBox& box,
                                              absl::string_view export_id,
                                              const std::string& sealed);

// "sha256=" and the hex HMAC-SHA256 of "<timestamp_seconds>.<body>" under
// `secret`.
std::string Sign(absl::string_view secret, std::int64_t timestamp_seconds,
                 absl::string_view body);

// The notification's JSON body for `run` (final) and `trigger` (kFailed,
// kRecovered or kRejections): run_id, export {id, name}, state, trigger,
// message, attempt, finished_at (RFC 3339, UTC), rejected_percent, and per
// segment its id, name and counts (added, updated, removed, rejected,
// unchanged).
std::string NotificationBody(const v1::Run& run, absl::string_view trigger);

}  // namespace exportd::notify

#endif  // EXPORTD_SERVER_NOTIFY_WEBHOOK_H_
