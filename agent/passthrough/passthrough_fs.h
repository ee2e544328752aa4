// PassthroughFs serves one shared host directory through the FileSystem
// contract (agent/fuse/file_system.h), in the manner of virtiofsd's
// passthrough: every inode the guest knows is an O_PATH fd on the host.
//
// Containment (no path ever escapes the shared directory):
// - Name-based operations take exactly one path component relative to the
//   parent's O_PATH fd; "", ".", "..", and names containing '/' or NUL are
//   EINVAL. Lookups use openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//   RESOLVE_NO_MAGICLINKS) with O_PATH | O_NOFOLLOW, so a symlink is only
//   ever an inode of its own, never followed on the host. Creates use the
//   *at() calls, which do not follow a trailing symlink either (O_CREAT goes
//   through openat2 with O_NOFOLLOW).
// - Files are opened for I/O by re-opening the inode's own O_PATH fd through
//   /proc/self/fd/N (as virtiofsd does), not by path: the magic link names
//   exactly the inode the guest looked up, whatever was renamed, swapped or
//   symlinked in its place since, and no path is resolved at all. Inodes that
//   are symlinks are refused (ELOOP) before any re-open, so the magic link is
//   only used on inodes that are already inside the share. Re-opening by path
//   from the root with RESOLVE_BENEATH would need a path we do not keep and
//   would race with renames. Path-style calls without an fd form (chmod,
//   utimens, xattrs, link) use the same magic link; a magic link to a symlink
//   lands on the symlink itself and is not followed further.
//
// Lookup counts follow the FUSE protocol (see InodeTable). A miss returns
// NotFound (ENOENT) by default, as virtiofsd does: a negative entry in
// cache=always would hide another guest's create for a day. With
// Options::negative_entries and a caching mode, a miss is a negative Entry
// (inode 0) cacheable for the entry timeout.
//
// Credentials: Mknod, Mkdir, Symlink, Create and Link run with the guest's
// uid/gid as the thread's fsuid/fsgid (ScopedFsCreds), so new files belong to
// the guest and the host enforces its permissions; Access checks with them
// too (faccessat AT_EACCESS). Other operations run as the agent and rely on
// the guest kernel's own permission checks (virtiofs mounts always use
// default_permissions). The mode of a new file is `mode & ~umask` with the
// guest's umask: the kernel already applied it unless FUSE_DONT_MASK was
// negotiated (we never ask for it), so applying it here is right either way.
// Create() sets the process umask to 0 so the host does not mask twice.
//
// Handles: Open, Create and OpenDir return handle ids from a per-instance
// counter (never reused); a handle is only valid with the inode it was
// opened on and until Release/ReleaseDir/Destroy (EBADF otherwise). Each
// holds a real open fd. Node ids are never reused either (see InodeTable):
// a file forgotten and looked up again gets a new id, generation 0. An
// unknown (never issued or forgotten) inode id is ENOENT.
//
// Restarts (Options::journal_fd): every node id the guest holds (with its
// lookup count and host file handle) and every open handle (with its open
// flags) is journaled into the caller's memfd (NodeJournal). A new
// PassthroughFs created on the same memfd restores them before serving:
// - a node comes back under the same id, generation and lookup count,
//   reopened with open_by_handle_at on the share's mount, if the reopened
//   inode has the journaled dev/ino and type; a renamed file (even moved
//   elsewhere on that mount, exactly as the old process's O_PATH fd would
//   have followed it) is still reachable by its id;
// - a node whose file is gone (ESTALE), or that was on another mount (a
//   bind mount inside the share), or that fails the checks is restored
//   stale: every operation on it is ESTALE, FORGET removes it;
// - a handle comes back under the same id, reopened from its node with its
//   flags minus O_CREAT|O_EXCL|O_TRUNC (O_DIRECTORY for a directory; READDIR
//   continues at the guest's offset cookie, the host's d_off); if it cannot
//   be (stale node, open fails) it is a stale handle: ESTALE until RELEASE;
// - new node and handle ids start above every id the old process issued;
// - the negotiated writeback setting carries over (no INIT is re-sent).
// Not carried: a file's byte-range locks (none are kept), a directory
// handle's buffered entries (re-read from the cookie). What the journal
// lacks (it hit its cap, a file system without handles, a corrupt record;
// see restore_report()) answers as without a journal: ENOENT for the node,
// EBADF for the handle. Without a journal every node id is ENOENT and every
// handle EBADF after a restart. DESTROY empties the journal.
//
// Locks: GetLk/SetLk return Unimplemented (ENOSYS) and FUSE_POSIX_LOCKS is
// not requested, so guests keep POSIX locks local. OFD locks keyed per
// (inode, lock owner) would be needed for cross-guest locks; not done yet.
//
// Thread-safety: every method may be called concurrently. Options are
// constant after Create.
#ifndef COHEREFS_AGENT_PASSTHROUGH_PASSTHROUGH_FS_H_
#define COHEREFS_AGENT_PASSTHROUGH_PASSTHROUGH_FS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "agent/fuse/file_system.h"
#include "agent/passthrough/inode_table.h"
#include "agent/passthrough/node_journal.h"
#include "common/unique_fd.h"

