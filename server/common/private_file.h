// Files that hold secrets (tokens, keys) must be private to their owner.
//
//   EXPORTD_RETURN_IF_ERROR(CheckPrivateFile("/etc/exportd/tokens", "--tokens-file"));
//
// `what` names the file for the operator, usually the flag that gave it
// ("--tokens-file", "--master-key-file") or what it is ("admin token file").
#ifndef EXPORTD_SERVER_COMMON_PRIVATE_FILE_H_
#define EXPORTD_SERVER_COMMON_PRIVATE_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace exportd {

// OK when `path` is a regular file that neither its group nor others may
// read, write or execute (mode 0600 or stricter; symbolic links are followed).
// NOT_FOUND when it does not exist, so that callers can create it instead.
// FAILED_PRECONDITION otherwise, naming `what`, the path and the fix, e.g.
// "--tokens-file '/x' is readable by group or others (mode 0644); run 'chmod 600 /x'".
absl::Status CheckPrivateFile(const std::string& path, absl::string_view what);

}  // namespace exportd

#endif  // EXPORTD_SERVER_COMMON_PRIVATE_FILE_H_
