// VersionTable: the per-volume table of file versions an agent keeps in
// shared memory and exports read-only to guests (DESIGN.md "The coherence
// contract"; versions, slots and epochs as in proto/coherefs/v1/
// coordinator.proto).
//
// What it is. One table per volume: a fixed header followed by `capacity`
// 64-bit versions indexed by slot, in a memfd. The agent raises versions from
// the coordinator's invalidation stream and from its own Bump replies; every
// thread (and every forked process) serving guests reads them with plain
// atomic loads. Guests read the exported table through a read-only mapping
// (client/table_reader.h) and compare table[slot] with the version they cached.
//
// ABI (the guest-visible layout; little-endian, fixed offsets; layout 1).
// All multi-byte fields are little-endian; the agent only builds on
// little-endian hosts (static_assert in version_table.cc).
//
//   offset size  field
//   0      8     magic          "COHEREFS" (ASCII, no terminator)
//   8      4     layout_version 1 (kLayoutVersion); readers refuse others
//   12     4     header_size    offset of slot 0 in bytes: 128
//   16     4     capacity       number of slots (u32, 1 .. kMaxCapacity)
//   20     4     slots_used     slots allocated by the coordinator (u32)
//   24     8     generation     seqlock over the header fields at 20 and
//                               32..55: odd while the agent is writing them;
//                               even and unchanged around a consistent read
//   32     8     epoch          the coordinator epoch the table is synced to
//   40     8     committed_seq  every change-log entry with seq <= this has
//                               been applied to the table
//   48     4     fenced         1: the agent lost its coordinator lease (or
//                               shut down): the table may be stale, do not
//                               trust a match; 0: live
//   52     4     reserved       0
//   56     8     mapping_size   total bytes of the backing file (u64)
//   64     64    reserved       0
//   128    8*capacity  versions version of slot i at 128 + 8*i (u64 each,
//                               8-byte aligned, only ever increases)
//   ...          padding up to mapping_size, zero
//
// mapping_size is header_size + 8*capacity rounded up to a power of two (and
// at least one page): an ivshmem-plain device exposes the backend as PCI
// BAR 2, and PCI BAR sizes are powers of two. Rounding costs address space
// only: memfd pages are allocated when first written, and nothing writes the
// padding.
//
// Export. The backing is a memfd (MFD_ALLOW_SEALING) so it needs no file
// system path that could leak or collide, dies with its last user, and can be
// sealed: F_SEAL_SHRINK | F_SEAL_GROW (the size is part of the ABI), and
// F_SEAL_FUTURE_WRITE after the agent has made its one writable mapping, so
// every later opener (QEMU, a reader, a bug elsewhere in the agent) is refused
// write(2) and writable shared mappings by the kernel, while the agent's own
// mapping keeps working. QEMU's memory-backend-file needs a path: ExportPath()
// is /proc/<agent pid>/fd/<n>, which opens the same memfd; QEMU (root or the
// agent's user, so it passes the /proc ptrace check) maps it with
// `readonly=on`, and a guest cannot write through a read-only backend. A
// /dev/shm file was rejected: it can be opened for writing by anyone its
// mode allows, cannot be sealed, and outlives a crashed agent with a stale
// table under a well-known name. The price: the path is valid only while
// the agent runs; QEMU keeps its own mapping once started.
//
// Ownership. The VersionTable owns the memfd and the writable mapping; the
// destructor sets `fenced` (so guests that still map the memory stop trusting
// it), unmaps and closes.
//
// Thread-safety. Load/Raise/ApplySnapshot are lock-free and safe from any
// thread, and from forked children that inherit the mapping. Header writes
// (SetSyncState, SetFenced) are serialised by a mutex inside one process;
// only the creating process may write the header (the seqlock has one
// writer). ReadHeader is safe from any thread. A forked child that inherits
// the table must leave with _exit() (or never destroy its copy of the
// object): the destructor fences the shared table for everyone.
//
// Errors (absl::Status codes):
//   InvalidArgument    capacity 0 or > kMaxCapacity; bad volume name.
//   ResourceExhausted  memfd/ftruncate/mmap failed for lack of memory (ENOMEM,
//                      ENOSPC, EMFILE, ENFILE).
//   OutOfRange         a slot >= capacity; a snapshot page past capacity;
//                      slots_used > capacity.
//   Internal           other syscall failures.
#ifndef COHEREFS_AGENT_COHERENCE_VERSION_TABLE_H_
#define COHEREFS_AGENT_COHERENCE_VERSION_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace coherefs::agent::coherence {

// Fixed layout constants (the ABI above).
inline constexpr char kTableMagic[8] = {'C', 'O', 'H', 'E', 'R', 'E', 'F', 'S'};
inline constexpr uint32_t kLayoutVersion = 1;
inline constexpr uint32_t kHeaderSize = 128;
inline constexpr size_t kOffMagic = 0;
inline constexpr size_t kOffLayoutVersion = 8;
inline constexpr size_t kOffHeaderSize = 12;
inline constexpr size_t kOffCapacity = 16;
inline constexpr size_t kOffSlotsUsed = 20;
inline constexpr size_t kOffGeneration = 24;
inline constexpr size_t kOffEpoch = 32;
inline constexpr size_t kOffCommittedSeq = 40;
inline constexpr size_t kOffFenced = 48;
inline constexpr size_t kOffMappingSize = 56;
// The coordinator's maximum volume capacity (CreateVolumeRequest.capacity).
inline constexpr uint32_t kMaxCapacity = 1u << 24;

