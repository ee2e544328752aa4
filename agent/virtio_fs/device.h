// The virtio-fs device (virtio 1.2 §5.11) on top of the vhost-user back end:
// queue 0 is the high-priority queue (FORGET, BATCH_FORGET, INTERRUPT),
// queues 1..N the request queues. Each descriptor chain is one FUSE request:
// its device-readable buffers become an IovReader (fuse_in_header +
// arguments), its device-writable buffers an IovWriter for the reply, and
// the RequestHandler's returned length goes on the used ring.
//
// VirtioFsDevice is one session's device (vhost_user::Device); it owns the
// session's RequestHandler and calls its Shutdown() when the session ends.
// Server is what the daemon starts per guest socket: a vhost_user::Listener
// whose factory builds a fresh handler + device for every connection.
//
// Threading: the hiprio queue is served inline on its own thread (FORGETs
// are cheap and must not queue behind slow requests); each request queue
// has `thread_pool_size` workers (0 = inline on the queue's thread), so
// HandleRequest runs concurrently (RequestHandler is thread-safe by
// contract). Used-ring pushes are serialized per queue by vhost_user::Vring.
#ifndef COHEREFS_AGENT_VIRTIO_FS_DEVICE_H_
#define COHEREFS_AGENT_VIRTIO_FS_DEVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/fuse/request_handler.h"
#include "agent/vhost_user/device.h"
#include "agent/vhost_user/listener.h"
#include "agent/vhost_user/metrics.h"

namespace coherefs::agent::virtio_fs {

// virtio 1.2 §5.11.4: the tag is 36 bytes, NUL-padded (not terminated when
// all 36 are used).
inline constexpr size_t kTagSize = 36;
inline constexpr uint32_t kHiprioQueue = 0;

struct DeviceOptions {
  // Mount tag the guest sees in the config space. Required, 1..36 bytes.
  // (QEMU 7.2's vhost-user-fs-pci takes the tag from its own `tag=`
  // property; ours answers GET_CONFIG for front ends that ask.)
  std::string tag;
  // Request queues (QEMU's num-request-queues). Default 1, at most 255.
  uint32_t num_request_queues = 1;
  // Worker threads per request queue (the daemon's --thread-pool-size).
  // Default 0: requests are served on the queue's own thread.
  uint32_t thread_pool_size = 0;
};

// kInvalidArgument for an empty or over-long tag, 0 or more than 255
// request queues, or more than 1024 workers per queue.
absl::Status ValidateOptions(const DeviceOptions& options);

// The FUSE handler of a socket's live device, for Server::Session(): a
// device registers its handler while it exists (one at a time per socket).
class CurrentHandler {
 public:
  void Set(const fuse::RequestHandler* handler) {
    absl::MutexLock lock(&mu_);
    handler_ = handler;
  }
  fuse::NegotiatedInit Negotiated() const {
    absl::MutexLock lock(&mu_);
    return handler_ != nullptr ? handler_->Negotiated() : fuse::NegotiatedInit{};
  }

 private:
  mutable absl::Mutex mu_;
  const fuse::RequestHandler* handler_ ABSL_GUARDED_BY(mu_) = nullptr;
};

class VirtioFsDevice : public vhost_user::Device {
 public:
  // `options` must be valid (ValidateOptions). `current` (may be null)
  // holds the handler while the device exists.
  VirtioFsDevice(DeviceOptions options,
                 std::unique_ptr<fuse::RequestHandler> handler,
                 std::shared_ptr<CurrentHandler> current = nullptr);
  ~VirtioFsDevice() override;

  uint32_t NumQueues() const override;
  // Config space: tag[36], le32 num_request_queues.
  std::string Config() const override;
  uint32_t WorkersForQueue(uint32_t queue) const override;
  uint32_t ProcessChain(uint32_t queue,
                        const vhost_user::Chain& chain) override;
  // Calls RequestHandler::Shutdown() (once).
  void Reset() override;

 private:
  const DeviceOptions options_;
  const std::unique_ptr<fuse::RequestHandler> handler_;
  const std::shared_ptr<CurrentHandler> current_;
  bool shut_down_ = false;  // connection thread only
};

// A socket's session as an operator sees it: the vhost-user side and what
// FUSE_INIT negotiated.
struct GuestSession {
  vhost_user::SessionInfo vhost;
  fuse::NegotiatedInit fuse;
};

using HandlerFactory = std::function<std::unique_ptr<fuse::RequestHandler>()>;

class Server {
 public:
  // Listens on `socket_path` (see vhost_user::Listener for stale sockets)
  // and serves one guest at a time, a new handler from `factory` for each
  // connection. Option errors as ValidateOptions; listener errors as
  // vhost_user::Listener::Start. `keeper` (may be null) keeps the vhost-user
  // session across a restart of this process (see vhost_user::Connection);
  // the handler keeps its own FUSE state.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const std::string& socket_path, DeviceOptions options,
      HandlerFactory factory, vhost_user::SessionKeeper* keeper = nullptr);

  // Ends the current session (its handler's Shutdown runs), joins every
  // thread, removes the socket file. Idempotent; the destructor calls it.
  void Stop() { listener_->Stop(); }
  vhost_user::MetricsSnapshot Metrics() const {
    return listener_->metrics().Snapshot();
  }
  const std::string& socket_path() const { return listener_->socket_path(); }

  // Any thread. See vhost_user::Listener for eviction.
  GuestSession Session() const {
    GuestSession s;
    s.vhost = listener_->Session();
    if (s.vhost.connected) s.fuse = current_->Negotiated();
    return s;
  }
  bool Evict() { return listener_->Evict(); }
  bool Admit() { return listener_->Admit(); }

 private:
  Server(std::unique_ptr<vhost_user::Listener> listener,
         std::shared_ptr<CurrentHandler> current)
      : current_(std::move(current)), listener_(std::move(listener)) {}
  const std::shared_ptr<CurrentHandler> current_;
  std::unique_ptr<vhost_user::Listener> listener_;
};

}  // namespace coherefs::agent::virtio_fs

#endif  // COHEREFS_AGENT_VIRTIO_FS_DEVICE_H_
