// The vring fuzz target's core, shared by the libFuzzer entry point
// (vring_fuzzer.cc) and vring_fuzz_test.cc. Not thread-safe: one static
// guest memory is reused by every call.
#ifndef COHEREFS_AGENT_VHOST_USER_VRING_FUZZER_H_
#define COHEREFS_AGENT_VHOST_USER_VRING_FUZZER_H_

#include <cstddef>
#include <cstdint>

// What one input did: good chains, bad chains (returned with length 0),
// skipped heads, and whether the ring was declared broken. Traps on any
// iovec outside guest memory or inconsistent byte counts.
struct VringFuzzResult {
  int chains = 0;
  int bad = 0;
  int skipped = 0;
  bool broken = false;
};

VringFuzzResult RunVringInput(const uint8_t* data, size_t size);

#endif  // COHEREFS_AGENT_VHOST_USER_VRING_FUZZER_H_
