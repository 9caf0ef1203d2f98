#include "client/cli.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "client/context.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

cli::EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string TempFile(const std::string& name, const std::string& contents) {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               (name + "." + std::to_string(::getpid()));
  std::ofstream(path, std::ios::binary) << contents;
  return path.string();
}

const std::vector<FlagSpec> kSpecs = {
    {"name", "NAME", "The name.", /*required=*/true},
    {"field", "NAME:TYPE", "A field.", false, /*repeated=*/true},
    {"watch", "", "Watch."},
    {"output", "FORMAT", "Format.", false, false, 'o'},
};

TEST(ParseArgsTest, FlagsInBothFormsAndPositionals) {
  auto args = ParseArgs({"vip", "--name", "a", "--field=x:int", "--field", "y:bool", "-o", "json",
                         "--watch"},
                        kSpecs, {"SEGMENT"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("name"), "a");
  EXPECT_THAT(args->GetAll("field"), ElementsAre("x:int", "y:bool"));
  EXPECT_EQ(args->Get("output"), "json");
  EXPECT_TRUE(args->IsSet("watch"));
  EXPECT_THAT(args->positionals(), ElementsAre("vip"));
}

TEST(ParseArgsTest, MissingRequiredFlagNamesIt) {
  auto args = ParseArgs({"vip"}, kSpecs, {"SEGMENT"});
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.status().message(), "missing required flag --name NAME");
}

TEST(ParseArgsTest, MissingAndExtraPositionals) {
  auto missing = ParseArgs({"--name", "a"}, kSpecs, {"SEGMENT"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "missing argument SEGMENT");
  auto extra = ParseArgs({"--name", "a", "x", "y"}, kSpecs, {"SEGMENT"});
  ASSERT_FALSE(extra.ok());
  EXPECT_EQ(extra.status().message(), "unexpected argument 'y'");
}

TEST(ParseArgsTest, UnknownFlagSuggestsTheClosest) {
  auto args = ParseArgs({"--nmae", "a"}, kSpecs, {});
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.status().message(), "unknown flag --nmae (did you mean --name?)");
  auto far = ParseArgs({"--colour"}, kSpecs, {});
  EXPECT_EQ(far.status().message(), "unknown flag --colour");
}

TEST(ParseArgsTest, ValueMissingAtTheEnd) {
  auto args = ParseArgs({"--name"}, kSpecs, {});
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.status().message(), "flag --name needs a value (NAME)");
}

TEST(ParseArgsTest, NonRepeatedFlagTwiceIsAnError) {
  auto args = ParseArgs({"--name", "a", "--name", "b"}, kSpecs, {});
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.status().message(), "flag --name was given more than once");
}

TEST(ParseArgsTest, BooleanTakesAnInlineValueOrANextTrueOrFalse) {
  auto args = ParseArgs({"--name", "a", "--watch=false", "x"}, kSpecs, {"X"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->GetBool("watch"), false);
  EXPECT_THAT(args->positionals(), ElementsAre("x"));
  // "--watch true|false": the next argument when it is exactly true or false.
  for (const std::string value : {"true", "false"}) {
    auto spaced = ParseArgs({"--watch", value, "--name", "a", "x"}, kSpecs, {"X"});
    ASSERT_TRUE(spaced.ok()) << spaced.status();
    EXPECT_EQ(spaced->GetBool("watch"), value == "true");
    EXPECT_THAT(spaced->positionals(), ElementsAre("x"));
  }
  // Bare, before a positional that is not true or false: that stays a positional.
  auto bare = ParseArgs({"--name", "a", "--watch", "x"}, kSpecs, {"X"});
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->GetBool("watch"), true);
  EXPECT_THAT(bare->positionals(), ElementsAre("x"));
  auto bad = ParseArgs({"--name", "a", "--watch=maybe"}, kSpecs, {});
  EXPECT_EQ(bad.status().message(), "flag --watch takes true or false, not 'maybe'");
}

