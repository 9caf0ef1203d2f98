// exportctl: the command-line client of exportd.
//
//   exportctl [--server HOST:PORT] [--token T] [--output table|json] <noun> <verb> [args]
//
// RunExportctl is the whole program behind main(), with its streams injected
// so tests can drive it in-process:
//
//   std::ostringstream out, err;
//   std::istringstream in;
//   int code = exportd::client::RunExportctl({"exportctl", "segment", "list"}, out, err, in);
#ifndef EXPORTD_CLIENT_EXPORTCTL_H_
#define EXPORTD_CLIENT_EXPORTCTL_H_

#include <iostream>
#include <string>
#include <vector>

#include "client/cli.h"

namespace exportd::client {

// The exportctl version, printed by --version.
const char* ExportctlVersion();

// Runs exportctl with argv[0] the program name. Returns the exit code (0 ok,
// 1 error, 2 usage error, 3 a watched run failed or was canceled). Progress is
// drawn as a redrawn single line only when `out` is std::cout and stdout is a
// terminal. `env` reads environment variables (EXPORTD_SERVER, EXPORTD_TOKEN,
// EXPORTD_TOKEN_FILE, EXPORTD_DATA_DIR, and those named by --secret env:VAR).
int RunExportctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                 std::istream& in, const cli::EnvLookup& env);
int RunExportctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                 std::istream& in = std::cin);

}  // namespace exportd::client

// The entry point main() calls.
int RunExportctl(int argc, char** argv, std::ostream& out, std::ostream& err,
                 std::istream& in = std::cin);

#endif  // EXPORTD_CLIENT_EXPORTCTL_H_
