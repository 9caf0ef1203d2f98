#include "server/http/openapi.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace exportd::http {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using nlohmann::json;

constexpr char kErrorSchema[] = "connect.error";
constexpr char kUploadMembers[] = "exportd.v1.SegmentService.UploadMembers";

json Ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }

class SchemaBuilder {
 public:
  explicit SchemaBuilder(json& schemas) : schemas_(schemas) {}

  // Adds the message (and everything it uses) once; returns its $ref.
  json Message(const Descriptor* message) {
    const std::string& name = message->full_name();
    if (done_.insert(name).second) {
      json properties = json::object();
      for (int i = 0; i < message->field_count(); ++i) {
        const FieldDescriptor* field = message->field(i);
        properties[field->json_name()] = Field(field);
      }
      json schema = {{"type", "object"}, {"properties", std::move(properties)}};
      // A oneof's members are alternatives: at most one is set.
      for (int i = 0; i < message->oneof_decl_count(); ++i) {
        const auto* oneof = message->oneof_decl(i);
        if (oneof->is_synthetic()) continue;
        std::string members;
        for (int f = 0; f < oneof->field_count(); ++f) {
          absl::StrAppend(&members, f == 0 ? "" : ", ", oneof->field(f)->json_name());
        }
        absl::StrAppend(&description_[name], description_[name].empty() ? "" : " ",
                        "At most one of ", members, " is set (oneof ", oneof->name(), ").");
      }
      if (!description_[name].empty()) schema["description"] = description_[name];
      schemas_[name] = std::move(schema);
    }
    return Ref(name);
  }

 private:
  json Enum(const EnumDescriptor* type) {
    const std::string& name = type->full_name();
    if (done_.insert(name).second) {
      json values = json::array();
      for (int i = 0; i < type->value_count(); ++i) values.push_back(type->value(i)->name());
      schemas_[name] = {{"type", "string"}, {"enum", std::move(values)}};
    }
    return Ref(name);
  }

  json Single(const FieldDescriptor* field) {
    switch (field->type()) {
      case FieldDescriptor::TYPE_INT32:
      case FieldDescriptor::TYPE_SINT32:
      case FieldDescriptor::TYPE_SFIXED32:
        return {{"type", "integer"}, {"format", "int32"}};
      case FieldDescriptor::TYPE_UINT32:
      case FieldDescriptor::TYPE_FIXED32:
        return {{"type", "integer"}, {"format", "uint32"}};
      case FieldDescriptor::TYPE_INT64:
      case FieldDescriptor::TYPE_SINT64:
      case FieldDescriptor::TYPE_SFIXED64:
        return {{"type", "string"}, {"format", "int64"}};
      case FieldDescriptor::TYPE_UINT64:
      case FieldDescriptor::TYPE_FIXED64:
        return {{"type", "string"}, {"format", "uint64"}};
      case FieldDescriptor::TYPE_DOUBLE:
        return {{"type", "number"}, {"format", "double"}};
      case FieldDescriptor::TYPE_FLOAT:
        return {{"type", "number"}, {"format", "float"}};
      case FieldDescriptor::TYPE_BOOL:
        return {{"type", "boolean"}};
      case FieldDescriptor::TYPE_STRING:
        return {{"type", "string"}};
      case FieldDescriptor::TYPE_BYTES:
        return {{"type", "string"}, {"format", "byte"}};
      case FieldDescriptor::TYPE_ENUM:
        return Enum(field->enum_type());
      case FieldDescriptor::TYPE_MESSAGE:
      case FieldDescriptor::TYPE_GROUP:
        return Message(field->message_type());
    }
    return json::object();
  }

  json Field(const FieldDescriptor* field) {
    if (field->is_map()) {
      return {{"type", "object"},
              {"additionalProperties", Single(field->message_type()->map_value())}};
    }
    if (field->is_repeated()) return {{"type", "array"}, {"items", Single(field)}};
    return Single(field);
  }

  json& schemas_;
  std::set<std::string> done_;
  std::map<std::string, std::string> description_;
};

json JsonContent(json schema) { return {{"application/json", {{"schema", std::move(schema)}}}}; }

}  // namespace

std::string BuildOpenApiDocument(
    const std::vector<const google::protobuf::ServiceDescriptor*>& services,
    absl::string_view version) {
  json schemas = json::object();
  schemas[kErrorSchema] = {
      {"type", "object"},
      {"description", "A failed call (the Connect protocol's error body)."},
      {"properties",
       {{"code", {{"type", "string"}, {"description", "The canonical code, e.g. not_found."}}},
        {"message", {{"type", "string"}}},
        {"grpcCode", {{"type", "integer"}, {"description", "The numeric canonical code."}}}}}};
  SchemaBuilder builder(schemas);
  json paths = json::object();
  for (const auto* service : services) {
    for (int m = 0; m < service->method_count(); ++m) {
      const auto* method = service->method(m);
      json request = JsonContent(builder.Message(method->input_type()));
      std::string description;
      if (method->client_streaming()) {
        request = {{"application/x-ndjson", {{"schema", builder.Message(method->input_type())}}}};
        description = absl::StrCat("Client-streaming: the body is newline-delimited ",
                                   method->input_type()->full_name(), " JSON messages.");
        if (method->full_name() == kUploadMembers) {
          request["text/csv"] = {{"schema", {{"type", "string"}}}};
          absl::StrAppend(&description,
                          " Or a CSV file (Content-Type: text/csv), with the query parameters "
                          "segment, id-field, field (repeatable, NAME:TYPE) and filename.");
        }
      }
      json ok;
      if (method->server_streaming()) {
        ok = {{"description",
               absl::StrCat("Server-Sent Events: `data: <", method->output_type()->full_name(),
                            " JSON>` per message, then `event: end`; an error as `event: "
                            "error` with the error body as data.")},
              {"content", {{"text/event-stream", {{"schema", {{"type", "string"}}}}}}}};
        builder.Message(method->output_type());
      } else {
        ok = {{"description", "OK"},
              {"content", JsonContent(builder.Message(method->output_type()))}};
      }
      json operation = {
          {"operationId", absl::StrCat(service->name(), "_", method->name())},
          {"tags", {service->full_name()}},
          {"summary", absl::StrCat(service->full_name(), ".", method->name())},
          {"requestBody", {{"required", true}, {"content", std::move(request)}}},
          {"responses",
           {{"200", std::move(ok)},
            {"default",
             {{"description", "An error"}, {"content", JsonContent(Ref(kErrorSchema))}}}}},
      };
      if (!description.empty()) operation["description"] = description;
      paths[absl::StrCat("/", service->full_name(), "/", method->name())] = {
          {"post", std::move(operation)}};
    }
  }
  json document = {
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "exportd HTTP/JSON API"},
        {"version", std::string(version)},
        {"description",
         "Every gRPC method of exportd in the Connect protocol's JSON form "
         "(docs/http-api.md)."}}},
      {"servers", {{{"url", "/v1"}}}},
      {"paths", std::move(paths)},
      {"components",
       {{"schemas", std::move(schemas)},
        {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
      {"security", {{{"bearer", json::array()}}}},
  };
  return document.dump(1);
}

}  // namespace exportd::http
