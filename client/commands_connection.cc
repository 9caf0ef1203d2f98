// exportctl connection create|list|get|update|delete|test
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "exportd/v1/connection.grpc.pb.h"
#include "exportd/v1/destination.grpc.pb.h"

namespace exportd::client {
namespace {

using exportd::v1::ConnectionService;
using exportd::v1::DestinationService;

// Applies every --setting K=V.
absl::Status CollectSettings(const cli::ParsedArgs& args,
                             google::protobuf::Map<std::string, std::string>* settings) {
  for (const std::string& text : args.GetAll("setting")) {
    absl::StatusOr<std::pair<std::string, std::string>> kv = cli::ParseKeyValue("setting", text);
    if (!kv.ok()) return kv.status();
    (*settings)[kv->first] = kv->second;
  }
  return absl::OkStatus();
}

// Applies every --secret K=V|K=@FILE|K=env:VAR. A value written out on the
// command line gets a warning: other local users can read command lines.
absl::Status CollectSecrets(CommandContext& ctx, const cli::ParsedArgs& args,
                            google::protobuf::Map<std::string, std::string>* secrets) {
  std::vector<std::string> literal;
  for (const std::string& text : args.GetAll("secret")) {
    absl::StatusOr<std::pair<std::string, std::string>> kv = cli::ParseSecretFlag(text);
    if (!kv.ok()) return kv.status();
    if (cli::IsLiteralSecretValue(kv->second)) literal.push_back(kv->first);
    absl::StatusOr<std::string> value =
        cli::ResolveSecretValue(kv->first, kv->second, ctx.in(), ctx.env());
    if (!value.ok()) return value.status();
    (*secrets)[kv->first] = *std::move(value);
  }
  if (!literal.empty()) {
    PrintLine(ctx.err(),
              "warning: --secret $0: a value on the command line can be read by other local "
              "users (ps); write NAME=env:VAR or NAME=@FILE (@- reads standard input) instead",
              absl::StrJoin(literal, ", "));
  }
  return absl::OkStatus();
}

std::string SettingsSummary(const exportd::v1::Connection& connection) {
  std::map<std::string, std::string> sorted(connection.settings().begin(),
                                            connection.settings().end());
  return absl::StrJoin(sorted, ", ", absl::PairFormatter("="));
}

// "alice at 2026-12-01 10:00:00 UTC, statement version 2026-12-01"; "-" when
// nobody's consent is shown (a contributor's view).
std::string ConsentSummary(const exportd::v1::Connection& c) {
  if (c.consent_accepted_by().empty()) return "";  // Not shown (PrintDetails skips it).
  return absl::StrCat(c.consent_accepted_by(), " at ", FormatTime(c.consent_accepted_at_micros()),
                      ", statement version ",
                      c.consent_statement_version().empty() ? "not recorded (created before "
                                                              "exportd kept it)"
                                                            : c.consent_statement_version());
}

void PrintConnection(CommandContext& ctx, const exportd::v1::Connection& c) {
  if (ctx.json()) {
    ctx.out() << ToJson(c);
    return;
  }
  // A contributor sees a connection's name and type only: what the server
  // leaves out is left out here too (PrintDetails skips empty values).
  PrintDetails(ctx.out(),
               {{"Name", c.display_name()},
                {"ID", c.id()},
                {"Type", c.destination_type()},
                {"Settings", SettingsSummary(c)},
                {"Secrets set", absl::StrJoin(c.secret_names(), ", ")},
                {"Shared with contributors", c.shared_with_contributors() ? "yes" : "no"},
                {"Consent", ConsentSummary(c)},
                {"Export users", absl::StrJoin(c.export_users(), ", ")},
                {"Created by", c.created_by()},
                {"Created", FormatTimeIfSet(c.created_at_micros())},
                {"Updated", FormatTimeIfSet(c.updated_at_micros())}});
}

int Create(CommandContext& ctx, const cli::ParsedArgs& args) {
  exportd::v1::CreateConnectionRequest request;
  request.set_display_name(args.Get("name"));
  request.set_destination_type(args.Get("type"));
  const bool accepted = args.IsSet("accept-privacy-terms");
  // The statement agreed to is the one the destination shows now, unless the
  // caller names the version it read (the server refuses it once it changed).
  std::string version = args.Get("privacy-statement-version");
  if (!accepted || version.empty()) {
    auto destinations = DestinationService::NewStub(ctx.channel());
    exportd::v1::GetDestinationRequest get;
    get.set_name(request.destination_type());
    exportd::v1::Destination destination;
    grpc::Status status = Invoke(ctx, destinations.get(), &DestinationService::Stub::GetDestination,
                                 get, &destination);
    if (!status.ok()) return ctx.RpcError(status);
    if (!accepted) {
      if (!ctx.json()) PrintPrivacyStatement(ctx.out(), destination);
      return ctx.UsageError(absl::StrCat(
          "connection '", request.display_name(),
          "' was not created: creating it needs your agreement to the data privacy and "
          "compliance statement of destination '",
          destination.name(), "' (version ", destination.privacy_statement_version(),
          ctx.json() ? "; 'exportctl destination get " + destination.name() + "' shows it"
                     : ", above",
          "); pass --accept-privacy-terms to agree to it"));
    }
    version = destination.privacy_statement_version();
  }
  if (absl::Status s = CollectSettings(args, request.mutable_settings()); !s.ok()) {
    return ctx.UsageError(s.message());
  }
  if (absl::Status s = CollectSecrets(ctx, args, request.mutable_secrets()); !s.ok()) {
    return ctx.UsageError(s.message());
  }
  request.set_shared_with_contributors(args.IsSet("share-with-contributors"));
  request.set_add_self_as_export_user(args.IsSet("add-self-as-export-user"));
  request.set_accept_privacy_terms(true);
  request.set_privacy_statement_version(version);
  // The server tests the connection before it saves it (and says what failed).
  request.set_test_before_save(!args.IsSet("no-test"));

  auto stub = ConnectionService::NewStub(ctx.channel());
  exportd::v1::Connection connection;
  grpc::Status status =
      Invoke(ctx, stub.get(), &ConnectionService::Stub::CreateConnection, request, &connection);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(connection);
  } else {
    PrintLine(ctx.out(), "Created connection '$0' (id $1, type $2).", connection.display_name(),
              connection.id(), connection.destination_type());
    PrintLine(ctx.out(), "$0",
              request.test_before_save() ? "Tested: the destination accepted it."
                                         : "Not tested (--no-test): 'exportctl connection test " +
                                               connection.display_name() + "' tests it.");
    PrintLine(ctx.out(), "You agreed to the data privacy and compliance statement version $0.",
              connection.consent_statement_version());
  }
  return kExitOk;
}

int List(CommandContext& ctx, const cli::ParsedArgs&) {
  auto stub = ConnectionService::NewStub(ctx.channel());
  exportd::v1::ListConnectionsResponse response;
  grpc::Status status = Invoke(ctx, stub.get(), &ConnectionService::Stub::ListConnections,
                               exportd::v1::ListConnectionsRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(response);
    return kExitOk;
  }
  Table table({"NAME", "ID", "TYPE", "SHARED", "SETTINGS", "SECRETS", "CREATED"});
  for (const auto& c : response.connections()) {
    table.AddRow({c.display_name(), c.id(), c.destination_type(),
                  c.shared_with_contributors() ? "yes" : "no",
                  c.settings().empty() ? "-" : SettingsSummary(c),
                  c.secret_names().empty() ? "-" : absl::StrJoin(c.secret_names(), ","),
                  FormatTime(c.created_at_micros())});
  }
  table.Print(ctx.out());
  return kExitOk;
}

int Get(CommandContext& ctx, const cli::ParsedArgs& args) {
  auto stub = ConnectionService::NewStub(ctx.channel());
  exportd::v1::GetConnectionRequest request;
  request.set_connection(args.positionals()[0]);
  exportd::v1::Connection connection;
  grpc::Status status =
      Invoke(ctx, stub.get(), &ConnectionService::Stub::GetConnection, request, &connection);
  if (!status.ok()) return ctx.RpcError(status);
  PrintConnection(ctx, connection);
  return kExitOk;
}

int Update(CommandContext& ctx, const cli::ParsedArgs& args) {
  exportd::v1::UpdateConnectionRequest request;
  request.set_connection(args.positionals()[0]);
  if (args.Has("name")) request.set_display_name(args.Get("name"));
  if (absl::Status s = CollectSettings(args, request.mutable_settings()); !s.ok()) {
    return ctx.UsageError(s.message());
  }
  if (absl::Status s = CollectSecrets(ctx, args, request.mutable_secrets()); !s.ok()) {
    return ctx.UsageError(s.message());
  }
  if (std::optional<bool> share = args.GetBool("share-with-contributors")) {
    request.set_shared_with_contributors(*share);
  }
  request.set_add_self_as_export_user(args.IsSet("add-self-as-export-user"));
  for (const std::string& user : args.GetAll("remove-export-user")) {
    request.add_remove_export_users(user);
  }
  if (!request.has_display_name() && request.settings().empty() && request.secrets().empty() &&
      !request.has_shared_with_contributors() && !request.add_self_as_export_user() &&
      request.remove_export_users().empty()) {
    return ctx.UsageError(
        "nothing to update: pass --name, --setting, --secret, --share-with-contributors, "
        "--add-self-as-export-user or --remove-export-user");
  }
  auto stub = ConnectionService::NewStub(ctx.channel());
  exportd::v1::Connection connection;
  grpc::Status status =
      Invoke(ctx, stub.get(), &ConnectionService::Stub::UpdateConnection, request, &connection);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(connection);
  } else {
    PrintLine(ctx.out(), "Updated connection '$0'.", connection.display_name());
  }
  return kExitOk;
}

