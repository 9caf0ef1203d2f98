// The exportctl command table: each noun (connection, segment, export, run,
// destination, audit, whoami, status, token) declares its verbs, their arguments and flags,
// and the handler that runs them. The dispatcher (exportctl.cc) parses the
// command line against these specs and prints help from them, so a verb's
// flags, usage line and --help text can never disagree.
#ifndef EXPORTD_CLIENT_COMMANDS_H_
#define EXPORTD_CLIENT_COMMANDS_H_

#include <string>
#include <vector>

#include "client/cli.h"
#include "client/context.h"
#include "exportd/v1/destination.pb.h"
#include "exportd/v1/run.pb.h"

namespace exportd::client {

// Runs a parsed command; returns the process exit code.
using Handler = int (*)(CommandContext& ctx, const cli::ParsedArgs& args);

struct VerbSpec {
  std::string name;
  // Required positional arguments, e.g. {"NAME"}.
  std::vector<std::string> positionals;
  // One line for lists.
  std::string summary;
  // Paragraphs for --help; may be empty.
  std::string description;
  std::vector<cli::FlagSpec> flags;
  Handler run = nullptr;
};

struct NounSpec {
  std::string name;
  std::string summary;
  // A verbless noun (whoami) has exactly one verb with an empty name.
  std::vector<VerbSpec> verbs;
  bool verbless() const { return verbs.size() == 1 && verbs[0].name.empty(); }
};

NounSpec ConnectionCommands();
NounSpec SegmentCommands();
NounSpec ExportCommands();
NounSpec RunCommands();
NounSpec DestinationCommands();
NounSpec AuditCommands();
NounSpec WhoAmICommand();
NounSpec StatusCommand();
NounSpec TokenCommands();

// Every noun, in help order.
const std::vector<NounSpec>& AllCommands();

// Follows a run's WatchRun stream and prints progress (a redrawn bar on a
// TTY; otherwise one flushed line per state change and at most one progress
// line every few seconds; nothing but the final JSON with --output json), then
// the final state and per-segment counts. Returns 0 when the run succeeded
// (with or without rejections) or was skipped, kExitRunFailed when it failed or
// was canceled, 130 after Ctrl-C (the run goes on; the message says how to
// cancel it). Shared by `export run --watch` and
// `run watch`.
int WatchRun(CommandContext& ctx, const std::string& run_id);

// Prints a run's state and per-segment counts (table output).
void PrintRunDetails(CommandContext& ctx, const exportd::v1::Run& run);

// Prints the destination's data privacy and compliance statement in full, with
// its version: a heading line, then each paragraph indented and wrapped.
// Shared by `destination get` and `connection create` (which shows it when
// --accept-privacy-terms is missing).
void PrintPrivacyStatement(std::ostream& out, const exportd::v1::Destination& destination);

}  // namespace exportd::client

#endif  // EXPORTD_CLIENT_COMMANDS_H_
