// exportctl token hash
#include <iterator>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "google/protobuf/struct.pb.h"
#include "server/auth/auth.h"
#include "server/auth/credentials.h"

namespace exportd::client {
namespace {

int Hash(CommandContext& ctx, const cli::ParsedArgs& args) {
  const std::string principal = args.Get("principal");
  if (absl::Status valid = auth::ValidatePrincipalName(principal); !valid.ok()) {
    return ctx.UsageError(absl::StrCat("--principal: ", valid.message()));
  }
  absl::StatusOr<v1::Role> role = auth::ParseRole(args.Get("role"));
  if (!role.ok()) return ctx.UsageError(absl::StrCat("--role: ", role.status().message()));

  const bool generate = args.IsSet("new");
  std::string token;
  if (generate) {
    absl::StatusOr<std::string> made = auth::NewToken();
    if (!made.ok()) return ctx.Fail(made.status().message());
    token = *std::move(made);
  } else {
    std::string input((std::istreambuf_iterator<char>(ctx.in())), std::istreambuf_iterator<char>());
    token = std::string(absl::StripAsciiWhitespace(input));
    if (token.empty()) {
      return ctx.UsageError(
          "no token on standard input; pipe one in (exportctl token hash ... < FILE) or make "
          "a new one with --new");
    }
    if (absl::Status valid = auth::ValidateToken(token); !valid.ok()) {
      return ctx.Fail(absl::StrCat("standard input: ", valid.message()));
    }
  }
  const std::string line = absl::StrCat(auth::kSha256Prefix, auth::TokenSha256Hex(token), " ",
                                        principal, " ", auth::RoleName(*role));
  if (ctx.json()) {
    google::protobuf::Struct result;
    if (generate) (*result.mutable_fields())["token"].set_string_value(token);
    (*result.mutable_fields())["line"].set_string_value(line);
    ctx.out() << ToJson(result);
    return kExitOk;
  }
  if (generate) {
    ctx.out() << "token: " << token << "\n";
    ctx.err() << "The token is shown only now: give it to '" << principal
              << "'. exportd keeps only its hash; add the last line to the tokens file.\n";
  }
  ctx.out() << line << "\n";
  return kExitOk;
}

}  // namespace

NounSpec TokenCommands() {
  return {"token",
          "Make tokens-file lines that hold a token's hash, not the token.",
          {
              {"hash",
               {},
               "Print the tokens-file line 'sha256:<hex> PRINCIPAL ROLE' for a token.",
               "Reads the token from standard input, or makes a new random one with --new\n"
               "(printed once, before the line). The line holds the SHA-256 of the token, so\n"
               "the tokens file on disk grants no access by itself. No server is contacted.\n\n"
               "  exportctl token hash --new --principal segment-sync --role contributor\n"
               "  exportctl token hash --principal dashboards --role viewer < token.txt \\\n"
               "      >> /etc/exportd/tokens",
               {{"principal", "NAME", "Who the token authenticates as.", true},
                {"role", "ROLE", "admin, contributor or viewer.", true},
                {"new", "", "Make a new random token (32 bytes, hex) instead of reading one."}},
               Hash},
          }};
}

}  // namespace exportd::client