int Delete(CommandContext& ctx, const cli::ParsedArgs& args) {
  if (args.IsSet("detach-exports") && args.IsSet("delete-exports")) {
    return ctx.UsageError("--detach-exports and --delete-exports exclude each other");
  }
  exportd::v1::DeleteConnectionRequest request;
  request.set_connection(args.positionals()[0]);
  request.set_detach_exports(args.IsSet("detach-exports"));
  request.set_delete_exports(args.IsSet("delete-exports"));
  auto stub = ConnectionService::NewStub(ctx.channel());
  exportd::v1::DeleteConnectionResponse response;
  grpc::Status status =
      Invoke(ctx, stub.get(), &ConnectionService::Stub::DeleteConnection, request, &response);
  if (!status.ok()) {
    int code = ctx.RpcError(status);
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      ctx.err() << "hint: pass --detach-exports (exports stay, inactive) or --delete-exports.\n";
    }
    return code;
  }
  if (ctx.json()) {
    ctx.out() << ToJson(response);
    return kExitOk;
  }
  PrintLine(ctx.out(), "Deleted connection '$0'.", request.connection());
  if (!response.detached_exports().empty()) {
    PrintLine(ctx.out(), "Detached exports (now inactive): $0",
              absl::StrJoin(response.detached_exports(), ", "));
  }
  if (!response.deleted_exports().empty()) {
    PrintLine(ctx.out(), "Deleted exports: $0", absl::StrJoin(response.deleted_exports(), ", "));
  }
  return kExitOk;
}

