// The embedded console: every file is in the table byte for byte, with the
// Content-Type its extension calls for; unknown paths are not.
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "server/http/console_assets.h"

namespace exportd::http {
namespace {

std::string ReadSource(const std::string& path) {
  std::ifstream in(std::string(EXPORTD_CONSOLE_DIR) + "/" + path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

TEST(ConsoleAssetsTest, EmbedsTheFilesAsTheyAre) {
  for (const char* path : {"index.html", "console.css", "js/app.js", "js/pages/runs.js",
                           "favicon.svg"}) {
    const ConsoleAsset* asset = FindConsoleAsset(path);
    ASSERT_NE(asset, nullptr) << path;
    EXPECT_EQ(asset->path, path);
    const std::string source = ReadSource(path);
    ASSERT_FALSE(source.empty()) << path;
    EXPECT_EQ(asset->body, source) << path;
  }
}

TEST(ConsoleAssetsTest, ContentTypesFollowTheExtension) {
  EXPECT_EQ(FindConsoleAsset("index.html")->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(FindConsoleAsset("console.css")->content_type, "text/css; charset=utf-8");
  EXPECT_EQ(FindConsoleAsset("js/api.js")->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(FindConsoleAsset("favicon.svg")->content_type, "image/svg+xml");
}

TEST(ConsoleAssetsTest, UnknownPathsAreNotFound) {
  EXPECT_EQ(FindConsoleAsset(""), nullptr);
  EXPECT_EQ(FindConsoleAsset("/index.html"), nullptr);
  EXPECT_EQ(FindConsoleAsset("js/nope.js"), nullptr);
  EXPECT_EQ(FindConsoleAsset("../CMakeLists.txt"), nullptr);
}

// The console's page loads only its own files: no inline script, no
// inline handler, nothing from another origin (the CSP forbids them).
TEST(ConsoleAssetsTest, IndexLoadsOnlyOwnFiles) {
  const std::string index(FindConsoleAsset("index.html")->body);
  EXPECT_EQ(index.find("<script>"), std::string::npos);
  EXPECT_EQ(index.find(" onload="), std::string::npos);
  EXPECT_EQ(index.find(" style="), std::string::npos);
  EXPECT_EQ(index.find("http://"), std::string::npos);
  EXPECT_EQ(index.find("https://"), std::string::npos);
  EXPECT_NE(index.find("src=\"/js/app.js\""), std::string::npos);
}

}  // namespace
}  // namespace exportd::http
