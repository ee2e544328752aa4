#include "agent/fuse/fake_file_system.h"

#include <dirent.h>
#include <errno.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/errno_status.h"

namespace coherefs::agent::fuse {
namespace {

// Files never grow past this: the fuzzer must not be able to allocate
// gigabytes through one SETATTR or WRITE offset.
constexpr uint64_t kMaxFileSize = 4u << 20;

void SetSize(struct stat* st, size_t size) {
  st->st_size = static_cast<off_t>(size);
  st->st_blocks = static_cast<blkcnt_t>((size + 511) / 512);
}

uint32_t DirentType(mode_t mode) {
  if (S_ISDIR(mode)) return DT_DIR;
  if (S_ISLNK(mode)) return DT_LNK;
  if (S_ISFIFO(mode)) return DT_FIFO;
  return DT_REG;
}

bool Overlaps(const FileLock& a, const FileLock& b) {
  return a.start <= b.end && b.start <= a.end;
}

}  // namespace

FakeFileSystem::FakeFileSystem() {
  absl::MutexLock lock(&mu_);
  Node& root = nodes_[kRootInode];
  root.st.st_ino = kRootInode;
  root.st.st_mode = S_IFDIR | 0755;
  root.st.st_nlink = 2;
  root.st.st_blksize = 4096;
  root.st.st_atim.tv_sec = root.st.st_mtim.tv_sec = root.st.st_ctim.tv_sec = kTime;
  SetSize(&root.st, 4096);
}

InodeId FakeFileSystem::NewNode(InodeId parent, const std::string& name, uint32_t mode) {
  InodeId id = next_inode_++;
  Node& n = nodes_[id];
  n.st.st_ino = id;
  n.st.st_mode = mode;
  n.st.st_nlink = S_ISDIR(mode) ? 2 : 1;
  n.st.st_blksize = 4096;
  n.st.st_atim.tv_sec = n.st.st_mtim.tv_sec = n.st.st_ctim.tv_sec = kTime;
  if (S_ISDIR(mode)) {
    SetSize(&n.st, 4096);
    nodes_[parent].st.st_nlink++;
  }
  nodes_[parent].children[name] = id;
  return id;
}

InodeId FakeFileSystem::AddDir(InodeId parent, const std::string& name, uint32_t mode) {
  absl::MutexLock lock(&mu_);
  return NewNode(parent, name, S_IFDIR | mode);
}

InodeId FakeFileSystem::AddFile(InodeId parent, const std::string& name, const std::string& data,
                                uint32_t mode) {
  absl::MutexLock lock(&mu_);
  InodeId id = NewNode(parent, name, S_IFREG | mode);
  nodes_[id].data = data;
  SetSize(&nodes_[id].st, data.size());
  return id;
}

InodeId FakeFileSystem::AddSymlink(InodeId parent, const std::string& name,
                                   const std::string& target) {
  absl::MutexLock lock(&mu_);
  InodeId id = NewNode(parent, name, S_IFLNK | 0777);
  nodes_[id].data = target;
  SetSize(&nodes_[id].st, target.size());
  return id;
}

void FakeFileSystem::AddXattr(InodeId inode, const std::string& name, const std::string& value) {
  absl::MutexLock lock(&mu_);
  nodes_[inode].xattrs[name] = value;
}

struct stat FakeFileSystem::Stat(InodeId inode) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(inode);
  return it == nodes_.end() ? (struct stat){} : it->second.st;
}

uint64_t FakeFileSystem::lookups(InodeId inode) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(inode);
  return it == nodes_.end() ? 0 : it->second.lookups;
}

std::string FakeFileSystem::data(InodeId inode) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(inode);
  return it == nodes_.end() ? "" : it->second.data;
}

InodeId FakeFileSystem::Child(InodeId parent, const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(parent);
  if (it == nodes_.end()) return 0;
  auto c = it->second.children.find(name);
  return c == it->second.children.end() ? 0 : c->second;
}