int Test(CommandContext& ctx, const cli::ParsedArgs& args) {
  exportd::v1::TestConnectionRequest request;
  request.set_connection(args.positionals()[0]);
  auto stub = ConnectionService::NewStub(ctx.channel());
  exportd::v1::TestConnectionResponse response;
  grpc::Status status =
      Invoke(ctx, stub.get(), &ConnectionService::Stub::TestConnection, request, &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(response);
  } else if (response.ok()) {
    PrintLine(ctx.out(), "Connection '$0' works$1", request.connection(),
              response.message().empty() ? "" : ": " + response.message());
  } else {
    PrintLine(ctx.err(), "error: connection '$0' failed its test: $1", request.connection(),
              response.message());
  }
  return response.ok() ? kExitOk : kExitError;
}

const cli::FlagSpec kSettingFlag = {"setting", "KEY=VALUE",
                                    "A non-secret setting of the destination.", false, true};
const cli::FlagSpec kSecretFlag = {
    "secret",
    "KEY=VALUE",
    "A secret setting (e.g. api_key). VALUE may be @FILE (the file's contents), @- (stdin) or "
    "env:VAR (an environment variable), so the secret stays out of your shell history and out "
    "of the process list; a value written out works but prints a warning.",
    false,
    true,
    0,
    /*sensitive=*/true};

}  // namespace

