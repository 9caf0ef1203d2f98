#include "client/cli.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "CLI/CLI.hpp"

namespace exportd::cli {
namespace {

bool IsFlagLike(absl::string_view arg) { return arg.size() > 1 && arg[0] == '-'; }

// CLI11 2.1 cannot express two things exportctl's flags do, so they are
// rewritten before CLI11 sees the arguments:
// - A boolean flag's value as the next argument, taken only when that is a
//   boolean word (`--watch false`; `--watch NAME` leaves NAME a positional).
//   CLI11's optional value (`expected(0, 1)`) takes any next word, so
//   `--flag true|false` is joined into `--flag=true|false`.
// - An empty inline value: CLI11 reads `--notify-url=` as `--notify-url` and
//   takes the next argument as its value; it becomes `--notify-url ""`.
// `spec_of` gives the spec of a flag as written ("--name=x", "-o"), or null.
std::vector<std::string> JoinInlineValues(
    const std::vector<std::string>& args, bool stop_at_first_positional,
    const std::function<const FlagSpec*(const std::string&)>& spec_of) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--" || (!IsFlagLike(arg) && stop_at_first_positional)) {
      out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    out.push_back(arg);
    const FlagSpec* spec = IsFlagLike(arg) ? spec_of(arg) : nullptr;
    const size_t eq = arg.find('=');
    if (spec == nullptr || (i + 1 == args.size() && eq != arg.size() - 1)) continue;
    if (spec->value_name.empty()) {
      if (eq == std::string::npos && (args[i + 1] == "true" || args[i + 1] == "false")) {
        out.back() = absl::StrCat("--", spec->name, "=", args[++i]);
      }
    } else if (eq == arg.size() - 1) {
      out.back().pop_back();
      out.emplace_back();
    } else if (eq == std::string::npos) {
      out.push_back(args[++i]);  // the flag's value, whatever it looks like
    }
  }
  return out;
}

absl::Status UnknownFlag(absl::string_view written, const std::vector<FlagSpec>& specs) {
  written = written.substr(0, written.find('='));  // what follows '=' may be a secret
  std::string hint;
  if (written[1] != '-' && written.size() > 2) {
    hint = absl::StrCat(" (long flags take two dashes, e.g. -", written, ")");
  } else {
    std::vector<std::string> names;
    for (const FlagSpec& spec : specs) names.push_back(spec.name);
    std::string closest = ClosestMatch(written.substr(written[1] == '-' ? 2 : 1), names);
    if (!closest.empty()) hint = absl::StrCat(" (did you mean --", closest, "?)");
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown flag ", written, hint));
}

// Strips one trailing "\n" or "\r\n": files written by editors and `echo` end
// with a newline that is not part of the secret.
void StripTrailingNewline(std::string& text) {
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
}

}  // namespace

bool ParsedArgs::Has(absl::string_view flag) const { return flags_.find(flag) != flags_.end(); }

std::string ParsedArgs::Get(absl::string_view flag, absl::string_view fallback) const {
  auto it = flags_.find(flag);
  if (it == flags_.end() || it->second.empty()) return std::string(fallback);
  return it->second.back();
}

const std::vector<std::string>& ParsedArgs::GetAll(absl::string_view flag) const {
  static const std::vector<std::string>* const kEmpty = new std::vector<std::string>();
  auto it = flags_.find(flag);
  return it == flags_.end() ? *kEmpty : it->second;
}