TEST(ParseArgsTest, HelpSkipsRequiredChecks) {
  auto args = ParseArgs({"--help"}, kSpecs, {"SEGMENT"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_TRUE(args->help_requested());
}

TEST(ParseArgsTest, DoubleDashEndsFlags) {
  auto args = ParseArgs({"--name", "a", "--", "--weird-name"}, kSpecs, {"X"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->positionals(), ElementsAre("--weird-name"));
}

TEST(ParseArgsTest, StopAtFirstPositionalKeepsTheRestUnparsed) {
  const std::vector<FlagSpec> global = {{"output", "FORMAT", "Format.", false, false, 'o'}};
  auto args = ParseArgs({"-o", "json", "segment", "create", "--bogus"}, global, {}, true);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("output"), "json");
  EXPECT_THAT(args->positionals(), ElementsAre("segment", "create", "--bogus"));
}

TEST(ParseArgsTest, ShortFlagWithAttachedValue) {
  auto args = ParseArgs({"--name", "a", "-ojson"}, kSpecs, {});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("output"), "json");
}

// CLI11 would take the next argument for "--name="; it stays an empty value.
TEST(ParseArgsTest, EmptyInlineValueIsEmpty) {
  auto args = ParseArgs({"--name=", "x"}, kSpecs, {"X"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_TRUE(args->Has("name"));
  EXPECT_EQ(args->Get("name", "unset"), "");
  EXPECT_THAT(args->positionals(), ElementsAre("x"));
}

TEST(ParseArgsTest, SingleDashLongFlagAndMissingShortValue) {
  EXPECT_EQ(ParseArgs({"-name", "a"}, kSpecs, {}).status().message(),
            "unknown flag -name (long flags take two dashes, e.g. --name)");
  EXPECT_EQ(ParseArgs({"--name", "a", "-o"}, kSpecs, {}).status().message(),
            "flag --output needs a value (FORMAT)");
}

TEST(ParseArgsTest, UnknownFlagBeforeTheNounIsRefused) {
  const std::vector<FlagSpec> global = {{"output", "FORMAT", "Format.", false, false, 'o'}};
  EXPECT_EQ(ParseArgs({"--outptu", "json", "segment"}, global, {}, true).status().message(),
            "unknown flag --outptu (did you mean --output?)");
}

TEST(FormatTest, UsageAndFlagsHelp) {
  EXPECT_EQ(FormatUsageFlags(kSpecs),
            "--name NAME [--field NAME:TYPE]... [--watch] [--output FORMAT]");
  std::string help = FormatFlagsHelp(kSpecs);
  EXPECT_THAT(help, HasSubstr("      --name NAME        The name. (required)\n"));
  EXPECT_THAT(help, HasSubstr("  -o, --output FORMAT    Format.\n"));
}

TEST(KeyValueTest, SplitsOnTheFirstEquals) {
  auto kv = ParseKeyValue("setting", "region=eu=1");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->first, "region");
  EXPECT_EQ(kv->second, "eu=1");
  EXPECT_EQ(ParseKeyValue("setting", "=x").status().message(),
            "--setting takes KEY=VALUE, got '=x'");
  EXPECT_EQ(ParseKeyValue("secret", "novalue").status().message(),
            "--secret takes KEY=VALUE, got 'novalue'");
}

// What is given to --secret may be the secret itself: errors do not repeat it.
TEST(SecretTest, MalformedSecretFlagIsNotShown) {
  auto kv = ParseSecretFlag("api_key=a=b");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->first, "api_key");
  EXPECT_EQ(kv->second, "a=b");
  for (const char* text : {"s3cr3tvalue", "=s3cr3tvalue"}) {
    absl::StatusOr<std::pair<std::string, std::string>> bad = ParseSecretFlag(text);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr("--secret takes NAME=VALUE"));
    EXPECT_THAT(std::string(bad.status().message()), Not(HasSubstr("s3cr3tvalue")));
  }
  EXPECT_THAT(std::string(ParseSecretFlag("x").status().message()), HasSubstr("has no '='"));
  EXPECT_THAT(std::string(ParseSecretFlag("=x").status().message()),
              HasSubstr("no NAME before '='"));
}

TEST(SecretTest, ArgumentAfterASensitiveValueIsNotShown) {
  const std::vector<FlagSpec> specs = {
      {"secret", "KEY=VALUE", "A secret.", false, true, 0, /*sensitive=*/true},
      {"name", "NAME", "A name."}};
  for (std::vector<std::string> args :
       {std::vector<std::string>{"prod", "--secret", "api_key", "s3cr3t"},
        {"prod", "--secret=api_key", "s3cr3t"}}) {
    auto parsed = ParseArgs(args, specs, {"NAME"});
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().message(),
              "unexpected argument after --secret KEY=VALUE (not shown: it may be part of a "
              "secret); give --secret one KEY=VALUE argument");
  }
  // A mistyped sensitive flag shows its name only.
  auto typo = ParseArgs({"prod", "--secrte=api_key=s3cr3t"}, specs, {"NAME"});
  EXPECT_EQ(typo.status().message(), "unknown flag --secrte (did you mean --secret?)");
  // Anywhere else, the argument is quoted as usual.
  EXPECT_EQ(ParseArgs({"prod", "--name", "n", "extra"}, specs, {"NAME"}).status().message(),
            "unexpected argument 'extra'");
  EXPECT_EQ(ParseArgs({"prod", "--secret", "a=b", "--name", "n", "extra"}, specs, {"NAME"})
                .status()
                .message(),
            "unexpected argument 'extra'");
}

