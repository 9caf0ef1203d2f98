// exportd-plugin-check: loads one destination plugin the way exportd does and
// prints its manifest, or why it was refused.
//
//   exportd-plugin-check build/plugins/libexportd_jsonl.so
//
// Exit status: 0 when the plugin loads, 1 when it is refused, 2 on bad usage.
#include <iostream>

#include "exportd/v1/destination.pb.h"
#include "google/protobuf/util/json_util.h"
#include "manifest_proto.h"
#include "plugin_loader.h"
#include "registry.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " <path/to/libexportd_NAME.so>\n"
              << "Loads a destination plugin as exportd does; prints its manifest as JSON,\n"
              << "or the reason it is refused (exit status 1).\n";
    return 2;
  }
  exportd::destinations::DestinationRegistry registry;
  absl::Status loaded = exportd::destinations::LoadPlugin(argv[1], registry);
  if (!loaded.ok()) {
    std::cout << "REFUSED " << argv[1] << ": " << loaded.message() << "\n";
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
              << exportd::sdk::kAbiVersion << ")\n";
  }
  return 0;
}
