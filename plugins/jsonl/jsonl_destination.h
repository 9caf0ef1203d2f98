// The JSON Lines destination: each segment becomes a file of JSON objects in a
// directory, one per member. It proves the plugin contract is generic, and is
// handy for debugging exports and feeding other tools.
//
// Settings:
//   directory  (string, required)  an absolute path to an existing, writable
//                                   directory.
//   fsync      (bool, default false) flush each write to disk before
//                                   reporting it delivered.
// Mapping: free-form (any destination field name; none required). The field
// "id" is reserved: it holds the profile id. Supports removal.
// Audience: `<directory>/<segment name, escaped>.jsonl`; its id is the file
// name. See audience_file.h for the escaping and the atomic writes.
#ifndef EXPORTD_PLUGINS_JSONL_JSONL_DESTINATION_H_
#define EXPORTD_PLUGINS_JSONL_JSONL_DESTINATION_H_

#include <memory>

#include "absl/status/statusor.h"
#include "exportd/sdk/destination.h"

namespace exportd::jsonl {

// The manifest above.
sdk::Manifest JsonlManifest();

// The factory the plugin exports.
absl::StatusOr<std::unique_ptr<sdk::Destination>> CreateJsonlDestination();

}  // namespace exportd::jsonl

#endif  // EXPORTD_PLUGINS_JSONL_JSONL_DESTINATION_H_