namespace coherefs::agent::passthrough {

enum class CacheMode {
  // 0 s entry/attr timeouts, FOPEN_DIRECT_IO: the guest caches nothing.
  kNone,
  // 1 s timeouts; file data cache dropped on every open.
  kAuto,
  // 86400 s timeouts, FOPEN_KEEP_CACHE, FOPEN_CACHE_DIR for directories.
  kAlways,
};

// "none", "auto", "always" (also "never" for none, as virtiofsd accepts).
bool ParseCacheMode(absl::string_view text, CacheMode* mode);
const char* CacheModeName(CacheMode mode);

struct Options {
  // The directory to serve. Required; must exist and be a directory.
  std::string shared_dir;
  // Default kAuto, virtiofsd's default.
  CacheMode cache = CacheMode::kAuto;
  // Ask for FUSE_WRITEBACK_CACHE. When the guest agrees, write-only opens
  // become read-write (the guest page cache reads to fill partial pages) and
  // O_APPEND is dropped (the guest sends explicit offsets). Default false.
  bool writeback = false;
  // Every modifying operation fails with EROFS. Default false.
  bool readonly = false;
  // Extended attributes; when false every xattr call is ENOSYS, which Linux
  // remembers per mount and turns into EOPNOTSUPP for applications.
  // Default true.
  bool xattr = true;
  // Ask for FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO. Default true.
  bool readdirplus = true;
  // Reply to a lookup miss with a cacheable negative entry when the cache
  // mode caches (auto, always); otherwise ENOENT. Default false.
  bool negative_entries = false;
  // A memfd (or any regular file) holding the node/handle journal, or -1
  // for none (the default). Borrowed: Create dups it; the caller keeps its
  // fd alive outside the process (the supervisor's state store) and passes
  // the same memfd to the next process. Empty: journaling starts fresh.
  // Holding a journal: Create restores from it first (see "Restarts").
  int journal_fd = -1;
  // Cap on the journal's size (128-byte records); past it new records are
  // dropped (restore_report / JournalStats say so). Default 64 MiB.
  size_t journal_max_bytes = NodeJournal::kDefaultMaxBytes;
};

// What Create restored from the journal.
struct RestoreReport {
  // Not ok when the journal could not be read (DataLoss with the reason:
  // bad header, too short); nothing was restored and journaling restarted.
  absl::Status status;
  size_t nodes = 0;          // restored live
  size_t stale_nodes = 0;    // restored stale (ESTALE)
  size_t handles = 0;        // reopened
  size_t stale_handles = 0;  // restored stale (ESTALE)
  size_t skipped = 0;        // corrupt records, duplicate or invalid ids
  bool incomplete = false;   // the old journal had dropped records
  // The first reopen failure other than ESTALE (e.g. EPERM without
  // CAP_DAC_READ_SEARCH), for the log.
  absl::Status first_error;
};

class PassthroughFs final : public fuse::FileSystem {
 public:
  // Opens the shared directory and /proc/self/fd, then restores from the
  // journal if Options::journal_fd holds one. InvalidArgument for an
  // empty path; the errno's status (NotFound, FailedPrecondition for
  // ENOTDIR, ...) naming the path when it cannot be opened as a directory.
  static absl::StatusOr<std::unique_ptr<PassthroughFs>> Create(const Options& options);
  // Also the errno's status when journal_fd cannot be dup'ed or mapped.

  ~PassthroughFs() override;

  const Options& options() const { return options_; }
  // The timeouts the cache mode grants.
  double entry_timeout_s() const { return timeout_s_; }
  double attr_timeout_s() const { return timeout_s_; }

