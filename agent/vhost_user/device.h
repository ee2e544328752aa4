// Device is what the vhost-user backend serves: it says how many queues the
// device has and which virtio feature bits it adds, and turns one descriptor
// chain into bytes written back. The backend (Connection) owns the rings,
// guest memory, threads and notifications; the device knows nothing of
// vhost-user (agent/virtio_fs implements it for virtio-fs).
//
// One Device serves one session: the backend makes a new one per front-end
// connection and after a device reset, and calls Reset() when the session
// ends, after every ProcessChain call has returned.
//
// Thread-safety: ProcessChain is called concurrently from the queue threads
// and their workers (different chains); implementations are thread-safe.
// The other methods are called from the connection's thread.
#ifndef COHEREFS_AGENT_VHOST_USER_DEVICE_H_
#define COHEREFS_AGENT_VHOST_USER_DEVICE_H_

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace coherefs::agent::vhost_user {

// One descriptor chain, translated to host memory. `readable` are the
// device-readable buffers (driver -> device), `writable` the device-writable
// ones, each in chain order. The memory stays mapped until the chain has
// been pushed to the used ring.
struct Chain {
  uint16_t head = 0;
  std::vector<iovec> readable;
  std::vector<iovec> writable;
  uint64_t readable_bytes = 0;  // <= UINT32_MAX
  uint64_t writable_bytes = 0;  // <= UINT32_MAX
};

class Device {
 public:
  virtual ~Device() = default;

  // Queues the device exposes (GET_QUEUE_NUM); at least 1, at most 256.
  virtual uint32_t NumQueues() const = 0;
  // Device-specific virtio feature bits (0-23) added to what GET_FEATURES
  // offers. Default: none.
  virtual uint64_t Features() const { return 0; }
  // Device configuration space (GET_CONFIG). Default: empty.
  virtual std::string Config() const { return {}; }
  // Worker threads for queue `queue`; 0 serves chains inline on the queue's
  // own thread. Default 0.
  virtual uint32_t WorkersForQueue(uint32_t queue) const { return 0; }

  // Serves `chain` from queue `queue`; returns the bytes written into
  // chain.writable (at most chain.writable_bytes), the used-ring length.
  virtual uint32_t ProcessChain(uint32_t queue, const Chain& chain) = 0;

  // The session is over (disconnect, RESET_OWNER/RESET_DEVICE, stop): no
  // ProcessChain call is running and none will follow.
  virtual void Reset() {}
};

using DeviceFactory = std::function<std::unique_ptr<Device>()>;

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_DEVICE_H_
