// CoherentFs: the coherence layer of one guest session — a fuse::FileSystem
// that wraps the session's file system (the passthrough) and makes what the
// guest caches coherent with every other guest of the volume, on any agent
// (DESIGN.md "The coherence contract" and "Traps a correct lease design
// must handle").
//
// Reads: every entry and attribute timeout in a reply is a lease, granted by
// the volume's VolumeCoherence and recorded for this guest before the reply
// leaves. The attribute timeout is a lease on the file's slot; the entry
// timeout (and a negative entry's) is a lease on the PARENT's slot, because
// names live in their directory. The slot's version is loaded before the
// state that goes into the reply is read (for a file found by a lookup, the
// attributes are read again after its slot is known), so a lease never
// covers state older than a change the agent knew of. The inner file
// system's timeout caps the lease (cache=none: zero; auto: 1 s).
//
// Caches of contents: FOPEN_KEEP_CACHE (file pages, a directory's cached
// entries) is passed on only when the slot's version is the one this guest
// saw at its previous open of the inode; otherwise the guest drops the
// cache. Data is therefore coherent at open (close-to-open, as NFS), and
// metadata at every lease.
//
// Changes: setattr, write, create, mknod, mkdir, symlink, link, unlink,
// rmdir, rename, set/removexattr, fallocate, copy_file_range and an open
// with O_TRUNC are applied by the inner file system and THEN the affected
// slots are bumped (the inode; a name change bumps the parent(s); unlink,
// rmdir, rename and link also bump the file whose link count or ctime
// changed). In strict mode the reply waits as VolumeCoherence::AfterChange
// says; a change refused or not announced because the agent is fenced is
// answered with EIO. Replies to changes carry zero timeouts (the slot just
// changed).
//
// Ownership: borrows the inner file system, the key function's target and
// the VolumeCoherence (all outlive the session).
// Thread-safety: as fuse::FileSystem (concurrent calls for one session).
#ifndef COHEREFS_AGENT_COHERENCE_COHERENT_FS_H_
#define COHEREFS_AGENT_COHERENCE_COHERENT_FS_H_

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "agent/coherence/volume_coherence.h"
#include "agent/fuse/file_system.h"

namespace coherefs::agent::coherence {

class CoherentFs final : public fuse::FileSystem {
 public:
  // File keys of the inner file system's inodes (PassthroughFs::FileKey
  // and ChildKeys).
  struct KeySource {
    std::function<absl::StatusOr<std::string>(fuse::InodeId)> key_of;
    // Keys of a directory's entries, at most `max` (may be empty: no
    // prefetching).
    std::function<absl::StatusOr<std::vector<std::string>>(fuse::InodeId dir, size_t max)>
        child_keys;
  };

  CoherentFs(fuse::FileSystem* inner, KeySource keys, VolumeCoherence* volume);

  GuestId guest() const { return guest_; }
  // For tests: inodes this session tracks.
  size_t TrackedInodes() const;

  uint64_t WantedInitFlags() const override;
  absl::Status Init(const fuse::InitInfo& info) override;
  void Destroy() override;