// Bytes of backing for `capacity` slots: header + 8*capacity, rounded up to
// a power of two of at least 4096.
uint64_t TableMappingSize(uint32_t capacity);

// A consistent copy of the header's mutable fields.
struct TableHeader {
  uint32_t capacity = 0;
  uint32_t slots_used = 0;
  uint64_t generation = 0;  // even
  uint64_t epoch = 0;
  uint64_t committed_seq = 0;
  bool fenced = false;
  uint64_t mapping_size = 0;
};

// What ApplySnapshot did.
struct SnapshotResult {
  uint32_t raised = 0;     // slots whose version went up
  uint32_t unchanged = 0;  // slots already at the snapshot's version
  // Slots where the table was ahead of the snapshot. Versions only grow,
  // also across coordinator restarts, and the table only holds versions the
  // coordinator acknowledged, so this means the coordinator lost state: the
  // caller should fence and rebuild (see ApplySnapshot).
  uint32_t ahead = 0;
};

class VersionTable {
 public:
  // Creates a zeroed table for `volume` (1..64 bytes; used in the memfd
  // name only) with `capacity` slots, header filled in, fenced = 1 until the
  // agent has synced (SetSyncState + SetFenced(false)).
  // `keepable`: the memfd is not sealed against new writable mappings, so
  // that an agent process restarted by its supervisor can Adopt it (guests
  // still cannot write: QEMU maps it readonly=on); see Adopt.
  static absl::StatusOr<std::unique_ptr<VersionTable>> Create(
      const std::string& volume, uint32_t capacity, bool keepable = false);
  // Takes up the table a previous agent process created with `keepable`
  // (kept by the supervisor), versions and all, so guests that map it keep
  // reading a maintained table. It is fenced until the agent has synced
  // again. kDataLoss when `fd` is not such a table for `capacity` slots;
  // kPermissionDenied when it was sealed (not keepable).
  static absl::StatusOr<std::unique_ptr<VersionTable>> Adopt(
      const std::string& volume, uint32_t capacity, int fd);

  ~VersionTable();
  VersionTable(const VersionTable&) = delete;
  VersionTable& operator=(const VersionTable&) = delete;

  const std::string& volume() const { return volume_; }
  uint32_t capacity() const { return capacity_; }
  uint64_t mapping_size() const { return mapping_size_; }

  // The version of `slot`. OutOfRange if slot >= capacity.
  absl::StatusOr<uint64_t> Load(uint32_t slot) const;
  // Raises `slot` to `version` if that is higher; never lowers it. Returns
  // whether the slot changed. OutOfRange if slot >= capacity.
  absl::StatusOr<bool> Raise(uint32_t slot, uint64_t version);

  // Resynchronisation: applies one SnapshotResponse page (versions[i] is
  // slot start_slot + i) by raising each slot; it never lowers one.
  //
  // Why only-raise is right even after a coordinator restart: a new epoch
  // lives in the high bits, so every version the new coordinator hands out
  // is above every version of the old epoch, and slots nobody bumped keep
  // their (persisted) old-epoch version, which is still correct. Lowering a
  // slot would let a version value be reused for different metadata later,
  // and a guest that cached the old value would then take stale metadata as
  // current. A snapshot behind the table (SnapshotResult::ahead > 0) means
  // the coordinator lost acknowledged state; the agent must then fence this
  // table for good and give guests a new one, not lower versions in place.
  //
  // OutOfRange if the page reaches past capacity (nothing applied).
  absl::StatusOr<SnapshotResult> ApplySnapshot(
      uint32_t start_slot, absl::Span<const uint64_t> versions);

  // Publishes the sync state under the header seqlock. OutOfRange if
  // slots_used > capacity. The epoch and committed_seq are stored as given
  // (the caller, the coordinator link, knows when a resync restarts them).
  absl::Status SetSyncState(uint64_t epoch, uint64_t committed_seq,
                            uint32_t slots_used);
  // Sets or clears the fenced flag (under the seqlock).
  void SetFenced(bool fenced);
  // A consistent snapshot of the header.
  TableHeader ReadHeader() const;

  // The memfd (owned by the table; valid for its lifetime). Unless
  // keepable it has F_SEAL_FUTURE_WRITE: opening /proc/self/fd/<n> yields
  // read-only access.
  int fd() const { return fd_; }
  // /proc/<pid>/fd/<n>: the path to give QEMU's memory-backend-file
  // (mem-path=..., size=mapping_size(), share=on, readonly=on).
  std::string ExportPath() const;
  // The QEMU arguments that export this table to a guest as an
  // ivshmem-plain device: {"-object", "...", "-device", "..."}.
  std::vector<std::string> QemuArgs(const std::string& id) const;

 private:
  VersionTable(std::string volume, uint32_t capacity, uint64_t mapping_size,
               int fd, void* base);

  std::atomic<uint64_t>* slots() const;
  std::atomic<uint32_t>* U32At(size_t offset) const;
  std::atomic<uint64_t>* U64At(size_t offset) const;

  // Constant after construction.
  const std::string volume_;
  const uint32_t capacity_;
  const uint64_t mapping_size_;
  const int fd_;
  void* base_;  // null only while Adopt rejects a foreign table

  // Serialises header writers (the seqlock allows one at a time).
  absl::Mutex header_mu_;
};

}  // namespace coherefs::agent::coherence

#endif  // COHEREFS_AGENT_COHERENCE_VERSION_TABLE_H_
