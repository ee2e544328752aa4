// TableReader: the guest-side (and host-side) reader of an exported version
// table. The table's layout is the ABI documented byte by byte in
// agent/coherence/version_table.h; this reader repeats only the offsets it
// needs, on purpose: it must build with the plain C++ standard library (no
// Abseil, no gRPC) so that it links statically into a busybox initramfs.
//
// A table-aware guest maps the ivshmem-plain device's BAR 2
// (/sys/bus/pci/devices/<bdf>/resource2, vendor:device 1af4:1110) or, on the
// host, the agent's export path, read-only (PROT_READ), and compares
// Version(slot) with the version it cached: equal and not fenced means its
// cached metadata is current, with no guest->host exit.
//
// Ownership: a TableReader owns its mapping and unmaps it on destruction.
// Thread-safety: after Open, every method is const and safe from any thread.
// Errors: Open returns a TableError with a code and a message; Version
// returns kOutOfRange for slot >= capacity.
#ifndef COHEREFS_CLIENT_TABLE_READER_H_
#define COHEREFS_CLIENT_TABLE_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace coherefs::client {

enum class TableErrc {
  kOk = 0,
  kOpenFailed,       // open/fstat/mmap failed (errno in TableError::err)
  kNoDevice,         // no ivshmem-plain device (1af4:1110) found
  kTooSmall,         // mapping smaller than the header or than the slots
  kBadMagic,         // first 8 bytes are not "COHEREFS"
  kBadLayout,        // layout_version != 1 or header_size unexpected
  kOutOfRange,       // slot >= capacity
  kBusy,             // the header stayed mid-update (writer died mid-write?)
};

// The short name of a code ("too_small", ...) for messages and JSON.
const char* TableErrcName(TableErrc code);

struct TableError {
  TableErrc code = TableErrc::kOk;
  int err = 0;          // errno for kOpenFailed, else 0
  std::string message;  // for humans
  bool ok() const { return code == TableErrc::kOk; }
};

// A consistent copy of the header's fields (see version_table.h).
struct TableInfo {
  uint32_t layout_version = 0;
  uint32_t header_size = 0;
  uint32_t capacity = 0;
  uint32_t slots_used = 0;
  uint64_t generation = 0;
  uint64_t epoch = 0;
  uint64_t committed_seq = 0;
  bool fenced = false;
  uint64_t mapping_size = 0;  // as the header says
  uint64_t mapped_bytes = 0;  // as mapped (file or BAR size)
};

class TableReader {
 public:
  // Maps `path` read-only and validates the header: kTooSmall if the file
  // cannot hold the header or header_size + 8*capacity bytes; kBadMagic;
  // kBadLayout.
  static std::unique_ptr<TableReader> Open(const std::string& path,
                                           TableError* error);

  ~TableReader();
  TableReader(const TableReader&) = delete;
  TableReader& operator=(const TableReader&) = delete;

  uint32_t capacity() const { return capacity_; }
  const std::string& path() const { return path_; }
  // The start of the read-only mapping (header at offset 0). Writing
  // through it faults (SIGSEGV): the mapping is PROT_READ.
  const void* data() const { return base_; }
  size_t size() const { return size_; }

  // The version of `slot` (one atomic load). Returns false and sets *error
  // (kOutOfRange) if slot >= capacity.
  bool Version(uint32_t slot, uint64_t* version, TableError* error) const;

  // A consistent header snapshot (seqlock read, bounded retries: kBusy if
  // the header stays mid-update, which only a writer that died mid-update
  // can cause).
  bool Info(TableInfo* info, TableError* error) const;

  // The fast-path check a table-aware guest makes: true iff the table is not
  // fenced and slot's version equals `cached`. Any doubt (fenced, header
  // changing, slot out of range) answers false: go ask the host.
  bool IsCurrent(uint32_t slot, uint64_t cached) const;

 private:
  TableReader(std::string path, const void* base, size_t size,
              uint32_t capacity, uint32_t header_size);

  uint64_t Load64(size_t offset) const;
  uint32_t Load32(size_t offset) const;

  const std::string path_;
  const void* const base_;
  const size_t size_;
  const uint32_t capacity_;
  const uint32_t header_size_;
};

// The BDFs ("0000:00:04.0") of ivshmem-plain devices (1af4:1110) under
// `sysfs_pci_dir` (normally /sys/bus/pci/devices), sorted.
std::vector<std::string> FindIvshmemDevices(
    const std::string& sysfs_pci_dir = "/sys/bus/pci/devices");

// The resource2 path of a device; `bdf` "auto" picks the first ivshmem-plain
// device (kNoDevice if none). Writes "1" to the device's `enable` file first
// (best effort): without firmware (PVH boot) nothing may have turned on the
// BAR's memory decoding.
bool ResolvePciTable(const std::string& bdf, std::string* path,
                     TableError* error,
                     const std::string& sysfs_pci_dir = "/sys/bus/pci/devices");

}  // namespace coherefs::client

#endif  // COHEREFS_CLIENT_TABLE_READER_H_