  absl::StatusOr<fuse::Entry> Lookup(const fuse::Context& ctx, fuse::InodeId parent,
                                     absl::string_view name) override;
  void Forget(fuse::InodeId inode, uint64_t nlookup) override;
  absl::StatusOr<fuse::Attr> GetAttr(const fuse::Context& ctx, fuse::InodeId inode,
                                     const fuse::HandleId* handle) override;
  absl::StatusOr<fuse::Attr> SetAttr(const fuse::Context& ctx, fuse::InodeId inode,
                                     const fuse::SetAttrIn& in) override;
  absl::StatusOr<std::string> ReadLink(const fuse::Context& ctx, fuse::InodeId inode) override;
  absl::StatusOr<fuse::Entry> Symlink(const fuse::Context& ctx, fuse::InodeId parent,
                                      absl::string_view name, absl::string_view target) override;
  absl::StatusOr<fuse::Entry> Mknod(const fuse::Context& ctx, fuse::InodeId parent,
                                    absl::string_view name, uint32_t mode, uint32_t rdev,
                                    uint32_t umask) override;
  absl::StatusOr<fuse::Entry> Mkdir(const fuse::Context& ctx, fuse::InodeId parent,
                                    absl::string_view name, uint32_t mode,
                                    uint32_t umask) override;
  absl::Status Unlink(const fuse::Context& ctx, fuse::InodeId parent,
                      absl::string_view name) override;
  absl::Status Rmdir(const fuse::Context& ctx, fuse::InodeId parent,
                     absl::string_view name) override;
  absl::Status Rename(const fuse::Context& ctx, fuse::InodeId parent, absl::string_view name,
                      fuse::InodeId new_parent, absl::string_view new_name,
                      uint32_t flags) override;
  absl::StatusOr<fuse::Entry> Link(const fuse::Context& ctx, fuse::InodeId inode,
                                   fuse::InodeId new_parent, absl::string_view new_name) override;
  absl::StatusOr<fuse::OpenResult> Open(const fuse::Context& ctx, fuse::InodeId inode,
                                        uint32_t flags) override;
  absl::StatusOr<std::pair<fuse::Entry, fuse::OpenResult>> Create(
      const fuse::Context& ctx, fuse::InodeId parent, absl::string_view name, uint32_t mode,
      uint32_t flags, uint32_t umask) override;
  absl::StatusOr<size_t> Read(const fuse::Context& ctx, fuse::InodeId inode,
                              fuse::HandleId handle, uint64_t offset, uint32_t size,
                              IovWriter& out) override;
  absl::StatusOr<size_t> Write(const fuse::Context& ctx, fuse::InodeId inode,
                               fuse::HandleId handle, uint64_t offset, uint32_t size,
                               uint32_t write_flags, IovReader& data) override;
  absl::Status Flush(const fuse::Context& ctx, fuse::InodeId inode, fuse::HandleId handle,
                     uint64_t lock_owner) override;
  absl::Status Release(const fuse::Context& ctx, fuse::InodeId inode, fuse::HandleId handle,
                       uint32_t flags, uint64_t lock_owner, bool flush) override;
  absl::Status Fsync(const fuse::Context& ctx, fuse::InodeId inode, fuse::HandleId handle,
                     bool datasync) override;
  absl::StatusOr<fuse::OpenResult> OpenDir(const fuse::Context& ctx, fuse::InodeId inode,
                                           uint32_t flags) override;
  absl::Status ReadDir(const fuse::Context& ctx, fuse::InodeId inode, fuse::HandleId handle,
                       uint64_t offset, bool plus, fuse::DirSink& sink) override;
  absl::Status ReleaseDir(const fuse::Context& ctx, fuse::InodeId inode,
                          fuse::HandleId handle) override;
  absl::Status FsyncDir(const fuse::Context& ctx, fuse::InodeId inode, fuse::HandleId handle,
                        bool datasync) override;
  absl::StatusOr<struct statvfs> StatFs(const fuse::Context& ctx, fuse::InodeId inode) override;
  absl::Status Access(const fuse::Context& ctx, fuse::InodeId inode, uint32_t mask) override;
  absl::Status SetXattr(const fuse::Context& ctx, fuse::InodeId inode, absl::string_view name,
                        absl::string_view value, uint32_t flags) override;
  absl::StatusOr<std::string> GetXattr(const fuse::Context& ctx, fuse::InodeId inode,
                                       absl::string_view name) override;
  absl::StatusOr<std::string> ListXattr(const fuse::Context& ctx, fuse::InodeId inode) override;
  absl::Status RemoveXattr(const fuse::Context& ctx, fuse::InodeId inode,
                           absl::string_view name) override;
  absl::Status Fallocate(const fuse::Context& ctx, fuse::InodeId inode, fuse::HandleId handle,
                         uint64_t offset, uint64_t length, uint32_t mode) override;
  absl::StatusOr<uint64_t> Lseek(const fuse::Context& ctx, fuse::InodeId inode,
                                 fuse::HandleId handle, uint64_t offset,
                                 uint32_t whence) override;
  absl::StatusOr<size_t> CopyFileRange(const fuse::Context& ctx, fuse::InodeId in_inode,
                                       fuse::HandleId in_handle, uint64_t in_offset,
                                       fuse::InodeId out_inode, fuse::HandleId out_handle,
                                       uint64_t out_offset, uint64_t length,
                                       uint64_t flags) override;
  absl::StatusOr<fuse::FileLock> GetLk(const fuse::Context& ctx, fuse::InodeId inode,
                                       fuse::HandleId handle, uint64_t owner,
                                       const fuse::FileLock& lock) override;
  absl::Status SetLk(const fuse::Context& ctx, fuse::InodeId inode, fuse::HandleId handle,
                     uint64_t owner, const fuse::FileLock& lock, bool wait) override;

