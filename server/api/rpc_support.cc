#include "server/api/rpc_support.h"

#include <grpc/grpc_security_constants.h>

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/api/limits.h"
#include "server/auth/certificate.h"
#include "server/common/clock.h"
#include "server/api/grpc_status.h"
#include "server/common/log.h"
#include "server/common/terminal_text.h"

namespace exportd::api {

namespace {

std::optional<absl::string_view> Metadata(const grpc::ServerContextBase& ctx,
                                          absl::string_view key) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (it == metadata.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

// Whether the call came from exportd's own HTTP gateway: it carries the key
// that only this process knows. Compared in constant time.
bool FromInProcessGateway(const grpc::ServerContextBase& ctx) {
  std::optional<absl::string_view> sent = Metadata(ctx, kHttpGatewayKeyMetadata);
  const std::string& key = InProcessGatewayKey();
  if (!sent.has_value() || sent->size() != key.size()) return false;
  unsigned char differ = 0;
  for (size_t i = 0; i < key.size(); ++i) differ |= static_cast<unsigned char>((*sent)[i] ^ key[i]);
  return differ == 0;
}

// A metadata value the HTTP gateway set, or nullopt.
std::optional<std::string> GatewayMetadata(const grpc::ServerContextBase& ctx,
                                           absl::string_view key) {
  if (!FromInProcessGateway(ctx)) return std::nullopt;
  std::optional<absl::string_view> value = Metadata(ctx, key);
  if (!value.has_value()) return std::nullopt;
  return std::string(*value);
}

// The caller's address for the log: the HTTP client's for a call from the
// gateway, else the gRPC peer.
std::string CallerAddress(const grpc::ServerContextBase& ctx) {
  if (std::optional<std::string> http = GatewayMetadata(ctx, kHttpPeerMetadata)) {
    return absl::StrCat(*http, " (HTTP)");
  }
  return ctx.peer();
}

// The PEM of the client certificate the TLS handshake verified, if any. Only a
// mutual-TLS listener asks for one, and it refuses the connection unless the
// certificate is signed by --tls-client-ca, so one present here is verified.
// For a call from the HTTP gateway, the HTTPS listener did the same check.
std::optional<std::string> VerifiedPeerCertificate(const grpc::ServerContextBase& ctx) {
  if (FromInProcessGateway(ctx)) return GatewayMetadata(ctx, kHttpClientCertificateMetadata);
  std::shared_ptr<const grpc::AuthContext> auth_context = ctx.auth_context();
  if (auth_context == nullptr) return std::nullopt;
  std::vector<grpc::string_ref> pem =
      auth_context->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pem.empty()) return std::nullopt;
  return std::string(pem.front().data(), pem.front().size());
}

}  // namespace

const std::string& InProcessGatewayKey() {
  static const std::string* key = [] {
    std::random_device random;
    std::string hex;
    for (int i = 0; i < 8; ++i) absl::StrAppend(&hex, absl::Hex(random(), absl::kZeroPad8));
    return new std::string(std::move(hex));
  }();
  return *key;
}

absl::StatusOr<auth::Principal> Authenticate(const grpc::ServerContextBase& ctx,
                                             const auth::Authenticator& authenticator) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  absl::string_view value;
  if (it != metadata.end()) value = absl::string_view(it->second.data(), it->second.size());
  // A bearer token, when sent, decides. Without one, the client certificate
  // may name the caller through a tokens-file `cert:` line.
  absl::Status certificate_refused;
  if (it == metadata.end()) {
    if (std::optional<std::string> pem = VerifiedPeerCertificate(ctx)) {
      absl::StatusOr<auth::Principal> who =
          authenticator.AuthenticateCertificate(auth::CertificateIdentities(*pem));
      if (who.ok()) return who;
      certificate_refused = who.status();
    }
  }
  // Counts and logs a failure, also one after a certificate that maps to no one.
  absl::StatusOr<auth::Principal> who = authenticator.Authenticate(value, CallerAddress(ctx));
  if (!who.ok() && !certificate_refused.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat(who.status().message(), "; ", certificate_refused.message()));
  }
  return who;
}

void RecordAudit(const ServiceDeps& deps, const auth::Principal& who, absl::string_view method,
                 absl::string_view resource, const absl::Status& outcome) {
  v1::AuditEntry entry;
  entry.set_time_micros(NowMicros());
  entry.set_principal(who.name);
  entry.set_role(who.role);
  entry.set_method(std::string(method));
  entry.set_resource(std::string(resource));
  entry.set_outcome(outcome.ok() ? "OK" : absl::StatusCodeToString(outcome.code()));
  entry.set_message(std::string(outcome.message()));
  absl::Status status = deps.store->AppendAudit(std::move(entry));
  if (!status.ok()) {
    Log(LogLevel::kError, {"api"},
        absl::StrCat("cannot write audit entry: ", EscapeForTerminal(status.ToString())));
  }
}

