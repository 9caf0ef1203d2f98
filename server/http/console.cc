#include "server/http/console.h"

#include <string_view>

#include "server/http/console_assets.h"

namespace exportd::http {

const HttpHeaders& SecurityHeaders() {
  static const HttpHeaders* headers = new HttpHeaders{
      {"Content-Security-Policy", kContentSecurityPolicy},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
  };
  return *headers;
}

void ServeConsole(HttpExchange& exchange) {
  HttpHeaders headers;
  if (exchange.method() != "GET" && exchange.method() != "HEAD") {
    headers.emplace_back("Allow", "GET, HEAD");
    exchange.Respond(405, "text/plain; charset=utf-8", "The console is read with GET.\n", headers);
    return;
  }
  std::string_view path(exchange.path().data(), exchange.path().size());
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  const ConsoleAsset* asset = path.empty() ? nullptr : FindConsoleAsset(path);
  if (asset == nullptr) asset = FindConsoleAsset("index.html");
  if (asset == nullptr) {
    exchange.Respond(404, "text/plain; charset=utf-8", "This exportd has no console.\n", headers);
    return;
  }
  // index.html is looked at on every load, so a new exportd's console is
  // picked up at once; the files it names may be cached.
  headers.emplace_back("Cache-Control",
                       asset->path == "index.html" ? "no-cache" : "public, max-age=300");
  exchange.Respond(200, absl::string_view(asset->content_type.data(), asset->content_type.size()),
                   absl::string_view(asset->body.data(), asset->body.size()), headers);
}

}  // namespace exportd::http
