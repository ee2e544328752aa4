// GuestMemory maps the front end's memory regions (SET_MEM_TABLE, vhost-user
// spec "Memory region description") into this process and translates the
// two kinds of address the protocol uses: guest-physical addresses (in
// descriptors) and front-end virtual addresses (SET_VRING_ADDR).
//
// Every translation is bounds-checked against one region and overflow-safe;
// a range that is not entirely mapped yields nullptr/false, never a pointer
// past a mapping. Owns the mappings (MAP_SHARED, unmapped on destruction);
// the fds are closed once mapped. Immutable after Map: thread-safe.
//
// Known limit: a front end that shrinks its memfd after SET_MEM_TABLE can
// still make an access fault with SIGBUS; Map refuses files that are already
// too short, which is what a buggy (rather than hostile) front end does.
#ifndef COHEREFS_AGENT_VHOST_USER_GUEST_MEMORY_H_
#define COHEREFS_AGENT_VHOST_USER_GUEST_MEMORY_H_

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/vhost_user/protocol.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user {

class GuestMemory {
 public:
  // Maps region i from fds[i] (sizes must match). kInvalidArgument for a
  // mismatched fd count, overlapping guest-physical ranges, a file shorter
  // than mmap_offset + memory_size or not a regular file; the mmap errno
  // otherwise (ENOMEM -> kResourceExhausted).
  static absl::StatusOr<std::unique_ptr<GuestMemory>> Map(
      const std::vector<MemoryRegion>& regions, std::vector<UniqueFd> fds);

  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Host pointer for guest-physical [gpa, gpa + len) when it lies inside one
  // region; nullptr otherwise.
  void* GpaToHost(uint64_t gpa, uint64_t len) const;
  // Same for a front-end virtual address range.
  void* UvaToHost(uint64_t uva, uint64_t len) const;
  // Appends iovecs covering guest-physical [gpa, gpa + len), split where the
  // range crosses from one region into an adjacent one. False (and `out`
  // unchanged) if any byte is unmapped or the range overflows. len 0 appends
  // nothing and succeeds.
  bool AppendIovecs(uint64_t gpa, uint64_t len, std::vector<iovec>* out) const;

  size_t num_regions() const { return regions_.size(); }

 private:
  struct Mapped {
    MemoryRegion region;
    void* map_base;    // what mmap returned (file offset 0)
    size_t map_size;   // mmap_offset + memory_size
    uint8_t* host;     // map_base + mmap_offset: guest_phys_addr lives here
  };
  GuestMemory() = default;
  const Mapped* FindGpa(uint64_t gpa) const;

  std::vector<Mapped> regions_;
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_GUEST_MEMORY_H_
