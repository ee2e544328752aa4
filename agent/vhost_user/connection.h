// Connection is the back-end side of one vhost-user session (QEMU
// docs/interop/vhost-user.rst): it reads the front end's messages, keeps the
// negotiated features, the memory table and the per-ring state, and starts
// a QueueRunner for each ring that has memory, addresses and a kick fd.
//
// What it offers: VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC,
// VIRTIO_RING_F_EVENT_IDX, VHOST_USER_F_PROTOCOL_FEATURES and the Device's
// bits; protocol features MQ and REPLY_ACK. Dirty logging (SET_LOG_BASE/FD),
// CONFIGURE_MEM_SLOTS (ADD/REM_MEM_REG), SET_CONFIG and in-band kicks are
// refused. GET_CONFIG serves the Device's config space.
//
// Errors, per message: a framing error (bad header, oversized payload, fds
// beyond kMaxFds, a short read) closes the connection. Any other failure
// (wrong payload size or fd count for the request, unknown request, bad
// ring index, too many regions, an unmappable region, ...) is answered with
// a REPLY_ACK payload of 1 when the front end set NEED_REPLY on a request
// that has no reply of its own, and closes the connection otherwise: a front
// end that was not told of a failure must not be served on wrong state.
// Every refused message is counted in DeviceMetrics::bad_messages.
//
// A front end that reconnects to a restarted back end (QEMU's chardev
// `reconnect=`) resumes the session it negotiated with the previous process:
// its first message is not the handshake (GET_FEATURES, SET_OWNER, ...) but,
// e.g., GET_VRING_BASE when the guest resets the device. Such a session is
// adopted: owner set, every offered feature and protocol feature taken as
// acked (a front end only uses what was offered, and the next SET_FEATURES,
// which QEMU sends before any ring starts, replaces the guess).
//
// Keeping the session (optional SessionKeeper): every state change the
// front end makes is kept as it is made -- a snapshot of the negotiated
// state ("session"), the memory fds ("mem/<generation>/<i>"), each ring's
// kick/call/err eventfds and in-flight log ("q/<i>/..."). A back end
// started after a crash calls Resume() on the kept socket instead of
// waiting for a handshake: memory is mapped again, every ring that ran
// continues where the in-flight log says (chains the dead process had taken
// are served again), and the front end never learns of the restart. Each
// message is kept too until it is answered: one the dead process had read
// but not answered is handled (again) and answered first. Only a death
// between sending an answer and dropping the kept message answers twice.
//
// Thread-safety: Serve runs on one thread; the queue threads it starts only
// touch their QueueRunner. Serve returns after tearing everything down.
// Close() and Queues() may be called from any thread while the Connection
// exists (an operator evicting the guest, or reading its state).
#ifndef COHEREFS_AGENT_VHOST_USER_CONNECTION_H_
#define COHEREFS_AGENT_VHOST_USER_CONNECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/vhost_user/device.h"
#include "agent/vhost_user/guest_memory.h"
#include "agent/vhost_user/inflight_log.h"
#include "agent/vhost_user/log_limiter.h"
#include "agent/vhost_user/message.h"
#include "agent/vhost_user/metrics.h"
#include "agent/vhost_user/queue_runner.h"
#include "agent/vhost_user/session_keeper.h"
#include "agent/vhost_user/vring.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user {

// One virtqueue of a session, as an operator sees it.
struct QueueInfo {
  uint32_t index = 0;
  uint32_t size = 0;        // SET_VRING_NUM; 0 until set
  bool started = false;     // a QueueRunner serves it
  bool enabled = false;
  uint32_t in_flight = 0;   // chains taken and not yet on the used ring
};

class Connection {
 public:
  // `stop_fd` (not owned) becomes readable when the daemon stops; `metrics`
  // and `keeper` (may be null: nothing kept) must outlive the Connection.
  Connection(UniqueFd socket, DeviceFactory factory, DeviceMetrics* metrics,
             int stop_fd, SessionKeeper* keeper = nullptr);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Serves messages until the front end disconnects (OK), stop_fd fires
  // (kCancelled), or a fatal error (its status). Before returning it stops
  // every ring, calls Device::Reset(), unmaps memory and closes every fd.
  absl::Status Serve();

