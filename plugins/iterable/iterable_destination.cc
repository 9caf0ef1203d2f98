#include "iterable_destination.h"

#include "email.h"
#include "iterable_connection.h"
#include "iterable_settings.h"
#include "status_macros.h"

namespace exportd::iterable {
namespace {

class IterableDestination final : public sdk::Destination {
 public:
  const sdk::Manifest& manifest() const override { return manifest_; }

  absl::Status ValidateSettings(const sdk::Settings& settings) const override {
    return ParseSettings(settings).status();
  }

  // The project type decides which identity field is required and keys
  // members. Members delivered under another project type were keyed by
  // another identity (keyed_by changes): the engine resyncs them all.
  absl::StatusOr<sdk::MappingCheck> ValidateMapping(
      const sdk::Settings& settings, const std::vector<std::string>& fields) const override {
    ITERABLE_ASSIGN_OR_RETURN(ProjectType type, ParseProjectType(settings));
    ITERABLE_ASSIGN_OR_RETURN(std::string identifier, IdentifierFieldFor(type, fields));
    std::string keyed_by = identifier + " (project_type " + ProjectTypeName(type) + ")";
    return sdk::MappingCheck{std::move(identifier), std::move(keyed_by)};
  }

  absl::StatusOr<std::unique_ptr<sdk::Connection>> Connect(const sdk::Settings& settings) override {
    ITERABLE_ASSIGN_OR_RETURN(ConnectionOptions options, ParseSettings(settings));
    ITERABLE_ASSIGN_OR_RETURN(std::unique_ptr<IterableConnection> connection,
                              IterableConnection::Create(std::move(options)));
    return std::unique_ptr<sdk::Connection>(std::move(connection));
  }

  // Iterable stores emails trimmed and lowercased: "A@x.com " is "a@x.com".
  // A userId is taken as it is (case matters; surrounding spaces make it
  // invalid, they are not trimmed away).
  std::string CanonicalIdentifier(std::string_view field, std::string_view value) const override {
    if (field == kEmailField) return NormalizeEmail(value);
    return std::string(value);
  }

 private:
  const sdk::Manifest manifest_ = BuildManifest();
};

}  // namespace

absl::StatusOr<std::unique_ptr<sdk::Destination>> CreateIterableDestination() {
  return std::make_unique<IterableDestination>();
}

}  // namespace exportd::iterable
