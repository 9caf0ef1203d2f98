// "hello": the smallest useful destination. It keeps audiences in memory, which
// is enough to show the contract; a real plugin talks to a service.
#ifndef HELLO_DESTINATION_H_
#define HELLO_DESTINATION_H_

#include <memory>

#include "exportd/sdk/destination.h"

namespace hello {

absl::StatusOr<std::unique_ptr<exportd::sdk::Destination>> CreateHelloDestination();

}  // namespace hello

#endif  // HELLO_DESTINATION_H_
