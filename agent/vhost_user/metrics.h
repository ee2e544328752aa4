// Counters one vhost-user socket (one guest device) keeps, for the daemon to
// export (coherefs_agent_vhost_*_total); no metrics library here. Updated
// with relaxed atomics from every thread serving the socket: each counter is
// monotonic and read independently, so no ordering between them is needed.
#ifndef COHEREFS_AGENT_VHOST_USER_METRICS_H_
#define COHEREFS_AGENT_VHOST_USER_METRICS_H_

#include <atomic>
#include <cstdint>

namespace coherefs::agent::vhost_user {

struct MetricsSnapshot {
  uint64_t connections = 0;    // front-end sessions accepted
  uint64_t requests = 0;       // chains served and put on the used ring
  uint64_t bad_chains = 0;     // chains refused (returned with 0 or skipped)
  uint64_t bad_messages = 0;   // vhost-user messages refused
  uint64_t bytes_in = 0;       // device-readable bytes of served chains
  uint64_t bytes_out = 0;      // bytes written back (used lengths)
  uint64_t adopted = 0;        // sessions resumed without a handshake
};

class DeviceMetrics {
 public:
  void AddConnection() { Add(connections_, 1); }
  void AddRequest(uint64_t in, uint64_t out) {
    Add(requests_, 1);
    Add(bytes_in_, in);
    Add(bytes_out_, out);
  }
  void AddBadChain() { Add(bad_chains_, 1); }
  void AddBadMessage() { Add(bad_messages_, 1); }
  void AddAdoptedSession() { Add(adopted_, 1); }

  MetricsSnapshot Snapshot() const {
    MetricsSnapshot s;
    s.connections = connections_.load(std::memory_order_relaxed);
    s.requests = requests_.load(std::memory_order_relaxed);
    s.bad_chains = bad_chains_.load(std::memory_order_relaxed);
    s.bad_messages = bad_messages_.load(std::memory_order_relaxed);
    s.bytes_in = bytes_in_.load(std::memory_order_relaxed);
    s.bytes_out = bytes_out_.load(std::memory_order_relaxed);
    s.adopted = adopted_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  static void Add(std::atomic<uint64_t>& c, uint64_t n) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> bad_chains_{0};
  std::atomic<uint64_t> bad_messages_{0};
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};
  std::atomic<uint64_t> adopted_{0};
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_METRICS_H_
