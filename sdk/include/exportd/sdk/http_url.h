// The one check of an HTTP endpoint that outside input names: a destination
// setting such as Iterable's `base_url`, and an export's notification
// webhook. A plugin calls it from its own settings check; the core calls it
// for webhooks, so both accept and refuse the same URLs.
//
//   absl::Status ok = exportd::sdk::ValidateHttpUrl("setting 'base_url'", url);
//   // INVALID_ARGUMENT: "setting 'base_url' must start with http:// or https://, got 'x'"
#ifndef EXPORTD_SDK_HTTP_URL_H_
#define EXPORTD_SDK_HTTP_URL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace exportd::sdk {

// OK when `url` is http:// or https:// with a host, printable ASCII without
// spaces, no query or fragment and no credentials (user@host). Otherwise
// INVALID_ARGUMENT whose message starts with `what` (e.g. "setting
// 'base_url'", "notify_url") and says what to change.
inline absl::Status ValidateHttpUrl(std::string_view what, std::string_view url) {
  const std::string w(what);
  const std::string u(url);
  std::string_view rest = u;
  if (rest.substr(0, 8) == "https://") {
    rest.remove_prefix(8);
  } else if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else {
    return absl::InvalidArgumentError(w + " must start with http:// or https://, got '" + u + "'");
  }
  const std::string_view host = rest.substr(0, rest.find('/'));
  if (host.empty() || host.front() == ':') {
    return absl::InvalidArgumentError(w + " has no host: '" + u + "'");
  }
  for (char c : u) {
    const auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b >= 0x7f) {
      return absl::InvalidArgumentError(
          w + " must not contain spaces, control or non-ASCII characters");
    }
    if (c == '?' || c == '#') {
      return absl::InvalidArgumentError(w + " must not have a query or fragment, got '" + u + "'");
    }
  }
  if (host.find('@') != std::string_view::npos) {
    return absl::InvalidArgumentError(w + " must not contain credentials (user@host)");
  }
  return absl::OkStatus();
}

}  // namespace exportd::sdk

#endif  // EXPORTD_SDK_HTTP_URL_H_
