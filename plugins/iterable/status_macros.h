// Status helpers for the Iterable plugin. Abseil 20220623 has no
// ABSL_RETURN_IF_ERROR; the plugin builds against the SDK only, so it keeps its
// own pair instead of the server's.
//
//   ITERABLE_RETURN_IF_ERROR(ValidateSomething());
//   ITERABLE_ASSIGN_OR_RETURN(auto lists, FetchLists(ctx));
#ifndef EXPORTD_PLUGINS_ITERABLE_STATUS_MACROS_H_
#define EXPORTD_PLUGINS_ITERABLE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ITERABLE_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::absl::Status iterable_status_ = (expr);            \
    if (!iterable_status_.ok()) return iterable_status_; \
  } while (false)

#define ITERABLE_STATUS_CONCAT_INNER_(a, b) a##b
#define ITERABLE_STATUS_CONCAT_(a, b) ITERABLE_STATUS_CONCAT_INNER_(a, b)

#define ITERABLE_ASSIGN_OR_RETURN(lhs, expr) \
  ITERABLE_ASSIGN_OR_RETURN_IMPL_(ITERABLE_STATUS_CONCAT_(iterable_statusor_, __LINE__), lhs, expr)

#define ITERABLE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = *std::move(statusor)

#endif  // EXPORTD_PLUGINS_ITERABLE_STATUS_MACROS_H_