std::optional<bool> ParsedArgs::GetBool(absl::string_view flag) const {
  auto it = flags_.find(flag);
  if (it == flags_.end() || it->second.empty()) return std::nullopt;
  // Values were validated by ParseArgs.
  return ParseBool(it->second.back()).value_or(true);
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs,
                                     const std::vector<std::string>& positional_names,
                                     bool stop_at_first_positional) {
  // CLI11 reads the command line; what follows only words its findings as
  // exportctl's usage errors ("missing required flag --name NAME").
  CLI::App app;
  std::vector<CLI::Option*> options;  // options[i] is specs[i]
  try {
    for (const FlagSpec& spec : specs) {
      const std::string names = spec.short_name == 0
                                    ? absl::StrCat("--", spec.name)
                                    : absl::StrCat("-", std::string(1, spec.short_name), ",--",
                                                   spec.name);
      CLI::Option* option = spec.value_name.empty() ? app.add_flag(names, spec.help)
                                                    : app.add_option(names, spec.help);
      // Every value is kept; a repeat of a flag that is not `repeated` is worded below.
      options.push_back(option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll));
      if (spec.required) option->required();
    }
  } catch (const CLI::Error& e) {  // a duplicate or malformed name in a command's table
    return absl::InternalError(absl::StrCat("exportctl's flag table: ", e.what()));
  }
  auto spec_of = [&](const CLI::Option* option) -> const FlagSpec* {
    auto it = std::find(options.begin(), options.end(), option);
    return it == options.end() ? nullptr : &specs[static_cast<size_t>(it - options.begin())];
  };
  // The global flags stop at the noun, leaving the rest in remaining().
  // Otherwise one catch-all positional keeps every positional in order.
  CLI::Option* positionals = nullptr;
  if (stop_at_first_positional) {
    app.prefix_command();
  } else {
    positionals = app.add_option("ARGS")->expected(0, -1)->allow_extra_args(true);
  }

  const std::vector<std::string> joined =
      JoinInlineValues(args, stop_at_first_positional, [&](const std::string& arg) {
        return spec_of(app.get_option_no_throw(arg.substr(0, arg.find('='))));
      });
  std::vector<std::string> reversed(joined.rbegin(), joined.rend());
  ParsedArgs parsed;
  bool missing_required = false, missing_value = false;
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {  // thrown before required flags are checked
    parsed.help_requested_ = true;
  } catch (const CLI::RequiredError&) {
    missing_required = true;
  } catch (const CLI::ArgumentMismatch&) {
    // While reading, only for a flag that needs a value and is the last argument.
    missing_value = true;
  } catch (const CLI::ExtrasError&) {
    // Unknown flags, and the top-level "--" that CLI11 keeps: see remaining().
  } catch (const CLI::Error& e) {
    return absl::InvalidArgumentError(e.what());
  }

  std::vector<std::string> rest = app.remaining();
  if (!rest.empty() && rest[0] == "--") rest.erase(rest.begin());
  if (!stop_at_first_positional) rest.erase(std::remove(rest.begin(), rest.end(), "--"), rest.end());
  if (!rest.empty() && IsFlagLike(rest[0])) return UnknownFlag(rest[0], specs);
  parsed.positionals_ = stop_at_first_positional ? std::move(rest) : positionals->results();
  if (const FlagSpec* spec = missing_value ? spec_of(app.get_option_no_throw(joined.back()))
                                           : nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("flag --", spec->name, " needs a value (", spec->value_name, ")"));
  }
  const FlagSpec* missing = nullptr;  // the first required flag not given
  for (size_t i = 0; i < specs.size(); ++i) {
    const FlagSpec& spec = specs[i];
    if (options[i]->count() == 0) {
      if (missing_required && spec.required && missing == nullptr) missing = &spec;
      continue;
    }
    if (!spec.repeated && options[i]->count() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", spec.name, " was given more than once"));
    }
    for (const std::string& value : options[i]->results()) {
      if (spec.value_name.empty() && !ParseBool(value).has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", spec.name, " takes true or false, not '", value, "'"));
      }
    }
    parsed.flags_[spec.name] = options[i]->results();
  }
  if (parsed.help_requested_ || stop_at_first_positional) return parsed;

  if (missing != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "missing required flag --", missing->name, missing->value_name.empty() ? "" : " ",
        missing->value_name));
  }
  const size_t expected = positional_names.size();
  if (parsed.positionals_.size() < expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("missing argument ", positional_names[parsed.positionals_.size()]));
  }
  if (parsed.positionals_.size() > expected) {
    // When the first extra positional came just after a sensitive flag's
    // value, it may be the rest of the secret.
    const CLI::Option* before = nullptr;
    size_t seen = 0;
    for (const CLI::Option* option : app.parse_order()) {
      if (option == positionals && seen++ == expected) break;
      before = option;
    }
    if (const FlagSpec* flag = spec_of(before); flag != nullptr && flag->sensitive) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument after --", flag->name, " ", flag->value_name,
                       " (not shown: it may be part of a secret); give --", flag->name, " one ",
                       flag->value_name, " argument"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", parsed.positionals_[expected], "'"));
  }
  return parsed;
}

std::string FormatFlagsHelp(const std::vector<FlagSpec>& specs) {
  std::vector<std::pair<std::string, std::string>> lines;
  size_t width = 0;
  for (const FlagSpec& spec : specs) {
    std::string left = spec.short_name != 0 ? absl::StrCat("-", std::string(1, spec.short_name),
                                                           ", --", spec.name)
                                            : absl::StrCat("    --", spec.name);
    if (!spec.value_name.empty()) absl::StrAppend(&left, " ", spec.value_name);
    std::string right = spec.help;
    if (spec.required) absl::StrAppend(&right, " (required)");
    if (spec.repeated) absl::StrAppend(&right, " (repeatable)");
    width = std::max(width, left.size());
    lines.emplace_back(std::move(left), std::move(right));
  }
  std::string out;
  for (const auto& [left, right] : lines) {
    absl::StrAppend(&out, "  ", left, std::string(width - left.size() + 2, ' '), right, "\n");
  }
  return out;
}

