// The symbols libexportd_jsonl.so exports: the ABI version and the factory.
#include "jsonl_destination.h"

EXPORTD_DESTINATION_PLUGIN(exportd::jsonl::CreateJsonlDestination)
