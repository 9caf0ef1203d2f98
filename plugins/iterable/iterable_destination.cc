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

  absl::StatusOr<std::unique_ptr<sdk::Connection>> Connect(const sdk::Settings& settings) override {
    ITERABLE_ASSIGN_OR_RETURN(ConnectionOptions options, ParseSettings(settings));
    ITERABLE_ASSIGN_OR_RETURN(std::unique_ptr<IterableConnection> connection,
                              IterableConnection::Create(std::move(options)));
    return std::unique_ptr<sdk::Connection>(std::move(connection));
  }

  // Iterable stores emails trimmed and lowercased: "A@x.com " is "a@x.com".
  std::string CanonicalIdentifier(std::string_view field, std::string_view value) const override {
    if (field == "email") return NormalizeEmail(value);
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
