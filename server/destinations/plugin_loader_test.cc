#include "plugin_loader.h"

#include <algorithm>
#include <fstream>
#include <map>

#include "exportd/sdk/testing/test_run_context.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "registry.h"
#include "test_util.h"

namespace exportd::destinations {
namespace {

using ::exportd::destinations::testing::StatusIs;
using ::exportd::destinations::testing::TempDir;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const std::filesystem::path kDir = EXPORTD_TEST_PLUGIN_DIR;

std::filesystem::path Lib(const std::string& name) { return kDir / ("lib" + name + ".so"); }

std::map<std::string, std::string> RefusedByFile(const DestinationRegistry& registry) {
  std::map<std::string, std::string> out;
  for (const RefusedPlugin& r : registry.refused()) {
    out[std::filesystem::path(r.library_path).filename().string()] = r.reason;
  }
  return out;
}

TEST(LoadPluginDirectoryTest, LoadsTheGoodOnesAndRefusesTheRest) {
  DestinationRegistry registry;
  ASSERT_TRUE(LoadPluginDirectory(kDir, registry).ok());

  std::vector<std::string> names;
  for (const RegisteredDestination& d : registry.List()) names.push_back(d.manifest->name);
  EXPECT_THAT(names, ElementsAre("test_dup", "test_good"));
  // Sorted loading: libtest_dup_a.so wins over libtest_dup_b.so.
  EXPECT_EQ((*registry.Get("test_dup"))->manifest().version, "a");
  EXPECT_EQ(registry.List()[1].library_path, Lib("test_good").string());

  const auto refused = RefusedByFile(registry);
  EXPECT_EQ(refused.size(), 9u);
  EXPECT_THAT(refused.at("libtest_wrong_abi.so"),
              HasSubstr("ABI version " + std::to_string(sdk::kAbiVersion - 1) +
                        " does not match the host's " + std::to_string(sdk::kAbiVersion)));
  EXPECT_THAT(refused.at("libtest_no_factory.so"),
              HasSubstr("no exportd_create_destination symbol"));
  EXPECT_THAT(refused.at("libtest_factory_fails.so"),
              HasSubstr("the factory failed: test_factory_fails: missing libfoo configuration"));
  EXPECT_THAT(refused.at("libtest_factory_throws.so"),
              HasSubstr("the factory threw an exception: test_factory_throws: boom"));
  EXPECT_THAT(refused.at("libtest_bad_manifest.so"),
              HasSubstr("enum setting 'region' has no allowed values"));
  EXPECT_THAT(refused.at("libtest_no_privacy_statement.so"),
              HasSubstr("manifest of destination 'test_no_privacy_statement': the privacy "
                        "statement is empty; set Manifest::privacy_statement"));
  EXPECT_THAT(refused.at("libtest_dup_b.so"),
              AllOf(HasSubstr("destination 'test_dup'"), HasSubstr("libtest_dup_b.so"),
                    HasSubstr("already registered by library"), HasSubstr("libtest_dup_a.so")));
  EXPECT_THAT(refused.at("libtest_not_a_plugin.so"),
              HasSubstr("no exportd_destination_abi_version symbol: not an exportd destination"));
  EXPECT_THAT(refused.at("libtest_garbage.so"), HasSubstr("cannot be loaded"));
}

TEST(LoadPluginTest, ReturnsTheRefusalWithItsCode) {
  DestinationRegistry registry;
  EXPECT_THAT(LoadPlugin(Lib("test_wrong_abi"), registry),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ABI version")));
  EXPECT_THAT(LoadPlugin(Lib("test_no_factory"), registry),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no factory")));
  EXPECT_THAT(LoadPlugin(Lib("test_factory_fails"), registry),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("missing libfoo")));
  EXPECT_THAT(LoadPlugin(Lib("test_factory_throws"), registry),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("boom")));
  EXPECT_THAT(LoadPlugin(Lib("test_bad_manifest"), registry),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no allowed values")));
  EXPECT_THAT(
      LoadPlugin(Lib("test_no_privacy_statement"), registry),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the privacy statement is empty")));
  EXPECT_THAT(LoadPlugin(Lib("test_garbage"), registry),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cannot be loaded: not an ELF shared library")));
  EXPECT_THAT(LoadPlugin(kDir / "libdoes_not_exist.so", registry),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cannot be loaded: no such file; check the path")));
  EXPECT_THAT(LoadPlugin(kDir, registry),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cannot be loaded: it is a directory")));
  EXPECT_TRUE(registry.List().empty());
  EXPECT_EQ(registry.refused().size(), 9u);
}

// A library's file name (or a plugin's message) cannot forge a line of
// exportd's log; the registry keeps the name exact.
TEST(LoadPluginTest, RefusalLogLineEscapesTheFileName) {
  TempDir dir;
  const std::filesystem::path path = dir.path() / "libx.so\nexportd: forged\x1b[2J.so";
  std::ofstream(path) << "not a library";
  DestinationRegistry registry;
  ::testing::internal::CaptureStderr();
  absl::Status status = LoadPlugin(path, registry);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot be loaded")));
  EXPECT_THAT(log, HasSubstr("exportd: refused destination plugin '" + dir.path().string() +
                             "/libx.so\\nexportd: forged\\x1b[2J.so': cannot be loaded"));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  EXPECT_THAT(log, Not(HasSubstr("\x1b")));
  ASSERT_EQ(registry.refused().size(), 1u);
  EXPECT_EQ(registry.refused()[0].library_path, path.string());
}

TEST(LoadPluginTest, DuplicateNameIsAlreadyExists) {
  DestinationRegistry registry;
  ASSERT_TRUE(LoadPlugin(Lib("test_dup_b"), registry).ok());
  EXPECT_THAT(LoadPlugin(Lib("test_dup_a"), registry),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("libtest_dup_a.so"), HasSubstr("libtest_dup_b.so"))));
  EXPECT_EQ((*registry.Get("test_dup"))->manifest().version, "b");
}

TEST(LoadPluginTest, LoadedDestinationWorksThroughTheContract) {
  DestinationRegistry registry;
  ASSERT_TRUE(LoadPlugin(Lib("test_good"), registry).ok());
  absl::StatusOr<sdk::Destination*> good = registry.Get("test_good");
  ASSERT_TRUE(good.ok()) << good.status();
  auto connection = (*good)->Connect({{"api_key", "k"}});
  ASSERT_TRUE(connection.ok()) << connection.status();
  sdk::testing::TestRunContext ctx;
  EXPECT_TRUE((*connection)->Check(ctx).ok());
  sdk::RecordBatch batch;
  batch.profile_ids = {"p1", "p2"};
  auto outcomes = (*connection)->Upsert(sdk::Audience{"a", "a", false, ""}, batch, ctx);
  ASSERT_TRUE(outcomes.ok());
  EXPECT_EQ(outcomes->size(), 2u);
  // The connection (code from the library) goes before the registry unloads it.
}

TEST(LoadPluginDirectoryTest, MissingDirectoryIsNotFound) {
  DestinationRegistry registry;
  EXPECT_THAT(LoadPluginDirectory("/nonexistent/exportd/plugins", registry),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("plugin directory '/nonexistent/exportd/plugins' does not exist")));
}

TEST(LoadPluginDirectoryTest, FileInsteadOfDirectoryIsFailedPrecondition) {
  DestinationRegistry registry;
  EXPECT_THAT(LoadPluginDirectory(Lib("test_good"), registry),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is not a directory")));
}

TEST(LoadPluginDirectoryTest, EmptyDirectoryIsFine) {
  TempDir dir;
  std::ofstream(dir.path() / "README.txt") << "not a library";
  DestinationRegistry registry;
  EXPECT_TRUE(LoadPluginDirectory(dir.path(), registry).ok());
  EXPECT_TRUE(registry.List().empty());
  EXPECT_TRUE(registry.refused().empty());
}

TEST(DefaultPluginDirTest, PrefersTheBuildTree) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "bin");
  std::filesystem::create_directories(dir.path() / "plugins");
  const std::filesystem::path expected = std::filesystem::canonical(dir.path()) / "plugins";
  EXPECT_EQ(DefaultPluginDir((dir.path() / "bin" / "exportd").string()), expected);
}

TEST(DefaultPluginDirTest, FallsBackToTheInstalledLayout) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "bin");
  const std::filesystem::path expected =
      std::filesystem::canonical(dir.path()) / "lib" / "exportd" / "plugins";
  EXPECT_EQ(DefaultPluginDir((dir.path() / "bin" / "exportd").string()), expected);
}

}  // namespace
}  // namespace exportd::destinations
