// The console table of a binary built without the console: one index.html
// that says so. The console's build replaces this file.
#include <string_view>

#include "server/http/console_assets.h"

namespace exportd::http {
namespace {

constexpr ConsoleAsset kAssets[] = {
    {"index.html", "text/html; charset=utf-8",
     "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
     "<title>exportd</title></head>\n<body><h1>exportd</h1>\n"
     "<p>The web console is not built into this exportd binary. The HTTP/JSON API is served "
     "under <a href=\"/v1/openapi.json\">/v1/</a>.</p></body></html>\n"},
};

}  // namespace

const ConsoleAsset* FindConsoleAsset(std::string_view path) {
  for (const ConsoleAsset& asset : kAssets) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace exportd::http
