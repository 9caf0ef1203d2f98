// The web console's static files, built into exportd.
//
// The HTTP server (server/http/http_server.h) serves them under `/`:
//
//   if (const ConsoleAsset* asset = FindConsoleAsset("app.js")) {
//     ... reply asset->content_type, asset->body ...
//   }
//
// The table is generated from the console's sources by the build; a binary
// built without them holds only an index.html that says so.
#ifndef EXPORTD_SERVER_HTTP_CONSOLE_ASSETS_H_
#define EXPORTD_SERVER_HTTP_CONSOLE_ASSETS_H_

#include <string_view>

namespace exportd::http {

struct ConsoleAsset {
  // Relative to the console's root, without a leading '/': "index.html", "app.js".
  std::string_view path;
  // The Content-Type header value, e.g. "text/html; charset=utf-8".
  std::string_view content_type;
  std::string_view body;
};

// The asset at `path` (no leading '/'), or null when there is none. The
// returned object lives as long as the program.
const ConsoleAsset* FindConsoleAsset(std::string_view path);

}  // namespace exportd::http

#endif  // EXPORTD_SERVER_HTTP_CONSOLE_ASSETS_H_
