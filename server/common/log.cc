#include "server/common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace exportd {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

// A JSON string literal: quotes, backslashes and control characters escaped;
// other bytes as they are (messages are UTF-8 or terminal-escaped already).
void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendField(std::string* out, absl::string_view key, absl::string_view value) {
  if (value.empty()) return;
  absl::StrAppend(out, ",\"", key, "\":");
  AppendJsonString(out, value);
}

}  // namespace

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("--log-format '", name, "': write text (the default) or json"));
}

void SetLogFormat(LogFormat format) { g_format = format; }

std::string FormatLogLine(LogFormat format, absl::Time time, LogLevel level,
                          const LogFields& fields, absl::string_view message) {
  if (format == LogFormat::kText) {
    // The lines exportd always wrote: "exportd: run ID: message". The level
    // is not shown (it never was); a message that must stand out says so.
    std::string line = "exportd: ";
    if (!fields.run_id.empty()) absl::StrAppend(&line, "run ", fields.run_id, ": ");
    absl::StrAppend(&line, message);
    return line;
  }
  std::string line = "{\"time\":";
  AppendJsonString(&line,
                   absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone()));
  AppendField(&line, "level", LevelName(level));
  AppendField(&line, "component", fields.component);
  AppendField(&line, "run_id", fields.run_id);
  AppendField(&line, "export", fields.export_name);
  AppendField(&line, "segment", fields.segment);
  absl::StrAppend(&line, ",\"message\":");
  AppendJsonString(&line, message);
  line.push_back('}');
  return line;
}

void Log(LogLevel level, const LogFields& fields, absl::string_view message) {
  std::string line = FormatLogLine(g_format, absl::Now(), level, fields, message);
  line.push_back('\n');
  // One write(2) per line: lines of parallel threads do not interleave.
  size_t written = 0;
  while (written < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
    if (n <= 0) return;
    written += static_cast<size_t>(n);
  }
}

}  // namespace exportd
