// Small helpers for absl::Status plumbing. Debian's Abseil (20220623) ships
// no RETURN_IF_ERROR / ASSIGN_OR_RETURN, so coherefs defines one pair here.
//
//   RETURN_IF_ERROR(DoThing());
//   ASSIGN_OR_RETURN(int fd, OpenThing(path));
#ifndef COHEREFS_COMMON_STATUS_MACROS_H_
#define COHEREFS_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define COHEREFS_CONCAT_INNER_(a, b) a##b
#define COHEREFS_CONCAT_(a, b) COHEREFS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status _coherefs_status = (expr);      \
    if (!_coherefs_status.ok()) return _coherefs_status; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  COHEREFS_ASSIGN_OR_RETURN_IMPL_(COHEREFS_CONCAT_(_coherefs_or_, __LINE__), lhs, expr)

#define COHEREFS_ASSIGN_OR_RETURN_IMPL_(var, lhs, expr) \
  auto var = (expr);                                    \
  if (!var.ok()) return std::move(var).status();        \
  lhs = std::move(var).value()

#endif  // COHEREFS_COMMON_STATUS_MACROS_H_
