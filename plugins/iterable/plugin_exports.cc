// The plugin library's exported symbols: ABI version and factory.
#include "exportd/sdk/destination.h"
#include "iterable_destination.h"

EXPORTD_DESTINATION_PLUGIN(::exportd::iterable::CreateIterableDestination)
