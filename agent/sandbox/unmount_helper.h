// UnmountHelper: the one piece of the agent that keeps CAP_SYS_ADMIN in the
// host's mount namespace, so the agent's /dev/fuse host mounts are removed
// even though the sandboxed agent can no longer unmount anything (like
// fusermount3's auto_unmount).
//
// Start() (before the sandbox) opens each mount's root (O_PATH) and forks
// a small process that keeps only those descriptors, a pipe and stderr,
// and only CAP_SYS_ADMIN. It unmounts (umount2 MNT_DETACH of
// /proc/self/fd/N: exactly that mount, even if another is later placed on
// the same directory) when the agent asks (UnmountNow) or when the pipe
// reaches EOF because the agent exited, however it died; then it exits.
// It runs in a session of its own and ignores SIGTERM/SIGINT/SIGHUP, so a
// signal to the agent's process group does not leave the mounts behind.
//
// Errors: the errno of open/pipe/fork. Thread-safety: one owner thread.
#ifndef COHEREFS_AGENT_SANDBOX_UNMOUNT_HELPER_H_
#define COHEREFS_AGENT_SANDBOX_UNMOUNT_HELPER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace coherefs::agent::sandbox {

class UnmountHelper {
 public:
  static absl::StatusOr<std::unique_ptr<UnmountHelper>> Start(
      const std::vector<std::string>& mounts);
  // Closes the pipe (the helper unmounts, if not done yet, and exits) and
  // reaps it.
  ~UnmountHelper();
  UnmountHelper(const UnmountHelper&) = delete;
  UnmountHelper& operator=(const UnmountHelper&) = delete;

  // Unmounts now and waits (up to 10 s) for the helper to confirm.
  absl::Status UnmountNow();

  pid_t pid() const { return pid_; }

 private:
  UnmountHelper(pid_t pid, UniqueFd to_helper, UniqueFd from_helper)
      : pid_(pid), to_helper_(std::move(to_helper)), from_helper_(std::move(from_helper)) {}

  pid_t pid_;
  UniqueFd to_helper_;
  UniqueFd from_helper_;
};

}  // namespace coherefs::agent::sandbox

#endif  // COHEREFS_AGENT_SANDBOX_UNMOUNT_HELPER_H_