size_t FakeFileSystem::open_handles() const {
  absl::MutexLock lock(&mu_);
  return handles_.size();
}

int FakeFileSystem::init_calls() const {
  absl::MutexLock lock(&mu_);
  return init_calls_;
}

int FakeFileSystem::destroy_calls() const {
  absl::MutexLock lock(&mu_);
  return destroy_calls_;
}

InitInfo FakeFileSystem::init_info() const {
  absl::MutexLock lock(&mu_);
  return init_info_;
}

Context FakeFileSystem::last_context() const {
  absl::MutexLock lock(&mu_);
  return last_context_;
}

void FakeFileSystem::set_wanted_flags(uint64_t flags) {
  absl::MutexLock lock(&mu_);
  wanted_flags_ = flags;
}

void FakeFileSystem::set_negative_timeout(double seconds) {
  absl::MutexLock lock(&mu_);
  negative_timeout_ = seconds;
}

void FakeFileSystem::set_init_errno(int err) {
  absl::MutexLock lock(&mu_);
  init_errno_ = err;
}

absl::StatusOr<FakeFileSystem::Node*> FakeFileSystem::Find(InodeId inode) {
  auto it = nodes_.find(inode);
  if (it == nodes_.end()) return ErrnoStatus(ESTALE, "fake: unknown inode");
  return &it->second;
}

absl::StatusOr<FakeFileSystem::Node*> FakeFileSystem::FindDir(InodeId inode) {
  auto it = nodes_.find(inode);
  if (it == nodes_.end()) return ErrnoStatus(ESTALE, "fake: unknown inode");
  if (!S_ISDIR(it->second.st.st_mode)) return ErrnoStatus(ENOTDIR, "fake: not a directory");
  return &it->second;
}

absl::Status FakeFileSystem::CheckHandle(InodeId inode, HandleId handle) {
  auto it = handles_.find(handle);
  if (it == handles_.end() || it->second != inode) return ErrnoStatus(EBADF, "fake: handle");
  return absl::OkStatus();
}

Entry FakeFileSystem::MakeEntry(InodeId inode) {
  Node& n = nodes_[inode];
  n.lookups++;
  Entry e;
  e.inode = inode;
  e.generation = 7;
  e.st = n.st;
  e.entry_timeout_s = kEntryTimeout;
  e.attr_timeout_s = kAttrTimeout;
  return e;
}

void FakeFileSystem::Touch(const Context& ctx) { last_context_ = ctx; }

uint64_t FakeFileSystem::WantedInitFlags() const {
  absl::MutexLock lock(&mu_);
  return wanted_flags_;
}

absl::Status FakeFileSystem::Init(const InitInfo& info) {
  absl::MutexLock lock(&mu_);
  init_calls_++;
  if (init_errno_ != 0) return ErrnoStatus(init_errno_, "fake: init");
  init_info_ = info;
  return absl::OkStatus();
}

void FakeFileSystem::Destroy() {
  absl::MutexLock lock(&mu_);
  destroy_calls_++;
  for (auto& [id, node] : nodes_) node.lookups = 0;
  handles_.clear();
  locks_.clear();
}

absl::StatusOr<Entry> FakeFileSystem::Lookup(const Context& ctx, InodeId parent,
                                             absl::string_view name) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto dir = FindDir(parent);
  if (!dir.ok()) return dir.status();
  auto it = (*dir)->children.find(std::string(name));
  if (it == (*dir)->children.end()) {
    if (negative_timeout_ > 0) {
      Entry e;
      e.entry_timeout_s = negative_timeout_;
      return e;
    }
    return ErrnoStatus(ENOENT, "fake: lookup");
  }
  return MakeEntry(it->second);
}

void FakeFileSystem::Forget(InodeId inode, uint64_t nlookup) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(inode);
  if (it == nodes_.end()) return;
  it->second.lookups -= std::min(it->second.lookups, nlookup);
}

