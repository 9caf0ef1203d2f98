#include "server/notify/webhook.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/common/run_states.h"
#include "server/crypto/secret_map.h"
#include "server/notify/triggers.h"

namespace exportd::notify {
namespace {

// The name of the secret inside its sealed map.
constexpr char kSecretName[] = "notify_secret";

std::string Rfc3339(std::int64_t micros) {
  return absl::FormatTime(absl::RFC3339_full, absl::FromUnixMicros(micros), absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<std::string> NewSigningSecret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return absl::InternalError(
        "cannot make a webhook signing secret: the system's random source failed");
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

absl::StatusOr<std::string> SealSigningSecret(const crypto::SecretBox& box,
                                              absl::string_view export_id,
                                              absl::string_view secret) {
  return crypto::SealMap(box, export_id, {{kSecretName, std::string(secret)}});
}

absl::StatusOr<std::string> OpenSigningSecret(const crypto::SecretBox& box,
                                              absl::string_view export_id,
                                              const std::string& sealed) {
  absl::StatusOr<crypto::SecretMap> map = crypto::OpenMap(box, export_id, sealed);
  if (!map.ok()) return map.status();
  auto it = map->find(kSecretName);
  if (it == map->end()) {
    return absl::DataLossError(absl::StrCat("export '", export_id,
                                            "': the sealed webhook signing secret is empty; "
                                            "rotate it with --rotate-notify-secret"));
  }
  return it->second;
}

std::string Sign(absl::string_view secret, std::int64_t timestamp_seconds,
                 absl::string_view body) {
  const std::string message = absl::StrCat(timestamp_seconds, ".", body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_size);
  return absl::StrCat("sha256=", absl::BytesToHexString(absl::string_view(
                                     reinterpret_cast<const char*>(mac), mac_size)));
}

std::string NotificationBody(const v1::Run& run, absl::string_view trigger) {
  nlohmann::ordered_json body;
  body["run_id"] = run.id();
  body["export"] = {{"id", run.export_id()}, {"name", run.export_name()}};
  body["state"] = RunStateLabel(run.state());
  body["trigger"] = std::string(trigger);
  body["message"] = run.message();
  body["attempt"] = run.attempt();
  body["finished_at"] = Rfc3339(run.finished_at_micros());
  body["rejected_percent"] = RejectedPercent(run);
  nlohmann::ordered_json segments = nlohmann::ordered_json::array();
  for (const v1::SegmentProgress& p : run.segments()) {
    segments.push_back({{"segment_id", p.segment_id()},
                        {"segment_name", p.segment_name()},
                        {"added", p.added()},
                        {"updated", p.updated()},
                        {"removed", p.removed()},
                        {"rejected", p.rejected()},
                        {"unchanged", p.unchanged()}});
  }
  body["segments"] = std::move(segments);
  // Replaces invalid UTF-8 (a destination's message may carry some) rather
  // than throwing.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace exportd::notify
