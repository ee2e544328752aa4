// RequestHandler is the seam between a transport and the FUSE server: the
// virtio-fs device (agent/virtio_fs) and the /dev/fuse loop hand it one FUSE
// request at a time as scatter-gather cursors and send back what it wrote.
// Neither side knows the other: the transport knows nothing of FUSE opcodes,
// the handler nothing of virtqueues or /dev/fuse.
//
// One handler serves one FUSE session (one guest connection, or one host
// mount): the session's INIT state, inode lookup counts and open handles are
// its own. HandleRequest may be called from several threads at once (a
// worker pool per queue); implementations are thread-safe.
#ifndef COHEREFS_AGENT_FUSE_REQUEST_HANDLER_H_
#define COHEREFS_AGENT_FUSE_REQUEST_HANDLER_H_

#include <cstddef>
#include <cstdint>

#include "common/iov.h"

namespace coherefs::agent::fuse {

// What the session's FUSE_INIT negotiated (all zero before INIT), for
// operators (the agent's admin status).
struct NegotiatedInit {
  uint32_t major = 0;
  uint32_t minor = 0;
  uint32_t max_write = 0;
};

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;

  // Serves the request in `in` (fuse_in_header, arguments, payload) and
  // writes the reply (fuse_out_header + body) into `out`. Returns the number
  // of reply bytes written; 0 means "no reply" (FORGET, BATCH_FORGET, or a
  // request too broken to carry a unique id). A malformed request gets an
  // error reply (-EINVAL, -ENOSYS, ...) whenever its header could be read;
  // it never crashes the process or touches memory outside `in` and `out`.
  virtual size_t HandleRequest(IovReader& in, IovWriter& out) = 0;

  // Called once when the transport goes away (guest disconnect or reset,
  // unmount): drop every inode reference and open handle of this session.
  virtual void Shutdown() {}

  // The session's INIT parameters; any thread. Default: none known.
  virtual NegotiatedInit Negotiated() const { return {}; }
};

}  // namespace coherefs::agent::fuse

#endif  // COHEREFS_AGENT_FUSE_REQUEST_HANDLER_H_
