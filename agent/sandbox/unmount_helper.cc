#include "agent/sandbox/unmount_helper.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/log.h"

namespace coherefs::agent::sandbox {
namespace {

constexpr int kFirstFd = 3;  // control pipe, reply pipe, then the mounts
constexpr int kMaxMounts = 64;
constexpr size_t kPathBytes = 32;

// The child runs only async-signal-safe calls: the parent has threads.
[[noreturn]] void HelperMain(int control, int reply, const int* mount_fds, int n,
                             char (*paths)[kPathBytes]) {
  // Gather our descriptors at 3.. and close everything else (listening
  // sockets, /dev/fuse, guest memory must not live on in this process).
  int moved[2 + kMaxMounts];
  moved[0] = fcntl(control, F_DUPFD, 1024);
  moved[1] = fcntl(reply, F_DUPFD, 1024);
  for (int i = 0; i < n; ++i) moved[2 + i] = fcntl(mount_fds[i], F_DUPFD, 1024);
  for (int i = 0; i < 2 + n; ++i) {
    if (moved[i] < 0 || dup2(moved[i], kFirstFd + i) < 0) _exit(3);
  }
  syscall(SYS_close_range, kFirstFd + 2 + n, ~0U, 0);
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGTERM, &ignore, nullptr);
  sigaction(SIGINT, &ignore, nullptr);
  sigaction(SIGHUP, &ignore, nullptr);
  // Its own session: a SIGKILL sent to the agent's process group (a test
  // runner's timeout, a shell's job control) must not take it too.
  setsid();
  prctl(PR_SET_NAME, "coherefs-umount", 0, 0, 0);
  // Keep CAP_SYS_ADMIN (umount2) and nothing else.
  for (int cap = 0; cap <= 63; ++cap) {
    if (cap != CAP_SYS_ADMIN) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  }
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  data[CAP_SYS_ADMIN / 32].effective = data[CAP_SYS_ADMIN / 32].permitted =
      1u << (CAP_SYS_ADMIN % 32);
  syscall(SYS_capset, &header, data);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

  bool unmounted = false;
  while (true) {
    char c = 0;
    const ssize_t r = read(kFirstFd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (!unmounted) {
      for (int i = 0; i < n; ++i) umount2(paths[i], MNT_DETACH);
      unmounted = true;
    }
    if (r <= 0) _exit(0);  // the agent is gone
    char ok = 'k';
    if (write(kFirstFd + 1, &ok, 1) != 1) _exit(0);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<UnmountHelper>> UnmountHelper::Start(
    const std::vector<std::string>& mounts) {
  if (mounts.size() > kMaxMounts) return absl::InvalidArgumentError("too many host mounts");
  std::vector<UniqueFd> fds;
  int raw[kMaxMounts];
  char paths[kMaxMounts][kPathBytes];
  for (size_t i = 0; i < mounts.size(); ++i) {
    UniqueFd fd(open(mounts[i].c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return LastErrnoStatus(absl::StrCat("unmount helper: open ", mounts[i]));
    raw[i] = fd.get();
    snprintf(paths[i], kPathBytes, "/proc/self/fd/%d", kFirstFd + 2 + static_cast<int>(i));
    fds.push_back(std::move(fd));
  }
  int to[2], from[2];
  if (pipe2(to, O_CLOEXEC) != 0) return LastErrnoStatus("unmount helper: pipe");
  UniqueFd to_read(to[0]), to_write(to[1]);
  if (pipe2(from, O_CLOEXEC) != 0) return LastErrnoStatus("unmount helper: pipe");
  UniqueFd from_read(from[0]), from_write(from[1]);
  const pid_t pid = fork();
  if (pid < 0) return LastErrnoStatus("unmount helper: fork");
  if (pid == 0) {
    HelperMain(to_read.get(), from_write.get(), raw, static_cast<int>(mounts.size()), paths);
  }
  LOG_INFO("unmount helper started").Kv("pid", pid).Kv("mounts", mounts.size());
  return std::unique_ptr<UnmountHelper>(
      new UnmountHelper(pid, std::move(to_write), std::move(from_read)));
}

absl::Status UnmountHelper::UnmountNow() {
  if (!to_helper_) return absl::OkStatus();
  const char c = 'u';
  if (write(to_helper_.get(), &c, 1) != 1) return LastErrnoStatus("unmount helper: write");
  pollfd p = {from_helper_.get(), POLLIN, 0};
  int rc;
  do {
    rc = poll(&p, 1, 10000);
  } while (rc < 0 && errno == EINTR);
  char ok = 0;
  if (rc != 1 || read(from_helper_.get(), &ok, 1) != 1 || ok != 'k') {
    return absl::DeadlineExceededError("unmount helper did not confirm");
  }
  return absl::OkStatus();
}

UnmountHelper::~UnmountHelper() {
  to_helper_.Reset();
  from_helper_.Reset();
  int status;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace coherefs::agent::sandbox
