// Runs the vring fuzz target (vring_fuzzer.cc) over deterministic inputs
// under `bazel test`: well-formed rings with direct and indirect chains,
// then many pseudo-random mutations of them. The target traps on any iovec
// outside guest memory or inconsistent byte count.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "agent/vhost_user/protocol.h"
#include "agent/vhost_user/vring_fuzzer.h"
#include "gtest/gtest.h"


namespace coherefs::agent::vhost_user {
namespace {

// A 16-entry ring at gpa 0 (avail 0x1000, used 0x2000) with `chains`
// published chains of three descriptors each, the second one indirect.
std::string WellFormed(int chains) {
  std::string mem(0x3000, '\0');
  auto* desc = reinterpret_cast<VirtqDesc*>(mem.data());
  auto* avail = reinterpret_cast<uint16_t*>(mem.data() + 0x1000);
  for (int c = 0; c < chains; ++c) {
    int d = c * 3;
    if (c % 2 == 1) {
      // Indirect table of two entries at 0x2800 + c * 32.
      uint64_t table = 0x2800 + c * 32;
      auto* t = reinterpret_cast<VirtqDesc*>(mem.data() + table);
      t[0] = {0x2400, 16, kDescFNext, 1};
      t[1] = {0x2500, 32, kDescFWrite, 0};
      desc[d] = {table, 32, kDescFIndirect, 0};
    } else {
      desc[d] = {0x2400, 16, kDescFNext, static_cast<uint16_t>(d + 1)};
      desc[d + 1] = {0x2410, 16, kDescFNext, static_cast<uint16_t>(d + 2)};
      desc[d + 2] = {0x2500, 64, kDescFWrite, 0};
    }
    avail[2 + c] = static_cast<uint16_t>(d);
  }
  avail[1] = static_cast<uint16_t>(chains);
  // byte 0: 1 << 4 = 16 entries; byte 1: indirect + event idx, base 0.
  return std::string("\x04\x03", 2) + mem;
}

TEST(VringFuzzTest, WellFormedAndMutatedRings) {
  std::string base = WellFormed(5);
  VringFuzzResult good = RunVringInput(
      reinterpret_cast<const uint8_t*>(base.data()), base.size());
  EXPECT_EQ(good.chains, 5);
  EXPECT_EQ(good.bad, 0);
  EXPECT_FALSE(good.broken);
  int with_bad = 0, with_good = 0, broken = 0;
  std::mt19937 rng(1234);
  for (int i = 0; i < 3000; ++i) {
    std::string m = base;
    int flips = 1 + rng() % 8;
    for (int f = 0; f < flips; ++f) {
      // Mostly the descriptor table, avail ring and indirect tables.
      size_t region = rng() % 3;
      size_t off = region == 0 ? 2 + rng() % (16 * 16)
                   : region == 1 ? 2 + 0x1000 + rng() % 40
                                 : 2 + 0x2800 + rng() % 256;
      m[off] = static_cast<char>(rng());
    }
    m[0] = static_cast<char>(rng() % 8);
    m[1] = static_cast<char>(rng());
    VringFuzzResult r =
        RunVringInput(reinterpret_cast<const uint8_t*>(m.data()), m.size());
    with_bad += r.bad > 0;
    with_good += r.chains > 0;
    broken += r.broken;
  }
  // The mutations reach every outcome (the walker checks ran, not just the
  // empty-ring path); any escape from guest memory would have trapped.
  EXPECT_GT(with_bad, 100);
  EXPECT_GT(with_good, 100);
  EXPECT_GT(broken, 10);
}

}  // namespace
}  // namespace coherefs::agent::vhost_user
