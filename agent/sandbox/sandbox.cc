#include "agent/sandbox/sandbox.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/sandbox/all_threads.h"
#include "agent/sandbox/capabilities.h"
#include "agent/sandbox/mount_namespace.h"
#include "common/errno_status.h"
#include "common/log.h"

namespace coherefs::agent::sandbox {
namespace {

// What gRPC's resolver (c-ares or getaddrinfo) may read when it reconnects
// to a coordinator given by name.
constexpr const char* kResolverFiles[] = {"/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf",
                                          "/etc/host.conf", "/etc/gai.conf"};

absl::Mutex g_state_mu;
State g_state ABSL_GUARDED_BY(g_state_mu);

// Run in every thread: into the namespace, then down to the kept
// capabilities (setns needs CAP_SYS_ADMIN and CAP_SYS_CHROOT, so first).
// A thread created during the broadcast by a thread already confined
// inherits the confinement (and can no longer setns): its permitted set is
// within the kept set already, which no unconfined thread's is (the agent
// runs as root; switching fsuid lowers only the effective set).
int ConfineThread() {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return -errno;
  const uint64_t permitted = data[0].permitted | (uint64_t{data[1].permitted} << 32);
  if ((permitted & ~KeptCapabilityMask()) == 0) return 0;
  if (int r = JoinMountNamespace(); r != 0) return r;
  return DropCapabilitiesInThisThread();
}

}  // namespace

absl::StatusOr<Mode> ParseMode(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "namespace") return Mode::kNamespace;
  if (n == "none") return Mode::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("sandbox: \"", name, "\" is not one of namespace, none"));
}

absl::string_view ModeName(Mode mode) { return mode == Mode::kNamespace ? "namespace" : "none"; }

absl::StatusOr<std::unique_ptr<Sandbox>> Sandbox::Enter(const Options& options) {
  if (options.mode == Mode::kNone) {
    LOG_WARN("sandbox disabled (--sandbox=none): the agent keeps every privilege it started with");
    return std::unique_ptr<Sandbox>(new Sandbox(nullptr));
  }
  std::unique_ptr<UnmountHelper> helper;
  if (!options.host_mounts.empty()) {
    auto started = UnmountHelper::Start(options.host_mounts);
    if (!started.ok()) return started.status();
    helper = std::move(*started);
  }
  MountPlan plan;
  plan.rw_dirs = options.rw_dirs;
  plan.ro_paths = options.ro_paths;
  for (const char* f : kResolverFiles) plan.ro_paths.push_back(f);
  if (absl::Status s = EnterMountNamespace(plan); !s.ok()) return s;
  int threads = 0;
  if (absl::Status s = RunOnAllThreads(ConfineThread, absl::Seconds(10), &threads); !s.ok()) {
    return s;
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return LastErrnoStatus("PR_SET_NO_NEW_PRIVS");
  if (absl::Status s = InstallSeccompFilter(options.seccomp); !s.ok()) return s;
  {
    absl::MutexLock lock(&g_state_mu);
    g_state.mode = std::string(ModeName(options.mode));
    g_state.seccomp = std::string(SeccompActionName(options.seccomp));
  }
  LOG_INFO("sandbox entered")
      .Kv("mode", ModeName(options.mode))
      .Kv("seccomp", SeccompActionName(options.seccomp))
      .Kv("capabilities", KeptCapabilityNames())
      .Kv("threads", threads)
      .Kv("unmount_helper", helper != nullptr ? helper->pid() : 0);
  return std::unique_ptr<Sandbox>(new Sandbox(std::move(helper)));
}

absl::Status Sandbox::ReleaseHostMounts() {
  if (helper_ == nullptr) return absl::OkStatus();
  return helper_->UnmountNow();
}

State CurrentState() {
  absl::MutexLock lock(&g_state_mu);
  return g_state;
}

}  // namespace coherefs::agent::sandbox
