#include "agent/sandbox/all_threads.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace coherefs::agent::sandbox {
namespace {

// glibc keeps SIGRTMIN+0..2 for itself (cancellation, setxid); nothing in
// the agent or its libraries uses this one (checked: sigaction reports no
// handler before we install ours).
int BroadcastSignal() { return SIGRTMIN + 6; }

constexpr int kMaxThreads = 4096;

// One slot per thread: the tid that ran, then its result. Written by the
// handler, read by the caller; the release/acquire pair on `tid` publishes
// `result`.
struct Slot {
  std::atomic<pid_t> tid{0};
  std::atomic<int> result{0};
};
Slot g_slots[kMaxThreads];
std::atomic<int> g_next_slot{0};
std::atomic<ThreadFn> g_fn{nullptr};

void Handler(int, siginfo_t* info, void*) {
  // Only our own tgkill counts; a stray kill(2) from outside does nothing.
  if (info->si_code != SI_TKILL || info->si_pid != getpid()) return;
  const int saved_errno = errno;
  ThreadFn fn = g_fn.load(std::memory_order_acquire);
  if (fn != nullptr) {
    const int result = fn();
    const int i = g_next_slot.fetch_add(1, std::memory_order_relaxed);
    if (i < kMaxThreads) {
      g_slots[i].result.store(result, std::memory_order_relaxed);
      g_slots[i].tid.store(static_cast<pid_t>(syscall(SYS_gettid)), std::memory_order_release);
    }
  }
  errno = saved_errno;
}

// Thread ids now in /proc/self/task.
absl::Status ListThreads(std::set<pid_t>* out) {
  out->clear();
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return LastErrnoStatus("opendir /proc/self/task");
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    out->insert(static_cast<pid_t>(std::atoi(e->d_name)));
  }
  closedir(dir);
  return absl::OkStatus();
}

}  // namespace

absl::Status RunOnAllThreads(ThreadFn fn, absl::Duration timeout, int* threads) {
  const int sig = BroadcastSignal();
  struct sigaction old = {};
  if (sigaction(sig, nullptr, &old) != 0) return LastErrnoStatus("sigaction");
  if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) {
    return absl::FailedPreconditionError(
        absl::StrCat("all-threads broadcast: signal ", sig, " already has a handler"));
  }
  for (Slot& s : g_slots) s.tid.store(0, std::memory_order_relaxed);
  g_next_slot.store(0, std::memory_order_relaxed);
  g_fn.store(fn, std::memory_order_release);
  struct sigaction act = {};
  act.sa_sigaction = Handler;
  act.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&act.sa_mask);
  if (sigaction(sig, &act, nullptr) != 0) return LastErrnoStatus("sigaction");

  const pid_t pid = getpid();
  const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  absl::Status status;
  std::set<pid_t> done;
  if (int r = fn(); r != 0) {
    status = ErrnoStatus(-r, "all-threads broadcast: calling thread");
  } else {
    done.insert(self);
  }
  const absl::Time deadline = absl::Now() + timeout;
  std::set<pid_t> signalled;
  while (status.ok()) {
    std::set<pid_t> now;
    status = ListThreads(&now);
    if (!status.ok()) break;
    // Collect what the handlers reported so far.
    const int n = std::min(g_next_slot.load(std::memory_order_acquire), kMaxThreads);
    for (int i = 0; i < n; ++i) {
      const pid_t tid = g_slots[i].tid.load(std::memory_order_acquire);
      if (tid == 0) continue;  // still writing its slot
      if (int r = g_slots[i].result.load(std::memory_order_relaxed); r != 0) {
        status = absl::InternalError(absl::StrCat("all-threads broadcast: thread ", tid, ": ",
                                                  strerror(-r)));
        break;
      }
      done.insert(tid);
    }
    if (!status.ok()) break;
    bool pending = false;
    for (pid_t tid : now) {
      if (done.count(tid)) continue;
      pending = true;
      if (signalled.insert(tid).second &&
          syscall(SYS_tgkill, pid, tid, sig) != 0 && errno != ESRCH) {
        status = LastErrnoStatus(absl::StrCat("tgkill ", tid));
        break;
      }
    }
    if (!status.ok() || !pending) break;
    if (absl::Now() > deadline) {
      status = absl::DeadlineExceededError(
          "all-threads broadcast: a thread did not answer (does it block the signal?)");
      break;
    }
    // Threads that exited stay "pending" until they leave /proc/self/task;
    // a short sleep lets both happen.
    absl::SleepFor(absl::Milliseconds(1));
  }
  g_fn.store(nullptr, std::memory_order_release);
  if (threads != nullptr) *threads = static_cast<int>(done.size());
  // The handler stays installed (ignoring signals it did not ask for): a
  // signal still in flight must not take the default action, which for a
  // real-time signal ends the process.
  return status;
}

}  // namespace coherefs::agent::sandbox
