#include "agent/coherence/version_table.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/unique_fd.h"

namespace coherefs::agent::coherence {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the table ABI is little-endian; add byte swapping first");
static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "slots are read across processes: atomics must be lock-free");
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<uint64_t>) == 8 &&
              alignof(std::atomic<uint64_t>) == 8);
static_assert(kHeaderSize % 64 == 0,
              "slot 0 starts on its own cache line, apart from the header");
static_assert(kOffMappingSize + 8 <= kHeaderSize);

constexpr uint64_t kMinMappingSize = 4096;

// Out-of-memory-like failures are ResourceExhausted (the caller may retry
// with a smaller table or later); the rest keep ErrnoStatus's mapping.
absl::Status SyscallStatus(int err, absl::string_view what) {
  if (err == ENOMEM || err == ENOSPC || err == EMFILE || err == ENFILE) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": ", ErrnoStatus(err, what).message()));
  }
  return ErrnoStatus(err, what);
}

bool ValidVolumeName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

uint64_t TableMappingSize(uint32_t capacity) {
  const uint64_t need = kHeaderSize + 8ull * capacity;
  uint64_t size = kMinMappingSize;
  while (size < need) size <<= 1;
  return size;
}

absl::StatusOr<std::unique_ptr<VersionTable>> VersionTable::Create(
    const std::string& volume, uint32_t capacity, bool keepable) {
  if (capacity == 0 || capacity > kMaxCapacity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table capacity ", capacity, " not in 1..", kMaxCapacity));
  }
  if (!ValidVolumeName(volume)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad volume name '", volume, "'"));
  }
  const uint64_t size = TableMappingSize(capacity);
  const std::string name = absl::StrCat("coherefs-", volume, ".table");
  UniqueFd fd(memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return SyscallStatus(errno, "memfd_create");
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return SyscallStatus(errno, "ftruncate table");
  }
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    return SyscallStatus(errno, "seal table size");
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                    fd.get(), 0);
  if (base == MAP_FAILED) return SyscallStatus(errno, "mmap table");
  // With our one writable mapping in place, forbid any other: every later
  // open of the memfd (QEMU via ExportPath, readers) is read-only in effect.
  // Kernels before 5.1 lack the seal; the table still works, unprotected.
  if (!keepable && fcntl(fd.get(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != 0 &&
      errno != EINVAL) {
    const int err = errno;
    munmap(base, size);
    return SyscallStatus(err, "seal table writes");
  }
  // F_SEAL_SEAL last: nobody may add or change seals any more. Best effort.
  if (!keepable) (void)fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SEAL);

  auto table = std::unique_ptr<VersionTable>(
      new VersionTable(volume, capacity, size, fd.Release(), base));
  // The memfd is zero-filled; write the constant fields. Nobody else can
  // see the memory yet, so plain stores would do; atomics keep one style.
  std::memcpy(base, kTableMagic, sizeof(kTableMagic));
  table->U32At(kOffLayoutVersion)->store(kLayoutVersion,
                                         std::memory_order_relaxed);
  table->U32At(kOffHeaderSize)->store(kHeaderSize, std::memory_order_relaxed);
  table->U32At(kOffCapacity)->store(capacity, std::memory_order_relaxed);
  table->U64At(kOffMappingSize)->store(size, std::memory_order_relaxed);
  table->U32At(kOffFenced)->store(1, std::memory_order_release);
  return table;
}

absl::StatusOr<std::unique_ptr<VersionTable>> VersionTable::Adopt(
    const std::string& volume, uint32_t capacity, int fd) {
  if (capacity == 0 || capacity > kMaxCapacity || !ValidVolumeName(volume)) {
    return absl::InvalidArgumentError("bad table to adopt");
  }
  const uint64_t size = TableMappingSize(capacity);
  struct stat st;
  if (fstat(fd, &st) != 0) return SyscallStatus(errno, "fstat kept table");
  if (static_cast<uint64_t>(st.st_size) != size) {
    return absl::DataLossError(absl::StrCat("kept table of volume ", volume, " has ",
                                            st.st_size, " bytes, not ", size));
  }
  UniqueFd own(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!own.valid()) return SyscallStatus(errno, "dup kept table");
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, own.get(), 0);
  if (base == MAP_FAILED) {
    if (errno == EPERM) {
      return absl::PermissionDeniedError("kept table is sealed against writing");
    }
    return SyscallStatus(errno, "mmap kept table");
  }
  auto table = std::unique_ptr<VersionTable>(
      new VersionTable(volume, capacity, size, own.Release(), base));
  if (std::memcmp(base, kTableMagic, sizeof(kTableMagic)) != 0 ||
      table->U32At(kOffLayoutVersion)->load() != kLayoutVersion ||
      table->U32At(kOffHeaderSize)->load() != kHeaderSize ||
      table->U32At(kOffCapacity)->load() != capacity ||
      table->U64At(kOffMappingSize)->load() != size) {
    table->base_ = nullptr;  // not ours to fence
    munmap(base, size);
    return absl::DataLossError(absl::StrCat("kept table of volume ", volume,
                                            " has a foreign header"));
  }
  table->SetFenced(true);
  return table;
}

VersionTable::VersionTable(std::string volume, uint32_t capacity,
                           uint64_t mapping_size, int fd, void* base)
    : volume_(std::move(volume)),
      capacity_(capacity),
      mapping_size_(mapping_size),
      fd_(fd),
      base_(base) {}

VersionTable::~VersionTable() {
  // Guests may keep mapping this memory (QEMU holds its own mapping): tell
  // them it is no longer maintained.
  if (base_ != nullptr) {
    SetFenced(true);
    munmap(base_, mapping_size_);
  }
  close(fd_);
}

