#include "server/api/rpc_support.h"

#include <openssl/rand.h>

#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/common/clock.h"
#include "server/common/grpc_status.h"

namespace exportd::api {

absl::StatusOr<auth::Principal> Authenticate(const grpc::ServerContextBase& ctx,
                                             const auth::Authenticator& authenticator) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  absl::string_view value;
  if (it != metadata.end()) value = absl::string_view(it->second.data(), it->second.size());
  return authenticator.Authenticate(value, ctx.peer());
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
  if (!status.ok()) std::cerr << "exportd: cannot write audit entry: " << status << "\n";
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

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  if (name.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is ", name.size(),
                                                   " characters long; at most 256 are allowed"));
  }
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " '", absl::CEscape(name), "' contains a control character"));
    }
  }
  return absl::OkStatus();
}

std::string NewId(absl::string_view prefix) {
  unsigned char raw[6];
  RAND_bytes(raw, sizeof raw);
  return absl::StrCat(prefix, "-",
                      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(raw), 6)));
}

}  // namespace exportd::api
