#include "agent/passthrough/passthrough_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "agent/passthrough/fs_creds.h"
#include "agent/passthrough/host_ops.h"
#include "common/errno_status.h"
#include "common/file_key.h"
#include "common/status_macros.h"

// The core (creation, tables, lookups), names and attributes. Files,
// directories, xattrs and ranges are in passthrough_io.cc.

namespace coherefs::agent::passthrough {

using fuse::Attr;
using fuse::Context;
using fuse::Entry;
using fuse::HandleId;
using fuse::InodeId;

namespace {

// NodeJournal session flags (also read in passthrough_restore.cc).
constexpr uint64_t kSessionWriteback = 1;

double TimeoutFor(CacheMode mode) {
  switch (mode) {
    case CacheMode::kNone:
      return 0;
    case CacheMode::kAuto:
      return 1;
    case CacheMode::kAlways:
      return 86400;
  }
  return 0;
}

}  // namespace

bool ParseCacheMode(absl::string_view text, CacheMode* mode) {
  if (text == "none" || text == "never") {
    *mode = CacheMode::kNone;
  } else if (text == "auto") {
    *mode = CacheMode::kAuto;
  } else if (text == "always") {
    *mode = CacheMode::kAlways;
  } else {
    return false;
  }
  return true;
}

const char* CacheModeName(CacheMode mode) {
  switch (mode) {
    case CacheMode::kNone:
      return "none";
    case CacheMode::kAuto:
      return "auto";
    case CacheMode::kAlways:
      return "always";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<PassthroughFs>> PassthroughFs::Create(const Options& options) {
  if (options.shared_dir.empty()) {
    return absl::InvalidArgumentError("passthrough: shared_dir is empty");
  }
  // The shared dir itself is the administrator's path and may be reached
  // through symlinks; only what lies below it is guarded.
  UniqueFd root(open(options.shared_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    return LastErrnoStatus(
        absl::StrCat("passthrough: cannot open shared_dir ", options.shared_dir,
                     " as a directory"));
  }
  UniqueFd proc(open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!proc) return LastErrnoStatus("passthrough: open /proc/self/fd (is /proc mounted?)");
  struct stat st;
  InodeKey key;
  RETURN_IF_ERROR(StatPathFd(root.get(), &st, &key));

  // The guest's umask is applied explicitly to every create; a process umask
  // would mask a second time (virtiofsd does the same).
  umask(0);

  std::unique_ptr<PassthroughFs> fs(new PassthroughFs(options, std::move(proc)));
  const int root_fd = root.get();
  fs->inodes_.SetRoot(std::move(root), key, st.st_mode & S_IFMT);
  if (options.journal_fd >= 0) {
    UniqueFd dup(fcntl(options.journal_fd, F_DUPFD_CLOEXEC, 0));
    if (!dup) return LastErrnoStatus("passthrough: dup journal_fd");
    ASSIGN_OR_RETURN(fs->journal_,
                     NodeJournal::Open(std::move(dup), options.journal_max_bytes));
    fs->RestoreFromJournal(root_fd, key);
  }
  return fs;
}

PassthroughFs::PassthroughFs(const Options& options, UniqueFd proc_self_fd)
    : options_(options),
      timeout_s_(TimeoutFor(options.cache)),
      proc_self_fd_(std::move(proc_self_fd)) {}

PassthroughFs::~PassthroughFs() = default;

uint64_t PassthroughFs::WantedInitFlags() const {
  // PARALLEL_DIROPS: lookups and readdirs of one directory may run at once
  // (every method is thread-safe). ATOMIC_O_TRUNC: Open handles O_TRUNC.
  uint64_t flags = FUSE_PARALLEL_DIROPS | FUSE_ATOMIC_O_TRUNC;
  if (options_.readdirplus) flags |= FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO;
  if (options_.writeback && !options_.readonly) flags |= FUSE_WRITEBACK_CACHE;
  return flags;
}

absl::Status PassthroughFs::Init(const fuse::InitInfo& info) {
  writeback_.store(options_.writeback && !options_.readonly &&
                   (info.flags & FUSE_WRITEBACK_CACHE) != 0);
  // A restarted process gets no INIT: it reads this back (RestoreFromJournal).
  if (journal_ != nullptr) journal_->SetSessionFlags(writeback_.load() ? kSessionWriteback : 0);
  return absl::OkStatus();
}

void PassthroughFs::Destroy() {
  absl::flat_hash_map<HandleId, HandleRef> dropped;
  {
    absl::MutexLock lock(&handles_mu_);
    dropped.swap(handles_);
  }
  inodes_.Clear();
  writeback_.store(false);
}

absl::StatusOr<InodeRef> PassthroughFs::GetInode(InodeId id) const {
  InodeRef inode = inodes_.Get(id);
  if (inode == nullptr) return ErrnoStatus(ENOENT, absl::StrCat("unknown inode ", id));
  if (inode->stale) return ErrnoStatus(ESTALE, absl::StrCat("inode ", id, " is gone"));
  return inode;
}

absl::StatusOr<PassthroughFs::HandleRef> PassthroughFs::GetHandle(InodeId inode,
                                                                  HandleId id) const {
  absl::MutexLock lock(&handles_mu_);
  auto found = handles_.find(id);
  if (found == handles_.end() || found->second->inode != inode) {
    return ErrnoStatus(EBADF, absl::StrCat("unknown handle ", id, " of inode ", inode));
  }
  if (!found->second->fd) {
    return ErrnoStatus(ESTALE, absl::StrCat("handle ", id, " could not be restored"));
  }
  return found->second;
}

HandleId PassthroughFs::AddHandle(HandleRef handle, int host_flags) {
  absl::MutexLock lock(&handles_mu_);
  HandleId id = next_handle_++;
  if (journal_ != nullptr) {
    NodeJournal::HandleRecord rec;
    rec.id = id;
    rec.node = handle->inode;
    // A restore reopens an existing file: never create or truncate again.
    rec.flags = static_cast<uint32_t>(host_flags & ~(O_CREAT | O_EXCL | O_TRUNC));
    rec.is_dir = handle->is_dir;
    handle->jslot = journal_->AddHandle(rec);
  }
  handles_[id] = std::move(handle);
  return id;
}

NodeJournal::Stats PassthroughFs::JournalStats() const {
  return journal_ == nullptr ? NodeJournal::Stats{} : journal_->stats();
}

absl::Status PassthroughFs::DropHandle(InodeId inode, HandleId id) {
  HandleRef dropped;  // closed outside the lock
  absl::MutexLock lock(&handles_mu_);
  auto found = handles_.find(id);
  if (found == handles_.end() || found->second->inode != inode) {
    return ErrnoStatus(EBADF, absl::StrCat("unknown handle ", id, " of inode ", inode));
  }
  dropped = std::move(found->second);
  handles_.erase(found);
  if (journal_ != nullptr) journal_->Remove(dropped->jslot);
  return absl::OkStatus();
}

size_t PassthroughFs::HandleCount() const {
  absl::MutexLock lock(&handles_mu_);
  return handles_.size();
}

Entry PassthroughFs::MakeEntry(const InodeData& inode, const struct stat& st) const {
  Entry e;
  e.inode = inode.id;
  e.generation = inode.generation;
  e.st = st;
  e.entry_timeout_s = timeout_s_;
  e.attr_timeout_s = timeout_s_;
  return e;
}

absl::StatusOr<Entry> PassthroughFs::EntryFor(UniqueFd path_fd) {
  struct stat st;
  InodeKey key;
  RETURN_IF_ERROR(StatPathFd(path_fd.get(), &st, &key));
  InodeRef inode = inodes_.AddLookupIfKnown(key);
  if (inode == nullptr) {
    // A new inode: the journal needs its file handle, taken outside the
    // table's lock. Without one (no journal, or a file system without
    // handles) the inode is simply not journaled.
    std::string file_key;
    if (journal_ != nullptr) {
      absl::StatusOr<std::string> k = FileKeyAt(path_fd.get(), "", AT_EMPTY_PATH);
      if (k.ok()) file_key = std::move(*k);
    }
    inode = inodes_.AddLookup(std::move(path_fd), key, st.st_mode & S_IFMT, file_key);
  }
  return MakeEntry(*inode, st);
}

absl::StatusOr<Entry> PassthroughFs::DoLookup(const InodeData& parent, absl::string_view name) {
  RETURN_IF_ERROR(ValidateName(name, "lookup"));
  ASSIGN_OR_RETURN(UniqueFd fd, OpenBeneath(parent.fd.get(), std::string(name), O_PATH, 0,
                                            "lookup"));
  return EntryFor(std::move(fd));
}

absl::StatusOr<UniqueFd> PassthroughFs::Reopen(const InodeData& inode, int flags) const {
  if (S_ISLNK(inode.type)) return ErrnoStatus(ELOOP, "open: inode is a symlink");
  // Device nodes, FIFOs and sockets are served by the guest kernel itself;
  // opening them on the host would reach host devices or block on a FIFO.
  if (!S_ISREG(inode.type) && !S_ISDIR(inode.type)) {
    return ErrnoStatus(ENXIO, "open: not a regular file or directory");
  }
  int fd = openat(proc_self_fd_.get(), FdName(inode.fd.get()).c_str(),
                  (flags & ~O_NOFOLLOW) | O_CLOEXEC);
  if (fd < 0) return LastErrnoStatus("open");
  return UniqueFd(fd);
}

int PassthroughFs::HostOpenFlags(uint32_t flags) const {
  int f = static_cast<int>(flags) & kPassedOpenFlags;
  if (writeback_.load()) {
    // The guest page cache reads around partial writes, so a write-only
    // file must be readable; and it computes append offsets itself.
    if ((f & O_ACCMODE) == O_WRONLY) f = (f & ~O_ACCMODE) | O_RDWR;
    f &= ~O_APPEND;
  }
  return f;
}

uint32_t PassthroughFs::FileOpenFlags() const {
  switch (options_.cache) {
    case CacheMode::kNone:
      return FOPEN_DIRECT_IO;
    case CacheMode::kAuto:
      return 0;
    case CacheMode::kAlways:
      return FOPEN_KEEP_CACHE;
  }
  return 0;
}

// Clears set-user-ID always and set-group-ID when group-executable, the rule
// the kernel applies on write by an unprivileged user (FUSE_WRITE_KILL_SUIDGID
// and FATTR_KILL_SUIDGID ask the server to apply it).
absl::Status PassthroughFs::KillSuidGid(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return LastErrnoStatus("kill suid: fstat");
  mode_t mode = st.st_mode & 07777;
  mode_t kill = S_ISUID;
  if ((mode & S_IXGRP) != 0) kill |= S_ISGID;
  if ((mode & kill) == 0) return absl::OkStatus();
  if (fchmod(fd, mode & ~kill) != 0) return LastErrnoStatus("kill suid: fchmod");
  return absl::OkStatus();
}

// ---- Names ----------------------------------------------------------------

absl::StatusOr<Entry> PassthroughFs::Lookup(const Context& ctx, InodeId parent,
                                            absl::string_view name) {
  ASSIGN_OR_RETURN(InodeRef dir, GetInode(parent));
  absl::StatusOr<Entry> entry = DoLookup(*dir, name);
  if (!entry.ok() && ErrnoFromStatus(entry.status()) == ENOENT &&
      options_.negative_entries && options_.cache != CacheMode::kNone) {
    Entry negative;
    negative.entry_timeout_s = timeout_s_;
    return negative;
  }
  return entry;
}

void PassthroughFs::Forget(InodeId inode, uint64_t nlookup) { inodes_.Forget(inode, nlookup); }

absl::StatusOr<Entry> PassthroughFs::Symlink(const Context& ctx, InodeId parent,
                                             absl::string_view name,
                                             absl::string_view target) {
  if (options_.readonly) return ReadOnlyError("symlink");
  RETURN_IF_ERROR(ValidateName(name, "symlink"));
  if (target.empty() || target.find('\0') != absl::string_view::npos) {
    return ErrnoStatus(target.empty() ? ENOENT : EINVAL, "symlink: bad target");
  }
  ASSIGN_OR_RETURN(InodeRef dir, GetInode(parent));
  {
    ScopedFsCreds creds(ctx.uid, ctx.gid);
    RETURN_IF_ERROR(creds.status());
    if (symlinkat(std::string(target).c_str(), dir->fd.get(), std::string(name).c_str()) != 0) {
      return LastErrnoStatus("symlinkat");
    }
  }
  return DoLookup(*dir, name);
}

absl::StatusOr<Entry> PassthroughFs::Mknod(const Context& ctx, InodeId parent,
                                           absl::string_view name, uint32_t mode,
                                           uint32_t rdev, uint32_t umask) {
  if (options_.readonly) return ReadOnlyError("mknod");
  RETURN_IF_ERROR(ValidateName(name, "mknod"));
  ASSIGN_OR_RETURN(InodeRef dir, GetInode(parent));
  mode_t host_mode = (mode & S_IFMT) | (mode & 07777 & ~umask);
  {
    ScopedFsCreds creds(ctx.uid, ctx.gid);
    RETURN_IF_ERROR(creds.status());
    if (mknodat(dir->fd.get(), std::string(name).c_str(), host_mode, rdev) != 0) {
      return LastErrnoStatus("mknodat");
    }
  }
  return DoLookup(*dir, name);
}

absl::StatusOr<Entry> PassthroughFs::Mkdir(const Context& ctx, InodeId parent,
                                           absl::string_view name, uint32_t mode,
                                           uint32_t umask) {
  if (options_.readonly) return ReadOnlyError("mkdir");
  RETURN_IF_ERROR(ValidateName(name, "mkdir"));
  ASSIGN_OR_RETURN(InodeRef dir, GetInode(parent));
  {
    ScopedFsCreds creds(ctx.uid, ctx.gid);
    RETURN_IF_ERROR(creds.status());
    if (mkdirat(dir->fd.get(), std::string(name).c_str(), mode & 07777 & ~umask) != 0) {
      return LastErrnoStatus("mkdirat");
    }
  }
  return DoLookup(*dir, name);
}

absl::Status PassthroughFs::Unlink(const Context& ctx, InodeId parent, absl::string_view name) {
  if (options_.readonly) return ReadOnlyError("unlink");
  RETURN_IF_ERROR(ValidateName(name, "unlink"));
  ASSIGN_OR_RETURN(InodeRef dir, GetInode(parent));
  if (unlinkat(dir->fd.get(), std::string(name).c_str(), 0) != 0) {
    return LastErrnoStatus("unlinkat");
  }
  return absl::OkStatus();
}

absl::Status PassthroughFs::Rmdir(const Context& ctx, InodeId parent, absl::string_view name) {
  if (options_.readonly) return ReadOnlyError("rmdir");
  RETURN_IF_ERROR(ValidateName(name, "rmdir"));
  ASSIGN_OR_RETURN(InodeRef dir, GetInode(parent));
  if (unlinkat(dir->fd.get(), std::string(name).c_str(), AT_REMOVEDIR) != 0) {
    return LastErrnoStatus("rmdir");
  }
  return absl::OkStatus();
}

absl::Status PassthroughFs::Rename(const Context& ctx, InodeId parent, absl::string_view name,
                                   InodeId new_parent, absl::string_view new_name,
                                   uint32_t flags) {
  if (options_.readonly) return ReadOnlyError("rename");
  RETURN_IF_ERROR(ValidateName(name, "rename"));
  RETURN_IF_ERROR(ValidateName(new_name, "rename"));
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) != 0) {
    return ErrnoStatus(EINVAL, "rename: unknown flags");
  }
  ASSIGN_OR_RETURN(InodeRef from, GetInode(parent));
  ASSIGN_OR_RETURN(InodeRef to, GetInode(new_parent));
  if (renameat2(from->fd.get(), std::string(name).c_str(), to->fd.get(),
                std::string(new_name).c_str(), flags) != 0) {
    return LastErrnoStatus("renameat2");
  }
  return absl::OkStatus();
}

absl::StatusOr<Entry> PassthroughFs::Link(const Context& ctx, InodeId inode, InodeId new_parent,
                                          absl::string_view new_name) {
  if (options_.readonly) return ReadOnlyError("link");
  RETURN_IF_ERROR(ValidateName(new_name, "link"));
  ASSIGN_OR_RETURN(InodeRef target, GetInode(inode));
  ASSIGN_OR_RETURN(InodeRef dir, GetInode(new_parent));
  {
    ScopedFsCreds creds(ctx.uid, ctx.gid);
    RETURN_IF_ERROR(creds.status());
    // linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH, which the guest's
    // fsuid drops; following the magic link reaches the same inode (and a
    // symlink inode itself, not its target).
    if (linkat(proc_self_fd_.get(), FdName(target->fd.get()).c_str(), dir->fd.get(),
               std::string(new_name).c_str(), AT_SYMLINK_FOLLOW) != 0) {
      return LastErrnoStatus("linkat");
    }
  }
  int dup = fcntl(target->fd.get(), F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return LastErrnoStatus("link: dup");
  return EntryFor(UniqueFd(dup));
}

// ---- Attributes -----------------------------------------------------------

absl::StatusOr<Attr> PassthroughFs::GetAttr(const Context& ctx, InodeId inode,
                                            const HandleId* handle) {
  Attr attr;
  attr.timeout_s = timeout_s_;
  if (handle != nullptr) {
    ASSIGN_OR_RETURN(HandleRef h, GetHandle(inode, *handle));
    if (fstat(h->fd.get(), &attr.st) != 0) return LastErrnoStatus("fstat");
    return attr;
  }
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  RETURN_IF_ERROR(StatPathFd(node->fd.get(), &attr.st, nullptr));
  return attr;
}

absl::StatusOr<Attr> PassthroughFs::SetAttr(const Context& ctx, InodeId inode,
                                            const fuse::SetAttrIn& in) {
  if (options_.readonly) return ReadOnlyError("setattr");
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  HandleRef handle;
  if ((in.valid & FATTR_FH) != 0) {
    ASSIGN_OR_RETURN(handle, GetHandle(inode, in.handle));
  }
  const int path_fd = node->fd.get();
  const std::string proc_name = FdName(path_fd);

  if ((in.valid & FATTR_MODE) != 0) {
    int rc = handle ? fchmod(handle->fd.get(), in.mode & 07777)
                    : fchmodat(proc_self_fd_.get(), proc_name.c_str(), in.mode & 07777, 0);
    if (rc != 0) return LastErrnoStatus("chmod");
  }
  if ((in.valid & (FATTR_UID | FATTR_GID)) != 0) {
    uid_t uid = (in.valid & FATTR_UID) ? in.uid : static_cast<uid_t>(-1);
    gid_t gid = (in.valid & FATTR_GID) ? in.gid : static_cast<gid_t>(-1);
    if (fchownat(path_fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return LastErrnoStatus("chown");
    }
  }
  if ((in.valid & FATTR_SIZE) != 0) {
    if (handle) {
      if (ftruncate(handle->fd.get(), static_cast<off_t>(in.size)) != 0) {
        return LastErrnoStatus("ftruncate");
      }
    } else {
      ASSIGN_OR_RETURN(UniqueFd fd, Reopen(*node, O_WRONLY));
      if (ftruncate(fd.get(), static_cast<off_t>(in.size)) != 0) {
        return LastErrnoStatus("ftruncate");
      }
    }
  }
  if ((in.valid & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) != 0) {
    struct timespec times[2];
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_nsec = UTIME_OMIT;
    if ((in.valid & FATTR_ATIME_NOW) != 0) {
      times[0].tv_nsec = UTIME_NOW;
    } else if ((in.valid & FATTR_ATIME) != 0) {
      times[0] = in.atime;
    }
    if ((in.valid & FATTR_MTIME_NOW) != 0) {
      times[1].tv_nsec = UTIME_NOW;
    } else if ((in.valid & FATTR_MTIME) != 0) {
      times[1] = in.mtime;
    }
    int rc = handle ? futimens(handle->fd.get(), times)
                    : utimensat(proc_self_fd_.get(), proc_name.c_str(), times, 0);
    if (rc != 0) return LastErrnoStatus("utimens");
  }
  if ((in.valid & FATTR_KILL_SUIDGID) != 0 && (in.valid & FATTR_MODE) == 0 &&
      S_ISREG(node->type)) {
    if (handle) {
      RETURN_IF_ERROR(KillSuidGid(handle->fd.get()));
    } else {
      ASSIGN_OR_RETURN(UniqueFd fd, Reopen(*node, O_RDONLY));
      RETURN_IF_ERROR(KillSuidGid(fd.get()));
    }
  }
  Attr attr;
  attr.timeout_s = timeout_s_;
  RETURN_IF_ERROR(StatPathFd(path_fd, &attr.st, nullptr));
  return attr;
}

absl::StatusOr<std::string> PassthroughFs::ReadLink(const Context& ctx, InodeId inode) {
  ASSIGN_OR_RETURN(InodeRef node, GetInode(inode));
  // readlinkat(fd, "") says ENOENT for a non-symlink; readlink(2) says EINVAL.
  if (!S_ISLNK(node->type)) return ErrnoStatus(EINVAL, "readlink: not a symlink");
  std::string buf(PATH_MAX, '\0');
  ssize_t n = readlinkat(node->fd.get(), "", buf.data(), buf.size());
  if (n < 0) return LastErrnoStatus("readlinkat");
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace coherefs::agent::passthrough
