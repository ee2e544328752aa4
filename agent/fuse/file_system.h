// FileSystem is what the FUSE server (server.h) calls once it has decoded a
// request: one method per FUSE operation, in plain C++ types. The passthrough
// file system (agent/passthrough) implements it over a shared directory; the
// coherence layer (agent/coherence) wraps one FileSystem in another to grant
// leases and bump versions; tests use in-memory fakes.
//
// Conventions (FUSE protocol, fuse_kernel.h 7.31+ as Linux 6.1 speaks it):
// - Inode ids are FUSE node ids; kRootInode is the shared directory. Every
//   Entry with inode != 0 returned by Lookup, Mknod, Mkdir, Symlink, Link,
//   Create and ReadDir(plus) adds one to that inode's lookup count; Forget
//   takes `nlookup` away, and the inode may be dropped at zero.
// - An Entry with inode == 0 is a negative entry: "no such name", cacheable
//   by the guest for entry_timeout. Return NotFound instead when the miss
//   must not be cached.
// - Errors are absl::Status made with ErrnoStatus(errno, what) so the server
//   can reply with the exact errno (ErrnoFromStatus).
// - Timeouts in Entry and Attr are what the guest may cache; the file system
//   decides them (cache mode, leases).
//
// Thread-safety: every method may be called concurrently from several
// threads, for one session (one guest or one host mount) at a time; an
// instance is never shared between sessions.
#ifndef COHEREFS_AGENT_FUSE_FILE_SYSTEM_H_
#define COHEREFS_AGENT_FUSE_FILE_SYSTEM_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/iov.h"

