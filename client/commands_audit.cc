// exportctl audit list, exportctl whoami
#include <string>

#include "client/commands.h"
#include "exportd/v1/audit.grpc.pb.h"

namespace exportd::client {
namespace {

using exportd::v1::AuditService;

constexpr int kDefaultAuditLimit = 50;

int List(CommandContext& ctx, const cli::ParsedArgs& args) {
  int limit = kDefaultAuditLimit;
  if (args.Has("limit")) {
    absl::StatusOr<int> parsed = cli::ParsePositiveInt("limit", args.Get("limit"));
    if (!parsed.ok()) return ctx.UsageError(parsed.status().message());
    limit = *parsed;
  }
  auto stub = AuditService::NewStub(ctx.channel());
  exportd::v1::ListAuditEntriesRequest request;
  exportd::v1::ListAuditEntriesResponse all;
  while (all.entries_size() < limit) {
    request.set_page_size(std::min(limit - all.entries_size(), 1000));
    exportd::v1::ListAuditEntriesResponse page;
    grpc::Status status =
        Invoke(ctx, stub.get(), &AuditService::Stub::ListAuditEntries, request, &page);
    if (!status.ok()) return ctx.RpcError(status);
    for (auto& entry : *page.mutable_entries()) {
      if (all.entries_size() == limit) break;
      *all.add_entries() = std::move(entry);
    }
    all.set_next_page_token(page.next_page_token());
    if (page.next_page_token().empty() || page.entries().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (ctx.json()) {
    ctx.out() << ToJson(all);
    return kExitOk;
  }
  Table table({"TIME", "PRINCIPAL", "ROLE", "METHOD", "RESOURCE", "OUTCOME", "MESSAGE"});
  for (const auto& e : all.entries()) {
    std::string method = e.method();
    // "/exportd.v1.ConnectionService/CreateConnection" → "ConnectionService/CreateConnection".
    if (method.rfind("/exportd.v1.", 0) == 0) method = method.substr(12);
    table.AddRow({FormatTime(e.time_micros()), e.principal(),
                  EnumLabel(exportd::v1::Role_descriptor(), e.role()), method, e.resource(),
                  e.outcome(), e.message()});
  }
  table.Print(ctx.out());
  return kExitOk;
}

int WhoAmI(CommandContext& ctx, const cli::ParsedArgs&) {
  auto stub = AuditService::NewStub(ctx.channel());
  exportd::v1::WhoAmIResponse response;
  grpc::Status status = Invoke(ctx, stub.get(), &AuditService::Stub::WhoAmI,
                               exportd::v1::WhoAmIRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.out() << ToJson(response);
  } else {
    PrintDetails(ctx.out(), {{"Principal", response.principal()},
                             {"Role", EnumLabel(exportd::v1::Role_descriptor(), response.role())},
                             {"Server", ctx.server()}});
  }
  return kExitOk;
}

}  // namespace

NounSpec AuditCommands() {
  return {"audit",
          "The audit trail of every change (admins).",
          {
              {"list",
               {},
               "List audit entries, newest first.",
               "",
               {{"limit", "N", "At most N entries (default 50)."}},
               List},
          }};
}

NounSpec WhoAmICommand() {
  return {"whoami", "Show who the token authenticates as, and the role.",
          {{"", {}, "Show who the token authenticates as, and the role.", "", {}, WhoAmI}}};
}

}  // namespace exportd::client
