// TakeScmRights takes ownership of every descriptor a recvmsg(2) delivered
// in SCM_RIGHTS control messages, appending them to `out`. Call it right
// after recvmsg, before looking at anything else, so that every error path
// closes them (a descriptor left in the control buffer would leak).
// Thread-safe (no state).
#ifndef COHEREFS_COMMON_SCM_RIGHTS_H_
#define COHEREFS_COMMON_SCM_RIGHTS_H_

#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "common/unique_fd.h"

namespace coherefs {

inline void TakeScmRights(msghdr& mh, std::vector<UniqueFd>* out) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      out->emplace_back(fd);
    }
  }
}

}  // namespace coherefs

#endif  // COHEREFS_COMMON_SCM_RIGHTS_H_