std::string FormatUsageFlags(const std::vector<FlagSpec>& specs) {
  std::vector<std::string> parts;
  for (const FlagSpec& spec : specs) {
    std::string part = absl::StrCat("--", spec.name);
    if (!spec.value_name.empty()) absl::StrAppend(&part, " ", spec.value_name);
    if (!spec.required) part = absl::StrCat("[", part, "]");
    if (spec.repeated) absl::StrAppend(&part, "...");
    parts.push_back(std::move(part));
  }
  return absl::StrJoin(parts, " ");
}

std::string ClosestMatch(absl::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::string::npos;
  for (const std::string& candidate : candidates) {
    // Optimal string alignment distance: edits plus adjacent transpositions
    // ("nmae" is one typo away from "name").
    const size_t n = word.size(), m = candidate.size();
    std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
    for (size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (size_t i = 1; i <= n; ++i) {
      for (size_t j = 1; j <= m; ++j) {
        size_t cost = word[i - 1] == candidate[j - 1] ? 0 : 1;
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
        if (i > 1 && j > 1 && word[i - 1] == candidate[j - 2] && word[i - 2] == candidate[j - 1]) {
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
      }
    }
    if (d[n][m] < best_distance) {
      best_distance = d[n][m];
      best = candidate;
    }
  }
  // A third of the word, at least 1 and at most 3 edits, counts as a typo.
  size_t limit = std::clamp<size_t>(word.size() / 3, 1, 3);
  return best_distance <= limit ? best : "";
}

absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(absl::string_view flag,
                                                                  absl::string_view text) {
  size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " takes KEY=VALUE, got '", text, "'"));
  }
  return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

absl::StatusOr<std::pair<std::string, std::string>> ParseSecretFlag(absl::string_view text) {
  size_t eq = text.find('=');
  if (eq == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "--secret takes NAME=VALUE (e.g. api_key=env:ITERABLE_API_KEY); the argument given has "
        "no '=' and is not shown, in case it is the secret itself");
  }
  if (eq == 0) {
    return absl::InvalidArgumentError(
        "--secret takes NAME=VALUE (e.g. api_key=env:ITERABLE_API_KEY); the argument given has "
        "no NAME before '=' and is not shown, in case it holds the secret");
  }
  return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::StatusOr<std::string> ResolveSecretValue(absl::string_view key, absl::string_view value,
                                               std::istream& in, const EnvLookup& env) {
  if (value == "@-") {
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    StripTrailingNewline(text);
    return text;
  }
  if (!value.empty() && value[0] == '@') {
    std::string path(value.substr(1));
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      return absl::InvalidArgumentError(
          absl::StrCat("--secret ", key, ": cannot read file '", path, "'"));
    }
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    StripTrailingNewline(text);
    return text;
  }
  if (value.rfind("env:", 0) == 0) {
    std::string variable(value.substr(4));
    std::optional<std::string> text = env(variable);
    if (!text.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--secret ", key, ": environment variable ", variable, " is not set"));
    }
    return *text;
  }
  return std::string(value);
}

bool IsLiteralSecretValue(absl::string_view value) {
  return !value.empty() && value[0] != '@' && value.rfind("env:", 0) != 0;
}

absl::StatusOr<exportd::v1::FieldMapping> ParseMapping(absl::string_view text) {
  size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0 || eq + 1 == text.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--map takes DEST=FIELD (destination field = profile field, e.g. email=Email), got '",
        text, "'"));
  }
  exportd::v1::FieldMapping mapping;
  mapping.set_destination_field(std::string(text.substr(0, eq)));
  mapping.set_profile_field(std::string(text.substr(eq + 1)));
  return mapping;
}

absl::StatusOr<int> ParsePositiveInt(absl::string_view flag, absl::string_view text) {
  int value = 0;
  if (!absl::SimpleAtoi(text, &value) || value <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " takes a positive number, got '", text, "'"));
  }
  return value;
}

std::optional<bool> ParseBool(absl::string_view text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "true" || lower == "yes" || lower == "1") return true;
  if (lower == "false" || lower == "no" || lower == "0") return false;
  return std::nullopt;
}

}  // namespace exportd::cli
