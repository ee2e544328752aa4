// NodeJournal records, in a memfd the caller supplies, every FUSE node id and
// every open file handle a guest holds, so that a restarted agent can serve
// the same guest without it noticing (README "Agent restarts"; PassthroughFs
// restores from it at Create). The caller keeps the memfd outside the
// process (the supervisor's state store); the journal only maps it.
//
// Layout: a 64-byte header, then fixed 128-byte slots. A slot is free, a
// node (id, generation, lookup count, type, dev/ino/mount id, the host file
// handle as common/file_key.h encodes it, up to kMaxFileKeyBytes) or an open
// handle (handle id, node id, host open flags, directory bit). Fixed slots
// need no compaction: a removed record frees its slot for the next add, and
// the hot path (LOOKUP of a known node, FORGET) is one or two stores into
// the mapping, no system call. The file grows by ftruncate + mremap,
// doubling, up to `max_bytes`; past that, adds are dropped (counted in
// Stats::dropped and flagged in the header as incomplete) while updates and
// removes of recorded slots go on, so the journal stays exact for what it
// holds and the running process never fails because of it.
//
// Crash consistency (the process may be SIGKILLed at any instruction; the
// memfd's pages outlive it): a slot's first word is its commit word, stored
// last (release) when a record is added and first when it is removed, so a
// half-written slot reads as free. The immutable fields carry a checksum
// salted with the slot index; the words that change in place (the lookup
// count, the header's id high-water marks) are single aligned 64-bit stores
// whose top 16 bits check the low 48. A slot that fails either check is
// skipped and counted (Snapshot::corrupt_slots); a header that fails its
// check makes Read() refuse with DataLoss. A truncated file yields the slots
// that lie wholly inside it.
//
// Thread-safe: one internal mutex (every operation is O(1) under it).
#ifndef COHEREFS_AGENT_PASSTHROUGH_NODE_JOURNAL_H_
#define COHEREFS_AGENT_PASSTHROUGH_NODE_JOURNAL_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/unique_fd.h"

namespace coherefs::agent::passthrough {

class NodeJournal {
 public:
  // Slot index handed back by Add*; kNoSlot when the record was not kept.
  using Slot = uint32_t;
  static constexpr Slot kNoSlot = UINT32_MAX;
  static constexpr size_t kHeaderBytes = 64;
  static constexpr size_t kSlotBytes = 128;
  // Longest file key a slot holds (ext4 12, xfs 12-24, tmpfs 16, btrfs 24
  // bytes with the 4-byte type); longer ones are dropped like a full journal.
  static constexpr size_t kMaxFileKeyBytes = 56;
  // Default cap: 64 MiB, about 520k records.
  static constexpr size_t kDefaultMaxBytes = 64 << 20;

  struct NodeRecord {
    uint64_t id = 0;
    uint64_t generation = 0;
    uint64_t nlookup = 0;
    uint64_t dev = 0;
    uint64_t ino = 0;
    uint64_t mnt_id = 0;
    uint32_t type = 0;     // S_IFMT bits
    std::string file_key;  // FileKeyAt(): u32 LE handle_type | f_handle
  };
  struct HandleRecord {
    uint64_t id = 0;
    uint64_t node = 0;
    uint32_t flags = 0;  // host open(2) flags
    bool is_dir = false;
  };
  struct Snapshot {
    std::vector<NodeRecord> nodes;
    std::vector<HandleRecord> handles;
    uint64_t root_mnt_id = 0;    // mount id of the share root when written
    uint64_t max_node_id = 0;    // highest node id ever issued
    uint64_t max_handle_id = 0;  // highest handle id ever issued
    uint64_t session_flags = 0;  // SetSessionFlags
    size_t corrupt_slots = 0;    // failed their check; skipped
    bool incomplete = false;     // some adds were dropped (cap, key size)
  };
  struct Stats {
    size_t nodes = 0;
    size_t handles = 0;
    size_t bytes = 0;      // mapped (== memfd) size
    uint64_t dropped = 0;  // adds not recorded since Open/Clear
  };

  // Maps `memfd` (read-write, shared). An empty memfd gets a fresh header
  // and takes adds at once. A non-empty one is kept as it is for Read(), and
  // adds are dropped until Reset() (they would overwrite records not yet
  // read).
  // InvalidArgument for an invalid fd or max_bytes below one slot; the
  // errno's status when fstat/ftruncate/mmap fail.
  static absl::StatusOr<std::unique_ptr<NodeJournal>> Open(UniqueFd memfd,
                                                           size_t max_bytes = kDefaultMaxBytes);
  ~NodeJournal();
  NodeJournal(const NodeJournal&) = delete;
  NodeJournal& operator=(const NodeJournal&) = delete;

  // What the memfd holds. DataLoss (with the reason) when the header is not
  // a journal's (bad magic, version, slot size or check); empty snapshot for
  // an empty or freshly reset journal. Never touches the contents.
  absl::StatusOr<Snapshot> Read() const;

  // Forgets every record and writes a fresh header for a share root on
  // mount `root_mnt_id` (DESTROY; before re-adding what a restore kept).
  void Reset(uint64_t root_mnt_id);

  // Records a node / an open handle; kNoSlot (counted in Stats::dropped)
  // at the cap, for a node without a file key or one too long, and before
  // Reset() on old contents. Also raises the id high-water mark.
  Slot AddNode(const NodeRecord& node);
  // The node's lookup count now (one store, no system call).
  void SetLookups(Slot slot, uint64_t nlookup);
  Slot AddHandle(const HandleRecord& handle);
  // Frees a node or handle slot; kNoSlot is ignored.
  void Remove(Slot slot);
  // Raises the id high-water marks (never lowers them).
  void NoteIds(uint64_t node_id, uint64_t handle_id);
  // Small per-session state a restart needs (e.g. negotiated INIT flags).
  void SetSessionFlags(uint64_t flags);

  Stats stats() const;

 private:
  NodeJournal(UniqueFd fd, size_t max_bytes);

  char* SlotPtr(Slot slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A free slot, growing the file if needed; kNoSlot at the cap.
  Slot Allocate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkIncomplete() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteHeader(uint64_t root_mnt_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const UniqueFd fd_;
  const size_t max_bytes_;

  mutable absl::Mutex mu_;
  char* map_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t size_ ABSL_GUARDED_BY(mu_) = 0;   // bytes mapped
  Slot used_ ABSL_GUARDED_BY(mu_) = 0;     // slots [0, used_) ever handed out
  std::vector<Slot> free_ ABSL_GUARDED_BY(mu_);
  size_t nodes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t handles_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t max_node_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t max_handle_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool writable_ ABSL_GUARDED_BY(mu_) = false;  // false until Reset on old contents
};

}  // namespace coherefs::agent::passthrough

#endif  // COHEREFS_AGENT_PASSTHROUGH_NODE_JOURNAL_H_
