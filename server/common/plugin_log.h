// The log level of a line a destination plugin logs through its
// RunContext (sdk::LogLevel), as exportd's log (log.h) writes it. Header
// only: for the run contexts of the engine and the API.
#ifndef EXPORTD_SERVER_COMMON_PLUGIN_LOG_H_
#define EXPORTD_SERVER_COMMON_PLUGIN_LOG_H_

#include "exportd/sdk/destination.h"
#include "server/common/log.h"

namespace exportd {

inline LogLevel PluginLogLevel(sdk::LogLevel level) {
  switch (level) {
    case sdk::LogLevel::kDebug: return LogLevel::kDebug;
    case sdk::LogLevel::kInfo: return LogLevel::kInfo;
    case sdk::LogLevel::kWarning: return LogLevel::kWarning;
    case sdk::LogLevel::kError: return LogLevel::kError;
  }
  return LogLevel::kInfo;
}

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_PLUGIN_LOG_H_
