#include "agent/vhost_user/vring.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/vhost_user/protocol.h"

namespace coherefs::agent::vhost_user {
namespace {

// Ring fields are shared with a guest running concurrently. Atomic accesses
// keep the compiler from tearing, caching or reordering them; the fences in
// Pop/Push give the driver/device ordering of virtio 1.2 §2.7.13.
uint16_t Load16(const uint16_t* p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
void Store16(uint16_t* p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
void Store32(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

bool IsPowerOfTwo(uint32_t n) { return n != 0 && (n & (n - 1)) == 0; }

// virtio 1.2 §2.7.10: notify if the driver's event index lies in
// [old_idx, new_idx), computed mod 2^16.
bool NeedEvent(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event_idx - 1) <
         static_cast<uint16_t>(new_idx - old_idx);
}

}  // namespace

void Notifier::Set(UniqueFd fd) {
  absl::MutexLock lock(&mu_);
  fd_ = std::move(fd);
}

void Notifier::Signal() {
  absl::MutexLock lock(&mu_);
  if (!fd_.valid()) return;
  uint64_t one = 1;
  // EAGAIN means the counter is saturated: the driver will wake anyway.
  ssize_t n = ::write(fd_.get(), &one, sizeof(one));
  (void)n;
}

Vring::Vring(const GuestMemory* mem, const RingLayout& layout,
             uint16_t last_avail)
    : mem_(mem), layout_(layout), last_avail_idx_(last_avail) {}

absl::Status Vring::CheckLayout(const GuestMemory* mem,
                                const RingLayout& layout) {
  if (!IsPowerOfTwo(layout.num) || layout.num > kMaxQueueSize) {
    return absl::InvalidArgumentError(absl::StrCat("queue size ", layout.num));
  }
  if (layout.desc_uva % 16 || layout.avail_uva % 2 || layout.used_uva % 4) {
    return absl::InvalidArgumentError("misaligned ring address");
  }
  void* desc = mem->UvaToHost(layout.desc_uva, DescTableBytes(layout.num));
  void* avail = mem->UvaToHost(layout.avail_uva, AvailRingBytes(layout.num));
  void* used = mem->UvaToHost(layout.used_uva, UsedRingBytes(layout.num));
  if (desc == nullptr || avail == nullptr || used == nullptr) {
    return absl::InvalidArgumentError("ring outside guest memory");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Vring>> Vring::Create(const GuestMemory* mem,
                                                     const RingLayout& layout,
                                                     uint16_t last_avail_idx,
                                                     Notifier* call,
                                                     InflightLog* log) {
  if (absl::Status s = CheckLayout(mem, layout); !s.ok()) return s;
  void* desc = mem->UvaToHost(layout.desc_uva, DescTableBytes(layout.num));
  void* avail = mem->UvaToHost(layout.avail_uva, AvailRingBytes(layout.num));
  void* used = mem->UvaToHost(layout.used_uva, UsedRingBytes(layout.num));
  std::unique_ptr<Vring> ring(new Vring(mem, layout, last_avail_idx));
  ring->desc_ = static_cast<const uint8_t*>(desc);
  ring->avail_ = static_cast<uint16_t*>(avail);
  ring->used_ = static_cast<uint8_t*>(used);
  ring->call_ = call;
  ring->log_ = log;
  {
    absl::MutexLock lock(&ring->mu_);
    ring->used_idx_ = Load16(reinterpret_cast<uint16_t*>(ring->used_ + 2));
  }
  return ring;
}

Vring::PopResult Vring::Pop(Chain* chain, std::string* error) {
  const uint16_t avail_idx = Load16(&avail_[1]);
  const uint16_t pending = static_cast<uint16_t>(avail_idx - last_avail_idx_);
  if (pending == 0) return PopResult::kEmpty;
  if (pending > layout_.num) {
    *error = absl::StrCat("avail idx ", avail_idx, " is ", pending,
                          " ahead of ", last_avail_idx_);
    return PopResult::kBroken;
  }
  // Read the ring entry and descriptors only after seeing the index
  // (pairs with the driver's write barrier before it bumps avail idx).
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint16_t head = Load16(&avail_[2 + last_avail_idx_ % layout_.num]);
  ++last_avail_idx_;
  *chain = Chain();
  chain->head = head;
  if (head >= layout_.num) {
    if (log_ != nullptr) log_->MarkSkipped();
    *error = absl::StrCat("head ", head, " out of range");
    return PopResult::kSkipped;
  }
  if (log_ != nullptr) log_->MarkTaken(head);
  return Retake(head, chain, error);
}

Vring::PopResult Vring::Retake(uint16_t head, Chain* chain, std::string* error) {
  *chain = Chain();
  chain->head = head;
  if (head >= layout_.num) {
    *error = absl::StrCat("head ", head, " out of range");
    return PopResult::kSkipped;
  }
  if (!WalkChain(head, chain, error)) {
    chain->readable.clear();
    chain->writable.clear();
    chain->readable_bytes = chain->writable_bytes = 0;
    return PopResult::kBadChain;
  }
  return PopResult::kChain;
}

uint16_t Vring::UsedIdx() {
  absl::MutexLock lock(&mu_);
  return used_idx_;
}

bool Vring::WalkChain(uint16_t head, Chain* chain, std::string* error) const {
  const uint8_t* table = desc_;
  uint32_t table_size = layout_.num;
  uint32_t max_count = layout_.num;
  bool in_indirect = false;
  bool seen_writable = false;
  uint32_t count = 0;
  uint32_t idx = head;
  for (;;) {
    if (idx >= table_size) {
      *error = absl::StrCat("next index ", idx, " out of range");
      return false;
    }
    if (++count > max_count) {
      *error = "chain longer than its table (loop?)";
      return false;
    }
    // One copy per descriptor: the guest may change it under us.
    VirtqDesc d;
    std::memcpy(&d, table + 16ull * idx, sizeof(d));
    if (d.flags & kDescFIndirect) {
      if (!layout_.indirect) {
        *error = "indirect descriptor not negotiated";
        return false;
      }
      if (in_indirect) {
        *error = "indirect table inside an indirect table";
        return false;
      }
      if (d.flags & kDescFNext) {
        *error = "indirect descriptor with NEXT";
        return false;
      }
      if (d.len == 0 || d.len % sizeof(VirtqDesc) != 0 ||
          d.len / sizeof(VirtqDesc) > kMaxQueueSize) {
        *error = absl::StrCat("indirect table of ", d.len, " bytes");
        return false;
      }
      const void* t = mem_->GpaToHost(d.addr, d.len);
      if (t == nullptr) {
        *error = "indirect table outside guest memory";
        return false;
      }
      table = static_cast<const uint8_t*>(t);
      table_size = d.len / sizeof(VirtqDesc);
      max_count = table_size;
      count = 0;
      idx = 0;
      in_indirect = true;
      continue;
    }
    if (d.flags & kDescFWrite) {
      seen_writable = true;
      chain->writable_bytes += d.len;
      if (chain->writable_bytes > UINT32_MAX) {
        *error = "writable length overflows 32 bits";
        return false;
      }
      if (!mem_->AppendIovecs(d.addr, d.len, &chain->writable)) {
        *error = "writable buffer outside guest memory";
        return false;
      }
    } else {
      if (seen_writable) {
        *error = "readable descriptor after a writable one";
        return false;
      }
      chain->readable_bytes += d.len;
      if (chain->readable_bytes > UINT32_MAX) {
        *error = "readable length overflows 32 bits";
        return false;
      }
      if (!mem_->AppendIovecs(d.addr, d.len, &chain->readable)) {
        *error = "readable buffer outside guest memory";
        return false;
      }
    }
    if (!(d.flags & kDescFNext)) return true;
    idx = d.next;
  }
}

bool Vring::EnableNotifyAndCheck() {
  if (!layout_.event_idx) return false;
  auto* avail_event =
      reinterpret_cast<uint16_t*>(used_ + 4 + 8ull * layout_.num);
  Store16(avail_event, last_avail_idx_);
  // The store must be visible before we re-read avail idx, or a driver that
  // read the old avail_event skips its kick while we miss its buffer.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return Load16(&avail_[1]) != last_avail_idx_;
}

void Vring::Push(uint16_t head, uint32_t len) {
  bool notify;
  {
    absl::MutexLock lock(&mu_);
    const uint16_t old_idx = used_idx_;
    const uint16_t new_idx = static_cast<uint16_t>(old_idx + 1);
    if (log_ != nullptr) log_->BeginPut(head);
    auto* elem = reinterpret_cast<uint32_t*>(
        used_ + 4 + 8ull * (old_idx % layout_.num));
    Store32(&elem[0], head);
    Store32(&elem[1], len);
    // The element (and the data written into the buffers) before the index.
    std::atomic_thread_fence(std::memory_order_release);
    Store16(reinterpret_cast<uint16_t*>(used_ + 2), new_idx);
    used_idx_ = new_idx;
    if (log_ != nullptr) log_->EndPut(head, new_idx);
    // The index before reading the driver's suppression state: otherwise a
    // driver re-enabling interrupts concurrently could be missed.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (layout_.event_idx) {
      const uint16_t used_event = Load16(&avail_[2 + layout_.num]);
      notify = NeedEvent(used_event, new_idx, old_idx);
    } else {
      notify = !(Load16(&avail_[0]) & kAvailFNoInterrupt);
    }
  }
  if (notify) call_->Signal();
}

}  // namespace coherefs::agent::vhost_user