namespace coherefs::agent::fuse {

using InodeId = uint64_t;
using HandleId = uint64_t;

inline constexpr InodeId kRootInode = 1;  // FUSE_ROOT_ID

// Who is asking, from fuse_in_header. Creates are made as uid/gid.
struct Context {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
  uint64_t unique = 0;  // request id, for logs
};

struct Attr {
  struct stat st {};
  double timeout_s = 0;  // attr_valid
};

struct Entry {
  InodeId inode = 0;  // 0: negative entry
  uint64_t generation = 0;
  struct stat st {};
  double entry_timeout_s = 0;  // entry_valid
  double attr_timeout_s = 0;   // attr_valid
};

struct OpenResult {
  HandleId handle = 0;
  uint32_t open_flags = 0;  // FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_CACHE_DIR, ...
};

// SETATTR: `valid` is the FATTR_* mask; only the named fields are set.
struct SetAttrIn {
  uint32_t valid = 0;
  HandleId handle = 0;  // meaningful when valid & FATTR_FH
  uint64_t size = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  struct timespec atime {};  // with FATTR_ATIME (FATTR_ATIME_NOW: now)
  struct timespec mtime {};
  struct timespec ctime {};
};

// A POSIX record lock as fuse_file_lock carries it.
struct FileLock {
  uint64_t start = 0;
  uint64_t end = 0;
  uint32_t type = F_UNLCK;  // F_RDLCK, F_WRLCK, F_UNLCK
  uint32_t pid = 0;
};

// What INIT negotiated, handed to the file system once per session.
struct InitInfo {
  uint32_t major = 0;
  uint32_t minor = 0;
  uint64_t flags = 0;  // FUSE_* capability bits both sides agreed on
  uint32_t max_write = 0;
};

// One directory entry for ReadDir.
struct DirEntry {
  uint64_t ino = 0;     // st_ino (not a FUSE inode id)
  uint64_t offset = 0;  // cookie of the *next* entry (fuse_dirent.off)
  uint32_t type = 0;    // DT_* value
  absl::string_view name;
};

// Receives ReadDir's entries. Add returns false when the reply buffer is
// full: the entry was not taken. For READDIRPLUS the file system passes the
// entry's looked-up Entry (the lookup count was added); when Add refuses it,
// the file system undoes that lookup itself.
class DirSink {
 public:
  virtual ~DirSink() = default;
  virtual bool Add(const DirEntry& entry, const Entry* plus) = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Capabilities the file system would like (FUSE_* flags, e.g.
  // FUSE_WRITEBACK_CACHE, FUSE_DO_READDIRPLUS); the server offers only those
  // the guest also offered.
  virtual uint64_t WantedInitFlags() const = 0;
  virtual absl::Status Init(const InitInfo& info) = 0;
  // DESTROY or transport gone: drop every inode and handle of the session.
  virtual void Destroy() = 0;

  virtual absl::StatusOr<Entry> Lookup(const Context& ctx, InodeId parent,
                                       absl::string_view name) = 0;
  virtual void Forget(InodeId inode, uint64_t nlookup) = 0;
  virtual absl::StatusOr<Attr> GetAttr(const Context& ctx, InodeId inode,
                                       const HandleId* handle) = 0;
  virtual absl::StatusOr<Attr> SetAttr(const Context& ctx, InodeId inode,
                                       const SetAttrIn& in) = 0;
  virtual absl::StatusOr<std::string> ReadLink(const Context& ctx, InodeId inode) = 0;

  virtual absl::StatusOr<Entry> Symlink(const Context& ctx, InodeId parent,
                                        absl::string_view name,
                                        absl::string_view target) = 0;
  virtual absl::StatusOr<Entry> Mknod(const Context& ctx, InodeId parent,
                                      absl::string_view name, uint32_t mode,
                                      uint32_t rdev, uint32_t umask) = 0;
  virtual absl::StatusOr<Entry> Mkdir(const Context& ctx, InodeId parent,
                                      absl::string_view name, uint32_t mode,
                                      uint32_t umask) = 0;
  virtual absl::Status Unlink(const Context& ctx, InodeId parent, absl::string_view name) = 0;
  virtual absl::Status Rmdir(const Context& ctx, InodeId parent, absl::string_view name) = 0;
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT (0 for RENAME).
  virtual absl::Status Rename(const Context& ctx, InodeId parent, absl::string_view name,
                              InodeId new_parent, absl::string_view new_name,
                              uint32_t flags) = 0;
  virtual absl::StatusOr<Entry> Link(const Context& ctx, InodeId inode, InodeId new_parent,
                                     absl::string_view new_name) = 0;

  // flags: the guest's open(2) flags.
  virtual absl::StatusOr<OpenResult> Open(const Context& ctx, InodeId inode,
                                          uint32_t flags) = 0;
  virtual absl::StatusOr<std::pair<Entry, OpenResult>> Create(
      const Context& ctx, InodeId parent, absl::string_view name, uint32_t mode,
      uint32_t flags, uint32_t umask) = 0;
  // Reads up to `size` bytes at `offset` into `out` (Reserve + Advance);
  // returns the count read (short at EOF).
  virtual absl::StatusOr<size_t> Read(const Context& ctx, InodeId inode, HandleId handle,
                                      uint64_t offset, uint32_t size, IovWriter& out) = 0;
  // Writes `size` bytes taken from `data` at `offset`; returns the count.
  // write_flags: FUSE_WRITE_* (e.g. FUSE_WRITE_KILL_SUIDGID).
  virtual absl::StatusOr<size_t> Write(const Context& ctx, InodeId inode, HandleId handle,
                                       uint64_t offset, uint32_t size, uint32_t write_flags,
                                       IovReader& data) = 0;
  virtual absl::Status Flush(const Context& ctx, InodeId inode, HandleId handle,
                             uint64_t lock_owner) = 0;
  virtual absl::Status Release(const Context& ctx, InodeId inode, HandleId handle,
                               uint32_t flags, uint64_t lock_owner, bool flush) = 0;
  virtual absl::Status Fsync(const Context& ctx, InodeId inode, HandleId handle,
                             bool datasync) = 0;

  virtual absl::StatusOr<OpenResult> OpenDir(const Context& ctx, InodeId inode,
                                             uint32_t flags) = 0;
  // Entries after cookie `offset` (0: from the start), into `sink` until it
  // refuses one. plus: READDIRPLUS (each entry looked up).
  virtual absl::Status ReadDir(const Context& ctx, InodeId inode, HandleId handle,
                               uint64_t offset, bool plus, DirSink& sink) = 0;
  virtual absl::Status ReleaseDir(const Context& ctx, InodeId inode, HandleId handle) = 0;
  virtual absl::Status FsyncDir(const Context& ctx, InodeId inode, HandleId handle,
                                bool datasync) = 0;

  virtual absl::StatusOr<struct statvfs> StatFs(const Context& ctx, InodeId inode) = 0;
  // mask: R_OK | W_OK | X_OK, or F_OK.
  virtual absl::Status Access(const Context& ctx, InodeId inode, uint32_t mask) = 0;

  virtual absl::Status SetXattr(const Context& ctx, InodeId inode, absl::string_view name,
                                absl::string_view value, uint32_t flags) = 0;
  // The whole value; the server answers size queries and ERANGE itself.
  virtual absl::StatusOr<std::string> GetXattr(const Context& ctx, InodeId inode,
                                               absl::string_view name) = 0;
  // NUL-terminated names, concatenated, as listxattr(2) returns them.
  virtual absl::StatusOr<std::string> ListXattr(const Context& ctx, InodeId inode) = 0;
  virtual absl::Status RemoveXattr(const Context& ctx, InodeId inode,
                                   absl::string_view name) = 0;

  virtual absl::Status Fallocate(const Context& ctx, InodeId inode, HandleId handle,
                                 uint64_t offset, uint64_t length, uint32_t mode) = 0;
  // whence: SEEK_DATA or SEEK_HOLE (the kernel handles the others itself).
  virtual absl::StatusOr<uint64_t> Lseek(const Context& ctx, InodeId inode, HandleId handle,
                                         uint64_t offset, uint32_t whence) = 0;
  virtual absl::StatusOr<size_t> CopyFileRange(const Context& ctx, InodeId in_inode,
                                               HandleId in_handle, uint64_t in_offset,
                                               InodeId out_inode, HandleId out_handle,
                                               uint64_t out_offset, uint64_t length,
                                               uint64_t flags) = 0;

  // POSIX record locks for `owner` (the guest's lock owner id). Returning
  // Unimplemented (ENOSYS) makes Linux fall back to guest-local locks.
  virtual absl::StatusOr<FileLock> GetLk(const Context& ctx, InodeId inode, HandleId handle,
                                         uint64_t owner, const FileLock& lock) = 0;
  virtual absl::Status SetLk(const Context& ctx, InodeId inode, HandleId handle,
                             uint64_t owner, const FileLock& lock, bool wait) = 0;
};

}  // namespace coherefs::agent::fuse

#endif  // COHEREFS_AGENT_FUSE_FILE_SYSTEM_H_
