#include "agent/vhost_user/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "gtest/gtest.h"

namespace coherefs::agent::vhost_user {
namespace {

constexpr uint64_t kRegion = 64 * 1024;

// One memfd backing two adjacent guest regions at file offsets 4096 and
// 4096 + kRegion, front-end addresses far from the guest-physical ones.
struct Fixture {
  UniqueFd fd{::memfd_create("gm-test", MFD_CLOEXEC)};
  std::vector<MemoryRegion> regions = {
      {0x10000, kRegion, 0x7f0000000000, 4096},
      {0x10000 + kRegion, kRegion, 0x7f0000000000 + kRegion, 4096 + kRegion}};
  Fixture() { EXPECT_EQ(::ftruncate(fd.get(), 4096 + 2 * kRegion), 0); }
  std::vector<UniqueFd> Fds() {
    std::vector<UniqueFd> v;
    v.emplace_back(::dup(fd.get()));
    v.emplace_back(::dup(fd.get()));
    return v;
  }
};

TEST(GuestMemoryTest, TranslatesHonouringMmapOffset) {
  Fixture f;
  ASSERT_EQ(::pwrite(f.fd.get(), "abcd", 4, 4096 + 16), 4);
  auto mem = GuestMemory::Map(f.regions, f.Fds());
  ASSERT_TRUE(mem.ok()) << mem.status();
  auto* p = static_cast<char*>((*mem)->GpaToHost(0x10000 + 16, 4));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(std::string(p, 4), "abcd");
  EXPECT_EQ((*mem)->UvaToHost(0x7f0000000000 + 16, 4), p);
  // Whole regions are reachable; one byte more is not.
  EXPECT_NE((*mem)->GpaToHost(0x10000, kRegion), nullptr);
  EXPECT_EQ((*mem)->GpaToHost(0x10000, kRegion + 1), nullptr);
  EXPECT_EQ((*mem)->GpaToHost(0x10000 - 1, 1), nullptr);
  EXPECT_EQ((*mem)->GpaToHost(0x10000 + 2 * kRegion, 1), nullptr);
  EXPECT_EQ((*mem)->GpaToHost(0x10000 + 8, ~0ull), nullptr);
  EXPECT_EQ((*mem)->UvaToHost(~0ull - 2, 8), nullptr);
}

TEST(GuestMemoryTest, IovecsSplitAcrossAdjacentRegions) {
  Fixture f;
  auto mem = GuestMemory::Map(f.regions, f.Fds());
  ASSERT_TRUE(mem.ok());
  std::vector<iovec> iov;
  ASSERT_TRUE((*mem)->AppendIovecs(0x10000 + kRegion - 10, 30, &iov));
  ASSERT_EQ(iov.size(), 2u);
  EXPECT_EQ(iov[0].iov_len, 10u);
  EXPECT_EQ(iov[1].iov_len, 20u);
  EXPECT_EQ(iov[1].iov_base, (*mem)->GpaToHost(0x10000 + kRegion, 20));
  // Running off the end fails and leaves `iov` as it was.
  EXPECT_FALSE((*mem)->AppendIovecs(0x10000 + 2 * kRegion - 4, 8, &iov));
  EXPECT_FALSE((*mem)->AppendIovecs(~0ull - 4, 8, &iov));
  EXPECT_EQ(iov.size(), 2u);
  EXPECT_TRUE((*mem)->AppendIovecs(0, 0, &iov));
  EXPECT_EQ(iov.size(), 2u);
}

TEST(GuestMemoryTest, RefusesBadTables) {
  Fixture f;
  auto one_fd = [&] {
    std::vector<UniqueFd> v;
    v.emplace_back(::dup(f.fd.get()));
    return v;
  };
  EXPECT_EQ(GuestMemory::Map(f.regions, one_fd()).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<MemoryRegion> overlap = {f.regions[0], f.regions[0]};
  EXPECT_EQ(GuestMemory::Map(overlap, f.Fds()).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<MemoryRegion> too_big = {{0, 1 << 30, 0, 0}};
  EXPECT_EQ(GuestMemory::Map(too_big, one_fd()).status().code(),
            absl::StatusCode::kInvalidArgument);
  UniqueFd pipe_fds[2];
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  pipe_fds[0].Reset(p[0]);
  pipe_fds[1].Reset(p[1]);
  std::vector<UniqueFd> pipe_vec;
  pipe_vec.emplace_back(::dup(p[0]));
  std::vector<MemoryRegion> small = {{0, 4096, 0, 0}};
  EXPECT_EQ(GuestMemory::Map(small, std::move(pipe_vec)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coherefs::agent::vhost_user
