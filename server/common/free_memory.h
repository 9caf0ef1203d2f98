// Gives the heap's free memory back to the system after a large piece of
// work. glibc keeps what was freed in its arenas for reuse, so after an
// upload (its sort buffer, ServerOptions.upload_sort_memory_bytes, and its
// chunks, allocated on gRPC's threads) exportd stayed tens of MB larger than
// it needs until the next upload. Measured in bench/RESULTS.md (10M: the
// resident memory after the upload and first run 149-158 -> 123-133 MB).
// The engine calls it too when a run ends: what stays after a 10M first run
// would otherwise be under the next upload's sort buffer.
#ifndef EXPORTD_SERVER_COMMON_FREE_MEMORY_H_
#define EXPORTD_SERVER_COMMON_FREE_MEMORY_H_

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace exportd {

inline void ReturnFreeMemoryToTheSystem() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_FREE_MEMORY_H_