absl::StatusOr<Attr> FakeFileSystem::GetAttr(const Context& ctx, InodeId inode,
                                             const HandleId* handle) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  if (handle != nullptr) {
    absl::Status s = CheckHandle(inode, *handle);
    if (!s.ok()) return s;
  }
  return Attr{(*n)->st, kAttrTimeout};
}

absl::StatusOr<Attr> FakeFileSystem::SetAttr(const Context& ctx, InodeId inode,
                                             const SetAttrIn& in) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  struct stat& st = (*n)->st;
  if (in.valid & FATTR_FH) {
    absl::Status s = CheckHandle(inode, in.handle);
    if (!s.ok()) return s;
  }
  if (in.valid & FATTR_SIZE) {
    if (S_ISDIR(st.st_mode)) return ErrnoStatus(EISDIR, "fake: truncate");
    if (in.size > kMaxFileSize) return ErrnoStatus(EFBIG, "fake: truncate");
    (*n)->data.resize(in.size);
    SetSize(&st, in.size);
  }
  if (in.valid & FATTR_MODE) st.st_mode = (st.st_mode & S_IFMT) | (in.mode & 07777);
  if (in.valid & FATTR_UID) st.st_uid = in.uid;
  if (in.valid & FATTR_GID) st.st_gid = in.gid;
  if (in.valid & FATTR_ATIME) {
    st.st_atim = (in.valid & FATTR_ATIME_NOW) ? timespec{kTime, 0} : in.atime;
  }
  if (in.valid & FATTR_MTIME) {
    st.st_mtim = (in.valid & FATTR_MTIME_NOW) ? timespec{kTime, 0} : in.mtime;
  }
  return Attr{st, kAttrTimeout};
}

absl::StatusOr<std::string> FakeFileSystem::ReadLink(const Context& ctx, InodeId inode) {
  absl::MutexLock lock(&mu_);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  if (!S_ISLNK((*n)->st.st_mode)) return ErrnoStatus(EINVAL, "fake: readlink");
  return (*n)->data;
}

absl::StatusOr<Entry> FakeFileSystem::MakeNode(const Context& ctx, InodeId parent,
                                               absl::string_view name, uint32_t mode,
                                               const std::string& data) {
  Touch(ctx);
  auto dir = FindDir(parent);
  if (!dir.ok()) return dir.status();
  if ((*dir)->children.count(std::string(name))) return ErrnoStatus(EEXIST, "fake: create");
  InodeId id = NewNode(parent, std::string(name), mode);
  Node& n = nodes_[id];
  n.st.st_uid = ctx.uid;
  n.st.st_gid = ctx.gid;
  n.data = data;
  if (!S_ISDIR(mode)) SetSize(&n.st, data.size());
  return MakeEntry(id);
}

absl::StatusOr<Entry> FakeFileSystem::Symlink(const Context& ctx, InodeId parent,
                                              absl::string_view name, absl::string_view target) {
  absl::MutexLock lock(&mu_);
  return MakeNode(ctx, parent, name, S_IFLNK | 0777, std::string(target));
}

absl::StatusOr<Entry> FakeFileSystem::Mknod(const Context& ctx, InodeId parent,
                                            absl::string_view name, uint32_t mode, uint32_t rdev,
                                            uint32_t umask) {
  absl::MutexLock lock(&mu_);
  if (!S_ISREG(mode) && !S_ISFIFO(mode)) return ErrnoStatus(EPERM, "fake: mknod type");
  return MakeNode(ctx, parent, name, (mode & S_IFMT) | (mode & 07777 & ~umask), "");
}

absl::StatusOr<Entry> FakeFileSystem::Mkdir(const Context& ctx, InodeId parent,
                                            absl::string_view name, uint32_t mode,
                                            uint32_t umask) {
  absl::MutexLock lock(&mu_);
  return MakeNode(ctx, parent, name, S_IFDIR | (mode & 07777 & ~umask), "");
}

