#include "server/api/connection_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/api/access.h"
#include "server/api/call_run_context.h"
#include "server/destinations/connection_resolver.h"
#include "server/common/clock.h"
#include "server/common/status_macros.h"
#include "server/crypto/secret_map.h"
#include "server/destinations/validation.h"

namespace exportd::api {
namespace {

constexpr char kService[] = "/exportd.v1.ConnectionService/";

std::map<std::string, std::string> ToMap(const google::protobuf::Map<std::string, std::string>& m) {
  return {m.begin(), m.end()};
}

// Checks settings and secrets against the destination's manifest and the
// destination's own rules; returns what the plugin would get. The resolved
// values are not stored (defaults stay defaults).
absl::StatusOr<sdk::Settings> CheckAgainstManifest(
    const sdk::Destination& destination, const std::map<std::string, std::string>& settings,
    const crypto::SecretMap& secrets) {
  EXPORTD_ASSIGN_OR_RETURN(sdk::Settings resolved, destinations::ResolveSettings(
                                                       destination.manifest(), settings, secrets));
  EXPORTD_RETURN_IF_ERROR(destination.ValidateSettings(resolved));
  return resolved;
}

// The consent a create request gives is to the statement the destination
// shows now: a request that names another version was made from a statement
// that changed since.
absl::Status CheckStatementVersion(const v1::CreateConnectionRequest& req,
                                   const sdk::Manifest& manifest) {
  const std::string& read = req.privacy_statement_version();
  if (read.empty() || read == manifest.privacy_statement_version) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "connection '", req.display_name(), "': destination '", manifest.name,
      "' changed its data privacy and compliance statement: privacy_statement_version '", read,
      "' was accepted, the current version is '", manifest.privacy_statement_version,
      "'; read the statement again ('exportctl destination get ", manifest.name,
      "' or the console's connection form) and accept the current version"));
}

// A check's outcome in words, for TestConnection's message and a refused
// create: "UNAUTHENTICATED: Iterable rejected the API key ...".
std::string DescribeCheck(const absl::Status& check) {
  return absl::StrCat(absl::StatusCodeToString(check.code()), ": ", check.message());
}

void SetSecretNames(const crypto::SecretMap& secrets, v1::Connection* c) {
  c->clear_secret_names();
  for (const auto& [name, value] : secrets) c->add_secret_names(name);
}

}  // namespace

