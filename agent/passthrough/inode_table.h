// InodeTable maps FUSE node ids to host inodes held open as O_PATH file
// descriptors, and keeps the FUSE lookup count of each (fuse_kernel.h: every
// reply carrying an entry adds one, FORGET takes `nlookup` away).
//
// A host inode is identified by (st_dev, st_ino, mount id): two names of one
// file (hard links) resolve to one node id, while the same file seen through
// two mounts (a bind mount inside the share) stays two inodes, because
// operations through one mount may fail with EXDEV against the other.
//
// Ownership: the table owns each inode's O_PATH fd through a shared_ptr, so a
// caller holding an InodeRef keeps the fd valid even if a concurrent Forget
// drops the inode from the table; the fd closes when the last ref goes.
// Because the fd pins the host inode, its (dev, ino) cannot be reused by
// another file while the entry lives.
//
// Node ids come from a 64-bit counter and are never reused, so the FUSE
// (nodeid, generation) pair is unique for the life of the process with
// generation constant; the generation field is kept per inode for a later
// scheme that needs it (e.g. persistent ids).
//
// The root (kRootInode) is installed once and never dropped: Forget on it is
// ignored and Clear() keeps it.
//
// Journal (optional, SetJournal): every inode but the root is mirrored into
// a NodeJournal — added with its file key when installed, its lookup count
// stored on every change, removed when dropped — under the table's lock, so
// the journal never disagrees with the table for longer than one call.
// Restore() re-installs a journaled inode under its old id after a restart;
// a stale one (file gone) keeps its id and count but has no fd and no key
// entry, so that only Forget and Clear can touch it.
//
// Thread-safe.
#ifndef COHEREFS_AGENT_PASSTHROUGH_INODE_TABLE_H_
#define COHEREFS_AGENT_PASSTHROUGH_INODE_TABLE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "agent/fuse/file_system.h"
#include "agent/passthrough/node_journal.h"
#include "common/unique_fd.h"

namespace coherefs::agent::passthrough {

struct InodeKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t mnt_id = 0;

  bool operator==(const InodeKey& o) const {
    return dev == o.dev && ino == o.ino && mnt_id == o.mnt_id;
  }
  template <typename H>
  friend H AbslHashValue(H h, const InodeKey& k) {
    return H::combine(std::move(h), k.dev, k.ino, k.mnt_id);
  }
};

// Immutable once published.
struct InodeData {
  fuse::InodeId id = 0;
  uint64_t generation = 0;
  InodeKey key;
  mode_t type = 0;  // S_IFMT bits; a host inode never changes type
  UniqueFd fd;      // O_PATH | O_NOFOLLOW; invalid when stale
  // Restored after a restart but its file is gone (ESTALE): no fd.
  bool stale = false;
};

using InodeRef = std::shared_ptr<const InodeData>;

class InodeTable {
 public:
  InodeTable() = default;
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  // Installs the root (id kRootInode). Call once, before anything else.
  void SetRoot(UniqueFd fd, const InodeKey& key, mode_t type);
  // Mirrors every later change into `journal` (not owned; outlives the
  // table). Call before anything but SetRoot and Restore. Null: none.
  void SetJournal(NodeJournal* journal);

  // Re-installs a journaled inode with its old id, generation and count.
  // `fd` invalid: a stale inode. False (nothing installed) when the id is
  // taken or, for a live inode, its key is. Raises the next id above `id`.
  bool Restore(fuse::InodeId id, uint64_t generation, uint64_t nlookup, UniqueFd fd,
               const InodeKey& key, mode_t type, const std::string& file_key);
  // New ids start above `id` (the journal's high-water mark).
  void ReserveIdsThrough(fuse::InodeId id);

  // Adds one lookup to the inode with `key` if the table has it; null
  // otherwise (then the caller computes the file key and calls AddLookup).
  InodeRef AddLookupIfKnown(const InodeKey& key);

  // Finds the inode with `key` or installs a new one owning `fd`, and adds
  // one lookup. When the inode already exists `fd` is closed (the existing fd
  // refers to the same host inode). Looking up the root's key returns the
  // root (its count is not tracked).
  // `file_key` (FileKeyAt) goes to the journal for a new inode; "" when
  // there is no journal or no key (the inode is then not journaled).
  InodeRef AddLookup(UniqueFd fd, const InodeKey& key, mode_t type,
                     const std::string& file_key = "");
  // Adds one lookup to an inode known to exist (LINK: a new name of an
  // inode the guest already holds). Returns null if `id` is unknown.
  InodeRef AddLookup(fuse::InodeId id);

  // The inode, or null when the id is unknown (never issued or forgotten).
  InodeRef Get(fuse::InodeId id) const;

  // Subtracts `n` lookups (saturating at zero) and drops the inode at zero.
  void Forget(fuse::InodeId id, uint64_t n);

  // Drops every inode but the root and empties the journal (DESTROY).
  void Clear();

  // For tests and metrics: the lookup count of `id` (0 if unknown) and the
  // number of inodes held, root included.
  uint64_t LookupCount(fuse::InodeId id) const;
  size_t size() const;

 private:
  struct Slot {
    std::shared_ptr<InodeData> data;
    uint64_t nlookup = 0;
    NodeJournal::Slot jslot = NodeJournal::kNoSlot;
  };

  NodeJournal::Slot Journal(const InodeData& data, uint64_t nlookup,
                            const std::string& file_key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<fuse::InodeId, Slot> by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<InodeKey, fuse::InodeId> by_key_ ABSL_GUARDED_BY(mu_);
  fuse::InodeId next_id_ ABSL_GUARDED_BY(mu_) = fuse::kRootInode + 1;
  NodeJournal* journal_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace coherefs::agent::passthrough

#endif  // COHEREFS_AGENT_PASSTHROUGH_INODE_TABLE_H_
