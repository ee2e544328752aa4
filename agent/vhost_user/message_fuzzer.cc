// libFuzzer target for the vhost-user message parser (ParseHeader +
// DecodeRequest). Input layout: byte 0 = number of fds attached (mod 10,
// so "too many" is reachable), then the 12-byte header, then the payload.
// The fds are placeholders: decoding only counts them.
//
// Built outside Bazel by run_fuzz.sh (clang -fsanitize=fuzzer,address);
// message_test.cc runs every seed in fuzz_corpus/ through the same function.
#include <cstddef>
#include <cstdint>

#include "agent/vhost_user/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coherefs::agent::vhost_user;
  if (size < 1 + sizeof(Header)) return 0;
  const size_t num_fds = data[0] % 10;
  auto header = ParseHeader(absl::MakeConstSpan(data + 1, sizeof(Header)));
  if (!header.ok()) return 0;
  const uint8_t* payload = data + 1 + sizeof(Header);
  const size_t available = size - 1 - sizeof(Header);
  if (available < header->size) return 0;  // a short read: framing error
  Message msg;
  msg.header = *header;
  msg.payload.assign(reinterpret_cast<const char*>(payload), header->size);
  msg.fds.resize(num_fds);
  auto req = DecodeRequest(std::move(msg));
  if (req.ok()) {
    // Decoded regions must be consistent: no overflow, at most the limit.
    if (req->regions.size() > kMaxMemRegions) __builtin_trap();
    for (const MemoryRegion& r : req->regions) {
      if (r.memory_size == 0 || r.guest_phys_addr + r.memory_size < r.guest_phys_addr ||
          r.userspace_addr + r.memory_size < r.userspace_addr ||
          r.mmap_offset + r.memory_size < r.mmap_offset) {
        __builtin_trap();
      }
    }
    if (req->fds.size() > kMaxFds) __builtin_trap();
  }
  return 0;
}
