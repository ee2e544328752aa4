#include "agent/coherence/version_table.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace coherefs::agent::coherence {
namespace {

std::unique_ptr<VersionTable> MustCreate(uint32_t capacity) {
  auto table = VersionTable::Create("vol-1", capacity);
  EXPECT_TRUE(table.ok()) << table.status();
  return std::move(table).value();
}

std::vector<uint8_t> ReadBytes(int fd, size_t offset, size_t n) {
  std::vector<uint8_t> out(n);
  EXPECT_EQ(pread(fd, out.data(), n, offset), static_cast<ssize_t>(n));
  return out;
}

TEST(TableMappingSizeTest, PowerOfTwoAtLeastOnePage) {
  EXPECT_EQ(TableMappingSize(1), 4096u);
  EXPECT_EQ(TableMappingSize(496), 4096u);   // 128 + 496*8 == 4096
  EXPECT_EQ(TableMappingSize(497), 8192u);
  EXPECT_EQ(TableMappingSize(1u << 20), 16u << 20);
  EXPECT_EQ(TableMappingSize(kMaxCapacity), 256u << 20);
}

TEST(VersionTableTest, FreshHeaderGoldenBytes) {
  auto table = MustCreate(4);
  EXPECT_EQ(table->mapping_size(), 4096u);
  const std::vector<uint8_t> golden = {
      'C', 'O', 'H', 'E', 'R', 'E', 'F', 'S',  // 0 magic
      1, 0, 0, 0,                              // 8 layout_version
      128, 0, 0, 0,                            // 12 header_size
      4, 0, 0, 0,                              // 16 capacity
      0, 0, 0, 0,                              // 20 slots_used
      0, 0, 0, 0, 0, 0, 0, 0,                  // 24 generation
      0, 0, 0, 0, 0, 0, 0, 0,                  // 32 epoch
      0, 0, 0, 0, 0, 0, 0, 0,                  // 40 committed_seq
      1, 0, 0, 0,                              // 48 fenced (until synced)
      0, 0, 0, 0,                              // 52 reserved
      0, 0x10, 0, 0, 0, 0, 0, 0,               // 56 mapping_size 4096
  };
  std::vector<uint8_t> expected = golden;
  expected.resize(128 + 4 * 8, 0);  // reserved 64..127, four zero slots
  EXPECT_EQ(ReadBytes(table->fd(), 0, expected.size()), expected);
  struct stat st;
  ASSERT_EQ(fstat(table->fd(), &st), 0);
  EXPECT_EQ(st.st_size, 4096);
}

TEST(VersionTableTest, FieldOffsetsAfterUpdates) {
  auto table = MustCreate(8);
  const uint64_t epoch = 3;
  ASSERT_TRUE(table->SetSyncState(epoch, 0x0102030405060708ull, 5).ok());
  table->SetFenced(false);
  ASSERT_TRUE(table->Raise(2, (epoch << 40) | 9).ok());
  const int fd = table->fd();
  uint32_t u32;
  uint64_t u64;
  auto bytes = ReadBytes(fd, kOffSlotsUsed, 4);
  std::memcpy(&u32, bytes.data(), 4);
  EXPECT_EQ(u32, 5u);
  bytes = ReadBytes(fd, kOffGeneration, 8);
  std::memcpy(&u64, bytes.data(), 8);
  EXPECT_EQ(u64, 4u);  // two seqlock writes, +2 each
  bytes = ReadBytes(fd, kOffEpoch, 8);
  std::memcpy(&u64, bytes.data(), 8);
  EXPECT_EQ(u64, 3u);
  EXPECT_EQ(ReadBytes(fd, kOffCommittedSeq, 8),
            (std::vector<uint8_t>{8, 7, 6, 5, 4, 3, 2, 1}));  // little-endian
  bytes = ReadBytes(fd, kOffFenced, 4);
  std::memcpy(&u32, bytes.data(), 4);
  EXPECT_EQ(u32, 0u);
  EXPECT_EQ(ReadBytes(fd, kHeaderSize + 2 * 8, 8),
            (std::vector<uint8_t>{9, 0, 0, 0, 0, 3, 0, 0}));  // 3<<40 | 9

  const TableHeader h = table->ReadHeader();
  EXPECT_EQ(h.capacity, 8u);
  EXPECT_EQ(h.slots_used, 5u);
  EXPECT_EQ(h.generation, 4u);
  EXPECT_EQ(h.epoch, 3u);
  EXPECT_EQ(h.committed_seq, 0x0102030405060708ull);
  EXPECT_FALSE(h.fenced);
  EXPECT_EQ(h.mapping_size, 4096u);
}

TEST(VersionTableTest, CreateRejectsBadArguments) {
  EXPECT_EQ(VersionTable::Create("v", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VersionTable::Create("v", kMaxCapacity + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VersionTable::Create("", 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VersionTable::Create("a/b", 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VersionTable::Create(std::string(65, 'x'), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(VersionTable::Create(std::string(64, 'x'), 1).ok());
}

TEST(VersionTableTest, OutOfFileDescriptorsIsResourceExhausted) {
  // In a child, so the lowered limit does not leak into other tests.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Every descriptor from 3 up is refused.
    struct rlimit lim = {3, 3};
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) _exit(10);
    auto table = VersionTable::Create("v", 1);
    _exit(table.status().code() == absl::StatusCode::kResourceExhausted ? 0
                                                                         : 11);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(VersionTableTest, BoundsAreOutOfRange) {
  auto table = MustCreate(4);
  EXPECT_TRUE(table->Load(3).ok());
  EXPECT_EQ(table->Load(4).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(table->Load(UINT32_MAX).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(table->Raise(4, 1).status().code(), absl::StatusCode::kOutOfRange);
  const uint64_t page[2] = {1, 1};
  EXPECT_EQ(table->ApplySnapshot(3, page).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(table->ApplySnapshot(UINT32_MAX, page).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(*table->Load(3), 0u);  // nothing applied from the refused page
  EXPECT_TRUE(table->ApplySnapshot(2, page).ok());
  EXPECT_TRUE(table->ApplySnapshot(4, {}).ok());
  EXPECT_EQ(table->SetSyncState(1, 1, 5).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(table->SetSyncState(1, 1, 4).ok());
}

TEST(VersionTableTest, RaiseNeverLowers) {
  auto table = MustCreate(2);
  EXPECT_EQ(*table->Raise(0, 10), true);
  EXPECT_EQ(*table->Load(0), 10u);
  EXPECT_EQ(*table->Raise(0, 10), false);
  EXPECT_EQ(*table->Raise(0, 9), false);
  EXPECT_EQ(*table->Load(0), 10u);
  EXPECT_EQ(*table->Raise(0, 11), true);
  EXPECT_EQ(*table->Load(0), 11u);
  EXPECT_EQ(*table->Load(1), 0u);
}

TEST(VersionTableTest, ConcurrentRaisersEndAtTheMaxAndNeverDecrease) {
  constexpr uint32_t kSlots = 8;
  constexpr int kThreads = 4;
  constexpr int kRaisesPerThread = 20000;
  auto table = MustCreate(kSlots);
  std::vector<std::vector<uint64_t>> max_seen(kThreads,
                                              std::vector<uint64_t>(kSlots));
  std::atomic<bool> done{false};
  std::atomic<int> decreases{0};
  std::thread watcher([&] {
    std::vector<uint64_t> last(kSlots, 0);
    while (!done.load()) {
      for (uint32_t s = 0; s < kSlots; ++s) {
        const uint64_t v = *table->Load(s);
        if (v < last[s]) decreases.fetch_add(1);
        last[s] = v;
      }
    }
  });
  std::vector<std::thread> raisers;
  for (int t = 0; t < kThreads; ++t) {
    raisers.emplace_back([&, t] {
      std::mt19937_64 rng(1234 + t);
      for (int i = 0; i < kRaisesPerThread; ++i) {
        const uint32_t slot = rng() % kSlots;
        const uint64_t version = rng() % 1000000;
        ASSERT_TRUE(table->Raise(slot, version).ok());
        max_seen[t][slot] = std::max(max_seen[t][slot], version);
      }
    });
  }
  for (auto& th : raisers) th.join();
  done.store(true);
  watcher.join();
  EXPECT_EQ(decreases.load(), 0);
  for (uint32_t s = 0; s < kSlots; ++s) {
    uint64_t want = 0;
    for (int t = 0; t < kThreads; ++t) want = std::max(want, max_seen[t][s]);
    EXPECT_EQ(*table->Load(s), want) << "slot " << s;
  }
}

TEST(VersionTableTest, ApplySnapshotOnlyRaisesAndCountsAhead) {
  auto table = MustCreate(4);
  ASSERT_TRUE(table->Raise(0, 5).ok());
  ASSERT_TRUE(table->Raise(1, 7).ok());
  // Epoch 2 versions (a coordinator restart) are above every epoch 1 one.
  const uint64_t e1 = 1ull << 40, e2 = 2ull << 40;
  ASSERT_TRUE(table->Raise(2, e1 | 3).ok());
  const uint64_t page[4] = {5, 6, e2 | 1, e1 | 1};
  auto result = table->ApplySnapshot(0, page);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->unchanged, 1u);  // slot 0
  EXPECT_EQ(result->ahead, 1u);      // slot 1 (7 > 6): kept at 7
  EXPECT_EQ(result->raised, 2u);     // slots 2 and 3
  EXPECT_EQ(*table->Load(0), 5u);
  EXPECT_EQ(*table->Load(1), 7u);
  EXPECT_EQ(*table->Load(2), e2 | 1);
  EXPECT_EQ(*table->Load(3), e1 | 1);
}

TEST(VersionTableTest, SealsMakeOtherOpenersReadOnly) {
  auto table = MustCreate(4);
  ASSERT_TRUE(table->Raise(1, 42).ok());
  const std::string path = table->ExportPath();
  EXPECT_EQ(path, absl::StrCat("/proc/", getpid(), "/fd/", table->fd()));

  const int rw = open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(rw, 0) << strerror(errno);
  const uint64_t v = 99;
  errno = 0;
  EXPECT_EQ(pwrite(rw, &v, 8, kHeaderSize + 8), -1);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(mmap(nullptr, table->mapping_size(), PROT_READ | PROT_WRITE,
                 MAP_SHARED, rw, 0),
            MAP_FAILED);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(ftruncate(rw, 0), -1);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(ftruncate(rw, 2 * table->mapping_size()), -1);
  EXPECT_EQ(errno, EPERM);
  close(rw);
  EXPECT_EQ(*table->Load(1), 42u);
  // The agent's own mapping still writes.
  EXPECT_EQ(*table->Raise(1, 43), true);
}

TEST(VersionTableTest, ForkedReaderThroughExportPathSeesRaises) {
  auto table = MustCreate(16);
  const std::string path = table->ExportPath();
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // A separate mapping, read-only, through the path QEMU would use.
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) _exit(20);
    void* base = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) _exit(21);
    const auto* slot7 = reinterpret_cast<const uint64_t*>(
        static_cast<char*>(base) + kHeaderSize + 7 * 8);
    if (__atomic_load_n(slot7, __ATOMIC_ACQUIRE) != 0) _exit(22);
    char c = 'r';
    if (write(to_parent[1], &c, 1) != 1) _exit(23);
    if (read(to_child[0], &c, 1) != 1) _exit(24);
    // The parent raised slot 7 to 1000 then 1001 before writing to us.
    _exit(__atomic_load_n(slot7, __ATOMIC_ACQUIRE) == 1001 ? 0 : 25);
  }
  char c;
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  ASSERT_TRUE(table->Raise(7, 1000).ok());
  ASSERT_TRUE(table->Raise(7, 1001).ok());
  ASSERT_EQ(write(to_child[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) {
    close(fd);
  }
}

TEST(VersionTableTest, DestructionFencesSurvivingMappings) {
  auto table = MustCreate(4);
  table->SetFenced(false);
  const int fd = open(table->ExportPath().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* base = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  ASSERT_NE(base, MAP_FAILED);
  const auto* fenced =
      reinterpret_cast<const uint32_t*>(static_cast<char*>(base) + kOffFenced);
  EXPECT_EQ(*fenced, 0u);
  table.reset();
  EXPECT_EQ(*fenced, 1u);
  munmap(base, 4096);
}

TEST(VersionTableTest, QemuArgs) {
  auto table = MustCreate(1000);
  EXPECT_EQ(table->QemuArgs("vt0"),
            (std::vector<std::string>{
                "-object",
                absl::StrCat("memory-backend-file,id=vt0,mem-path=",
                             table->ExportPath(),
                             ",size=8192,share=on,readonly=on"),
                "-device", "ivshmem-plain,memdev=vt0"}));
}

}  // namespace
}  // namespace coherefs::agent::coherence
