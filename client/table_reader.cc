#include "client/table_reader.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <utility>

namespace coherefs::client {
namespace {

// The ABI of agent/coherence/version_table.h, layout 1.
constexpr char kMagic[8] = {'C', 'O', 'H', 'E', 'R', 'E', 'F', 'S'};
constexpr uint32_t kLayoutVersion = 1;
constexpr uint32_t kHeaderSize = 128;
constexpr size_t kOffLayoutVersion = 8;
constexpr size_t kOffHeaderSize = 12;
constexpr size_t kOffCapacity = 16;
constexpr size_t kOffSlotsUsed = 20;
constexpr size_t kOffGeneration = 24;
constexpr size_t kOffEpoch = 32;
constexpr size_t kOffCommittedSeq = 40;
constexpr size_t kOffFenced = 48;
constexpr size_t kOffMappingSize = 56;

// A header read retries while the agent is mid-update; the writer holds the
// generation odd for a handful of stores, so this bound is never reached
// unless the writer died in between.
constexpr int kMaxHeaderRetries = 1 << 20;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the table ABI is little-endian");

void SetError(TableError* error, TableErrc code, int err, std::string msg) {
  if (error == nullptr) return;
  error->code = code;
  error->err = err;
  error->message = std::move(msg);
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

const char* TableErrcName(TableErrc code) {
  switch (code) {
    case TableErrc::kOk: return "ok";
    case TableErrc::kOpenFailed: return "open_failed";
    case TableErrc::kNoDevice: return "no_device";
    case TableErrc::kTooSmall: return "too_small";
    case TableErrc::kBadMagic: return "bad_magic";
    case TableErrc::kBadLayout: return "bad_layout";
    case TableErrc::kOutOfRange: return "out_of_range";
    case TableErrc::kBusy: return "busy";
  }
  return "unknown";
}

std::unique_ptr<TableReader> TableReader::Open(const std::string& path,
                                               TableError* error) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    SetError(error, TableErrc::kOpenFailed, err,
             "open " + path + ": " + std::strerror(err));
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    SetError(error, TableErrc::kOpenFailed, err,
             "fstat " + path + ": " + std::strerror(err));
    return nullptr;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kHeaderSize) {
    close(fd);
    SetError(error, TableErrc::kTooSmall, 0,
             path + ": " + std::to_string(size) + " bytes, smaller than the " +
                 std::to_string(kHeaderSize) + "-byte table header");
    return nullptr;
  }
  // PROT_READ only: the reader can never write a table, whatever its bugs.
  void* base = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const int map_err = errno;
  close(fd);  // the mapping keeps the file alive
  if (base == MAP_FAILED) {
    SetError(error, TableErrc::kOpenFailed, map_err,
             "mmap " + path + ": " + std::strerror(map_err));
    return nullptr;
  }
  auto fail = [&](TableErrc code, std::string msg) {
    munmap(base, size);
    SetError(error, code, 0, path + ": " + std::move(msg));
    return nullptr;
  };
  const char* bytes = static_cast<const char*>(base);
  if (std::memcmp(bytes, kMagic, sizeof(kMagic)) != 0) {
    return fail(TableErrc::kBadMagic, "not a coherefs table (bad magic)");
  }
  uint32_t layout, header_size, capacity;
  std::memcpy(&layout, bytes + kOffLayoutVersion, 4);
  std::memcpy(&header_size, bytes + kOffHeaderSize, 4);
  std::memcpy(&capacity, bytes + kOffCapacity, 4);
  if (layout != kLayoutVersion) {
    return fail(TableErrc::kBadLayout,
                "table layout version " + std::to_string(layout) +
                    ", this reader knows " + std::to_string(kLayoutVersion));
  }
  if (header_size != kHeaderSize) {
    return fail(TableErrc::kBadLayout,
                "header_size " + std::to_string(header_size) + ", expected " +
                    std::to_string(kHeaderSize));
  }
  const uint64_t need = uint64_t{header_size} + 8ull * capacity;
  if (need > size) {
    return fail(TableErrc::kTooSmall,
                "capacity " + std::to_string(capacity) + " needs " +
                    std::to_string(need) + " bytes, mapping has " +
                    std::to_string(size));
  }
  SetError(error, TableErrc::kOk, 0, "");
  return std::unique_ptr<TableReader>(
      new TableReader(path, base, size, capacity, header_size));
}

TableReader::TableReader(std::string path, const void* base, size_t size,
                         uint32_t capacity, uint32_t header_size)
    : path_(std::move(path)),
      base_(base),
      size_(size),
      capacity_(capacity),
      header_size_(header_size) {}

TableReader::~TableReader() { munmap(const_cast<void*>(base_), size_); }

// __atomic_load_n on the read-only mapping: a single aligned load (a plain
// mov on x86-64), never a read-modify-write that would fault on PROT_READ.
uint64_t TableReader::Load64(size_t offset) const {
  const uint64_t* p = reinterpret_cast<const uint64_t*>(
      static_cast<const char*>(base_) + offset);
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

uint32_t TableReader::Load32(size_t offset) const {
  const uint32_t* p = reinterpret_cast<const uint32_t*>(
      static_cast<const char*>(base_) + offset);
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

bool TableReader::Version(uint32_t slot, uint64_t* version,
                          TableError* error) const {
  if (slot >= capacity_) {
    SetError(error, TableErrc::kOutOfRange, 0,
             "slot " + std::to_string(slot) + " >= capacity " +
                 std::to_string(capacity_));
    return false;
  }
  // Acquire pairs with the agent's release in Raise (see version_table.h).
  *version = Load64(header_size_ + 8ull * slot);
  return true;
}

bool TableReader::Info(TableInfo* info, TableError* error) const {
  for (int i = 0; i < kMaxHeaderRetries; ++i) {
    const uint64_t g1 = Load64(kOffGeneration);
    if (g1 & 1) continue;
    TableInfo t;
    t.layout_version = Load32(kOffLayoutVersion);
    t.header_size = header_size_;
    t.capacity = capacity_;
    t.slots_used = Load32(kOffSlotsUsed);
    t.epoch = __atomic_load_n(reinterpret_cast<const uint64_t*>(
                                  static_cast<const char*>(base_) + kOffEpoch),
                              __ATOMIC_RELAXED);
    t.committed_seq = __atomic_load_n(
        reinterpret_cast<const uint64_t*>(static_cast<const char*>(base_) +
                                          kOffCommittedSeq),
        __ATOMIC_RELAXED);
    t.fenced = Load32(kOffFenced) != 0;
    t.mapping_size = __atomic_load_n(
        reinterpret_cast<const uint64_t*>(static_cast<const char*>(base_) +
                                          kOffMappingSize),
        __ATOMIC_RELAXED);
    t.mapped_bytes = size_;
    // Seqlock read: the fence keeps the field loads before the re-check.
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(reinterpret_cast<const uint64_t*>(
                            static_cast<const char*>(base_) + kOffGeneration),
                        __ATOMIC_RELAXED) != g1) {
      continue;
    }
    t.generation = g1;
    *info = t;
    return true;
  }
  SetError(error, TableErrc::kBusy, 0,
           path_ + ": header stayed mid-update (generation odd)");
  return false;
}

bool TableReader::IsCurrent(uint32_t slot, uint64_t cached) const {
  if (slot >= capacity_) return false;
  // generation, fenced, slot, generation: a fence raised while we looked
  // changes the generation, so a stale "current" cannot slip through.
  const uint64_t g1 = Load64(kOffGeneration);
  if ((g1 & 1) || Load32(kOffFenced) != 0) return false;
  const uint64_t v = Load64(header_size_ + 8ull * slot);
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  if (Load64(kOffGeneration) != g1) return false;
  return v == cached;
}

std::vector<std::string> FindIvshmemDevices(const std::string& sysfs_pci_dir) {
  std::vector<std::string> found;
  DIR* dir = opendir(sysfs_pci_dir.c_str());
  if (dir == nullptr) return found;
  while (struct dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string base = sysfs_pci_dir + "/" + name;
    if (ReadSmallFile(base + "/vendor") == "0x1af4" &&
        ReadSmallFile(base + "/device") == "0x1110") {
      found.push_back(name);
    }
  }
  closedir(dir);
  std::sort(found.begin(), found.end());
  return found;
}

bool ResolvePciTable(const std::string& bdf, std::string* path,
                     TableError* error, const std::string& sysfs_pci_dir) {
  std::string chosen = bdf;
  if (bdf == "auto") {
    const std::vector<std::string> devices = FindIvshmemDevices(sysfs_pci_dir);
    if (devices.empty()) {
      SetError(error, TableErrc::kNoDevice, 0,
               "no ivshmem-plain device (1af4:1110) under " + sysfs_pci_dir);
      return false;
    }
    chosen = devices.front();
  }
  const std::string base = sysfs_pci_dir + "/" + chosen;
  if (access(base.c_str(), F_OK) != 0) {
    SetError(error, TableErrc::kNoDevice, 0, "no PCI device " + base);
    return false;
  }
  // Best effort: fails harmlessly if already enabled or not permitted.
  const int fd = open((base + "/enable").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!write(fd, "1", 1);
    close(fd);
  }
  *path = base + "/resource2";
  return true;
}

}  // namespace coherefs::client
