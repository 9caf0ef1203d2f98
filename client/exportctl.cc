#include "client/exportctl.h"

#include <unistd.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/context.h"
#include "exportd/sdk/destination.h"
#include "server/common/terminal_text.h"

#ifndef EXPORTCTL_VERSION
#define EXPORTCTL_VERSION "0.0.0-dev"
#endif

namespace exportd::client {
namespace {

std::vector<cli::FlagSpec> GlobalFlags() {
  return {
      {"server", "HOST:PORT",
       "The exportd server (default: $EXPORTD_SERVER, else 127.0.0.1:50051)."},
      {"token", "TOKEN", "Bearer token (default: $EXPORTD_TOKEN; see Authentication).", false,
       false, 0, /*sensitive=*/true},
      {"token-file", "FILE", "Read the token from FILE (default: $EXPORTD_TOKEN_FILE)."},
      {"tls-ca", "FILE",
       "Use TLS; trust the CA certificate(s) in FILE (default: $EXPORTD_TLS_CA)."},
      {"tls-cert", "FILE",
       "Client certificate for mutual TLS, with --tls-key (default: $EXPORTD_TLS_CERT)."},
      {"tls-key", "FILE", "Private key of --tls-cert (default: $EXPORTD_TLS_KEY)."},
      {"tls-server-name", "NAME",
       "Check exportd's certificate for NAME instead of the --server host (default: "
       "$EXPORTD_TLS_SERVER_NAME)."},
      {"output", "FORMAT", "table (default) or json.", false, false, 'o'},
  };
}

std::vector<cli::FlagSpec> TopLevelFlags() {
  std::vector<cli::FlagSpec> flags = GlobalFlags();
  flags.push_back({"version", "", "Print the exportctl version and the plugin ABI version."});
  return flags;
}

std::string VerbUsage(const NounSpec& noun, const VerbSpec& verb) {
  std::string usage = absl::StrCat("exportctl [global flags] ", noun.name);
  if (!verb.name.empty()) absl::StrAppend(&usage, " ", verb.name);
  for (const std::string& positional : verb.positionals) absl::StrAppend(&usage, " ", positional);
  std::string flags = cli::FormatUsageFlags(verb.flags);
  if (!flags.empty()) absl::StrAppend(&usage, " ", flags);
  return usage;
}

std::string GlobalHelp() {
  std::vector<cli::FlagSpec> help_flags = TopLevelFlags();
  help_flags.push_back({"help", "", "Help for exportctl, a noun or a verb.", false, false, 'h'});
  std::ostringstream help;
  help << "exportctl: the command-line client of exportd, which exports customer segments to\n"
          "marketing destinations.\n\n"
          "Usage: exportctl [global flags] <noun> <verb> [args] [flags]\n\nCommands:\n";
  for (const NounSpec& noun : AllCommands()) {
    std::vector<std::string> verbs;
    for (const VerbSpec& verb : noun.verbs) {
      if (!verb.name.empty()) verbs.push_back(verb.name);
    }
    help << "  " << noun.name << std::string(noun.name.size() < 13 ? 13 - noun.name.size() : 1, ' ')
         << noun.summary << "\n";
    if (!verbs.empty()) help << std::string(15, ' ') << absl::StrJoin(verbs, ", ") << "\n";
  }
  help << "\nGlobal flags (also accepted after the verb):\n"
       << cli::FormatFlagsHelp(help_flags)
       << "\nAuthentication: the token is sent as 'authorization: Bearer <token>'. It comes from\n"
          "--token, else $EXPORTD_TOKEN, else the file named by --token-file or\n"
          "$EXPORTD_TOKEN_FILE, else, for a local server (127.0.0.1 or localhost), the admin\n"
          "token exportd writes on first start: $EXPORTD_DATA_DIR/admin.token or\n"
          "./exportd-data/admin.token.\n"
       << "\nTLS: with --tls-ca (or $EXPORTD_TLS_CA) exportctl connects over TLS and checks\n"
          "exportd's certificate against that CA and the --server host (or --tls-server-name).\n"
          "For mutual TLS add --tls-cert and --tls-key; a server whose tokens file maps the\n"
          "certificate to a principal then needs no token.\n"
       << "\nExit status: 0 success; 1 the server or the input failed; 2 usage error; 3 a watched\n"
          "run ended FAILED or CANCELED.\n"
       << "\nRun 'exportctl <noun> --help' or 'exportctl <noun> <verb> --help' for details.\n";
  return help.str();
}

std::string NounHelp(const NounSpec& noun) {
  if (noun.verbless()) return "";
  std::ostringstream help;
  help << "Usage: exportctl [global flags] " << noun.name << " <verb> [args] [flags]\n\n"
       << noun.summary << "\n\nVerbs:\n";
  Table table({"", ""});
  for (const VerbSpec& verb : noun.verbs) {
    table.AddRow({"  " + verb.name +
                      (verb.positionals.empty() ? "" : " " + absl::StrJoin(verb.positionals, " ")),
                  verb.summary});
  }
  std::ostringstream rows;
  table.Print(rows);
  std::string text = rows.str();
  help << text.substr(text.find('\n') + 1)
       << "\nRun 'exportctl " << noun.name << " <verb> --help' for a verb's flags.\n";
  return help.str();
}

std::string VerbHelp(const NounSpec& noun, const VerbSpec& verb) {
  std::ostringstream help;
  help << "Usage: " << VerbUsage(noun, verb) << "\n\n" << verb.summary << "\n";
  if (!verb.description.empty()) help << "\n" << verb.description << "\n";
  if (!verb.flags.empty()) help << "\nFlags:\n" << cli::FormatFlagsHelp(verb.flags);
  help << "\nGlobal flags: --server HOST:PORT, --token TOKEN, --token-file FILE, "
          "--tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-server-name NAME, "
          "-o/--output table|json (see 'exportctl --help').\n";
  return help.str();
}

const NounSpec* FindNoun(const std::string& name) {
  for (const NounSpec& noun : AllCommands()) {
    if (noun.name == name) return &noun;
  }
  return nullptr;
}

const VerbSpec* FindVerb(const NounSpec& noun, const std::string& name) {
  for (const VerbSpec& verb : noun.verbs) {
    if (verb.name == name) return &verb;
  }
  return nullptr;
}

int Usage(std::ostream& err, absl::string_view message, absl::string_view help_command) {
  err << "error: " << EscapeForTerminal(message) << "\n"
      << "hint: see 'exportctl " << help_command << (help_command.empty() ? "" : " ")
      << "--help'\n";
  return kExitUsage;
}

std::string UnknownWord(absl::string_view kind, const std::string& word,
                        const std::vector<std::string>& known) {
  std::string message = absl::StrCat("unknown ", kind, " '", word, "'");
  std::string suggestion = cli::ClosestMatch(word, known);
  if (!suggestion.empty()) absl::StrAppend(&message, " (did you mean '", suggestion, "'?)");
  absl::StrAppend(&message, "; ", kind, "s: ", absl::StrJoin(known, ", "));
  return message;
}

}  // namespace

const char* ExportctlVersion() { return EXPORTCTL_VERSION; }

const std::vector<NounSpec>& AllCommands() {
  static const std::vector<NounSpec>* const kCommands = new std::vector<NounSpec>{
      ConnectionCommands(),  SegmentCommands(), ExportCommands(), RunCommands(),
      DestinationCommands(), AuditCommands(),   WhoAmICommand(),  StatusCommand(),
      TokenCommands(),
  };
  return *kCommands;
}

int RunExportctl(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err,
                 std::istream& in, const cli::EnvLookup& env) {
  std::vector<std::string> args(argv.begin() + (argv.empty() ? 0 : 1), argv.end());

  // Global flags come before the noun.
  absl::StatusOr<cli::ParsedArgs> global = cli::ParseArgs(args, TopLevelFlags(), {}, true);
  if (!global.ok()) return Usage(err, global.status().message(), "");
  std::vector<std::string> rest = global->positionals();
  bool help = global->help_requested();
  if (!rest.empty() && rest[0] == "help") {  // `exportctl help segment create`
    help = true;
    rest.erase(rest.begin());
  }
  if (global->IsSet("version")) {
    if (global->Get("output") == "json") {
      out << "{\n  \"exportctl_version\": \"" << ExportctlVersion()
          << "\",\n  \"plugin_abi_version\": " << exportd::sdk::kAbiVersion << "\n}\n";
    } else {
      out << "exportctl " << ExportctlVersion() << " (plugin ABI " << exportd::sdk::kAbiVersion
          << ")\n";
    }
    return kExitOk;
  }
  if (rest.empty()) {
    if (help) {
      out << GlobalHelp();
      return kExitOk;
    }
    err << GlobalHelp() << "\n";
    return Usage(err, "missing command", "");
  }

  std::vector<std::string> noun_names;
  for (const NounSpec& noun : AllCommands()) noun_names.push_back(noun.name);
  const NounSpec* noun = FindNoun(rest[0]);
  if (noun == nullptr) return Usage(err, UnknownWord("command", rest[0], noun_names), "");

  const VerbSpec* verb = nullptr;
  size_t verb_args_start = 1;
  if (noun->verbless()) {
    verb = &noun->verbs[0];
  } else {
    std::vector<std::string> verb_names;
    for (const VerbSpec& v : noun->verbs) verb_names.push_back(v.name);
    if (rest.size() < 2 || rest[1] == "--help" || rest[1] == "-h" || rest[1] == "help") {
      if (help || rest.size() >= 2) {
        out << NounHelp(*noun);
        return kExitOk;
      }
      err << NounHelp(*noun) << "\n";
      return Usage(err, absl::StrCat("missing verb for '", noun->name, "'"), noun->name);
    }
    verb = FindVerb(*noun, rest[1]);
    if (verb == nullptr) {
      return Usage(err, UnknownWord(absl::StrCat(noun->name, " verb"), rest[1], verb_names),
                   noun->name);
    }
    verb_args_start = 2;
  }
  const std::string command =
      verb->name.empty() ? noun->name : absl::StrCat(noun->name, " ", verb->name);

  if (help) {  // `exportctl --help segment create`, `exportctl help segment create`
    out << VerbHelp(*noun, *verb);
    return kExitOk;
  }
  // The verb's own flags, plus the global ones (allowed anywhere).
  std::vector<cli::FlagSpec> specs = verb->flags;
  for (cli::FlagSpec& flag : GlobalFlags()) specs.push_back(std::move(flag));
  std::vector<std::string> verb_args(rest.begin() + static_cast<std::ptrdiff_t>(verb_args_start),
                                     rest.end());
  absl::StatusOr<cli::ParsedArgs> parsed = cli::ParseArgs(verb_args, specs, verb->positionals);
  if (!parsed.ok()) return Usage(err, parsed.status().message(), command);
  if (parsed->help_requested()) {
    out << VerbHelp(*noun, *verb);
    return kExitOk;
  }

  auto global_value = [&](const std::string& flag) {
    return parsed->Has(flag) ? parsed->Get(flag) : global->Get(flag);
  };
  OutputFormat format = OutputFormat::kTable;
  const std::string output = global_value("output");
  // A verb's own --json flag (run log) is -o json.
  if (output == "json" || parsed->IsSet("json")) {
    format = OutputFormat::kJson;
  } else if (!output.empty() && output != "table") {
    return Usage(err, absl::StrCat("--output takes table or json, got '", output, "'"), command);
  }
  const std::string server = ResolveServerAddress(global_value("server"), env);
  absl::StatusOr<std::string> token =
      ResolveToken(server, global_value("token"), global_value("token-file"), env);
  if (!token.ok()) return Usage(err, token.status().message(), command);
  if (!global_value("token").empty()) {
    err << "warning: --token on the command line can be read by other local users (ps); set "
           "$EXPORTD_TOKEN or use --token-file FILE instead\n";
  }
  absl::StatusOr<ClientTls> tls =
      ResolveTls(global_value("tls-ca"), global_value("tls-cert"), global_value("tls-key"),
                 global_value("tls-server-name"), env);
  if (!tls.ok()) return Usage(err, tls.status().message(), command);

  const bool tty = &out == &std::cout && isatty(STDOUT_FILENO) == 1;
  CommandContext ctx(out, err, in, tty, server, *std::move(token), format, env, *std::move(tls));
  ctx.set_command(command);
  int code = verb->run(ctx, *parsed);
  out.flush();
  return code;
}

int RunExportctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                 std::istream& in) {
  return RunExportctl(args, out, err, in, cli::ProcessEnv());
}

}  // namespace exportd::client

int RunExportctl(int argc, char** argv, std::ostream& out, std::ostream& err, std::istream& in) {
  std::vector<std::string> args(argv, argv + argc);
  return exportd::client::RunExportctl(args, out, err, in);
}
