// Command-line parsing for exportctl: CLI11 reads the command line against a
// table of flag specs, plus parsers for the structured flag values exportctl
// takes (K=V settings, secrets, NAME:TYPE fields, DEST=FIELD mappings).
//
// The FlagSpec tables stay although CLI11 parses: each command declares its
// flags as data (commands_*.cc), ParseArgs builds a CLI::App from them, and one
// place (FormatFlagsHelp, FormatUsageFlags) formats every help text from the
// same data, so a verb's flags, usage line and --help cannot disagree.
//
// Environment fallbacks ($EXPORTD_SERVER, $EXPORTD_TOKEN, $EXPORTD_TLS_*) are
// not CLI11's envname(): it reads the process environment with getenv, which
// tests cannot inject (EnvLookup), and it cannot tell a --token typed on the
// command line (warned about) from one in the environment. They stay in
// client/context.h (ResolveServerAddress, ResolveToken, ResolveTls).
//
// Usage:
//
//   const std::vector<FlagSpec> kFlags = {
//       {"name", "NAME", "The segment's name.", /*required=*/true},
//       {"field", "NAME:TYPE", "Types a CSV column.", false, /*repeated=*/true},
//       {"dry-run", "", "Only compute what would be sent."},  // boolean
//   };
//   absl::StatusOr<ParsedArgs> args = ParseArgs(tokens, kFlags, {"NAME"});
//   if (!args.ok()) { ... usage error: args.status().message() ... }
//   std::string name = args->Get("name");
//
// Every error returned here is a usage error: its message says which flag or
// argument was wrong and why, ready to print after "error: ".
#ifndef EXPORTD_CLIENT_CLI_H_
#define EXPORTD_CLIENT_CLI_H_

#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "client/field_type.h"

#include "absl/status/statusor.h"
#include "exportd/v1/common.pb.h"
#include "exportd/v1/export.pb.h"

namespace exportd::cli {

// One flag a command accepts, written `--name VALUE` or `--name=VALUE`.
struct FlagSpec {
  // Without the leading dashes, e.g. "from-csv".
  std::string name;
  // What the value is called in help text, e.g. "FILE". Empty: a boolean flag,
  // written `--name` (true), `--name=true|false` or `--name true|false`; the
  // next argument is its value only when it is exactly "true" or "false".
  std::string value_name;
  std::string help;
  bool required = false;
  // May be given more than once; every value is kept, in order.
  bool repeated = false;
  // A one-letter alias, e.g. 'o' for `-o json`. 0: none.
  char short_name = 0;
  // The value may hold a secret (--secret, --token): an argument that follows
  // it and is not expected is refused without being shown, since it may be
  // the rest of the secret (`--secret api_key s3cr3t`).
  bool sensitive = false;
};

// The flags and positional arguments of one command line, after parsing.
class ParsedArgs {
 public:
  // True when the flag was given (for a boolean, with any value).
  bool Has(absl::string_view flag) const;
  // The flag's last value, or `fallback` when it was not given.
  std::string Get(absl::string_view flag, absl::string_view fallback = "") const;
  // Every value of a repeated flag, in the order given; empty when absent.
  const std::vector<std::string>& GetAll(absl::string_view flag) const;
  // A boolean flag: nullopt when absent, else its value (`--x` is true).
  std::optional<bool> GetBool(absl::string_view flag) const;
  // A boolean flag that defaults to false.
  bool IsSet(absl::string_view flag) const { return GetBool(flag).value_or(false); }

  const std::vector<std::string>& positionals() const { return positionals_; }
  // True when --help or -h appeared before any `--`.
  bool help_requested() const { return help_requested_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>&,
                                              const std::vector<FlagSpec>&,
                                              const std::vector<std::string>&, bool);
  std::map<std::string, std::vector<std::string>, std::less<>> flags_;
  std::vector<std::string> positionals_;
  bool help_requested_ = false;
};

// Parses `args` against `specs`. `positional_names` names the required
// positional arguments in order (e.g. {"NAME"}); more or fewer is an error.
// When `stop_at_first_positional` is set, parsing stops at the first argument
// that is not a flag, and it and everything after it are returned as
// positionals unparsed (used for the global flags before the noun).
//
// When --help is given, required flags and positionals are not checked, so
// that `exportctl segment create --help` always shows help.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs,
                                     const std::vector<std::string>& positional_names,
                                     bool stop_at_first_positional = false);

// The "Flags:" block of a help text: one aligned line per flag.
std::string FormatFlagsHelp(const std::vector<FlagSpec>& specs);
// The flags part of a usage line, e.g. "--name NAME [--field NAME:TYPE]...".
std::string FormatUsageFlags(const std::vector<FlagSpec>& specs);

// The candidate closest to `word` by edit distance, or "" when none is close
// enough to be a plausible typo.
std::string ClosestMatch(absl::string_view word, const std::vector<std::string>& candidates);

// --- Structured flag values --------------------------------------------------

// "KEY=VALUE" → {KEY, VALUE}. The key must be non-empty; the value may be
// empty and may contain '='. `flag` names the flag in error messages.
absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(absl::string_view flag,
                                                                  absl::string_view text);
// The same for `--secret NAME=VALUE`, except that an error never shows the
// text: without "NAME=", what was given may be the secret itself.
absl::StatusOr<std::pair<std::string, std::string>> ParseSecretFlag(absl::string_view text);

// Reads environment variables; injectable for tests.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
// The process environment.
EnvLookup ProcessEnv();

// Resolves a secret's value as given to `--secret KEY=VALUE`:
//   "@FILE"     the file's contents, without one trailing newline;
//   "@-"        standard input (`in`), without one trailing newline;
//   "env:VAR"   the environment variable VAR, which must be set;
//   anything else, the text itself.
absl::StatusOr<std::string> ResolveSecretValue(absl::string_view key, absl::string_view value,
                                               std::istream& in, const EnvLookup& env);
// True when ResolveSecretValue takes `value` as the secret itself (not @FILE,
// @- or env:VAR) and it is not empty: the secret is then on the command line,
// where other local users can read it (ps, /proc/PID/cmdline).
bool IsLiteralSecretValue(absl::string_view value);

// "DEST=FIELD" → a mapping of destination field DEST from profile field FIELD.
absl::StatusOr<exportd::v1::FieldMapping> ParseMapping(absl::string_view text);

// A positive count, e.g. for --limit.
absl::StatusOr<int> ParsePositiveInt(absl::string_view flag, absl::string_view text);

// "true/false/yes/no/1/0" (any case) → bool; nullopt otherwise.
std::optional<bool> ParseBool(absl::string_view text);

}  // namespace exportd::cli

#endif  // EXPORTD_CLIENT_CLI_H_
