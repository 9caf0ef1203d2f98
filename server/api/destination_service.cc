#include "server/api/destination_service.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/destinations/manifest_proto.h"

namespace exportd::api {

grpc::ServerUnaryReactor* DestinationService::ListDestinations(
    grpc::CallbackServerContext* ctx, const v1::ListDestinationsRequest*,
    v1::ListDestinationsResponse* resp) {
  return HandleUnary(ctx, deps_, "/exportd.v1.DestinationService/ListDestinations",
                     auth::Action::kRead, Audit::kNo,
                     [&](const auth::Principal&, std::string&) -> absl::Status {
                       for (const auto& d : deps_.registry->List()) {
                         destinations::ManifestToProto(*d.manifest, d.library_path,
                                                      resp->add_destinations());
                       }
                       for (const auto& r : deps_.registry->refused()) {
                         auto* refused = resp->add_refused();
                         refused->set_library_path(r.library_path);
                         refused->set_reason(r.reason);
                       }
                       resp->set_host_abi_version(sdk::kAbiVersion);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* DestinationService::GetDestination(
    grpc::CallbackServerContext* ctx, const v1::GetDestinationRequest* req,
    v1::Destination* resp) {
  return HandleUnary(ctx, deps_, "/exportd.v1.DestinationService/GetDestination",
                     auth::Action::kRead, Audit::kNo,
                     [&](const auth::Principal&, std::string&) -> absl::Status {
                       for (const auto& d : deps_.registry->List()) {
                         if (d.manifest->name == req->name()) {
                           destinations::ManifestToProto(*d.manifest, d.library_path, resp);
                           return absl::OkStatus();
                         }
                       }
                       return deps_.registry->Get(req->name()).status();
                     });
}

grpc::ServerUnaryReactor* AuditService::ListAuditEntries(
    grpc::CallbackServerContext* ctx, const v1::ListAuditEntriesRequest* req,
    v1::ListAuditEntriesResponse* resp) {
  return HandleUnary(ctx, deps_, "/exportd.v1.AuditService/ListAuditEntries",
                     auth::Action::kReadAudit, Audit::kNo,
                     [&](const auth::Principal&, std::string&) -> absl::Status {
                       std::string next;
                       EXPORTD_ASSIGN_OR_RETURN(
                           auto entries,
                           deps_.store->ListAudit({req->page_size(), req->page_token()}, &next));
                       for (auto& e : entries) *resp->add_entries() = std::move(e);
                       resp->set_next_page_token(next);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* AuditService::WhoAmI(grpc::CallbackServerContext* ctx,
                                               const v1::WhoAmIRequest*,
                                               v1::WhoAmIResponse* resp) {
  return HandleUnary(ctx, deps_, "/exportd.v1.AuditService/WhoAmI", auth::Action::kRead,
                     Audit::kNo, [&](const auth::Principal& who, std::string&) -> absl::Status {
                       resp->set_principal(who.name);
                       resp->set_role(who.role);
                       return absl::OkStatus();
                     });
}

}  // namespace exportd::api