grpc::ServerUnaryReactor* HandleUnary(grpc::CallbackServerContext* ctx, const ServiceDeps& deps,
                                      absl::string_view method, auth::Action action, Audit audit,
                                      const UnaryBody& body) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::Status status;
  auto who = Authenticate(*ctx, *deps.authenticator);
  if (!who.ok()) {
    status = who.status();
  } else {
    std::string resource;
    status = auth::Authorize(*who, action);
    if (status.ok()) status = body(*who, resource);
    if (audit == Audit::kYes) RecordAudit(deps, *who, method, resource, status);
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

namespace {

// Decodes the code point at `name[*i]` and moves `*i` past it; nullopt (and
// `*i` unchanged) when the bytes there are not UTF-8: a stray continuation
// byte, a truncated sequence, an overlong form, a surrogate or a value above
// U+10FFFF.
std::optional<char32_t> NextCodePoint(absl::string_view name, std::size_t* i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(name[k]); };
  const unsigned char lead = byte(*i);
  if (lead < 0x80) return name[(*i)++];
  // The sequence's length, the lead byte's payload and the smallest code
  // point that needs this length (anything below is an overlong form).
  struct Form {
    unsigned char mask, prefix;
    std::size_t length;
    char32_t min;
  };
  static constexpr Form kForms[] = {
      {0xe0, 0xc0, 2, 0x80}, {0xf0, 0xe0, 3, 0x800}, {0xf8, 0xf0, 4, 0x10000}};
  const Form* form = nullptr;
  for (const Form& f : kForms) {
    if ((lead & f.mask) == f.prefix) form = &f;
  }
  if (form == nullptr) return std::nullopt;
  const std::size_t length = form->length;
  char32_t c = lead & static_cast<unsigned char>(~form->mask);
  if (*i + length > name.size()) return std::nullopt;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(*i + k) & 0xc0) != 0x80) return std::nullopt;
    c = (c << 6) | (byte(*i + k) & 0x3f);
  }
  if (c < form->min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return std::nullopt;
  *i += length;
  return c;
}

// Why a name may not contain `c`, or empty if it may.
absl::string_view RefusedBecause(char32_t c) {
  if (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f)) return "a control character";
  if (c == 0x061c || c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) ||
      (c >= 0x2066 && c <= 0x2069)) {
    return "a bidirectional control character";
  }
  if ((c >= 0x200b && c <= 0x200d) || c == 0x2060 || c == 0xfeff) {
    return "a zero-width character";
  }
  return {};
}

std::string CodePoint(char32_t c) {
  return absl::AsciiStrToUpper(absl::StrCat("U+", absl::Hex(c, absl::kZeroPad4)));
}

}  // namespace

std::string EscapeName(absl::string_view name) {
  std::string out;
  std::size_t characters = 0;
  for (std::size_t i = 0; i < name.size(); ++characters) {
    if (characters == kMaxNameCharacters) {
      out += "\u2026";
      break;
    }
    const std::size_t start = i;
    std::optional<char32_t> c = NextCodePoint(name, &i);
    if (!c.has_value()) {
      absl::StrAppend(&out, "\\x", absl::Hex(static_cast<unsigned char>(name[i]), absl::kZeroPad2));
      ++i;
    } else if (*c < 0x80) {
      absl::StrAppend(&out, absl::CEscape(name.substr(start, 1)));
    } else if (!RefusedBecause(*c).empty()) {
      absl::StrAppend(&out, "\\u", absl::Hex(*c, absl::kZeroPad4));
    } else {
      absl::StrAppend(&out, name.substr(start, i - start));
    }
  }
  return out;
}

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  std::size_t characters = 0;
  std::optional<char32_t> refused;
  std::size_t refused_at = 0;  // 1-based character
  for (std::size_t i = 0; i < name.size(); ++characters) {
    const std::size_t start = i;
    std::optional<char32_t> c = NextCodePoint(name, &i);
    if (!c.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " '", EscapeName(name), "' is not valid UTF-8 (byte 0x",
                       absl::Hex(static_cast<unsigned char>(name[start]), absl::kZeroPad2),
                       " at byte ", start + 1, "); send names as UTF-8"));
    }
    if (!refused.has_value() && !RefusedBecause(*c).empty()) {
      refused = c;
      refused_at = characters + 1;
    }
  }
  if (characters > kMaxNameCharacters) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is ", characters,
                                                   " characters long; at most ", kMaxNameCharacters,
                                                   " are allowed"));
  }
  if (refused.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " '", EscapeName(name), "' contains ", CodePoint(*refused), " (",
        RefusedBecause(*refused), ") at character ", refused_at,
        "; names may not contain control, bidirectional-control or zero-width characters"));
  }
  return absl::OkStatus();
}


}  // namespace exportd::api
