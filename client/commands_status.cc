// exportctl status
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "exportd/v1/server.grpc.pb.h"

namespace exportd::client {
namespace {

using exportd::v1::ServerService;

int Status(CommandContext& ctx, const cli::ParsedArgs&) {
  auto stub = ServerService::NewStub(ctx.channel());
  exportd::v1::ServerStatus status;
  grpc::Status rpc = Invoke(ctx, stub.get(), &ServerService::Stub::GetServerStatus,
                            exportd::v1::GetServerStatusRequest(), &status);
  if (!rpc.ok()) return ctx.RpcError(rpc);
  if (ctx.json()) {
    ctx.out() << ToJson(status);
    return kExitOk;
  }
  std::vector<std::string> destinations;
  for (const auto& d : status.destinations()) {
    destinations.push_back(absl::StrCat(d.name(), " ", d.version()));
  }
  std::string queued = FormatCount(status.queued_runs());
  if (status.queued_runs() > 0) {
    absl::StrAppend(&queued, " (oldest waiting ", FormatDuration(status.oldest_queued_age_seconds()),
                    ")");
  }
  PrintDetails(ctx.out(),
               {{"Server", ctx.server()},
                {"Version", absl::StrCat(status.version(), " (plugin ABI ",
                                         status.plugin_abi_version(), ")")},
                {"Store", absl::StrCat(status.store_kind(), " ", status.store_location())},
                {"Replica", status.replica()},
                {"Destinations", destinations.empty() ? "none" : absl::StrJoin(destinations, ", ")},
                {"Queued runs", queued}});
  ctx.out() << "\nRuns in progress:";
  if (status.runs_in_progress().empty()) {
    ctx.out() << " none\n";
  } else {
    ctx.out() << "\n";
    Table runs({"  RUN", "EXPORT", "STATE", "REPLICA"});
    for (const auto& r : status.runs_in_progress()) {
      runs.AddRow({"  " + r.run_id(), r.export_name(), RunStateLabel(r.state()),
                   r.replica().empty() ? "-" : r.replica()});
    }
    runs.Print(ctx.out());
  }
  ctx.out() << "\nNext scheduled runs:";
  if (status.next_scheduled_runs().empty()) {
    ctx.out() << " none\n";
  } else {
    ctx.out() << "\n";
    Table next({"  EXPORT", "AT"});
    for (const auto& s : status.next_scheduled_runs()) {
      next.AddRow({"  " + s.export_name(), FormatTime(s.at_micros())});
    }
    next.Print(ctx.out());
  }
  return kExitOk;
}

}  // namespace

NounSpec StatusCommand() {
  const char* summary =
      "Show the server's version, store, replica, destinations, runs in progress and queued, "
      "and the next scheduled runs.";
  return {"status",
          summary,
          {{"",
            {},
            summary,
            "Any role may ask. The store is shown without a user name or password: the SQLite "
            "file, or the PostgreSQL database and host. Runs in progress and queued are those "
            "of every replica that shares the store.",
            {},
            Status}}};
}

}  // namespace exportd::client
