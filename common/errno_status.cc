#include "common/errno_status.h"

#include <errno.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/cord.h"

namespace coherefs {
namespace {

constexpr char kErrnoPayload[] = "coherefs/errno";

int ErrnoForCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kNotFound:
      return ENOENT;
    case absl::StatusCode::kAlreadyExists:
      return EEXIST;
    case absl::StatusCode::kPermissionDenied:
      return EACCES;
    case absl::StatusCode::kInvalidArgument:
      return EINVAL;
    case absl::StatusCode::kFailedPrecondition:
      return EBUSY;
    case absl::StatusCode::kResourceExhausted:
      return ENOSPC;
    case absl::StatusCode::kUnavailable:
      return EAGAIN;
    case absl::StatusCode::kUnimplemented:
      return ENOSYS;
    case absl::StatusCode::kOutOfRange:
      return ERANGE;
    case absl::StatusCode::kDeadlineExceeded:
      return ETIMEDOUT;
    case absl::StatusCode::kCancelled:
      return ECANCELED;
    default:
      return EIO;
  }
}

}  // namespace

absl::Status ErrnoStatus(int err, absl::string_view what) {
  if (err == 0) return absl::OkStatus();
  absl::Status status = absl::ErrnoToStatus(err, what);
  status.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(err)));
  return status;
}

absl::Status LastErrnoStatus(absl::string_view what) {
  return ErrnoStatus(errno, what);
}

int ErrnoFromStatus(const absl::Status& status) {
  if (status.ok()) return 0;
  auto payload = status.GetPayload(kErrnoPayload);
  int err = 0;
  if (payload.has_value() && absl::SimpleAtoi(std::string(*payload), &err) && err > 0) {
    return err;
  }
  return ErrnoForCode(status.code());
}

}  // namespace coherefs
