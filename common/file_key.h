// File keys: how a file is named to the coordinator (DESIGN.md "a file has
// the same slot on every host"). A key is the file's handle as
// name_to_handle_at(2) gives it — u32 little-endian handle_type followed by
// the f_handle bytes — without the mount id, which is local to one host and
// mount namespace. fanotify's FID records carry the same handle
// (agent/coherence/host_watcher.h), so a key made from an event equals the
// key made from a path.
//
// Two files on different file systems could share a key; that only merges
// their slots (extra invalidations, never a missed one).
//
// Pure functions of the file system; thread-safe.
#ifndef COHEREFS_COMMON_FILE_KEY_H_
#define COHEREFS_COMMON_FILE_KEY_H_

#include <fcntl.h>

#include <string>

#include "absl/status/statusor.h"

struct file_handle;

namespace coherefs {

// The key of a file handle (handle_type and handle_bytes as the kernel
// filled them in).
std::string FileKeyOfHandle(const struct file_handle& fh);

// The key of `name` under `dirfd` (name_to_handle_at's arguments; the last
// component is not followed unless `flags` has AT_SYMLINK_FOLLOW; "" with
// AT_EMPTY_PATH names dirfd itself). Errors: the errno as ErrnoStatus
// (ENOENT, EOPNOTSUPP for a file system without handles, ...).
absl::StatusOr<std::string> FileKeyAt(int dirfd, const char* name, int flags);

// Lower-case hex of a key's bytes, for logs, tools and test messages.
std::string FileKeyHex(const std::string& key);

}  // namespace coherefs

#endif  // COHEREFS_COMMON_FILE_KEY_H_
