#include "agent/passthrough/fs_creds.h"

#include <errno.h>
#include <sys/fsuid.h>

#include "common/errno_status.h"

namespace coherefs::agent::passthrough {
namespace {

// setfsuid/setfsgid report failure only by returning the old value; asking
// with an invalid id (-1) returns the current one without changing it.
uid_t CurrentFsUid() { return static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))); }
gid_t CurrentFsGid() { return static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1))); }

}  // namespace

ScopedFsCreds::ScopedFsCreds(uid_t uid, gid_t gid)
    : old_uid_(CurrentFsUid()), old_gid_(CurrentFsGid()) {
  // The group first and the uid last, restored in the opposite order, so
  // the thread is never left with the guest's uid but the agent's gid.
  if (gid != old_gid_) {
    setfsgid(gid);
    if (CurrentFsGid() != gid) {
      status_ = ErrnoStatus(EPERM, "setfsgid");
      return;
    }
    switched_gid_ = true;
  }
  if (uid != old_uid_) {
    setfsuid(uid);
    if (CurrentFsUid() != uid) {
      status_ = ErrnoStatus(EPERM, "setfsuid");
      return;  // the destructor restores the gid
    }
    switched_uid_ = true;
  }
}

ScopedFsCreds::~ScopedFsCreds() {
  if (switched_uid_) setfsuid(old_uid_);
  if (switched_gid_) setfsgid(old_gid_);
}

}  // namespace coherefs::agent::passthrough