  // The host identity of an inode, for the coherence layer: stable across
  // names, renames and agent restarts (as far as the host file system keeps
  // file handles stable), and the same on every host that shares the
  // backing file system. Bytes: u32 little-endian handle_type | f_handle
  // bytes, as name_to_handle_at(2) (and fanotify's FID events) give them.
  // Two files of different file systems under one volume could share a
  // key; that only merges their slots (extra invalidations, never a missed
  // one).
  // NotFound (ENOENT) for an unknown inode; EOPNOTSUPP when the host file
  // system has no file handles.
  absl::StatusOr<std::string> FileKey(fuse::InodeId inode) const;
  // The keys of up to `max` entries of directory `dir` (not . or ..), read
  // from the host without looking them up: the coherence layer resolves a
  // directory's slots in one batch instead of one round trip per name.
  // ENOTDIR for a non-directory; entries that vanish meanwhile are skipped.
  absl::StatusOr<std::vector<std::string>> ChildKeys(fuse::InodeId dir, size_t max) const;

  // For tests and metrics.
  uint64_t LookupCount(fuse::InodeId inode) const { return inodes_.LookupCount(inode); }
  size_t InodeCount() const { return inodes_.size(); }
  size_t HandleCount() const;
  const RestoreReport& restore_report() const { return restore_report_; }
  // Zeros without a journal.
  NodeJournal::Stats JournalStats() const;

  // fuse::FileSystem
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
                                      absl::string_view name,
                                      absl::string_view target) override;
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
                                   fuse::InodeId new_parent,
                                   absl::string_view new_name) override;

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
  // An open file or directory. The fd is a real (not O_PATH) open file.
  struct Handle {
    fuse::InodeId inode = 0;
    bool is_dir = false;
    UniqueFd fd;  // invalid: restored stale (ESTALE until released)
    NodeJournal::Slot jslot = NodeJournal::kNoSlot;
    // Directory streams: one ReadDir at a time moves the shared offset.
    absl::Mutex dir_mu;
    // What getdents64 returned beyond the entries the last ReadDir could
    // send: a guest reads a large directory a page at a time, so without it
    // every request would seek back and read the same host entries again.
    // dents[dents_pos, dents_len) is valid when the next ReadDir asks for
    // cookie dents_resume.
    std::unique_ptr<char[]> dents ABSL_GUARDED_BY(dir_mu);
    long dents_len ABSL_GUARDED_BY(dir_mu) = 0;
    long dents_pos ABSL_GUARDED_BY(dir_mu) = 0;
    uint64_t dents_resume ABSL_GUARDED_BY(dir_mu) = 0;
  };
  using HandleRef = std::shared_ptr<Handle>;

  PassthroughFs(const Options& options, UniqueFd proc_self_fd);

  absl::StatusOr<InodeRef> GetInode(fuse::InodeId id) const;
  absl::StatusOr<HandleRef> GetHandle(fuse::InodeId inode, fuse::HandleId id) const;
  // `host_flags`: the flags the fd was opened with, for the journal.
  fuse::HandleId AddHandle(HandleRef handle, int host_flags);
  // Create's second half: what the journal holds, back in the tables.
  void RestoreFromJournal(int root_fd, const InodeKey& root_key);
  void RestoreHandles(const NodeJournal::Snapshot& snap);
  absl::Status DropHandle(fuse::InodeId inode, fuse::HandleId id);

  // Looks `name` up under `parent` (one component) and adds a lookup.
  absl::StatusOr<fuse::Entry> DoLookup(const InodeData& parent, absl::string_view name);
  // Turns a new O_PATH fd into an Entry (adding a lookup).
  absl::StatusOr<fuse::Entry> EntryFor(UniqueFd path_fd);
  fuse::Entry MakeEntry(const InodeData& inode, const struct stat& st) const;
  // Re-opens an inode for I/O through /proc/self/fd.
  absl::StatusOr<UniqueFd> Reopen(const InodeData& inode, int flags) const;
  // The open(2) flags to use on the host for the guest's `flags`.
  int HostOpenFlags(uint32_t flags) const;
  uint32_t FileOpenFlags() const;
  absl::Status KillSuidGid(int fd);

  const Options options_;
  const double timeout_s_;
  const UniqueFd proc_self_fd_;  // O_PATH of /proc/self/fd
  std::atomic<bool> writeback_{false};  // negotiated at Init

  std::unique_ptr<NodeJournal> journal_;  // null: none; outlives inodes_
  RestoreReport restore_report_;          // written in Create only

  InodeTable inodes_;

  mutable absl::Mutex handles_mu_;
  absl::flat_hash_map<fuse::HandleId, HandleRef> handles_ ABSL_GUARDED_BY(handles_mu_);
  fuse::HandleId next_handle_ ABSL_GUARDED_BY(handles_mu_) = 1;
};

}  // namespace coherefs::agent::passthrough

#endif  // COHEREFS_AGENT_PASSTHROUGH_PASSTHROUGH_FS_H_