TEST(SecretTest, LiteralValuesAreThoseOnTheCommandLine) {
  EXPECT_TRUE(IsLiteralSecretValue("s3cr3t"));
  EXPECT_TRUE(IsLiteralSecretValue("environment"));
  EXPECT_FALSE(IsLiteralSecretValue(""));
  EXPECT_FALSE(IsLiteralSecretValue("env:ITERABLE_API_KEY"));
  EXPECT_FALSE(IsLiteralSecretValue("@key.txt"));
  EXPECT_FALSE(IsLiteralSecretValue("@-"));
}

TEST(SecretTest, LiteralFileStdinAndEnvironment) {
  std::istringstream empty;
  auto env = FakeEnv({{"ITERABLE_KEY", "from-env"}});
  EXPECT_EQ(*ResolveSecretValue("api_key", "plain", empty, env), "plain");
  EXPECT_EQ(*ResolveSecretValue("api_key", "env:ITERABLE_KEY", empty, env), "from-env");

  std::string path = TempFile("secret", "from-file\n");
  EXPECT_EQ(*ResolveSecretValue("api_key", "@" + path, empty, env), "from-file");
  std::string crlf = TempFile("secret-crlf", "abc\r\n");
  EXPECT_EQ(*ResolveSecretValue("api_key", "@" + crlf, empty, env), "abc");

  std::istringstream in("from-stdin\n");
  EXPECT_EQ(*ResolveSecretValue("api_key", "@-", in, env), "from-stdin");
  std::remove(path.c_str());
  std::remove(crlf.c_str());
}

TEST(SecretTest, MissingFileOrVariableNamesIt) {
  std::istringstream empty;
  auto env = FakeEnv({});
  EXPECT_EQ(ResolveSecretValue("api_key", "env:NOPE", empty, env).status().message(),
            "--secret api_key: environment variable NOPE is not set");
  EXPECT_EQ(ResolveSecretValue("api_key", "@/nonexistent/key", empty, env).status().message(),
            "--secret api_key: cannot read file '/nonexistent/key'");
}

TEST(FieldTypeTest, ParsesNameAndType) {
  auto parsed = ParseFieldTypeFlag("Signed:Up:timestamp");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->first, "Signed:Up");
  EXPECT_EQ(parsed->second, exportd::v1::FIELD_TYPE_TIMESTAMP);
  EXPECT_EQ(ParseFieldTypeFlag("Age:INT")->second, exportd::v1::FIELD_TYPE_INT);
  EXPECT_EQ(ParseFieldTypeFlag("Age:integer").status().message(),
            "--field Age:integer: unknown type 'integer' (use string, int, double, bool or "
            "timestamp)");
  EXPECT_THAT(std::string(ParseFieldTypeFlag("Age").status().message()),
              HasSubstr("--field takes NAME:TYPE"));
}

TEST(MappingTest, ParsesDestAndField) {
  auto mapping = ParseMapping("email=Email");
  ASSERT_TRUE(mapping.ok());
  EXPECT_EQ(mapping->destination_field(), "email");
  EXPECT_EQ(mapping->profile_field(), "Email");
  for (const char* bad : {"email", "=Email", "email="}) {
    EXPECT_THAT(std::string(ParseMapping(bad).status().message()),
                HasSubstr("--map takes DEST=FIELD"))
        << bad;
  }
}

TEST(PositiveIntTest, RejectsZeroNegativeAndText) {
  EXPECT_EQ(*ParsePositiveInt("limit", "25"), 25);
  for (const char* bad : {"0", "-3", "ten"}) {
    EXPECT_FALSE(ParsePositiveInt("limit", bad).ok()) << bad;
  }
}

TEST(ServerAndTokenTest, ServerFromFlagEnvOrDefault) {
  using exportd::client::ResolveServerAddress;
  EXPECT_EQ(ResolveServerAddress("h:1", FakeEnv({{"EXPORTD_SERVER", "e:2"}})), "h:1");
  EXPECT_EQ(ResolveServerAddress("", FakeEnv({{"EXPORTD_SERVER", "e:2"}})), "e:2");
  EXPECT_EQ(ResolveServerAddress("", FakeEnv({})), "127.0.0.1:50051");
  EXPECT_TRUE(exportd::client::IsLocalServer("localhost:50051"));
  EXPECT_TRUE(exportd::client::IsLocalServer("[::1]:50051"));
  EXPECT_FALSE(exportd::client::IsLocalServer("exportd.example.com:50051"));
}

