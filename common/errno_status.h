// Conversions between errno and absl::Status, used right after a syscall
// (the edge) and, the other way, when a Status must become a FUSE reply.
// Thread-safe: pure functions.
#ifndef COHEREFS_COMMON_ERRNO_STATUS_H_
#define COHEREFS_COMMON_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace coherefs {

// absl::ErrnoToStatus(err, what) (Abseil's errno -> code mapping), plus the
// errno kept as a payload so ErrnoFromStatus() can recover it exactly:
// several errno values share one absl code, and a FUSE reply needs the errno.
// ErrnoStatus(ENOENT, "open foo") -> NotFound("open foo: No such file ...").
absl::Status ErrnoStatus(int err, absl::string_view what);

// ErrnoStatus(errno, what): call immediately after the failing syscall.
absl::Status LastErrnoStatus(absl::string_view what);

// The errno a Status stands for: the payload set by ErrnoToStatus when
// present, otherwise a best match for the code (OK -> 0).
int ErrnoFromStatus(const absl::Status& status);

}  // namespace coherefs

#endif  // COHEREFS_COMMON_ERRNO_STATUS_H_
