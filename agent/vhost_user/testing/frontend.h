// Frontend is a test-only vhost-user front end: it plays QEMU against our
// back end over a real Unix socket. It owns a memfd as "guest memory" (two
// adjacent regions, mapped with a non-zero mmap_offset so the back end must
// honour it), lays out split virtqueues in that memory, negotiates the way
// QEMU 7.2 does, posts descriptor chains (direct or indirect), kicks the
// kick eventfd, waits on the call eventfd and reads the used ring.
//
// It also exposes the raw pieces (send any bytes and fds, write descriptors
// by hand, read replies) so tests can send malformed messages and chains.
//
// Not thread-safe: one test thread drives it. Every wait is bounded by a
// timeout. Errors: kDeadlineExceeded when a reply or used entry does not
// come in time, kUnavailable when the back end closed the socket, errno
// statuses for socket failures, kInternal for protocol surprises.
#ifndef COHEREFS_AGENT_VHOST_USER_TESTING_FRONTEND_H_
#define COHEREFS_AGENT_VHOST_USER_TESTING_FRONTEND_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/vhost_user/protocol.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user::testing {

struct FrontendOptions {
  uint32_t num_queues = 2;     // rings set up by Negotiate (<= GET_QUEUE_NUM)
  uint32_t queue_size = 64;
  // Of the offered features, which to ack (default: all).
  uint64_t feature_mask = ~uint64_t{0};
  // Of the offered protocol features, which to ack (default: all).
  uint64_t protocol_feature_mask = ~uint64_t{0};
  uint64_t region_size = 2 << 20;  // each of the two regions
};

struct Reply {
  Header header{};
  std::string payload;
};

struct Segment {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

inline constexpr uint64_t kGuestBase = 0x100000;  // gpa of region 0
inline constexpr uint64_t kMmapOffset = 4096;     // file offset of region 0

class Frontend {
 public:
  static absl::StatusOr<std::unique_ptr<Frontend>> Connect(
      const std::string& socket_path, FrontendOptions options = {});
  ~Frontend();

  // QEMU's sequence: GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
  // SET_OWNER, SET_FEATURES, SET_MEM_TABLE, then per ring SET_VRING_NUM,
  // SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL, and
  // SET_VRING_ENABLE. With REPLY_ACK every message without a reply carries
  // NEED_REPLY and its ack is checked.
  absl::Status Negotiate();
  // What QEMU's vhost_dev_start sends (SET_FEATURES onwards, no handshake),
  // as after reconnecting to a restarted back end: `features` and `protocol`
  // are what the front end negotiated with the previous one.
  absl::Status StartDevice(uint64_t features, uint64_t protocol);

  // --- raw protocol ---
  absl::Status SendBytes(const std::string& bytes, const std::vector<int>& fds);
  absl::Status Send(RequestType type, uint32_t flags, const std::string& payload,
                    const std::vector<int>& fds = {});
  absl::StatusOr<Reply> ReadReply(absl::Duration timeout = absl::Seconds(5));
  // Sends with NEED_REPLY and returns the REPLY_ACK value (0 = success).
  absl::StatusOr<uint64_t> SendWithAck(RequestType type,
                                       const std::string& payload,
                                       const std::vector<int>& fds = {});
  // Sends a request that has a u64 reply (GET_FEATURES, ...).
  absl::StatusOr<uint64_t> GetU64(RequestType type);
  // GET_VRING_BASE: the back end's next avail index for ring `q`.
  absl::StatusOr<uint32_t> GetVringBase(uint32_t q);
  // True once the back end has closed the socket (within `timeout`).
  bool WaitClosed(absl::Duration timeout = absl::Seconds(5));
  // Closes our end: the back end sees a disconnect.
  void Disconnect();

  static std::string U64(uint64_t v);
  static std::string State(uint32_t index, uint32_t num);
  std::string Addr(uint32_t q) const;
  std::string MemTable() const;
  // The two memory-table fds (both the memfd).
  std::vector<int> MemFds() const { return {mem_fd_.get(), mem_fd_.get()}; }
  int kick_fd(uint32_t q) const { return rings_[q].kick.get(); }
  int call_fd(uint32_t q) const { return rings_[q].call.get(); }

  // --- guest memory ---
  // Bump-allocates guest memory; returns its gpa (aligned to `align`).
  uint64_t Alloc(uint64_t size, uint64_t align = 16);
  uint8_t* Host(uint64_t gpa) const { return mem_ + kMmapOffset + (gpa - kGuestBase); }
  uint64_t guest_end() const { return kGuestBase + 2 * options_.region_size; }

  // --- rings ---
  // Writes `segments` as a chain (one indirect descriptor pointing at a
  // table when `indirect`), publishes it and returns its head.
  absl::StatusOr<uint16_t> Post(uint32_t q, const std::vector<Segment>& segs,
                                bool indirect = false);
  // Raw descriptors: take a free index, write it, publish a head.
  uint16_t TakeDesc(uint32_t q);
  VirtqDesc* Desc(uint32_t q, uint16_t i) const;
  void Publish(uint32_t q, uint16_t head);
  void Kick(uint32_t q);
  // Waits for the next used element of ring `q` (kDeadlineExceeded).
  absl::StatusOr<VirtqUsedElem> WaitUsed(uint32_t q,
                                         absl::Duration timeout = absl::Seconds(5));
  // Whether the call eventfd fired within `timeout` (drains it).
  bool CallFired(uint32_t q, absl::Duration timeout);
  uint16_t UsedIdx(uint32_t q) const;
  void SetAvailFlags(uint32_t q, uint16_t flags);
  // EVENT_IDX: the driver's used_event (notify when used idx passes it).
  void SetUsedEvent(uint32_t q, uint16_t value);
  // Takes the next used element without waiting for a notification.
  absl::StatusOr<VirtqUsedElem> PollUsed(uint32_t q, absl::Duration timeout);
  uint64_t acked_features() const { return acked_features_; }
  uint64_t acked_protocol_features() const { return acked_protocol_; }
  const FrontendOptions& options() const { return options_; }

 private:
  struct Ring {
    uint64_t desc_gpa = 0, avail_gpa = 0, used_gpa = 0;
    UniqueFd kick, call;
    std::vector<uint16_t> free;
    std::map<uint16_t, std::vector<uint16_t>> chains;  // head -> descs
    uint16_t avail_idx = 0;
    uint16_t last_used = 0;
  };
  Frontend(FrontendOptions options, UniqueFd sock, UniqueFd mem_fd, uint8_t* mem,
           size_t mem_len);
  uint64_t Uva(uint64_t gpa) const {
    return reinterpret_cast<uint64_t>(Host(gpa));
  }
  VirtqUsedElem TakeUsed(uint32_t q);
  // Aborts with a message on a ring index the test never set up.
  void CheckRing(uint32_t q) const;
  absl::Status SendSet(RequestType type, const std::string& payload,
                       const std::vector<int>& fds = {});

  const FrontendOptions options_;
  UniqueFd sock_;
  const UniqueFd mem_fd_;
  uint8_t* const mem_;
  const size_t mem_len_;
  uint64_t next_free_ = kGuestBase;
  uint64_t acked_features_ = 0;
  uint64_t acked_protocol_ = 0;
  std::vector<Ring> rings_;
};

}  // namespace coherefs::agent::vhost_user::testing

#endif  // COHEREFS_AGENT_VHOST_USER_TESTING_FRONTEND_H_