TEST(ServerAndTokenTest, TokenPrecedence) {
  using exportd::client::ResolveToken;
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("exportctl-token-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "admin.token") << "admin-token\n";
  std::string file = TempFile("token", "  file-token\n");

  auto env_all = FakeEnv({{"EXPORTD_TOKEN", "env-token"},
                          {"EXPORTD_TOKEN_FILE", file},
                          {"EXPORTD_DATA_DIR", dir.string()}});
  EXPECT_EQ(*ResolveToken("127.0.0.1:1", "flag-token", "", env_all), "flag-token");
  EXPECT_EQ(*ResolveToken("127.0.0.1:1", "", "", env_all), "env-token");
  auto env_files = FakeEnv({{"EXPORTD_TOKEN_FILE", file}, {"EXPORTD_DATA_DIR", dir.string()}});
  EXPECT_EQ(*ResolveToken("127.0.0.1:1", "", "", env_files), "file-token");
  auto env_data = FakeEnv({{"EXPORTD_DATA_DIR", dir.string()}});
  EXPECT_EQ(*ResolveToken("127.0.0.1:1", "", "", env_data), "admin-token");
  // The local admin token is never sent to a remote server.
  EXPECT_EQ(*ResolveToken("exportd.example.com:443", "", "", env_data), "");
  EXPECT_EQ(ResolveToken("127.0.0.1:1", "", "/nonexistent/token", env_data).status().message(),
            "cannot read token file '/nonexistent/token'");
  std::filesystem::remove_all(dir);
  std::remove(file.c_str());
}

TEST(ServerAndTokenTest, TlsFromFlagOrEnv) {
  using exportd::client::ResolveTls;
  const std::string ca =
      TempFile("ca.pem", "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n");
  const std::string env_ca =
      TempFile("env-ca.pem", "-----BEGIN CERTIFICATE-----\nenv\n-----END CERTIFICATE-----\n");
  const std::string cert =
      TempFile("cert.pem", "-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n");
  const std::string key =
      TempFile("key.pem", "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n");

  auto plain = ResolveTls("", "", "", "", FakeEnv({}));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->enabled);

  auto env = FakeEnv({{"EXPORTD_TLS_CA", env_ca},
                      {"EXPORTD_TLS_CERT", cert},
                      {"EXPORTD_TLS_KEY", key},
                      {"EXPORTD_TLS_SERVER_NAME", "exportd.internal"}});
  auto from_env = ResolveTls("", "", "", "", env);
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_TRUE(from_env->enabled);
  EXPECT_THAT(from_env->ca_pem, HasSubstr("env"));
  EXPECT_THAT(from_env->cert_pem, HasSubstr("cert"));
  EXPECT_THAT(from_env->key_pem, HasSubstr("key"));
  EXPECT_EQ(from_env->server_name, "exportd.internal");

  auto flag_wins = ResolveTls(ca, "", "", "localhost", env);
  ASSERT_TRUE(flag_wins.ok()) << flag_wins.status();
  EXPECT_THAT(flag_wins->ca_pem, HasSubstr("\nca\n"));
  EXPECT_EQ(flag_wins->server_name, "localhost");

  auto ca_only = ResolveTls(ca, "", "", "", FakeEnv({}));
  ASSERT_TRUE(ca_only.ok()) << ca_only.status();
  EXPECT_TRUE(ca_only->enabled);
  EXPECT_TRUE(ca_only->cert_pem.empty());

  EXPECT_EQ(ResolveTls(ca, cert, "", "", FakeEnv({})).status().message(),
            "--tls-cert (or $EXPORTD_TLS_CERT) needs --tls-key, its private key");
  EXPECT_EQ(ResolveTls(ca, "", key, "", FakeEnv({})).status().message(),
            "--tls-key (or $EXPORTD_TLS_KEY) needs --tls-cert, its certificate");
  EXPECT_EQ(ResolveTls("/nonexistent/ca.pem", "", "", "", FakeEnv({})).status().message(),
            "cannot read --tls-ca (or $EXPORTD_TLS_CA) file '/nonexistent/ca.pem'");
  EXPECT_EQ(ResolveTls(key, "", "", "", FakeEnv({})).status().message(),
            "--tls-ca (or $EXPORTD_TLS_CA) file '" + key +
                "' holds no PEM certificate ('-----BEGIN CERTIFICATE-----')");
  EXPECT_EQ(ResolveTls(ca, cert, cert, "", FakeEnv({})).status().message(),
            "--tls-key (or $EXPORTD_TLS_KEY) file '" + cert +
                "' holds no PEM private key ('-----BEGIN PRIVATE KEY-----')");
  EXPECT_THAT(std::string(ResolveTls("", "", "", "localhost", FakeEnv({})).status().message()),
              HasSubstr("--tls-server-name (or $EXPORTD_TLS_SERVER_NAME) needs TLS"));
  for (const std::string& file : {ca, env_ca, cert, key}) std::remove(file.c_str());
}

}  // namespace
}  // namespace exportd::cli
