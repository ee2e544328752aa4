#include "agent/vhost_user/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace coherefs::agent::vhost_user {
namespace {

// True if [addr, addr + len) lies inside [start, start + size). Written
// without computing addr + len, which may overflow.
bool Contains(uint64_t start, uint64_t size, uint64_t addr, uint64_t len) {
  if (addr < start) return false;
  uint64_t off = addr - start;
  return off <= size && len <= size - off;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GuestMemory>> GuestMemory::Map(
    const std::vector<MemoryRegion>& regions, std::vector<UniqueFd> fds) {
  if (regions.size() != fds.size() || regions.empty()) {
    return absl::InvalidArgumentError("one fd per memory region");
  }
  for (size_t i = 0; i < regions.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const MemoryRegion& a = regions[i];
      const MemoryRegion& b = regions[j];
      if (a.guest_phys_addr < b.guest_phys_addr + b.memory_size &&
          b.guest_phys_addr < a.guest_phys_addr + a.memory_size) {
        return absl::InvalidArgumentError("overlapping memory regions");
      }
    }
  }
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  for (size_t i = 0; i < regions.size(); ++i) {
    const MemoryRegion& r = regions[i];
    struct stat st;
    if (::fstat(fds[i].get(), &st) != 0) return LastErrnoStatus("fstat region fd");
    uint64_t need = r.mmap_offset + r.memory_size;  // checked by DecodeRequest
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError("memory region fd is not a file");
    }
    if (static_cast<uint64_t>(st.st_size) < need) {
      return absl::InvalidArgumentError(
          absl::StrCat("memory region needs ", need, " bytes, file has ",
                       st.st_size));
    }
    if (need > SIZE_MAX) return absl::InvalidArgumentError("region too large");
    // Map from file offset 0: mmap_offset need not be page-aligned.
    void* base = ::mmap(nullptr, need, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_NORESERVE, fds[i].get(), 0);
    if (base == MAP_FAILED) return LastErrnoStatus("mmap guest memory");
    mem->regions_.push_back(
        {r, base, static_cast<size_t>(need),
         static_cast<uint8_t*>(base) + r.mmap_offset});
  }
  return mem;
}

GuestMemory::~GuestMemory() {
  for (const Mapped& m : regions_) ::munmap(m.map_base, m.map_size);
}

const GuestMemory::Mapped* GuestMemory::FindGpa(uint64_t gpa) const {
  for (const Mapped& m : regions_) {
    if (Contains(m.region.guest_phys_addr, m.region.memory_size, gpa, 1)) {
      return &m;
    }
  }
  return nullptr;
}

void* GuestMemory::GpaToHost(uint64_t gpa, uint64_t len) const {
  for (const Mapped& m : regions_) {
    if (Contains(m.region.guest_phys_addr, m.region.memory_size, gpa, len)) {
      return m.host + (gpa - m.region.guest_phys_addr);
    }
  }
  return nullptr;
}

void* GuestMemory::UvaToHost(uint64_t uva, uint64_t len) const {
  for (const Mapped& m : regions_) {
    if (Contains(m.region.userspace_addr, m.region.memory_size, uva, len)) {
      return m.host + (uva - m.region.userspace_addr);
    }
  }
  return nullptr;
}

bool GuestMemory::AppendIovecs(uint64_t gpa, uint64_t len,
                               std::vector<iovec>* out) const {
  if (gpa + len < gpa) return false;
  size_t mark = out->size();
  while (len > 0) {
    const Mapped* m = FindGpa(gpa);
    if (m == nullptr) {
      out->resize(mark);
      return false;
    }
    uint64_t off = gpa - m->region.guest_phys_addr;
    uint64_t chunk = std::min(len, m->region.memory_size - off);
    out->push_back({m->host + off, static_cast<size_t>(chunk)});
    gpa += chunk;
    len -= chunk;
  }
  return true;
}

}  // namespace coherefs::agent::vhost_user
