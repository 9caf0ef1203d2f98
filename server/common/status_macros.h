// Early-return helpers for absl::Status / absl::StatusOr.
//
//   EXPORTD_RETURN_IF_ERROR(store.Put(x));
//   EXPORTD_ASSIGN_OR_RETURN(auto conn, store.GetConnection(id));
#ifndef EXPORTD_SERVER_COMMON_STATUS_MACROS_H_
#define EXPORTD_SERVER_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define EXPORTD_RETURN_IF_ERROR(expr)               \
  do {                                              \
    ::absl::Status exportd_status_ = (expr);        \
    if (!exportd_status_.ok()) return exportd_status_; \
  } while (0)

#define EXPORTD_STATUS_CONCAT_INNER_(a, b) a##b
#define EXPORTD_STATUS_CONCAT_(a, b) EXPORTD_STATUS_CONCAT_INNER_(a, b)

#define EXPORTD_ASSIGN_OR_RETURN(lhs, expr) \
  EXPORTD_ASSIGN_OR_RETURN_IMPL_(EXPORTD_STATUS_CONCAT_(exportd_statusor_, __LINE__), lhs, expr)

#define EXPORTD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // EXPORTD_SERVER_COMMON_STATUS_MACROS_H_