absl::Status FakeFileSystem::Unlink(const Context& ctx, InodeId parent, absl::string_view name) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto dir = FindDir(parent);
  if (!dir.ok()) return dir.status();
  auto it = (*dir)->children.find(std::string(name));
  if (it == (*dir)->children.end()) return ErrnoStatus(ENOENT, "fake: unlink");
  Node& n = nodes_[it->second];
  if (S_ISDIR(n.st.st_mode)) return ErrnoStatus(EISDIR, "fake: unlink");
  n.st.st_nlink--;
  (*dir)->children.erase(it);
  return absl::OkStatus();
}

absl::Status FakeFileSystem::Rmdir(const Context& ctx, InodeId parent, absl::string_view name) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto dir = FindDir(parent);
  if (!dir.ok()) return dir.status();
  auto it = (*dir)->children.find(std::string(name));
  if (it == (*dir)->children.end()) return ErrnoStatus(ENOENT, "fake: rmdir");
  Node& n = nodes_[it->second];
  if (!S_ISDIR(n.st.st_mode)) return ErrnoStatus(ENOTDIR, "fake: rmdir");
  if (!n.children.empty()) return ErrnoStatus(ENOTEMPTY, "fake: rmdir");
  n.st.st_nlink = 0;
  (*dir)->st.st_nlink--;
  (*dir)->children.erase(it);
  return absl::OkStatus();
}

absl::Status FakeFileSystem::Rename(const Context& ctx, InodeId parent, absl::string_view name,
                                    InodeId new_parent, absl::string_view new_name,
                                    uint32_t flags) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return ErrnoStatus(EINVAL, "fake: flags");
  auto from = FindDir(parent);
  if (!from.ok()) return from.status();
  auto to = FindDir(new_parent);
  if (!to.ok()) return to.status();
  auto src = (*from)->children.find(std::string(name));
  if (src == (*from)->children.end()) return ErrnoStatus(ENOENT, "fake: rename source");
  const InodeId moving = src->second;
  auto dst = (*to)->children.find(std::string(new_name));
  if (flags & RENAME_EXCHANGE) {
    if (dst == (*to)->children.end()) return ErrnoStatus(ENOENT, "fake: exchange target");
    std::swap(src->second, dst->second);
    return absl::OkStatus();
  }
  if (dst != (*to)->children.end()) {
    if (flags & RENAME_NOREPLACE) return ErrnoStatus(EEXIST, "fake: rename target");
    if (dst->second == moving) return absl::OkStatus();
    Node& old = nodes_[dst->second];
    const bool src_dir = S_ISDIR(nodes_[moving].st.st_mode);
    if (S_ISDIR(old.st.st_mode) && !src_dir) return ErrnoStatus(EISDIR, "fake: rename");
    if (!S_ISDIR(old.st.st_mode) && src_dir) return ErrnoStatus(ENOTDIR, "fake: rename");
    if (!old.children.empty()) return ErrnoStatus(ENOTEMPTY, "fake: rename");
    old.st.st_nlink = S_ISDIR(old.st.st_mode) ? 0 : old.st.st_nlink - 1;
  }
  (*from)->children.erase(std::string(name));
  (*to)->children[std::string(new_name)] = moving;
  return absl::OkStatus();
}

absl::StatusOr<Entry> FakeFileSystem::Link(const Context& ctx, InodeId inode, InodeId new_parent,
                                           absl::string_view new_name) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  if (S_ISDIR((*n)->st.st_mode)) return ErrnoStatus(EPERM, "fake: link dir");
  auto dir = FindDir(new_parent);
  if (!dir.ok()) return dir.status();
  if ((*dir)->children.count(std::string(new_name))) return ErrnoStatus(EEXIST, "fake: link");
  (*dir)->children[std::string(new_name)] = inode;
  (*n)->st.st_nlink++;
  return MakeEntry(inode);
}

