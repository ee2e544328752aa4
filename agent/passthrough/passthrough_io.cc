// Files, directories, whole-file-system calls, xattrs, ranges and locks of
// PassthroughFs (see passthrough_fs.h; the core is in passthrough_fs.cc).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/passthrough/fs_creds.h"
#include "agent/passthrough/host_ops.h"
#include "agent/passthrough/passthrough_fs.h"
#include "common/errno_status.h"
#include "common/file_key.h"
#include "common/status_macros.h"

namespace coherefs::agent::passthrough {

using fuse::Context;
using fuse::Entry;
using fuse::HandleId;
using fuse::InodeId;
using fuse::OpenResult;

namespace {

bool IsWriteOpen(uint32_t flags) {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0;
}

// A name with a NUL would be cut short by the C call: a different name.
absl::Status ValidateXattrName(absl::string_view name) {
  if (name.find('\0') != absl::string_view::npos) {
    return ErrnoStatus(EINVAL, "xattr: NUL in name");
  }
  return absl::OkStatus();
}

}  // namespace

// ---- Files ----------------------------------------------------------------

absl::StatusOr<OpenResult> PassthroughFs::Open(const Context& ctx, InodeId inode,
                                               uint32_t flags) {
  if (options_.readonly && IsWriteOpen(flags)) return ReadOnlyError("open for writing");
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  const int host_flags = HostOpenFlags(flags);
  ASSIGN_OR_RETURN(UniqueFd fd, Reopen(*node, host_flags));
  auto handle = std::make_shared<Handle>();
  handle->inode = inode;
  handle->fd = std::move(fd);
  OpenResult result;
  result.handle = AddHandle(std::move(handle), host_flags);
  result.open_flags = FileOpenFlags();
  return result;
}

absl::StatusOr<std::pair<Entry, OpenResult>> PassthroughFs::Create(
    const Context& ctx, InodeId parent, absl::string_view name, uint32_t mode, uint32_t flags,
    uint32_t umask) {
  if (options_.readonly) return ReadOnlyError("create");
  RETURN_IF_ERROR(ValidateName(name, "create"));
  ASSIGN_OR_RETURN(InodeRef dir, GetInode(parent));
  int host_flags = HostOpenFlags(flags) | O_CREAT | (static_cast<int>(flags) & O_EXCL);
  UniqueFd fd;
  {
    ScopedFsCreds creds(ctx.uid, ctx.gid);
    RETURN_IF_ERROR(creds.status());
    ASSIGN_OR_RETURN(fd, OpenBeneath(dir->fd.get(), std::string(name), host_flags,
                                     mode & 07777 & ~umask, "create"));
  }
  // The inode's O_PATH fd comes from the open file itself, so it is the file
  // just created even if the name changed meanwhile.
  int path_fd = openat(proc_self_fd_.get(), FdName(fd.get()).c_str(), O_PATH | O_CLOEXEC);
  if (path_fd < 0) return LastErrnoStatus("create: O_PATH reopen");
  ASSIGN_OR_RETURN(Entry entry, EntryFor(UniqueFd(path_fd)));
  auto handle = std::make_shared<Handle>();
  handle->inode = entry.inode;
  handle->fd = std::move(fd);
  OpenResult result;
  result.handle = AddHandle(std::move(handle), host_flags);
  result.open_flags = FileOpenFlags();
  return std::make_pair(entry, result);
}

absl::StatusOr<size_t> PassthroughFs::Read(const Context& ctx, InodeId inode, HandleId handle,
                                           uint64_t offset, uint32_t size, IovWriter& out) {
  ASSIGN_OR_RETURN(HandleRef h, GetHandle(inode, handle));
  std::vector<iovec> iov;
  out.Reserve(std::min<size_t>(size, out.room()), &iov);
  ASSIGN_OR_RETURN(size_t n, PreadvAll(h->fd.get(), iov, offset));
  out.Advance(n);
  return n;
}

absl::StatusOr<size_t> PassthroughFs::Write(const Context& ctx, InodeId inode, HandleId handle,
                                            uint64_t offset, uint32_t size,
                                            uint32_t write_flags, IovReader& data) {
  if (options_.readonly) return ReadOnlyError("write");
  ASSIGN_OR_RETURN(HandleRef h, GetHandle(inode, handle));
  std::vector<iovec> iov;
  if (!data.Take(size, &iov)) return ErrnoStatus(EINVAL, "write: fewer bytes than size");
  ASSIGN_OR_RETURN(size_t n, PwritevAll(h->fd.get(), iov, offset));
  if ((write_flags & FUSE_WRITE_KILL_SUIDGID) != 0) RETURN_IF_ERROR(KillSuidGid(h->fd.get()));
  return n;
}

absl::Status PassthroughFs::Flush(const Context& ctx, InodeId inode, HandleId handle,
                                  uint64_t lock_owner) {
  ASSIGN_OR_RETURN(HandleRef h, GetHandle(inode, handle));
  // Closing any fd of a file drops the process's POSIX locks on it and
  // reports deferred write errors (NFS): what close(2) in the guest expects.
  int dup = fcntl(h->fd.get(), F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return LastErrnoStatus("flush: dup");
  if (close(dup) != 0) return LastErrnoStatus("flush: close");
  return absl::OkStatus();
}

absl::Status PassthroughFs::Release(const Context& ctx, InodeId inode, HandleId handle,
                                    uint32_t flags, uint64_t lock_owner, bool flush) {
  return DropHandle(inode, handle);
}

absl::Status PassthroughFs::Fsync(const Context& ctx, InodeId inode, HandleId handle,
                                  bool datasync) {
  ASSIGN_OR_RETURN(HandleRef h, GetHandle(inode, handle));
  int rc = datasync ? fdatasync(h->fd.get()) : fsync(h->fd.get());
  if (rc != 0) return LastErrnoStatus("fsync");
  return absl::OkStatus();
}

// ---- Directories ----------------------------------------------------------

absl::StatusOr<OpenResult> PassthroughFs::OpenDir(const Context& ctx, InodeId inode,
                                                  uint32_t flags) {
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  ASSIGN_OR_RETURN(UniqueFd fd, Reopen(*node, O_RDONLY | O_DIRECTORY));
  auto handle = std::make_shared<Handle>();
  handle->inode = inode;
  handle->is_dir = true;
  handle->fd = std::move(fd);
  OpenResult result;
  result.handle = AddHandle(std::move(handle), O_RDONLY | O_DIRECTORY);
  if (options_.cache == CacheMode::kAlways) result.open_flags = FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE;
  return result;
}

absl::Status PassthroughFs::ReadDir(const Context& ctx, InodeId inode, HandleId handle,
                                    uint64_t offset, bool plus, fuse::DirSink& sink) {
  ASSIGN_OR_RETURN(HandleRef h, GetHandle(inode, handle));
  if (!h->is_dir) return ErrnoStatus(ENOTDIR, "readdir: not a directory handle");
  InodeRef dir;
  if (plus) {
    ASSIGN_OR_RETURN(dir, GetInode(inode));
  }

  // Cookies are the host's d_off values: lseek to one resumes right after
  // the entry that carried it, whatever the host file system's scheme.
  constexpr long kBufSize = 32 * 1024;
  absl::MutexLock lock(&h->dir_mu);
  const int fd = h->fd.get();
  if (h->dents == nullptr) h->dents.reset(new char[kBufSize]);
  const bool buffered = h->dents_pos < h->dents_len && h->dents_resume == offset;
  if (!buffered) {
    if (lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) return LastErrnoStatus("seekdir");
    h->dents_len = h->dents_pos = 0;
  }
  // The cookie the guest will send to continue after what was accepted.
  uint64_t resume = offset;
  for (;;) {
    if (h->dents_pos >= h->dents_len) {
      long n = syscall(SYS_getdents64, fd, h->dents.get(), kBufSize);
      if (n < 0) {
        if (errno == EINTR) continue;
        h->dents_len = h->dents_pos = 0;
        return LastErrnoStatus("getdents64");
      }
      h->dents_len = n;
      h->dents_pos = 0;
      if (n == 0) return absl::OkStatus();
    }
    // struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type,
    // char d_name[].
    const char* rec = h->dents.get() + h->dents_pos;
    uint64_t ino;
    int64_t off;
    uint16_t reclen;
    uint8_t type;
    memcpy(&ino, rec, 8);
    memcpy(&off, rec + 8, 8);
    memcpy(&reclen, rec + 16, 2);
    memcpy(&type, rec + 18, 1);
    absl::string_view name(rec + 19, strnlen(rec + 19, reclen - 19));

    fuse::DirEntry entry;
    entry.ino = ino;
    entry.offset = static_cast<uint64_t>(off);
    entry.type = type;
    entry.name = name;
    bool taken;
    bool gone = false;
    if (!plus) {
      taken = sink.Add(entry, nullptr);
    } else {
      // READDIRPLUS: "." and ".." go out without attributes (inode 0), which
      // the kernel skips without counting a lookup.
      Entry looked_up;
      if (name != "." && name != "..") {
        absl::StatusOr<Entry> found = DoLookup(*dir, name);
        if (found.ok()) {
          looked_up = *found;
        } else if (ErrnoFromStatus(found.status()) == ENOENT) {
          gone = true;  // removed since getdents: not an entry any more
        }
        // Other errors: the name without attributes; the guest looks it up.
      }
      taken = gone || sink.Add(entry, &looked_up);
      if (!taken && looked_up.inode != 0) inodes_.Forget(looked_up.inode, 1);
    }
    if (!taken) {
      // Keep this entry and the rest for the request that asks for `resume`.
      h->dents_resume = resume;
      return absl::OkStatus();
    }
    h->dents_pos += reclen;
    // A vanished entry was never sent: the guest's next cookie stays.
    if (!gone) resume = static_cast<uint64_t>(off);
  }
}

absl::Status PassthroughFs::ReleaseDir(const Context& ctx, InodeId inode, HandleId handle) {
  return DropHandle(inode, handle);
}

absl::Status PassthroughFs::FsyncDir(const Context& ctx, InodeId inode, HandleId handle,
                                     bool datasync) {
  return Fsync(ctx, inode, handle, datasync);
}

// ---- Whole file system ----------------------------------------------------

absl::StatusOr<struct statvfs> PassthroughFs::StatFs(const Context& ctx, InodeId inode) {
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  struct statvfs st;
  if (fstatvfs(node->fd.get(), &st) != 0) return LastErrnoStatus("fstatvfs");
  return st;
}

absl::Status PassthroughFs::Access(const Context& ctx, InodeId inode, uint32_t mask) {
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  if (options_.readonly && (mask & W_OK) != 0 && !S_ISLNK(node->type)) {
    return ReadOnlyError("access W_OK");
  }
  ScopedFsCreds creds(ctx.uid, ctx.gid);
  RETURN_IF_ERROR(creds.status());
  // AT_EACCESS: check with the thread's current (fs) credentials, i.e. the
  // guest's, rather than the process's real ids.
  if (syscall(SYS_faccessat2, node->fd.get(), "", mask, AT_EMPTY_PATH | AT_EACCESS) != 0) {
    return LastErrnoStatus("faccessat2");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PassthroughFs::FileKey(InodeId inode) const {
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  return FileKeyAt(node->fd.get(), "", AT_EMPTY_PATH);
}

absl::StatusOr<std::vector<std::string>> PassthroughFs::ChildKeys(InodeId dir,
                                                                  size_t max) const {
  ASSIGN_OR_RETURN(InodeRef node, GetInode(dir));
  if (!S_ISDIR(node->type)) return ErrnoStatus(ENOTDIR, "child keys: not a directory");
  ASSIGN_OR_RETURN(UniqueFd fd, Reopen(*node, O_RDONLY | O_DIRECTORY));
  std::vector<std::string> keys;
  alignas(8) char buf[32 * 1024];
  for (;;) {
    const long n = syscall(SYS_getdents64, fd.get(), buf, sizeof(buf));
    if (n < 0) return LastErrnoStatus("getdents64");
    if (n == 0) break;
    for (long at = 0; at < n;) {
      const auto* d = reinterpret_cast<const struct dirent64*>(buf + at);
      at += d->d_reclen;
      if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
      // Gone since the listing, or a mount point's foreign handle: skip it;
      // its own lookup resolves it later.
      absl::StatusOr<std::string> key = FileKeyAt(fd.get(), d->d_name, 0);
      if (key.ok()) keys.push_back(std::move(*key));
      if (keys.size() >= max) return keys;
    }
  }
  return keys;
}

// ---- Extended attributes ---------------------------------------------------
// The path forms through /proc/self/fd/N work for every inode type (a symlink
// or a device node is never opened) and reach exactly the guest's inode.

absl::Status PassthroughFs::SetXattr(const Context& ctx, InodeId inode, absl::string_view name,
                                     absl::string_view value, uint32_t flags) {
  if (!options_.xattr) return ErrnoStatus(ENOSYS, "xattr disabled");
  if (options_.readonly) return ReadOnlyError("setxattr");
  RETURN_IF_ERROR(ValidateXattrName(name));
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  if (setxattr(ProcPath(node->fd.get()).c_str(), std::string(name).c_str(), value.data(),
               value.size(), static_cast<int>(flags)) != 0) {
    return LastErrnoStatus("setxattr");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PassthroughFs::GetXattr(const Context& ctx, InodeId inode,
                                                    absl::string_view name) {
  if (!options_.xattr) return ErrnoStatus(ENOSYS, "xattr disabled");
  RETURN_IF_ERROR(ValidateXattrName(name));
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  const std::string path = ProcPath(node->fd.get());
  const std::string attr(name);
  // The value can grow between the size query and the read: retry a little.
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t size = getxattr(path.c_str(), attr.c_str(), nullptr, 0);
    if (size < 0) return LastErrnoStatus("getxattr");
    std::string value(static_cast<size_t>(size), '\0');
    ssize_t n = getxattr(path.c_str(), attr.c_str(), value.data(), value.size());
    if (n >= 0) {
      value.resize(static_cast<size_t>(n));
      return value;
    }
    if (errno != ERANGE) return LastErrnoStatus("getxattr");
  }
  return ErrnoStatus(ERANGE, "getxattr: value keeps growing");
}

absl::StatusOr<std::string> PassthroughFs::ListXattr(const Context& ctx, InodeId inode) {
  if (!options_.xattr) return ErrnoStatus(ENOSYS, "xattr disabled");
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  const std::string path = ProcPath(node->fd.get());
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t size = listxattr(path.c_str(), nullptr, 0);
    if (size < 0) return LastErrnoStatus("listxattr");
    std::string names(static_cast<size_t>(size), '\0');
    ssize_t n = listxattr(path.c_str(), names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<size_t>(n));
      return names;
    }
    if (errno != ERANGE) return LastErrnoStatus("listxattr");
  }
  return ErrnoStatus(ERANGE, "listxattr: list keeps growing");
}

absl::Status PassthroughFs::RemoveXattr(const Context& ctx, InodeId inode,
                                        absl::string_view name) {
  if (!options_.xattr) return ErrnoStatus(ENOSYS, "xattr disabled");
  if (options_.readonly) return ReadOnlyError("removexattr");
  RETURN_IF_ERROR(ValidateXattrName(name));
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  if (removexattr(ProcPath(node->fd.get()).c_str(), std::string(name).c_str()) != 0) {
    return LastErrnoStatus("removexattr");
  }
  return absl::OkStatus();
}

// ---- Ranges and locks ------------------------------------------------------

absl::Status PassthroughFs::Fallocate(const Context& ctx, InodeId inode, HandleId handle,
                                      uint64_t offset, uint64_t length, uint32_t mode) {
  if (options_.readonly) return ReadOnlyError("fallocate");
  ASSIGN_OR_RETURN(HandleRef h, GetHandle(inode, handle));
  if (fallocate(h->fd.get(), static_cast<int>(mode), static_cast<off_t>(offset),
                static_cast<off_t>(length)) != 0) {
    return LastErrnoStatus("fallocate");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> PassthroughFs::Lseek(const Context& ctx, InodeId inode,
                                              HandleId handle, uint64_t offset,
                                              uint32_t whence) {
  ASSIGN_OR_RETURN(HandleRef h, GetHandle(inode, handle));
  // The handle's own offset is not used by Read/Write (pread/pwrite), so
  // moving it here is harmless.
  off_t pos = lseek(h->fd.get(), static_cast<off_t>(offset), static_cast<int>(whence));
  if (pos < 0) return LastErrnoStatus("lseek");
  return static_cast<uint64_t>(pos);
}

absl::StatusOr<size_t> PassthroughFs::CopyFileRange(const Context& ctx, InodeId in_inode,
                                                    HandleId in_handle, uint64_t in_offset,
                                                    InodeId out_inode, HandleId out_handle,
                                                    uint64_t out_offset, uint64_t length,
                                                    uint64_t flags) {
  if (options_.readonly) return ReadOnlyError("copy_file_range");
  ASSIGN_OR_RETURN(HandleRef in, GetHandle(in_inode, in_handle));
  ASSIGN_OR_RETURN(HandleRef out, GetHandle(out_inode, out_handle));
  loff_t in_off = static_cast<loff_t>(in_offset);
  loff_t out_off = static_cast<loff_t>(out_offset);
  ssize_t n = copy_file_range(in->fd.get(), &in_off, out->fd.get(), &out_off,
                              static_cast<size_t>(length), static_cast<unsigned>(flags));
  if (n < 0) return LastErrnoStatus("copy_file_range");
  return static_cast<size_t>(n);
}

absl::StatusOr<fuse::FileLock> PassthroughFs::GetLk(const Context& ctx, InodeId inode,
                                                    HandleId handle, uint64_t owner,
                                                    const fuse::FileLock& lock) {
  return ErrnoStatus(ENOSYS, "getlk: POSIX locks stay guest-local");
}

absl::Status PassthroughFs::SetLk(const Context& ctx, InodeId inode, HandleId handle,
                                  uint64_t owner, const fuse::FileLock& lock, bool wait) {
  return ErrnoStatus(ENOSYS, "setlk: POSIX locks stay guest-local");
}

}  // namespace coherefs::agent::passthrough
