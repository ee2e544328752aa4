// libFuzzer target for the split-virtqueue chain walker (Vring::Pop/Push):
// the input becomes guest memory holding the descriptor table, the rings
// and any indirect tables, so every descriptor field is attacker-chosen.
// Input: byte 0 picks the queue size n = 1 << (b % 8), byte 1 the
// negotiated INDIRECT_DESC/EVENT_IDX bits (bits 0-1) and the starting avail
// index (bits 2-7); the rest is copied to guest address 0. The rings are
// packed so small inputs reach them: descriptor table at 0, avail ring at
// 16n, used ring right after (4-aligned).
// Checks that every iovec Pop returns lies inside guest memory and that the
// byte counts add up. Built by run_fuzz.sh; vring_fuzz_test.cc runs inputs
// through it under `bazel test`.
#include "agent/vhost_user/vring_fuzzer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "agent/vhost_user/guest_memory.h"
#include "agent/vhost_user/vring.h"

namespace {

using namespace coherefs::agent::vhost_user;

constexpr uint64_t kMemSize = 64 * 1024;
constexpr uint64_t kUvaBase = 0x7f0000000000;  // front-end view of gpa 0

struct Guest {
  std::unique_ptr<GuestMemory> mem;
  uint8_t* host = nullptr;
  Notifier call;  // no fd: Signal is a no-op
};

Guest& TheGuest() {
  static Guest* g = [] {
    auto* guest = new Guest();
    coherefs::UniqueFd fd(::memfd_create("vring-fuzz", MFD_CLOEXEC));
    if (!fd.valid() || ::ftruncate(fd.get(), kMemSize) != 0) abort();
    std::vector<coherefs::UniqueFd> fds;
    fds.push_back(std::move(fd));
    auto mem = GuestMemory::Map({{0, kMemSize, kUvaBase, 0}}, std::move(fds));
    if (!mem.ok()) abort();
    guest->mem = std::move(*mem);
    guest->host = static_cast<uint8_t*>(guest->mem->GpaToHost(0, kMemSize));
    return guest;
  }();
  return *g;
}

void CheckIovecs(const std::vector<iovec>& iov, uint64_t bytes,
                 const uint8_t* base) {
  uint64_t sum = 0;
  for (const iovec& v : iov) {
    auto* p = static_cast<const uint8_t*>(v.iov_base);
    if (p < base || p + v.iov_len > base + kMemSize || v.iov_len > kMemSize) {
      __builtin_trap();
    }
    sum += v.iov_len;
  }
  if (sum != bytes || bytes > UINT32_MAX) __builtin_trap();
}

}  // namespace

VringFuzzResult RunVringInput(const uint8_t* data, size_t size) {
  VringFuzzResult result;
  if (size < 2) return result;
  Guest& g = TheGuest();
  std::memset(g.host, 0, kMemSize);
  std::memcpy(g.host, data + 2, std::min<size_t>(size - 2, kMemSize));
  RingLayout layout;
  layout.num = 1u << (data[0] % 8);
  const uint64_t avail = DescTableBytes(layout.num);
  const uint64_t used = (avail + AvailRingBytes(layout.num) + 3) / 4 * 4;
  layout.desc_uva = kUvaBase;
  layout.avail_uva = kUvaBase + avail;
  layout.used_uva = kUvaBase + used;
  layout.indirect = data[1] & 1;
  layout.event_idx = data[1] & 2;
  auto ring = Vring::Create(g.mem.get(), layout, data[1] >> 2, &g.call);
  if (!ring.ok()) __builtin_trap();  // the layout above is always valid
  for (uint32_t i = 0; i < 2 * layout.num + 2; ++i) {
    Chain chain;
    std::string error;
    Vring::PopResult r = (*ring)->Pop(&chain, &error);
    if (r == Vring::PopResult::kEmpty) break;
    if (r == Vring::PopResult::kBroken) {
      result.broken = true;
      break;
    }
    if (r == Vring::PopResult::kSkipped) ++result.skipped;
    if (r == Vring::PopResult::kChain) {
      ++result.chains;
      CheckIovecs(chain.readable, chain.readable_bytes, g.host);
      CheckIovecs(chain.writable, chain.writable_bytes, g.host);
      if (chain.head >= layout.num) __builtin_trap();
      (*ring)->Push(chain.head, static_cast<uint32_t>(chain.writable_bytes));
    } else if (r == Vring::PopResult::kBadChain) {
      ++result.bad;
      if (!chain.readable.empty() || !chain.writable.empty()) __builtin_trap();
      (*ring)->Push(chain.head, 0);
    }
    (*ring)->EnableNotifyAndCheck();
  }
  return result;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  RunVringInput(data, size);
  return 0;
}
