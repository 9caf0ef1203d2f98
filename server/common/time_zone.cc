#include "server/common/time_zone.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace exportd {
namespace {

constexpr char kExample[] = "use an IANA name such as \"Europe/Berlin\" or \"UTC\"";

absl::Status Refused(absl::string_view name, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("time zone \"", absl::CHexEscape(name),
                                                 "\" is not an IANA name: ", why, "; ", kExample));
}

bool AllowedInPart(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '+' || c == '-';
}

}  // namespace

absl::Status CheckIanaTimeZoneName(absl::string_view name) {
  if (name.empty()) return Refused(name, "it is empty");
  // A path says so whatever its length (temporary directories are long).
  if (name.front() == '/') {
    return Refused(name.substr(0, kMaxTimeZoneNameLength), "it is an absolute path");
  }
  if (name.size() > kMaxTimeZoneNameLength) {
    return Refused(name.substr(0, kMaxTimeZoneNameLength),
                   absl::StrCat("it is ", name.size(), " characters long; at most ",
                                kMaxTimeZoneNameLength, " are allowed"));
  }
  // The checks that name a path's tricks come first, for a clear message.
  if (name.find('\0') != absl::string_view::npos) return Refused(name, "it contains a NUL byte");
  if (name.find('\\') != absl::string_view::npos) return Refused(name, "it contains a backslash");
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  for (absl::string_view part : parts) {
    if (part == ".." || part == ".") {
      return Refused(name, absl::StrCat("it contains \"", part, "\" (a relative path)"));
    }
  }
  for (absl::string_view part : parts) {
    if (part.empty()) return Refused(name, "it has an empty part (\"//\" or a '/' at the end)");
    for (char c : part) {
      if (!AllowedInPart(c)) {
        return Refused(name,
                       absl::StrCat("it contains '", absl::CHexEscape(absl::string_view(&c, 1)),
                                    "'; only ASCII letters, digits, '_', '+', '-' and '/' "
                                    "may appear"));
      }
    }
    if (!absl::ascii_isalpha(static_cast<unsigned char>(part.front()))) {
      return Refused(name, absl::StrCat("part \"", part, "\" does not start with a letter"));
    }
  }
  if (parts.size() == 1 && name != "UTC") {
    return Refused(name, "it is neither \"UTC\" nor of the form Area/Location (e.g. Etc/GMT)");
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::TimeZone> LoadIanaTimeZone(absl::string_view name) {
  absl::Status valid = CheckIanaTimeZoneName(name);
  if (!valid.ok()) return valid;
  absl::TimeZone zone;
  if (!absl::LoadTimeZone(std::string(name), &zone)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown time zone \"", name, "\"; ", kExample,
                     " (time zone data comes from the tzdata package, /usr/share/zoneinfo)"));
  }
  return zone;
}

}  // namespace exportd