  // Before Serve: takes up the session a previous process kept (see
  // above). kNotFound when nothing was kept; kDataLoss (and nothing
  // started) when what was kept does not fit together.
  absl::Status Resume();

  // Makes Serve end the session now (returning kAborted), as if the front
  // end had gone: in-flight chains finish first. Any thread; idempotent.
  void Close();
  // Every queue of the device, by index. Any thread.
  std::vector<QueueInfo> Queues() const;

 private:
  struct QueueState {
    uint32_t num = 0;
    bool addr_set = false;
    VringAddr addr{};
    uint16_t base = 0;        // last_avail_idx to start from
    bool enabled = false;     // SET_VRING_ENABLE
    UniqueFd kick;
    UniqueFd err;             // kept, unused: we report no errors this way
    Notifier call;
    bool call_set = false;
    std::unique_ptr<InflightLog> log;  // with a keeper, once the ring ran
    std::unique_ptr<QueueRunner> runner;
  };

  // Handles one decoded request. *replied is set when the request's own
  // reply was sent (GET_*).
  absl::Status Handle(Request& req, bool* replied);
  absl::Status CheckIndex(uint32_t index) const;
  bool HasOwnReply(uint32_t request) const;
  // Whether a request changes session state (what Persist keeps).
  bool ChangesState(uint32_t request) const;
  uint64_t OfferedFeatures() const;
  uint64_t OfferedProtocolFeatures() const;
  bool RingsStartEnabled() const;

  // Starts ring `index` if it has everything it needs; `resume`: where the
  // in-flight log says, serving its chains again.
  absl::Status MaybeStart(uint32_t index, bool resume = false);
  // Stops ring `index` if running, keeping its position in `base`.
  void StopRing(uint32_t index);
  void StopAllRings();
  // Stops every running ring, runs `change`, restarts the ones that ran.
  absl::Status RestartRunning(const std::function<absl::Status()>& change);
  // Ends the session: rings, device, memory, ring state.
  void ResetSession();
  // Called with each decoded request's type before it is handled: adopts a
  // session the front end negotiated with an earlier back end (see above).
  void MaybeAdoptSession(RequestType first);
  // Keeping (no-ops without a keeper). Persist writes the "session"
  // snapshot; KeepFd keeps (fd >= 0) or drops (fd < 0) one fd entry.
  void Persist();
  void KeepFd(const std::string& name, int fd);
  // The message being handled is kept ("pending") until it is answered;
  // Resume takes a kept one up, to be handled first.
  void KeepPending(const Message& msg);
  void DropPending();
  void TakePending();
  std::string Snapshot() const;
  absl::Status Restore(const std::string& snapshot);

  const UniqueFd socket_;
  const DeviceFactory factory_;
  DeviceMetrics* const metrics_;
  const int stop_fd_;
  SessionKeeper* const keeper_;
  const UniqueFd close_fd_;  // eventfd written by Close(), never drained
  LogLimiter log_limiter_;

  std::unique_ptr<Device> device_;
  uint32_t num_queues_ = 0;
  uint64_t acked_features_ = 0;
  uint64_t acked_protocol_features_ = 0;
  bool owner_set_ = false;
  bool session_started_ = false;  // a request was handled since the reset
  std::unique_ptr<GuestMemory> memory_;
  std::vector<MemoryRegion> regions_;  // memory_'s table, for the snapshot
  uint32_t mem_generation_ = 0;        // names the kept memory fds
  std::optional<Message> pending_;     // left unanswered by a dead process
  // Changed only on the Serve thread, which reads it without the lock;
  // each change (a QueueState replaced, its num/enabled/runner set) is made
  // under info_mu_ so that Queues() can read from other threads.
  mutable absl::Mutex info_mu_;
  std::vector<std::unique_ptr<QueueState>> queues_;
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_CONNECTION_H_