NounSpec ConnectionCommands() {
  return {
      "connection",
      "Destination credentials and settings (admins).",
      {
          {"create",
           {},
           "Create a connection.",
           "Creates a connection to a destination account. Secrets are write-only: the server "
           "never returns them.\n\n"
           "Without --accept-privacy-terms nothing is created: the destination's data privacy "
           "and compliance statement is printed in full (also 'exportctl destination get TYPE'), "
           "and --accept-privacy-terms agrees to it. The connection records the statement's "
           "version.\n\n"
           "The server tests the connection against the destination before it saves it (as "
           "'connection test' does) and saves nothing when the test fails, saying why (e.g. the "
           "API key was refused); --no-test saves it untested.\n\n"
           "Example:\n  exportctl connection create --name \"Iterable prod\" --type iterable \\\n"
           "    --secret api_key=env:ITERABLE_API_KEY --accept-privacy-terms",
           {{"name", "NAME", "Display name, unique.", true},
            {"type", "TYPE", "Destination type, e.g. iterable (see 'exportctl destination list').",
             true},
            kSettingFlag,
            kSecretFlag,
            {"share-with-contributors", "", "Let contributors use the connection (default: admins only)."},
            {"add-self-as-export-user", "",
             "Add yourself as an export user: scheduled and run-all runs of its exports run "
             "with the authority of its first export user who may still use it."},
            {"accept-privacy-terms", "",
             "Agree to the destination's data privacy and compliance statement (required; "
             "without it the statement is printed and nothing is created)."},
            {"privacy-statement-version", "VERSION",
             "The statement version you read and agree to (default: the current one); the "
             "server refuses it if the statement changed since."},
            {"no-test", "",
             "Save without testing the connection against the destination first (for a "
             "destination not reachable yet)."}},
           Create},
          {"list", {}, "List connections.", "", {}, List},
          {"get", {"NAME"}, "Show one connection (by name or id).", "", {}, Get},
          {"update",
           {"NAME"},
           "Rename, change settings, rotate secrets, sharing or export users.",
           "Settings given are set; an empty value (--setting key=) removes a setting.\n\n"
           "Export users: scheduled, system-refresh and run-all runs of the connection's "
           "exports run with the authority of the first export user who still holds a token "
           "with a role that may use the connection; when none does, those runs end SKIPPED "
           "saying why. Without export users they run with exportd's own authority.",
           {{"name", "NEW_NAME", "New display name."},
            kSettingFlag,
            kSecretFlag,
            {"share-with-contributors", "", "true or false: whether contributors may use it."},
            {"add-self-as-export-user", "",
             "Add yourself as an export user: scheduled and run-all runs of its exports run "
             "with the authority of its first export user who may still use it."},
            {"remove-export-user", "PRINCIPAL", "Remove an export user.", false, true}},
           Update},
          {"delete",
           {"NAME"},
           "Delete a connection.",
           "A connection used by exports is only deleted with --detach-exports (the exports stay, "
           "inactive) or --delete-exports.",
           {{"detach-exports", "", "Detach the exports that use it."},
            {"delete-exports", "", "Delete the exports that use it."}},
           Delete},
          {"test",
           {"NAME"},
           "Check the connection against the destination.",
           "Makes a real, cheap call to the destination; exits 1 when it fails.",
           {},
           Test},
      }};
}

}  // namespace exportd::client
