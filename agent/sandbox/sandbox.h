// The agent's sandbox (issue 6, "Privilege"): entered by coherefs-agent's
// main once everything privileged is done (sockets bound, /dev/fuse host
// mounts made, fanotify initialised, metrics/admin listeners up, version
// tables created), so what serves guests afterwards holds only:
//
//   1. a private mount namespace whose root is a read-only tmpfs with the
//      shared dirs, socket dirs, table export dir, resolver files, a
//      procfs (subset=pid) and /dev/null (mount_namespace.h); copies of
//      fuse.coherefs mounts are detached inside it;
//   2. capabilities CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID,
//      SETGID, SETUID, MKNOD, SETFCAP in every thread, the bounding set cut
//      to the same (capabilities.h);
//   3. no_new_privs and a seccomp allowlist, default action kill-process
//      (seccomp_filter.h).
// Host mounts are removed at exit by UnmountHelper, forked before step 1.
//
// No pid namespace: the agent is multi-threaded when it enters the sandbox
// and a pid namespace applies only to children (unshare(CLONE_NEWPID)), so
// it would need a fork that loses every thread; operators, systemd and the
// tests signal the agent by its pid, and QEMU maps version tables through
// /proc/<agent pid>/fd/<n>. The filter already stops the agent from
// creating processes (clone without CLONE_THREAD) or signalling others.
//
// Mode kNone changes nothing (for debugging; it logs a warning).
//
// Errors from Enter: whatever step failed (PermissionDenied when not run
// as root, DeadlineExceeded if a thread never took the broadcast). The
// process may be half-sandboxed then and must exit.
// Thread-safety: Enter once, from the main thread.
#ifndef COHEREFS_AGENT_SANDBOX_SANDBOX_H_
#define COHEREFS_AGENT_SANDBOX_SANDBOX_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/sandbox/seccomp_filter.h"
#include "agent/sandbox/unmount_helper.h"

namespace coherefs::agent::sandbox {

enum class Mode { kNamespace, kNone };

absl::StatusOr<Mode> ParseMode(absl::string_view name);
absl::string_view ModeName(Mode mode);

struct Options {
  Mode mode = Mode::kNamespace;
  SeccompAction seccomp = SeccompAction::kKill;
  // Bound read-write at their own paths (shared dirs, socket dirs, the
  // table export dir).
  std::vector<std::string> rw_dirs;
  // Bound read-only when present; Enter adds the resolver files.
  std::vector<std::string> ro_paths;
  // The agent's /dev/fuse host mounts (removed by the unmount helper).
  std::vector<std::string> host_mounts;
};

class Sandbox {
 public:
  static absl::StatusOr<std::unique_ptr<Sandbox>> Enter(const Options& options);
  ~Sandbox() = default;

  // Removes the host mounts now (call before Agent::Stop). OK when there
  // are none or the sandbox is off.
  absl::Status ReleaseHostMounts();

 private:
  explicit Sandbox(std::unique_ptr<UnmountHelper> helper) : helper_(std::move(helper)) {}
  std::unique_ptr<UnmountHelper> helper_;
};

// What this process entered: "none" until Enter succeeded with kNamespace.
// Read by the metrics (coherefs_agent_sandbox_info).
struct State {
  std::string mode = "none";
  std::string seccomp = "none";
};
State CurrentState();

}  // namespace coherefs::agent::sandbox

#endif  // COHEREFS_AGENT_SANDBOX_SANDBOX_H_
