// The capabilities the sandboxed agent keeps, and the per-thread drop.
//
// Kept (virtiofsd's set, plus what the agent provably uses after setup):
//   CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID, SETUID, MKNOD, SETFCAP
//     the passthrough acts on the shared tree for every guest user
//     (virtiofsd keeps exactly these);
//   DAC_READ_SEARCH
//     open_by_handle_at(2): the host watcher opens directories created on
//     the host by their fanotify file handle to mark them
//     (agent/coherence/host_watcher.cc).
// Everything else is dropped from the effective, permitted, inheritable and
// ambient sets AND from the bounding set, so nothing can regain it.
// fanotify needs CAP_SYS_ADMIN only for fanotify_init (done before the
// sandbox); /dev/fuse reads/writes and vhost-user need no capability.
//
// Linux keeps capabilities per thread, and the agent already runs threads
// when it enters the sandbox, so DropCapabilitiesInThisThread() is made of
// raw prctl(2)/capset(2) calls only: it is async-signal-safe and runs in
// every thread through RunOnAllThreads (all_threads.h). libcap and
// libcap-ng act on the calling thread alone and allocate, so they are not
// used here.
#ifndef COHEREFS_AGENT_SANDBOX_CAPABILITIES_H_
#define COHEREFS_AGENT_SANDBOX_CAPABILITIES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace coherefs::agent::sandbox {

// The kept set as a bit mask (bit n = capability n), as /proc/PID/status
// prints CapEff/CapPrm/CapBnd.
uint64_t KeptCapabilityMask();

// "CAP_CHOWN,CAP_DAC_OVERRIDE,..." for logs and docs.
std::string KeptCapabilityNames();

// Drops the bounding set to the kept set (needs CAP_SETPCAP, dropped
// last), clears the ambient set, and sets effective = permitted = kept,
// inheritable = none, for the calling thread. Returns 0 or -errno.
// Async-signal-safe.
int DropCapabilitiesInThisThread();

}  // namespace coherefs::agent::sandbox

#endif  // COHEREFS_AGENT_SANDBOX_CAPABILITIES_H_
