// The OpenAPI 3 document of the HTTP/JSON API, built from the proto
// descriptors: one POST path per RPC, every message and enum it uses under
// components/schemas (keyed by full name, as protobuf's JSON mapping writes
// them: lowerCamelCase fields, enums as names, 64-bit integers as strings),
// Connect's error body, and the bearer-token security scheme.
//
//   const auto* runs = DescriptorPool::generated_pool()->FindServiceByName("exportd.v1.RunService");
//   std::string json = BuildOpenApiDocument({runs}, "0.1.0");
#ifndef EXPORTD_SERVER_HTTP_OPENAPI_H_
#define EXPORTD_SERVER_HTTP_OPENAPI_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace exportd::http {

std::string BuildOpenApiDocument(
    const std::vector<const google::protobuf::ServiceDescriptor*>& services,
    absl::string_view version);

}  // namespace exportd::http

#endif  // EXPORTD_SERVER_HTTP_OPENAPI_H_