 private:
  class LeaseSink;

  struct InodeState {
    uint64_t nlookup = 0;
    std::optional<uint32_t> slot;
    // The version at this guest's previous open (nullopt: never opened, or
    // opened while fenced).
    std::optional<uint64_t> open_version;
  };

  // A slot and the version loaded for it before reading the state a reply
  // carries. No slot: the reply gets zero timeouts.
  struct Seen {
    std::optional<uint32_t> slot;
    uint64_t version = 0;
  };

  // The slot of a tracked inode (resolving it once); nullopt on failure.
  // `parent`: the directory it was found in; when the slot is not known
  // yet, all of that directory's entries are resolved in one batch.
  std::optional<uint32_t> SlotOf(fuse::InodeId inode, fuse::InodeId parent = 0);
  // Resolves the slots of every entry of `dir` in one batch, once per
  // session and directory.
  void PrefetchChildren(fuse::InodeId dir);
  // The same, as a status for changes (EIO when it cannot be had).
  absl::StatusOr<uint32_t> SlotForChange(fuse::InodeId inode);
  // The slot of a key about to change: resolves, retrying transient
  // coordinator errors for up to the change timeout.
  absl::StatusOr<uint32_t> SlotForChangedKey(const std::string& key);
  Seen See(fuse::InodeId inode, fuse::InodeId parent = 0);
  // The slot of `name` in `parent` (nullopt: no such entry), looked up in
  // the inner file system without keeping the lookup.
  absl::StatusOr<std::optional<uint32_t>> ChildSlot(const fuse::Context& ctx,
                                                    fuse::InodeId parent,
                                                    absl::string_view name);
  // The lease for `seen`, capped by the inner file system's timeout.
  double Lease(const Seen& seen, double inner_timeout_s);
  void CountLookup(fuse::InodeId inode);
  // Lookup/ReadDirPlus: re-reads the attributes after the child's version
  // was loaded and sets both timeouts.
  void LeaseEntry(const fuse::Context& ctx, fuse::InodeId dir, const Seen& parent,
                  fuse::Entry* entry);
  // Unlink and Rmdir: `remove` applies the change.
  absl::Status RemoveEntry(const fuse::Context& ctx, fuse::InodeId parent,
                           absl::string_view name, const std::function<absl::Status()>& remove);
  // After a change: bump `slots`; strict mode waits (see the header).
  absl::Status Changed(std::vector<uint32_t> slots);
  // KEEP_CACHE only if the version is the one of the previous open.
  uint32_t OpenFlags(fuse::InodeId inode, const Seen& seen, uint32_t flags);

  fuse::FileSystem* const inner_;
  const KeySource keys_;
  VolumeCoherence* const volume_;
  const GuestId guest_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<fuse::InodeId, InodeState> inodes_ ABSL_GUARDED_BY(mu_);
  // Directories whose entries were resolved (true) or are being (false).
  absl::flat_hash_map<fuse::InodeId, bool> prefetched_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coherefs::agent::coherence

#endif  // COHEREFS_AGENT_COHERENCE_COHERENT_FS_H_
