// ScopedFsCreds makes the calling thread act as a guest user for file system
// permission checks and for the owner of files it creates, then restores the
// thread's previous fsuid/fsgid when it goes out of scope.
//
// setfsuid(2)/setfsgid(2) change only the calling thread's credentials (glibc
// does not broadcast them to other threads, unlike setuid), so concurrent
// requests on other threads keep their own identities. When the fsuid leaves
// 0 the kernel also clears the file system capabilities (CAP_DAC_OVERRIDE,
// CAP_FOWNER, CAP_CHOWN, ...) from the thread's effective set, which is what
// makes permission checks real for a root agent; returning to 0 restores
// them from the permitted set.
//
// Supplementary groups are not changed: FUSE does not carry the guest's, and
// the agent's own stay in force (virtiofsd behaves the same way).
//
// Not copyable or movable; use on one thread only.
#ifndef COHEREFS_AGENT_PASSTHROUGH_FS_CREDS_H_
#define COHEREFS_AGENT_PASSTHROUGH_FS_CREDS_H_

#include <sys/types.h>

#include "absl/status/status.h"

namespace coherefs::agent::passthrough {

class ScopedFsCreds {
 public:
  // Switches to (uid, gid). Check status(): PermissionDenied (EPERM) when the
  // process may not switch (not root and not already that user); the thread
  // is then left as it was.
  ScopedFsCreds(uid_t uid, gid_t gid);
  ~ScopedFsCreds();
  ScopedFsCreds(const ScopedFsCreds&) = delete;
  ScopedFsCreds& operator=(const ScopedFsCreds&) = delete;

  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
  uid_t old_uid_;
  gid_t old_gid_;
  bool switched_uid_ = false;
  bool switched_gid_ = false;
};

}  // namespace coherefs::agent::passthrough

#endif  // COHEREFS_AGENT_PASSTHROUGH_FS_CREDS_H_
