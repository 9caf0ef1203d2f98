// exportd-plugin-check: loads one destination plugin the way exportd does and
// prints its manifest, or why it was refused.
//
//   exportd-plugin-check build/plugins/libexportd_jsonl.so
//
// Exit status: 0 when the plugin loads, 1 when it is refused, 2 on bad usage.
#include <fcntl.h>
#include <unistd.h>

#include <iostream>
#include <string>

#include "exportd/v1/destination.pb.h"
#include "google/protobuf/util/json_util.h"
#include "manifest_proto.h"
#include "plugin_loader.h"
#include "registry.h"
#include "server/common/terminal_text.h"

namespace {

void PrintUsage(std::ostream& out, const char* argv0) {
  out << "usage: " << argv0 << " <path/to/libexportd_NAME.so>\n"
      << "Loads a destination plugin as exportd does; prints its manifest as JSON and\n"
      << "'OK NAME VERSION (ABI N, privacy statement V)', or 'REFUSED PATH: REASON'\n"
      << "(exit status 1). A plugin without a privacy statement is refused, as exportd\n"
      << "refuses it.\n"
      << "Exit status: 0 the plugin loads, 1 it is refused, 2 bad usage.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    PrintUsage(std::cout, argv[0]);
    return 0;
  }
  if (argc != 2 || (argv[1][0] == '-' && argv[1][1] != '\0')) {
    PrintUsage(std::cerr, argv[0]);
    return 2;
  }
  exportd::destinations::DestinationRegistry registry;
  // The loader logs a refusal through exportd's log (stderr) as exportd does;
  // here the REFUSED line says it, once: stderr is silenced while it loads.
  const int saved_stderr = ::dup(STDERR_FILENO);
  const int null_fd = ::open("/dev/null", O_WRONLY);
  if (saved_stderr >= 0 && null_fd >= 0) ::dup2(null_fd, STDERR_FILENO);
  absl::Status loaded = exportd::destinations::LoadPlugin(argv[1], registry);
  if (saved_stderr >= 0) {
    ::dup2(saved_stderr, STDERR_FILENO);
    ::close(saved_stderr);
  }
  if (null_fd >= 0) ::close(null_fd);
  if (!loaded.ok()) {
    std::cout << "REFUSED " << exportd::EscapeForTerminal(argv[1]) << ": "
              << exportd::EscapeForTerminal(loaded.message()) << "\n";
    return 1;
  }
  for (const exportd::destinations::RegisteredDestination& d : registry.List()) {
    exportd::v1::Destination proto;
    exportd::destinations::ManifestToProto(*d.manifest, d.library_path, &proto);
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    std::string json;
    if (!google::protobuf::util::MessageToJsonString(proto, &json, options).ok()) {
      std::cout << proto.DebugString();
    } else {
      std::cout << json;
    }
    std::cout << "OK " << d.manifest->name << " " << d.manifest->version << " (ABI "
              << exportd::sdk::kAbiVersion << ", privacy statement "
              << exportd::EscapeForTerminal(d.manifest->privacy_statement_version) << ")\n";
  }
  return 0;
}
