#include "agent/passthrough/host_ops.h"

#include <errno.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace coherefs::agent::passthrough {
namespace {

constexpr uint64_t kResolveInside =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

void StatxToStat(const struct statx& x, struct stat* st) {
  memset(st, 0, sizeof(*st));
  st->st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
  st->st_ino = x.stx_ino;
  st->st_mode = x.stx_mode;
  st->st_nlink = x.stx_nlink;
  st->st_uid = x.stx_uid;
  st->st_gid = x.stx_gid;
  st->st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor);
  st->st_size = static_cast<off_t>(x.stx_size);
  st->st_blksize = x.stx_blksize;
  st->st_blocks = static_cast<blkcnt_t>(x.stx_blocks);
  st->st_atim = {x.stx_atime.tv_sec, x.stx_atime.tv_nsec};
  st->st_mtim = {x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec};
  st->st_ctim = {x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec};
}

template <typename Op>
absl::StatusOr<size_t> VectoredIo(const std::vector<iovec>& iov, uint64_t offset, Op op,
                                  absl::string_view what) {
  size_t total = 0;
  size_t i = 0;
  while (i < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(IOV_MAX, iov.size() - i));
    size_t slice = 0;
    for (int k = 0; k < count; ++k) slice += iov[i + k].iov_len;
    ssize_t n = op(&iov[i], count, static_cast<off_t>(offset + total));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (total > 0) break;  // report what was done; the guest retries the rest
      return LastErrnoStatus(what);
    }
    total += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < slice) break;
    i += count;
  }
  return total;
}

}  // namespace

absl::Status ValidateName(absl::string_view name, absl::string_view what) {
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != absl::string_view::npos ||
      name.find('\0') != absl::string_view::npos) {
    return ErrnoStatus(EINVAL, absl::StrCat(what, ": bad name"));
  }
  return absl::OkStatus();
}

absl::Status ReadOnlyError(absl::string_view what) { return ErrnoStatus(EROFS, what); }

absl::StatusOr<UniqueFd> OpenBeneath(int dirfd, const std::string& name, uint64_t flags,
                                     uint64_t mode, absl::string_view what) {
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = flags | O_NOFOLLOW | O_CLOEXEC;
  how.mode = mode;
  how.resolve = kResolveInside;
  // EAGAIN: a concurrent rename or mount raced the RESOLVE_BENEATH check;
  // openat2(2) advises retrying.
  for (int attempt = 0;; ++attempt) {
    long fd = syscall(SYS_openat2, dirfd, name.c_str(), &how, sizeof(how));
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno == EINTR || (errno == EAGAIN && attempt < 8)) continue;
    return LastErrnoStatus(what);
  }
}

absl::Status StatPathFd(int fd, struct stat* st, InodeKey* key) {
  struct statx x;
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT,
            STATX_BASIC_STATS | STATX_MNT_ID, &x) != 0) {
    return LastErrnoStatus("statx");
  }
  StatxToStat(x, st);
  if (key != nullptr) {
    key->dev = st->st_dev;
    key->ino = st->st_ino;
    key->mnt_id = (x.stx_mask & STATX_MNT_ID) ? x.stx_mnt_id : 0;
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenByFileKey(int mount_fd, const std::string& key, int flags) {
  union {
    struct file_handle fh;
    char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  } buf;
  if (key.size() <= 4 || key.size() - 4 > MAX_HANDLE_SZ) {
    return ErrnoStatus(EINVAL, absl::StrCat("open_by_handle_at: key of ", key.size(), " bytes"));
  }
  uint32_t type = 0;
  for (int i = 0; i < 4; ++i) type |= uint32_t{static_cast<unsigned char>(key[i])} << (8 * i);
  buf.fh.handle_type = static_cast<int>(type);
  buf.fh.handle_bytes = static_cast<unsigned>(key.size() - 4);
  memcpy(buf.fh.f_handle, key.data() + 4, key.size() - 4);
  int fd = open_by_handle_at(mount_fd, &buf.fh, flags | O_CLOEXEC);
  if (fd < 0) return LastErrnoStatus("open_by_handle_at");
  return UniqueFd(fd);
}

std::string FdName(int fd) { return std::to_string(fd); }

std::string ProcPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

absl::StatusOr<size_t> PreadvAll(int fd, const std::vector<iovec>& iov, uint64_t offset) {
  return VectoredIo(
      iov, offset, [fd](const iovec* v, int n, off_t off) { return preadv(fd, v, n, off); },
      "preadv");
}

absl::StatusOr<size_t> PwritevAll(int fd, const std::vector<iovec>& iov, uint64_t offset) {
  return VectoredIo(
      iov, offset, [fd](const iovec* v, int n, off_t off) { return pwritev(fd, v, n, off); },
      "pwritev");
}

}  // namespace coherefs::agent::passthrough
