// Vring is the device side of one split virtqueue (virtio 1.2 §2.7) living
// in guest memory: it pops descriptor chains from the available ring,
// translating and checking every descriptor, and pushes completions to the
// used ring with the ordering §2.7.13 asks for, deciding whether to signal
// the driver (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX).
//
// Every guest-controlled value is copied out of shared memory once and
// checked before use: a head or next index out of range, a chain longer than
// the queue (or a loop), an address outside guest memory, a length that
// overflows 32 bits, an indirect table inside an indirect table or with
// VIRTQ_DESC_F_NEXT, an indirect table when INDIRECT_DESC was not
// negotiated, or a device-readable descriptor after a device-writable one
// makes that one chain bad; the ring itself goes on.
//
// Threading: Pop and EnableNotifyAndCheck belong to one thread (the queue's
// thread). Push may be called from any thread; pushes are serialized by an
// internal mutex, so completions from several workers stay consistent.
// Does not own guest memory or the call fd's lifetime beyond the Notifier.
#ifndef COHEREFS_AGENT_VHOST_USER_VRING_H_
#define COHEREFS_AGENT_VHOST_USER_VRING_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/vhost_user/device.h"
#include "agent/vhost_user/guest_memory.h"
#include "agent/vhost_user/inflight_log.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user {

// The call eventfd of a queue. The front end may replace it while the ring
// runs (QEMU does when it masks guest notifiers), so it sits behind a mutex.
class Notifier {
 public:
  void Set(UniqueFd fd) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes 1 to the eventfd, if there is one.
  void Signal() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  UniqueFd fd_ ABSL_GUARDED_BY(mu_);
};

struct RingLayout {
  uint32_t num = 0;          // power of two, 1..32768
  uint64_t desc_uva = 0;     // front-end virtual addresses (SET_VRING_ADDR)
  uint64_t avail_uva = 0;
  uint64_t used_uva = 0;
  bool event_idx = false;    // VIRTIO_RING_F_EVENT_IDX negotiated
  bool indirect = false;     // VIRTIO_RING_F_INDIRECT_DESC negotiated
};

class Vring {
 public:
  // Translates the three ring areas through `mem` (which must outlive the
  // Vring). kInvalidArgument if num is not a power of two in range, an area
  // is misaligned (§2.7: 16, 2, 4) or not entirely inside one region.
  // `last_avail_idx` is SET_VRING_BASE's value; the used index is read from
  // the ring. `log` (may be null; must outlive the Vring) records every
  // chain taken and returned (see InflightLog).
  static absl::StatusOr<std::unique_ptr<Vring>> Create(
      const GuestMemory* mem, const RingLayout& layout,
      uint16_t last_avail_idx, Notifier* call, InflightLog* log = nullptr);

  // The checks Create makes, without creating: for SET_VRING_ADDR, so a bad
  // address is refused when sent rather than when the ring starts.
  static absl::Status CheckLayout(const GuestMemory* mem,
                                  const RingLayout& layout);

  enum class PopResult {
    kChain,     // *chain holds a good chain
    kEmpty,     // nothing available
    kBadChain,  // *chain->head is a bad chain: push it with length 0
    kSkipped,   // a head index out of range: nothing can be returned
    kBroken,    // avail idx ran more than num ahead: stop the ring
  };
  // Takes the next available chain. On kBadChain/kSkipped/kBroken, *error
  // says why.
  PopResult Pop(Chain* chain, std::string* error);

  // Walks the chain at `head` again: one a previous process took and never
  // returned (InflightLog::Recover). kChain or kBadChain.
  PopResult Retake(uint16_t head, Chain* chain, std::string* error);

  // The used index the ring shows now (GET_VRING_BASE of a resumed ring).
  uint16_t UsedIdx() ABSL_LOCKS_EXCLUDED(mu_);
  // Signals the driver unconditionally (a resumed ring: completions the
  // dead process published may not have been signalled).
  void Notify() { call_->Signal(); }

  // With EVENT_IDX: publishes avail_event = last_avail_idx so the driver
  // kicks for the next buffer, then re-reads avail idx. True if buffers
  // arrived in between (pop again). Without EVENT_IDX: false.
  bool EnableNotifyAndCheck();

  // Puts (head, len) on the used ring and signals the driver if it asked
  // for it. Thread-safe.
  void Push(uint16_t head, uint32_t len) ABSL_LOCKS_EXCLUDED(mu_);

  uint16_t last_avail_idx() const { return last_avail_idx_; }
  uint32_t num() const { return layout_.num; }

 private:
  Vring(const GuestMemory* mem, const RingLayout& layout, uint16_t last_avail);
  bool WalkChain(uint16_t head, Chain* chain, std::string* error) const;

  // Constant after Create.
  const GuestMemory* const mem_;
  const RingLayout layout_;
  const uint8_t* desc_ = nullptr;   // desc table
  uint16_t* avail_ = nullptr;       // flags, idx, ring[num], used_event
  uint8_t* used_ = nullptr;         // flags, idx, ring[num], avail_event
  Notifier* call_ = nullptr;
  InflightLog* log_ = nullptr;

  // Owned by the popping thread.
  uint16_t last_avail_idx_;

  absl::Mutex mu_;
  uint16_t used_idx_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_VRING_H_
