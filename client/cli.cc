#include "client/cli.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace exportd::cli {
namespace {

const FlagSpec* FindSpec(const std::vector<FlagSpec>& specs, absl::string_view name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const FlagSpec* FindShortSpec(const std::vector<FlagSpec>& specs, char short_name) {
  for (const FlagSpec& spec : specs) {
    if (spec.short_name != 0 && spec.short_name == short_name) return &spec;
  }
  return nullptr;
}

absl::Status UnknownFlag(absl::string_view written, absl::string_view name,
                         const std::vector<FlagSpec>& specs) {
  std::vector<std::string> names;
  for (const FlagSpec& spec : specs) names.push_back(spec.name);
  std::string suggestion = ClosestMatch(name, names);
  if (!suggestion.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag ", written, " (did you mean --", suggestion, "?)"));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown flag ", written));
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
  ParsedArgs parsed;
  bool flags_ended = false;
  // For each positional, the sensitive flag whose value came just before it,
  // if any.
  std::vector<const FlagSpec*> after_sensitive;
  const FlagSpec* sensitive_value_before = nullptr;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const bool looks_like_flag = arg.size() > 1 && arg[0] == '-';
    const FlagSpec* previous_sensitive = sensitive_value_before;
    sensitive_value_before = nullptr;
    if (flags_ended || !looks_like_flag) {
      if (stop_at_first_positional) {
        parsed.positionals_.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
        break;
      }
      parsed.positionals_.push_back(arg);
      after_sensitive.push_back(previous_sensitive);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      parsed.help_requested_ = true;
      continue;
    }

    // Split "--name=value" and resolve "-o".
    std::string written = arg;
    std::optional<std::string> inline_value;
    const FlagSpec* spec = nullptr;
    if (arg.rfind("--", 0) == 0) {
      std::string body = arg.substr(2);
      size_t eq = body.find('=');
      if (eq != std::string::npos) {
        inline_value = body.substr(eq + 1);
        body.resize(eq);
        written = "--" + body;
      }
      spec = FindSpec(specs, body);
      if (spec == nullptr) return UnknownFlag(written, body, specs);
    } else {
      if (arg.size() != 2) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown flag ", arg, " (long flags take two dashes, e.g. -", arg, ")"));
      }
      spec = FindShortSpec(specs, arg[1]);
      if (spec == nullptr) return UnknownFlag(arg, arg.substr(1), specs);
    }

    std::string value;
    if (spec->value_name.empty()) {
      // A boolean: "--flag", "--flag=true|false", or "--flag true|false" (the
      // next argument only when it is exactly true or false).
      if (!inline_value.has_value() && i + 1 < args.size() &&
          (args[i + 1] == "true" || args[i + 1] == "false")) {
        inline_value = args[++i];
      }
      value = inline_value.value_or("true");
      if (!ParseBool(value).has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", spec->name, " takes true or false, not '", value, "'"));
      }
    } else if (inline_value.has_value()) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", spec->name, " needs a value (", spec->value_name, ")"));
    }

    if (spec->sensitive) sensitive_value_before = spec;
    std::vector<std::string>& values = parsed.flags_[spec->name];
    if (!spec->repeated && !values.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", spec->name, " was given more than once"));
    }
    values.push_back(std::move(value));
  }

  if (parsed.help_requested_) return parsed;

  for (const FlagSpec& spec : specs) {
    if (spec.required && !parsed.Has(spec.name)) {
      return absl::InvalidArgumentError(
          spec.value_name.empty()
              ? absl::StrCat("missing required flag --", spec.name)
              : absl::StrCat("missing required flag --", spec.name, " ", spec.value_name));
    }
  }
  if (!stop_at_first_positional) {
    if (parsed.positionals_.size() < positional_names.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "missing argument ", positional_names[parsed.positionals_.size()]));
    }
    if (parsed.positionals_.size() > positional_names.size()) {
      if (const FlagSpec* flag = after_sensitive[positional_names.size()]; flag != nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected argument after --", flag->name, " ", flag->value_name,
                         " (not shown: it may be part of a secret); give --", flag->name, " one ",
                         flag->value_name, " argument"));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument '", parsed.positionals_[positional_names.size()], "'"));
    }
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
    // Levenshtein distance, one row at a time.
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
