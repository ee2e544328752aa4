#include "common/errno_status.h"

#include <errno.h>

#include "common/status_macros.h"
#include "gtest/gtest.h"

namespace coherefs {
namespace {

TEST(ErrnoStatusTest, RoundTripsExactErrno) {
  for (int err : {ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EXDEV, EACCES, EPERM,
                  ENAMETOOLONG, ELOOP, ENOSPC, EIO, ENODATA, ERANGE, EOPNOTSUPP}) {
    absl::Status s = ErrnoStatus(err, "op");
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(ErrnoFromStatus(s), err) << s;
  }
}

TEST(ErrnoStatusTest, PicksCodesByWhatTheCallerShouldDo) {
  EXPECT_EQ(ErrnoStatus(ENOENT, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus(EEXIST, "x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoStatus(EAGAIN, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoStatus(EACCES, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(ErrnoStatus(0, "x").ok());
}

TEST(ErrnoStatusTest, MessageNamesTheOperation) {
  absl::Status s = ErrnoStatus(ENOENT, "open /a");
  EXPECT_NE(s.message().find("open /a"), absl::string_view::npos);
}

TEST(ErrnoStatusTest, StatusWithoutPayloadMapsByCode) {
  EXPECT_EQ(ErrnoFromStatus(absl::NotFoundError("x")), ENOENT);
  EXPECT_EQ(ErrnoFromStatus(absl::InternalError("x")), EIO);
  EXPECT_EQ(ErrnoFromStatus(absl::OkStatus()), 0);
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status Quarter(int x, int* out) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(*out, Half(h));
  RETURN_IF_ERROR(absl::OkStatus());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  int out = 0;
  EXPECT_TRUE(Quarter(8, &out).ok());
  EXPECT_EQ(out, 2);
  EXPECT_EQ(Quarter(6, &out).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coherefs