absl::StatusOr<OpenResult> FakeFileSystem::Open(const Context& ctx, InodeId inode,
                                                uint32_t flags) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  if (S_ISDIR((*n)->st.st_mode)) return ErrnoStatus(EISDIR, "fake: open");
  if (flags & O_TRUNC) {
    (*n)->data.clear();
    SetSize(&(*n)->st, 0);
  }
  HandleId h = next_handle_++;
  handles_[h] = inode;
  return OpenResult{h, FOPEN_KEEP_CACHE};
}

absl::StatusOr<std::pair<Entry, OpenResult>> FakeFileSystem::Create(
    const Context& ctx, InodeId parent, absl::string_view name, uint32_t mode, uint32_t flags,
    uint32_t umask) {
  absl::MutexLock lock(&mu_);
  auto e = MakeNode(ctx, parent, name, S_IFREG | (mode & 07777 & ~umask), "");
  if (!e.ok()) return e.status();
  HandleId h = next_handle_++;
  handles_[h] = e->inode;
  return std::make_pair(*e, OpenResult{h, 0});
}

absl::StatusOr<size_t> FakeFileSystem::Read(const Context& ctx, InodeId inode, HandleId handle,
                                            uint64_t offset, uint32_t size, IovWriter& out) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  absl::Status s = CheckHandle(inode, handle);
  if (!s.ok()) return s;
  const std::string& data = nodes_[inode].data;
  if (offset >= data.size()) return 0;
  const size_t n = std::min<uint64_t>(size, data.size() - offset);
  // Copy through Reserve/Advance like a preadv would, across every iovec.
  std::vector<iovec> iov;
  if (!out.Reserve(n, &iov)) return ErrnoStatus(ERANGE, "fake: read buffer");
  size_t pos = offset;
  for (const iovec& v : iov) {
    std::memcpy(v.iov_base, data.data() + pos, v.iov_len);
    pos += v.iov_len;
  }
  out.Advance(n);
  return n;
}

absl::StatusOr<size_t> FakeFileSystem::Write(const Context& ctx, InodeId inode, HandleId handle,
                                             uint64_t offset, uint32_t size,
                                             uint32_t write_flags, IovReader& data) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  absl::Status s = CheckHandle(inode, handle);
  if (!s.ok()) return s;
  if (offset > kMaxFileSize || size > kMaxFileSize - offset) {
    return ErrnoStatus(EFBIG, "fake: write");
  }
  std::string buf(size, '\0');
  if (!data.Read(buf.data(), size)) return ErrnoStatus(EINVAL, "fake: short write data");
  Node& n = nodes_[inode];
  if (n.data.size() < offset + size) n.data.resize(offset + size);
  n.data.replace(offset, size, buf);
  SetSize(&n.st, n.data.size());
  return size;
}

absl::Status FakeFileSystem::Flush(const Context& ctx, InodeId inode, HandleId handle,
                                   uint64_t lock_owner) {
  absl::MutexLock lock(&mu_);
  return CheckHandle(inode, handle);
}

absl::Status FakeFileSystem::Release(const Context& ctx, InodeId inode, HandleId handle,
                                     uint32_t flags, uint64_t lock_owner, bool flush) {
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckHandle(inode, handle);
  if (!s.ok()) return s;
  handles_.erase(handle);
  return absl::OkStatus();
}

absl::Status FakeFileSystem::Fsync(const Context& ctx, InodeId inode, HandleId handle,
                                   bool datasync) {
  absl::MutexLock lock(&mu_);
  return CheckHandle(inode, handle);
}

absl::StatusOr<OpenResult> FakeFileSystem::OpenDir(const Context& ctx, InodeId inode,
                                                   uint32_t flags) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto dir = FindDir(inode);
  if (!dir.ok()) return dir.status();
  HandleId h = next_handle_++;
  handles_[h] = inode;
  return OpenResult{h, FOPEN_CACHE_DIR};
}

