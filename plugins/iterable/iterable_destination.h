// The Iterable destination: its manifest, settings validation and the
// factory of connections. The plugin library exports CreateIterableDestination
// through EXPORTD_DESTINATION_PLUGIN (plugin_exports.cc); tests call it
// directly.
//
//   auto destination = CreateIterableDestination();
//   ITERABLE_RETURN_IF_ERROR((*destination)->ValidateSettings(settings));
//   auto connection = (*destination)->Connect(settings);
#ifndef EXPORTD_PLUGINS_ITERABLE_ITERABLE_DESTINATION_H_
#define EXPORTD_PLUGINS_ITERABLE_ITERABLE_DESTINATION_H_

#include <memory>

#include "absl/status/statusor.h"
#include "exportd/sdk/destination.h"

namespace exportd::iterable {

absl::StatusOr<std::unique_ptr<sdk::Destination>> CreateIterableDestination();

}  // namespace exportd::iterable

#endif  // EXPORTD_PLUGINS_ITERABLE_ITERABLE_DESTINATION_H_
