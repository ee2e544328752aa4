// The agent's seccomp filter (libseccomp): an allowlist of the system calls
// the agent makes once it serves (gRPC, prometheus-cpp's civetweb, the
// passthrough file system, vhost-user, /dev/fuse, fanotify, threads). The
// list was taken from the real workloads (the test suites run with
// --seccomp-action=log, misses read from the kernel's audit records, and
// `strace -f -c`), see README "Sandbox".
//
// Anything else takes the default action:
//   kKill   the whole process dies with SIGSYS (default; a core names the call)
//   kLog    allowed, and the kernel logs it (audit type=1326): for finding
//           what a new code path needs
//   kErrno  fails with EPERM
// Narrowed beyond the name: clone only with CLONE_THREAD (threads, never
// processes); clone3 fails with ENOSYS (its flags live in memory, where a
// filter cannot look, so glibc falls back to clone); kill/tgkill only at this
// process; umount2 fails with EPERM (DevFuseTransport::Stop tries it; the
// sandbox's unmount helper does the real unmount); socket only for
// AF_UNIX/AF_INET/AF_INET6.
//
// Thread-safety: Install applies the filter to every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC) and sets no_new_privs on them.
#ifndef COHEREFS_AGENT_SANDBOX_SECCOMP_FILTER_H_
#define COHEREFS_AGENT_SANDBOX_SECCOMP_FILTER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coherefs::agent::sandbox {

enum class SeccompAction { kKill, kLog, kErrno };

absl::StatusOr<SeccompAction> ParseSeccompAction(absl::string_view name);
absl::string_view SeccompActionName(SeccompAction action);

// The allowed system call names (for docs and tests).
std::vector<std::string> AllowedSyscalls();

// Builds the filter and loads it for all threads. Errors: Internal with
// libseccomp's errno (e.g. a thread with a different filter: TSYNC fails).
absl::Status InstallSeccompFilter(SeccompAction action);

}  // namespace coherefs::agent::sandbox

#endif  // COHEREFS_AGENT_SANDBOX_SECCOMP_FILTER_H_
