// seccomp_probe SYSCALL [ACTION]: installs the agent's seccomp filter
// (agent/sandbox/seccomp_filter, action kill unless told) on itself, then
// makes SYSCALL (one of getpid, ptrace, kexec_load, mount, fork, socket_netlink,
// tgkill_other) and exits 0 if the call returned (printing its result), so
// the sandbox test can tell "allowed" (exit 0) from "killed" (SIGSYS).
// Test-only: the agent binary has no such trigger.
#include <errno.h>
#include <linux/kexec.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "agent/sandbox/seccomp_filter.h"

namespace sb = coherefs::agent::sandbox;

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: seccomp_probe SYSCALL [kill|log|errno]\n");
    return 2;
  }
  const std::string call = argv[1];
  auto action = sb::ParseSeccompAction(argc > 2 ? argv[2] : "kill");
  if (!action.ok()) return 2;
  if (absl::Status s = sb::InstallSeccompFilter(*action); !s.ok()) {
    fprintf(stderr, "install: %s\n", s.ToString().c_str());
    return 3;
  }
  long r = -1;
  if (call == "getpid") {
    r = syscall(SYS_getpid);
  } else if (call == "ptrace") {
    r = syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
  } else if (call == "kexec_load") {
    r = syscall(SYS_kexec_load, 0, 0, nullptr, KEXEC_ARCH_DEFAULT);
  } else if (call == "mount") {
    r = syscall(SYS_mount, "none", "/", "tmpfs", 0, nullptr);
  } else if (call == "fork") {
    r = syscall(SYS_clone, SIGCHLD, 0, nullptr, nullptr, 0);
    if (r == 0) _exit(0);
  } else if (call == "socket_netlink") {
    r = syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0);
  } else if (call == "tgkill_other") {
    r = syscall(SYS_tgkill, 1, 1, 0);
  } else {
    fprintf(stderr, "unknown call %s\n", call.c_str());
    return 2;
  }
  printf("%s returned %ld (%s)\n", call.c_str(), r, r < 0 ? strerror(errno) : "ok");
  return 0;
}
