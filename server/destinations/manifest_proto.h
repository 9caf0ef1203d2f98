// Converts a plugin's manifest to its API form (exportd.v1.Destination).
//
//   exportd::v1::Destination proto;
//   ManifestToProto(entry.destination->manifest(), entry.library_path, &proto);
#ifndef EXPORTD_SERVER_DESTINATIONS_MANIFEST_PROTO_H_
#define EXPORTD_SERVER_DESTINATIONS_MANIFEST_PROTO_H_

#include <string>

#include "exportd/sdk/destination.h"
#include "exportd/v1/destination.pb.h"

namespace exportd::destinations {

// Fills `out` (cleared first) from `manifest` and the library it came from.
void ManifestToProto(const sdk::Manifest& manifest, const std::string& library_path,
                     exportd::v1::Destination* out);

}  // namespace exportd::destinations

#endif  // EXPORTD_SERVER_DESTINATIONS_MANIFEST_PROTO_H_
