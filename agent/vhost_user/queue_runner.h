// QueueRunner serves one started virtqueue: a thread waits on the kick
// eventfd, drains the available ring, and hands each chain to the Device
// inline or through a pool of worker threads; completions go back through
// Vring::Push (serialized there) and the call eventfd.
//
// At most `num` chains are in flight, so a guest that keeps reposting cannot
// grow our queues. Bad chains are counted, logged through the shared
// LogLimiter and returned with length 0 (or skipped when the head itself is
// out of range); a ring whose avail index jumps beyond its size is marked
// broken and left alone until the front end restarts it.
//
// Lifetime: the connection creates one per ring start and calls Stop() (also
// run by the destructor) before touching the ring's memory, fds or device
// again. After Stop no device call is running. Not copyable. Start/Stop/
// SetEnabled are called from the connection's thread only.
#ifndef COHEREFS_AGENT_VHOST_USER_QUEUE_RUNNER_H_
#define COHEREFS_AGENT_VHOST_USER_QUEUE_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/vhost_user/device.h"
#include "agent/vhost_user/log_limiter.h"
#include "agent/vhost_user/metrics.h"
#include "agent/vhost_user/vring.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user {

class QueueRunner {
 public:
  struct Context {
    Device* device;
    DeviceMetrics* metrics;
    LogLimiter* log_limiter;
  };
  // `kick_fd` must stay open until Stop returns.
  QueueRunner(uint32_t index, std::unique_ptr<Vring> ring, int kick_fd,
              bool enabled, uint32_t workers, Context ctx);
  ~QueueRunner();
  QueueRunner(const QueueRunner&) = delete;
  QueueRunner& operator=(const QueueRunner&) = delete;

  // Before Start: the ring resumes a session a previous process served
  // (InflightLog::Recover): the `done` chains are returned as they are, the
  // `heads` served again first, in order, and the driver is signalled.
  void ResumeWith(std::vector<std::pair<uint16_t, uint32_t>> done,
                  std::vector<uint16_t> heads);
  // Chains served are marked done in `log` (may be null) before they are
  // returned. Before Start.
  void set_inflight_log(InflightLog* log) { log_ = log; }
  // Starts the threads. An errno status if eventfd or thread creation fails.
  absl::Status Start();
  // SET_VRING_ENABLE: a disabled ring takes no chains (kicks are drained).
  void SetEnabled(bool enabled);
  // Stops taking chains, waits for the in-flight ones, joins every thread.
  // Idempotent.
  void Stop();
  // The next avail index to serve; meaningful after Stop (GET_VRING_BASE).
  uint16_t last_avail_idx() const { return ring_->last_avail_idx(); }
  // Chains taken from the avail ring and not yet pushed to the used ring;
  // any thread (an operator's view: a relaxed read, possibly a moment old).
  uint32_t in_flight() const { return taken_.load(std::memory_order_relaxed); }
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  uint32_t size() const { return ring_->num(); }

 private:
  void Run();
  void Drain();
  void WorkerLoop();
  // Processes one good chain and completes it.
  void Serve(const Chain& chain);
  void Wake();

  // Constant after construction.
  const uint32_t index_;
  const std::unique_ptr<Vring> ring_;
  const int kick_fd_;
  const uint32_t num_workers_;
  const Context ctx_;

  UniqueFd wake_fd_;
  std::atomic<bool> enabled_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> taken_{0};  // see in_flight()
  bool broken_ = false;  // queue thread only
  std::deque<uint16_t> retake_;  // queue thread only once started
  std::vector<std::pair<uint16_t, uint32_t>> finished_;  // before Start only
  bool resumed_ = false;
  InflightLog* log_ = nullptr;
  std::thread queue_thread_;
  std::vector<std::thread> workers_;

  absl::Mutex mu_;
  std::deque<Chain> pending_ ABSL_GUARDED_BY(mu_);
  uint32_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool workers_exit_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_QUEUE_RUNNER_H_
