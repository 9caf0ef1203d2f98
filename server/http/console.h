// Serving the web console's files (console_assets.h) under `/`, and the
// headers every response of exportd's HTTP listener carries.
#ifndef EXPORTD_SERVER_HTTP_CONSOLE_H_
#define EXPORTD_SERVER_HTTP_CONSOLE_H_

#include "server/http/exchange.h"

namespace exportd::http {

// No inline scripts or styles, nothing from elsewhere, never in a frame.
inline constexpr char kContentSecurityPolicy[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'";

// The Content-Security-Policy, X-Content-Type-Options: nosniff and friends:
// exportd's HTTP listener sends them with every response.
const HttpHeaders& SecurityHeaders();

// GET or HEAD of a console file: `/` and any path that names no file get
// index.html (the single-page app routes by path); 405 for other methods.
void ServeConsole(HttpExchange& exchange);

}  // namespace exportd::http

#endif  // EXPORTD_SERVER_HTTP_CONSOLE_H_