absl::Status FakeFileSystem::ReadDir(const Context& ctx, InodeId inode, HandleId handle,
                                     uint64_t offset, bool plus, DirSink& sink) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  absl::Status s = CheckHandle(inode, handle);
  if (!s.ok()) return s;
  // Cookies: "." is 1, ".." is 2, then children in name order.
  std::vector<std::pair<std::string, InodeId>> all = {{".", inode}, {"..", kRootInode}};
  for (const auto& [name, id] : nodes_[inode].children) all.emplace_back(name, id);
  for (uint64_t i = offset; i < all.size(); ++i) {
    const auto& [name, id] = all[i];
    const bool dot = i < 2;
    DirEntry d{id, i + 1, DirentType(nodes_[id].st.st_mode), name};
    if (plus && !dot) {
      Entry e = MakeEntry(id);
      if (!sink.Add(d, &e)) {
        nodes_[id].lookups--;  // refused: undo the lookup (file_system.h)
        break;
      }
    } else if (!sink.Add(d, nullptr)) {
      break;
    }
  }
  return absl::OkStatus();
}

absl::Status FakeFileSystem::ReleaseDir(const Context& ctx, InodeId inode, HandleId handle) {
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckHandle(inode, handle);
  if (!s.ok()) return s;
  handles_.erase(handle);
  return absl::OkStatus();
}

absl::Status FakeFileSystem::FsyncDir(const Context& ctx, InodeId inode, HandleId handle,
                                      bool datasync) {
  absl::MutexLock lock(&mu_);
  return CheckHandle(inode, handle);
}

absl::StatusOr<struct statvfs> FakeFileSystem::StatFs(const Context& ctx, InodeId inode) {
  absl::MutexLock lock(&mu_);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  struct statvfs st {};
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_blocks = 1000;
  st.f_bfree = 600;
  st.f_bavail = 500;
  st.f_files = 100;
  st.f_ffree = 100 - nodes_.size();
  st.f_namemax = 255;
  return st;
}

absl::Status FakeFileSystem::Access(const Context& ctx, InodeId inode, uint32_t mask) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  if ((mask & W_OK) && !((*n)->st.st_mode & S_IWUSR)) return ErrnoStatus(EACCES, "fake: access");
  return absl::OkStatus();
}

absl::Status FakeFileSystem::SetXattr(const Context& ctx, InodeId inode, absl::string_view name,
                                      absl::string_view value, uint32_t flags) {
  absl::MutexLock lock(&mu_);
  Touch(ctx);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  const bool exists = (*n)->xattrs.count(std::string(name)) != 0;
  if ((flags & XATTR_CREATE) && exists) return ErrnoStatus(EEXIST, "fake: setxattr");
  if ((flags & XATTR_REPLACE) && !exists) return ErrnoStatus(ENODATA, "fake: setxattr");
  (*n)->xattrs[std::string(name)] = std::string(value);
  return absl::OkStatus();
}

absl::StatusOr<std::string> FakeFileSystem::GetXattr(const Context& ctx, InodeId inode,
                                                     absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  auto it = (*n)->xattrs.find(std::string(name));
  if (it == (*n)->xattrs.end()) return ErrnoStatus(ENODATA, "fake: getxattr");
  return it->second;
}

absl::StatusOr<std::string> FakeFileSystem::ListXattr(const Context& ctx, InodeId inode) {
  absl::MutexLock lock(&mu_);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  std::string list;
  for (const auto& [name, value] : (*n)->xattrs) {
    list += name;
    list.push_back('\0');
  }
  return list;
}

absl::Status FakeFileSystem::RemoveXattr(const Context& ctx, InodeId inode,
                                         absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto n = Find(inode);
  if (!n.ok()) return n.status();
  if ((*n)->xattrs.erase(std::string(name)) == 0) return ErrnoStatus(ENODATA, "fake: rmxattr");
  return absl::OkStatus();
}

