// RunOnAllThreads runs one async-signal-safe function in every thread of
// this process, for the per-thread kernel state that the sandbox changes
// after the agent's threads exist: capabilities and the mount namespace
// (seccomp has SECCOMP_FILTER_FLAG_TSYNC and needs no help). glibc does the
// same for setuid(2) (its SIGSETXID broadcast), libcap's libpsx for capset.
//
// How: the caller runs `fn` itself, then sends a real-time signal to each
// other thread listed in /proc/self/task (tgkill); the handler runs `fn`
// and records the result. It lists the threads again until a pass finds
// none it has not done, so a thread created meanwhile by a thread not yet
// done is done too (threads created later inherit the new state from their
// creator). Handlers are installed with SA_RESTART, as glibc's SIGSETXID.
//
// Errors: FailedPrecondition if the signal already has a handler,
// DeadlineExceeded if a thread did not run `fn` within `timeout` (e.g. it
// blocks the signal), Internal with the errno a thread's `fn` returned.
// On error some threads may have run `fn`; the caller must not go on.
//
// Thread-safety: one call at a time per process (it owns the signal).
#ifndef COHEREFS_AGENT_SANDBOX_ALL_THREADS_H_
#define COHEREFS_AGENT_SANDBOX_ALL_THREADS_H_

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace coherefs::agent::sandbox {

// `fn` returns 0 or -errno and must be async-signal-safe.
using ThreadFn = int (*)();

// Returns the number of threads `fn` ran in through `*threads` (optional).
absl::Status RunOnAllThreads(ThreadFn fn, absl::Duration timeout, int* threads = nullptr);

}  // namespace coherefs::agent::sandbox

#endif  // COHEREFS_AGENT_SANDBOX_ALL_THREADS_H_
