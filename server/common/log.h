// exportd's log: one line per event on stderr, as text (the default) or as
// one JSON object per line (--log-format json) with the fields
// time, level, component, run_id, export, segment and message.
//
//   Log(LogLevel::kInfo, {"engine", run_id, "vip", "VIP"}, "delivered 1000 records");
//   // text: exportd: run run-1f2e: delivered 1000 records
//   // json: {"time":"2026-12-02T14:05:32.123456Z","level":"info","component":"engine",
//   //        "run_id":"run-1f2e","export":"vip","segment":"VIP","message":"delivered 1000 records"}
//
// Messages never hold a secret or a token: callers log what they would show
// a user. Text lines are the ones exportd always wrote ("exportd: run ID:
// message"; the level shows in JSON only), written as the message says (callers escape what
// outside parties wrote, EscapeForTerminal); JSON escapes every string.
#ifndef EXPORTD_SERVER_COMMON_LOG_H_
#define EXPORTD_SERVER_COMMON_LOG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace exportd {

enum class LogFormat { kText, kJson };
enum class LogLevel { kDebug, kInfo, kWarning, kError };

// What a line is about; empty fields are left out.
struct LogFields {
  std::string component;  // "server", "engine", "scheduler", "api", "plugins"...
  std::string run_id;
  std::string export_name;
  std::string segment;
};

// "text" or "json" (--log-format); INVALID_ARGUMENT otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);
// Set once at start-up, before other threads log; text until then.
void SetLogFormat(LogFormat format);

// Writes one line to stderr, in one write, so that lines from several
// threads never interleave.
void Log(LogLevel level, const LogFields& fields, absl::string_view message);

// The line Log writes, without its newline (tests).
std::string FormatLogLine(LogFormat format, absl::Time time, LogLevel level,
                          const LogFields& fields, absl::string_view message);

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_LOG_H_
