// The agent's private mount namespace (like virtiofsd --sandbox=namespace):
// the calling thread moves into a new mount namespace whose root is a small
// read-only tmpfs holding only what the agent touches after start-up:
//
//   rw_dirs     bound (recursively) read-write at their own paths: the
//               shared directories, the vhost-user socket directories (the
//               agent removes its sockets at exit), the table export dir
//   ro_paths    bound read-only if they exist (resolver files for gRPC:
//               /etc/hosts, /etc/resolv.conf, /etc/nsswitch.conf, ...)
//   /proc       a new procfs with subset=pid (the passthrough reopens inodes
//               through /proc/self/fd; no /proc/sys, /proc/kcore, ...)
//   /dev/null
//
// Every mount is private (no propagation either way). Inside, FUSE mounts
// of type fuse.coherefs that came along with a shared directory (the
// agent's own host mounts, or another agent's) are detached, so a guest can
// never make the agent call into itself. Paths are bound at the spelling
// the configuration uses, so the agent's later opens by path still work;
// a path nested in another rw dir is already visible and is skipped.
//
// Only the calling thread changes namespace (Linux keeps the mount
// namespace per thread); JoinMountNamespace moves another thread in.
//
// Errors: the errno of the failing step (e.g. PermissionDenied from
// unshare without CAP_SYS_ADMIN), naming the path.
#ifndef COHEREFS_AGENT_SANDBOX_MOUNT_NAMESPACE_H_
#define COHEREFS_AGENT_SANDBOX_MOUNT_NAMESPACE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace coherefs::agent::sandbox {

struct MountPlan {
  std::vector<std::string> rw_dirs;   // must exist
  std::vector<std::string> ro_paths;  // skipped when missing
};

// Builds the namespace and pivots the calling thread into it. Afterwards
// JoinMountNamespace() can be called from any other thread (it is
// async-signal-safe).
absl::Status EnterMountNamespace(const MountPlan& plan);

// Moves the calling thread into the namespace EnterMountNamespace built
// (unshare(CLONE_FS) + setns), landing at its root. 0 or -errno.
int JoinMountNamespace();

}  // namespace coherefs::agent::sandbox

#endif  // COHEREFS_AGENT_SANDBOX_MOUNT_NAMESPACE_H_