absl::Status FakeFileSystem::Fallocate(const Context& ctx, InodeId inode, HandleId handle,
                                       uint64_t offset, uint64_t length, uint32_t mode) {
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckHandle(inode, handle);
  if (!s.ok()) return s;
  if (mode != 0) return ErrnoStatus(EOPNOTSUPP, "fake: fallocate mode");
  if (offset > kMaxFileSize || length > kMaxFileSize - offset) {
    return ErrnoStatus(EFBIG, "fake: fallocate");
  }
  Node& n = nodes_[inode];
  if (n.data.size() < offset + length) {
    n.data.resize(offset + length);
    SetSize(&n.st, n.data.size());
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FakeFileSystem::Lseek(const Context& ctx, InodeId inode,
                                               HandleId handle, uint64_t offset,
                                               uint32_t whence) {
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckHandle(inode, handle);
  if (!s.ok()) return s;
  const uint64_t size = nodes_[inode].data.size();
  if (offset >= size) return ErrnoStatus(ENXIO, "fake: lseek");
  return whence == SEEK_DATA ? offset : size;  // no holes
}

absl::StatusOr<size_t> FakeFileSystem::CopyFileRange(const Context& ctx, InodeId in_inode,
                                                     HandleId in_handle, uint64_t in_offset,
                                                     InodeId out_inode, HandleId out_handle,
                                                     uint64_t out_offset, uint64_t length,
                                                     uint64_t flags) {
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckHandle(in_inode, in_handle);
  if (s.ok()) s = CheckHandle(out_inode, out_handle);
  if (!s.ok()) return s;
  if (flags != 0) return ErrnoStatus(EINVAL, "fake: copy flags");
  const std::string src = nodes_[in_inode].data;
  if (in_offset >= src.size()) return 0;
  const size_t n = std::min<uint64_t>(length, src.size() - in_offset);
  if (out_offset > kMaxFileSize || n > kMaxFileSize - out_offset) {
    return ErrnoStatus(EFBIG, "fake: copy");
  }
  std::string& dst = nodes_[out_inode].data;
  if (dst.size() < out_offset + n) dst.resize(out_offset + n);
  dst.replace(out_offset, n, src, in_offset, n);
  SetSize(&nodes_[out_inode].st, dst.size());
  return n;
}

absl::StatusOr<FileLock> FakeFileSystem::GetLk(const Context& ctx, InodeId inode,
                                               HandleId handle, uint64_t owner,
                                               const FileLock& lock) {
  absl::MutexLock l(&mu_);
  absl::Status s = CheckHandle(inode, handle);
  if (!s.ok()) return s;
  for (const Lock& held : locks_) {
    if (held.inode == inode && held.owner != owner && Overlaps(held.lock, lock) &&
        (held.lock.type == F_WRLCK || lock.type == F_WRLCK)) {
      return held.lock;
    }
  }
  FileLock none = lock;
  none.type = F_UNLCK;
  return none;
}

absl::Status FakeFileSystem::SetLk(const Context& ctx, InodeId inode, HandleId handle,
                                   uint64_t owner, const FileLock& lock, bool wait) {
  absl::MutexLock l(&mu_);
  absl::Status s = CheckHandle(inode, handle);
  if (!s.ok()) return s;
  // Whole-range replace per owner: enough for the server's tests.
  locks_.erase(std::remove_if(locks_.begin(), locks_.end(),
                              [&](const Lock& held) {
                                return held.inode == inode && held.owner == owner;
                              }),
               locks_.end());
  if (lock.type == F_UNLCK) return absl::OkStatus();
  for (const Lock& held : locks_) {
    if (held.inode == inode && Overlaps(held.lock, lock) &&
        (held.lock.type == F_WRLCK || lock.type == F_WRLCK)) {
      // A fake cannot block; a waiting request fails like a deadlock would.
      return ErrnoStatus(wait ? EDEADLK : EAGAIN, "fake: lock held");
    }
  }
  locks_.push_back(Lock{inode, owner, lock});
  return absl::OkStatus();
}

}  // namespace coherefs::agent::fuse