grpc::ServerUnaryReactor* ConnectionService::CreateConnection(
    grpc::CallbackServerContext* ctx, const v1::CreateConnectionRequest* req,
    v1::Connection* resp) {
  return HandleUnary(
      ctx, deps_, absl::StrCat(kService, "CreateConnection"), auth::Action::kManageConnections,
      Audit::kYes, [&](const auth::Principal& who, std::string& resource) -> absl::Status {
        resource = absl::StrCat("connection/", req->display_name());
        EXPORTD_RETURN_IF_ERROR(ValidateName("display_name", req->display_name()));
        if (req->destination_type().empty()) {
          return absl::InvalidArgumentError(
              "destination_type is required; list the loaded ones with 'exportctl destination "
              "list'");
        }
        if (!req->accept_privacy_terms()) {
          return absl::FailedPreconditionError(
              "connection '" + req->display_name() +
              "': the data privacy and compliance terms must be accepted "
              "(accept_privacy_terms, exportctl --accept-privacy-terms)");
        }
        EXPORTD_ASSIGN_OR_RETURN(sdk::Destination * destination,
                                 deps_.registry->Get(req->destination_type()));
        const sdk::Manifest& manifest = destination->manifest();
        EXPORTD_RETURN_IF_ERROR(CheckStatementVersion(*req, manifest));
        crypto::SecretMap secrets = ToMap(req->secrets());
        std::map<std::string, std::string> settings = ToMap(req->settings());
        EXPORTD_ASSIGN_OR_RETURN(sdk::Settings resolved,
                                 CheckAgainstManifest(*destination, settings, secrets));
        if (req->test_before_save()) {
          CallRunContext run_context(ctx, deps_.metrics, req->destination_type());
          const absl::Status check = destinations::CheckConnection(
              destinations::ResolvedConnection{destination, std::move(resolved)}, run_context);
          if (!check.ok()) {
            return absl::FailedPreconditionError(absl::StrCat(
                "connection '", req->display_name(),
                "' was not saved: testing it against destination '", manifest.name,
                "' failed: ", DescribeCheck(check),
                "; fix the settings or secrets and try again, or save it untested "
                "(test_before_save false: 'exportctl connection create --no-test', or clear "
                "'Test before saving' in the console) if the destination is not reachable yet"));
          }
        }
        store::StoredConnection stored;
        v1::Connection& c = stored.connection;
        std::int64_t now = NowMicros();
        c.set_id(NewId("conn"));
        c.set_display_name(req->display_name());
        c.set_destination_type(req->destination_type());
        *c.mutable_settings() = req->settings();
        SetSecretNames(secrets, &c);
        c.set_shared_with_contributors(req->shared_with_contributors());
        c.set_consent_accepted_by(who.name);
        c.set_consent_accepted_at_micros(now);
        c.set_consent_statement_version(manifest.privacy_statement_version);
        if (req->add_self_as_export_user()) c.add_export_users(who.name);
        c.set_created_by(who.name);
        c.set_created_at_micros(now);
        c.set_updated_at_micros(now);
        EXPORTD_ASSIGN_OR_RETURN(stored.sealed_secrets, destinations::SealSecrets(c, secrets, *deps_.secrets));
        EXPORTD_RETURN_IF_ERROR(deps_.store->CreateConnection(stored));
        resource = absl::StrCat("connection/", c.id());
        *resp = c;
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ConnectionService::GetConnection(grpc::CallbackServerContext* ctx,
                                                           const v1::GetConnectionRequest* req,
                                                           v1::Connection* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "GetConnection"),
                     auth::Action::kUseConnection, Audit::kNo,
                     [&](const auth::Principal& who, std::string&) -> absl::Status {
                       EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection stored,
                                                ConnectionFor(deps_, who, req->connection()));
                       *resp = std::move(stored.connection);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* ConnectionService::ListConnections(
    grpc::CallbackServerContext* ctx, const v1::ListConnectionsRequest*,
    v1::ListConnectionsResponse* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "ListConnections"),
                     auth::Action::kUseConnection, Audit::kNo,
                     [&](const auth::Principal& who, std::string&) -> absl::Status {
                       EXPORTD_ASSIGN_OR_RETURN(auto all, deps_.store->ListConnections());
                       for (const auto& stored : all) {
                         auto visible =
                             VisibleConnection(who, stored.connection, stored.connection.id());
                         if (visible.ok()) *resp->add_connections() = std::move(*visible);
                       }
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* ConnectionService::UpdateConnection(
    grpc::CallbackServerContext* ctx, const v1::UpdateConnectionRequest* req,
    v1::Connection* resp) {
  return HandleUnary(
      ctx, deps_, absl::StrCat(kService, "UpdateConnection"), auth::Action::kManageConnections,
      Audit::kYes, [&](const auth::Principal& who, std::string& resource) -> absl::Status {
        resource = absl::StrCat("connection/", req->connection());
        EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection stored,
                                 deps_.store->GetConnection(req->connection()));
        v1::Connection& c = stored.connection;
        resource = absl::StrCat("connection/", c.id());
        for (const std::string& user : req->remove_export_users()) {
          auto& users = *c.mutable_export_users();
          auto it = std::find(users.begin(), users.end(), user);
          if (it == users.end()) {
            return absl::NotFoundError(absl::StrCat(
                "remove_export_users: '", user, "' is not an export user of connection '",
                c.display_name(), "' (its export users: ",
                users.empty() ? "none" : absl::StrJoin(users, ", "), ")"));
          }
          users.erase(it);
        }
        if (req->add_self_as_export_user() &&
            std::find(c.export_users().begin(), c.export_users().end(), who.name) ==
                c.export_users().end()) {
          c.add_export_users(who.name);
        }
        if (req->has_display_name()) {
          EXPORTD_RETURN_IF_ERROR(ValidateName("display_name", req->display_name()));
          c.set_display_name(req->display_name());
        }
        for (const auto& [key, value] : req->settings()) {
          if (value.empty()) {
            c.mutable_settings()->erase(key);
          } else {
            (*c.mutable_settings())[key] = value;
          }
        }
        EXPORTD_ASSIGN_OR_RETURN(crypto::SecretMap secrets, destinations::OpenSecrets(stored, *deps_.secrets));
        for (const auto& [key, value] : req->secrets()) secrets[key] = value;
        if (req->has_shared_with_contributors()) {
          c.set_shared_with_contributors(req->shared_with_contributors());
        }
        EXPORTD_ASSIGN_OR_RETURN(sdk::Destination * destination,
                                 deps_.registry->Get(c.destination_type()));
        EXPORTD_RETURN_IF_ERROR(
            CheckAgainstManifest(*destination, ToMap(c.settings()), secrets).status());
        SetSecretNames(secrets, &c);
        c.set_updated_at_micros(NowMicros());
        // Always sealed again, so a value sealed before secrets were bound to
        // their connection is bound from now on.
        EXPORTD_ASSIGN_OR_RETURN(stored.sealed_secrets, destinations::SealSecrets(c, secrets, *deps_.secrets));
        EXPORTD_RETURN_IF_ERROR(deps_.store->UpdateConnection(stored));
        *resp = c;
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ConnectionService::DeleteConnection(
    grpc::CallbackServerContext* ctx, const v1::DeleteConnectionRequest* req,
    v1::DeleteConnectionResponse* resp) {
  return HandleUnary(
      ctx, deps_, absl::StrCat(kService, "DeleteConnection"), auth::Action::kManageConnections,
      Audit::kYes, [&](const auth::Principal&, std::string& resource) -> absl::Status {
        resource = absl::StrCat("connection/", req->connection());
        if (req->detach_exports() && req->delete_exports()) {
          return absl::InvalidArgumentError(
              "detach_exports and delete_exports exclude each other; choose one");
        }
        EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection stored,
                                 deps_.store->GetConnection(req->connection()));
        resource = absl::StrCat("connection/", stored.connection.id());
        auto disposition = req->delete_exports()   ? store::ExportDisposition::kDelete
                           : req->detach_exports() ? store::ExportDisposition::kDetach
                                                   : store::ExportDisposition::kRefuse;
        EXPORTD_ASSIGN_OR_RETURN(
            store::DeleteConnectionResult result,
            deps_.store->DeleteConnection(stored.connection.id(), disposition));
        for (auto& name : result.detached_exports) resp->add_detached_exports(name);
        for (auto& name : result.deleted_exports) resp->add_deleted_exports(name);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ConnectionService::TestConnection(
    grpc::CallbackServerContext* ctx, const v1::TestConnectionRequest* req,
    v1::TestConnectionResponse* resp) {
  return HandleUnary(
      ctx, deps_, absl::StrCat(kService, "TestConnection"), auth::Action::kManageConnections,
      Audit::kNo, [&](const auth::Principal&, std::string&) -> absl::Status {
        EXPORTD_ASSIGN_OR_RETURN(store::StoredConnection stored,
                                 deps_.store->GetConnection(req->connection()));
        EXPORTD_ASSIGN_OR_RETURN(destinations::ResolvedConnection resolved,
                                 destinations::ResolveConnection(stored, *deps_.secrets, *deps_.registry));
        CallRunContext run_context(ctx, deps_.metrics, stored.connection.destination_type());
        const absl::Status check = destinations::CheckConnection(resolved, run_context);
        resp->set_ok(check.ok());
        resp->set_message(check.ok() ? "the destination accepted the connection"
                                     : DescribeCheck(check));
        return absl::OkStatus();
      });
}

}  // namespace exportd::api
