// Host system calls as the passthrough file system uses them, each turning
// errno into a Status right after the call. Everything here works on fds and
// single path components: nothing takes a guest-supplied path.
// Thread-safe: stateless functions.
#ifndef COHEREFS_AGENT_PASSTHROUGH_HOST_OPS_H_
#define COHEREFS_AGENT_PASSTHROUGH_HOST_OPS_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/passthrough/inode_table.h"
#include "common/unique_fd.h"

namespace coherefs::agent::passthrough {

// The open(2) flags a guest may pass on to the host. Everything else (the
// kernel-internal __FMODE_EXEC bit, O_PATH, O_TMPFILE, O_CREAT, ...) is
// dropped, also because openat2 rejects unknown bits with EINVAL.
inline constexpr int kPassedOpenFlags = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC |
                                        O_DIRECT | O_LARGEFILE | O_NOATIME | O_TRUNC | FASYNC;

// EINVAL unless `name` is exactly one path component: not "", ".", "..",
// and no '/' or NUL.
absl::Status ValidateName(absl::string_view name, absl::string_view what);

// EROFS for `what`.
absl::Status ReadOnlyError(absl::string_view what);

// openat2(dirfd, name) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS and O_NOFOLLOW | O_CLOEXEC added to `flags`: one
// component under `dirfd`, never following any symlink. With O_PATH a
// trailing symlink is opened as itself; otherwise it is ELOOP.
absl::StatusOr<UniqueFd> OpenBeneath(int dirfd, const std::string& name, uint64_t flags,
                                     uint64_t mode, absl::string_view what);

// stat of the file an (O_PATH) fd refers to, a symlink not followed, and
// its InodeKey (key may be null), in one statx call.
absl::Status StatPathFd(int fd, struct stat* st, InodeKey* key);

// open_by_handle_at(mount_fd, key) for a file key as common/file_key.h
// makes it (u32 LE handle_type | f_handle): the file the key names on the
// file system of `mount_fd`, whatever its path now. Needs
// CAP_DAC_READ_SEARCH (EPERM otherwise). ESTALE when the file is gone;
// EINVAL for a malformed key. O_CLOEXEC is added to `flags`.
absl::StatusOr<UniqueFd> OpenByFileKey(int mount_fd, const std::string& key, int flags);

// "N" for openat(proc_self_fd, "N") and "/proc/self/fd/N" for the calls
// that only take a path (the xattr family has no *at form in glibc).
std::string FdName(int fd);
std::string ProcPath(int fd);

// preadv/pwritev of a whole iovec list at `offset`, in IOV_MAX slices;
// stops at the first short transfer (EOF, disk full) and returns the count.
// An error after some bytes moved returns the count, as write(2) does.
absl::StatusOr<size_t> PreadvAll(int fd, const std::vector<iovec>& iov, uint64_t offset);
absl::StatusOr<size_t> PwritevAll(int fd, const std::vector<iovec>& iov, uint64_t offset);

}  // namespace coherefs::agent::passthrough

#endif  // COHEREFS_AGENT_PASSTHROUGH_HOST_OPS_H_