std::atomic<uint64_t>* VersionTable::slots() const {
  return reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(base_) +
                                                  kHeaderSize);
}

std::atomic<uint32_t>* VersionTable::U32At(size_t offset) const {
  return reinterpret_cast<std::atomic<uint32_t>*>(static_cast<char*>(base_) +
                                                  offset);
}

std::atomic<uint64_t>* VersionTable::U64At(size_t offset) const {
  return reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(base_) +
                                                  offset);
}

absl::StatusOr<uint64_t> VersionTable::Load(uint32_t slot) const {
  if (slot >= capacity_) {
    return absl::OutOfRangeError(
        absl::StrCat("slot ", slot, " >= capacity ", capacity_));
  }
  // Acquire pairs with the release in Raise: a thread that sees a version
  // also sees what the raiser wrote before it (e.g. its own cache state).
  // It is a plain load on x86-64.
  return slots()[slot].load(std::memory_order_acquire);
}

absl::StatusOr<bool> VersionTable::Raise(uint32_t slot, uint64_t version) {
  if (slot >= capacity_) {
    return absl::OutOfRangeError(
        absl::StrCat("slot ", slot, " >= capacity ", capacity_));
  }
  std::atomic<uint64_t>& cell = slots()[slot];
  uint64_t current = cell.load(std::memory_order_relaxed);
  // A CAS max: concurrent raisers (stream thread, bumping threads) all end
  // at the highest version, and no store can ever lower a slot.
  while (current < version) {
    if (cell.compare_exchange_weak(current, version, std::memory_order_release,
                                   std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

absl::StatusOr<SnapshotResult> VersionTable::ApplySnapshot(
    uint32_t start_slot, absl::Span<const uint64_t> versions) {
  if (start_slot > capacity_ || versions.size() > capacity_ - start_slot) {
    return absl::OutOfRangeError(absl::StrCat(
        "snapshot page [", start_slot, ", ",
        static_cast<uint64_t>(start_slot) + versions.size(),
        ") reaches past capacity ", capacity_));
  }
  SnapshotResult result;
  for (size_t i = 0; i < versions.size(); ++i) {
    const uint32_t slot = start_slot + static_cast<uint32_t>(i);
    const uint64_t before = slots()[slot].load(std::memory_order_relaxed);
    if (before > versions[i]) {
      ++result.ahead;
      continue;
    }
    // Raise cannot fail: the slot is in range.
    if (*Raise(slot, versions[i])) {
      ++result.raised;
    } else {
      ++result.unchanged;
    }
  }
  return result;
}

absl::Status VersionTable::SetSyncState(uint64_t epoch, uint64_t committed_seq,
                                        uint32_t slots_used) {
  if (slots_used > capacity_) {
    return absl::OutOfRangeError(absl::StrCat(
        "slots_used ", slots_used, " > capacity ", capacity_));
  }
  absl::MutexLock lock(&header_mu_);
  std::atomic<uint64_t>* gen = U64At(kOffGeneration);
  const uint64_t g = gen->load(std::memory_order_relaxed);
  // Seqlock write: odd generation, fence so the field stores cannot be seen
  // before it, the fields, then the even generation with release.
  gen->store(g + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  U64At(kOffEpoch)->store(epoch, std::memory_order_relaxed);
  U64At(kOffCommittedSeq)->store(committed_seq, std::memory_order_relaxed);
  U32At(kOffSlotsUsed)->store(slots_used, std::memory_order_relaxed);
  gen->store(g + 2, std::memory_order_release);
  return absl::OkStatus();
}

void VersionTable::SetFenced(bool fenced) {
  absl::MutexLock lock(&header_mu_);
  std::atomic<uint64_t>* gen = U64At(kOffGeneration);
  const uint64_t g = gen->load(std::memory_order_relaxed);
  gen->store(g + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  U32At(kOffFenced)->store(fenced ? 1 : 0, std::memory_order_relaxed);
  gen->store(g + 2, std::memory_order_release);
}

TableHeader VersionTable::ReadHeader() const {
  // Readers in this process could take header_mu_, but the seqlock read is
  // the same code guests run, so exercise it here too. The writer holds the
  // generation odd for a few stores only, so the loop ends quickly.
  TableHeader h;
  h.capacity = capacity_;
  h.mapping_size = mapping_size_;
  const std::atomic<uint64_t>* gen = U64At(kOffGeneration);
  for (;;) {
    const uint64_t g1 = gen->load(std::memory_order_acquire);
    if (g1 & 1) continue;
    h.epoch = U64At(kOffEpoch)->load(std::memory_order_relaxed);
    h.committed_seq = U64At(kOffCommittedSeq)->load(std::memory_order_relaxed);
    h.slots_used = U32At(kOffSlotsUsed)->load(std::memory_order_relaxed);
    h.fenced = U32At(kOffFenced)->load(std::memory_order_relaxed) != 0;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (gen->load(std::memory_order_relaxed) == g1) {
      h.generation = g1;
      return h;
    }
  }
}

std::string VersionTable::ExportPath() const {
  return absl::StrCat("/proc/", getpid(), "/fd/", fd_);
}

std::vector<std::string> VersionTable::QemuArgs(const std::string& id) const {
  return {
      "-object",
      absl::StrCat("memory-backend-file,id=", id, ",mem-path=", ExportPath(),
                   ",size=", mapping_size_, ",share=on,readonly=on"),
      "-device",
      absl::StrCat("ivshmem-plain,memdev=", id),
  };
}

}  // namespace coherefs::agent::coherence
