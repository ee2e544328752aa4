#include "agent/coherence/coherent_fs.h"

#include <errno.h>
#include <linux/fuse.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/errno_status.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace coherefs::agent::coherence {

using fuse::Attr;
using fuse::Context;
using fuse::Entry;
using fuse::HandleId;
using fuse::InodeId;
using fuse::OpenResult;

// Leases the entries of a READDIRPLUS reply: the names on the directory's
// slot, each entry's attributes on its own.
class CoherentFs::LeaseSink final : public fuse::DirSink {
 public:
  LeaseSink(CoherentFs* fs, const Context& ctx, InodeId dir_inode, Seen dir,
            fuse::DirSink* out)
      : fs_(fs), ctx_(ctx), dir_inode_(dir_inode), dir_(dir), out_(out) {}

  bool Add(const fuse::DirEntry& entry, const Entry* plus) override {
    if (plus == nullptr || plus->inode == 0) return out_->Add(entry, plus);
    Entry leased = *plus;
    fs_->LeaseEntry(ctx_, dir_inode_, dir_, &leased);
    if (!out_->Add(entry, &leased)) return false;  // the inner fs undoes it
    fs_->CountLookup(leased.inode);
    return true;
  }

 private:
  CoherentFs* const fs_;
  const Context& ctx_;
  const InodeId dir_inode_;
  const Seen dir_;
  fuse::DirSink* const out_;
};

CoherentFs::CoherentFs(fuse::FileSystem* inner, KeySource keys, VolumeCoherence* volume)
    : inner_(inner), keys_(std::move(keys)), volume_(volume), guest_(volume->NewGuest()) {
  absl::MutexLock lock(&mu_);
  inodes_[fuse::kRootInode].nlookup = 1;  // the root is never forgotten
}

size_t CoherentFs::TrackedInodes() const {
  absl::MutexLock lock(&mu_);
  return inodes_.size();
}

// ------------------------------------------------------------- helpers

std::optional<uint32_t> CoherentFs::SlotOf(InodeId inode, InodeId parent) {
  {
    absl::MutexLock lock(&mu_);
    auto it = inodes_.find(inode);
    if (it != inodes_.end() && it->second.slot.has_value()) return it->second.slot;
  }
  absl::StatusOr<std::string> key = keys_.key_of(inode);
  if (!key.ok()) return std::nullopt;
  // A name nobody resolved yet is usually one of many in its directory
  // (ls -l, find, a build): resolve them all in one round trip.
  if (parent != 0 && !volume_->CachedSlot(*key).has_value()) PrefetchChildren(parent);
  absl::StatusOr<uint32_t> slot = volume_->SlotForKey(*key);
  if (!slot.ok()) {
    LOG_DEBUG("no slot for inode; no lease")
        .Kv("volume", volume_->options().volume)
        .Kv("inode", inode)
        .Kv("status", slot.status());
    return std::nullopt;
  }
  absl::MutexLock lock(&mu_);
  auto it = inodes_.find(inode);
  // Only inodes the guest holds are tracked (Forget removes them).
  if (it != inodes_.end()) it->second.slot = *slot;
  return *slot;
}

namespace {

bool RetryableLookup(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsFailedPrecondition(s) ||
         absl::IsCancelled(s) || absl::IsDeadlineExceeded(s);
}

}  // namespace

absl::StatusOr<uint32_t> CoherentFs::SlotForChangedKey(const std::string& key) {
  // A change's slot lookup may race a coordinator restart (BeforeChange saw
  // the volume unfenced just before): ask again, as a strict bump does, for
  // up to the change timeout. Found by tests/faults:kill_loop_test (a rename
  // got EIO right after a coordinator SIGKILL).
  const absl::Time deadline = absl::Now() + volume_->options().change_timeout;
  absl::Duration backoff = absl::Milliseconds(20);
  absl::StatusOr<uint32_t> slot = volume_->SlotForKey(key);
  while (!slot.ok() && RetryableLookup(slot.status()) && absl::Now() + backoff < deadline) {
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Milliseconds(500));
    slot = volume_->SlotForKey(key);
  }
  return slot;
}

absl::StatusOr<uint32_t> CoherentFs::SlotForChange(InodeId inode) {
  if (std::optional<uint32_t> slot = SlotOf(inode); slot.has_value()) return *slot;
  absl::StatusOr<std::string> key = keys_.key_of(inode);
  absl::StatusOr<uint32_t> slot = key.ok() ? SlotForChangedKey(*key) : key.status();
  if (!slot.ok()) {
    return ErrnoStatus(EIO, absl::StrCat("volume ", volume_->options().volume,
                                         ": no version slot for inode ", inode,
                                         " (coordinator unreachable?): ",
                                         slot.status().message()));
  }
  return *slot;
}

void CoherentFs::PrefetchChildren(InodeId dir) {
  // Slot allocation is durable at the coordinator (an fsync per call), so
  // one call per directory instead of one per name matters.
  constexpr size_t kMaxPrefetch = 65536;
  // Fenced, resolving fails anyway: do not list the directory for nothing.
  if (!keys_.child_keys || volume_->fenced()) return;
  {
    absl::MutexLock lock(&mu_);
    auto [it, first] = prefetched_.emplace(dir, false);
    if (!first) {
      // Another request is resolving this directory: wait for its batch
      // rather than racing it with one call per name.
      auto done = [this, dir]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        auto found = prefetched_.find(dir);
        return found == prefetched_.end() || found->second;
      };
      mu_.Await(absl::Condition(&done));
      return;
    }
  }
  absl::StatusOr<std::vector<std::string>> keys = keys_.child_keys(dir, kMaxPrefetch);
  absl::Status s = keys.ok() ? volume_->Prefetch(*keys) : keys.status();
  absl::MutexLock lock(&mu_);
  if (s.ok()) {
    prefetched_[dir] = true;
  } else {
    LOG_DEBUG("prefetch of a directory's slots failed")
        .Kv("volume", volume_->options().volume)
        .Kv("status", s);
    prefetched_.erase(dir);  // waiters resolve their own names; retry later
  }
}

CoherentFs::Seen CoherentFs::See(InodeId inode, InodeId parent) {
  Seen seen;
  seen.slot = SlotOf(inode, parent);
  if (seen.slot.has_value()) seen.version = volume_->Version(*seen.slot);
  return seen;
}

absl::StatusOr<std::optional<uint32_t>> CoherentFs::ChildSlot(const Context& ctx,
                                                              InodeId parent,
                                                              absl::string_view name) {
  absl::StatusOr<Entry> child = inner_->Lookup(ctx, parent, name);
  if (!child.ok()) {
    if (absl::IsNotFound(child.status())) return std::optional<uint32_t>();
    return child.status();
  }
  if (child->inode == 0) return std::optional<uint32_t>();  // negative entry
  absl::StatusOr<std::string> key = keys_.key_of(child->inode);
  inner_->Forget(child->inode, 1);
  RETURN_IF_ERROR(key.status());
  absl::StatusOr<uint32_t> slot = SlotForChangedKey(*key);
  if (!slot.ok()) {
    return ErrnoStatus(EIO, absl::StrCat("volume ", volume_->options().volume,
                                         ": no version slot for ", name, ": ",
                                         slot.status().message()));
  }
  return std::optional<uint32_t>(*slot);
}

double CoherentFs::Lease(const Seen& seen, double inner_timeout_s) {
  if (!seen.slot.has_value() || inner_timeout_s <= 0) return 0;
  // Caps beyond a day are the same as a day (cache=always's 86400 s).
  const auto cap = std::chrono::milliseconds(
      static_cast<int64_t>(std::min(inner_timeout_s, 86400.0) * 1000));
  std::chrono::milliseconds lease = volume_->Grant(guest_, *seen.slot, seen.version, cap);
  return static_cast<double>(lease.count()) / 1000.0;
}

void CoherentFs::CountLookup(InodeId inode) {
  if (inode == 0) return;
  absl::MutexLock lock(&mu_);
  ++inodes_[inode].nlookup;
}

void CoherentFs::LeaseEntry(const Context& ctx, InodeId dir, const Seen& parent,
                            Entry* entry) {
  const Seen child = See(entry->inode, dir);
  if (child.slot.has_value()) {
    // The attributes the inner lookup read may predate the version just
    // loaded; read them again so the lease covers nothing older.
    absl::StatusOr<Attr> fresh = inner_->GetAttr(ctx, entry->inode, nullptr);
    if (fresh.ok()) {
      entry->st = fresh->st;
    } else {
      entry->attr_timeout_s = 0;
      entry->entry_timeout_s = 0;
      return;
    }
  }
  entry->attr_timeout_s = Lease(child, entry->attr_timeout_s);
  entry->entry_timeout_s = Lease(parent, entry->entry_timeout_s);
}

absl::Status CoherentFs::Changed(std::vector<uint32_t> slots) {
  return volume_->AfterChange(guest_, std::move(slots));
}

uint32_t CoherentFs::OpenFlags(InodeId inode, const Seen& seen, uint32_t flags) {
  const bool fenced = volume_->fenced();
  absl::MutexLock lock(&mu_);
  InodeState& state = inodes_[inode];
  const bool keep = seen.slot.has_value() && !fenced && state.open_version.has_value() &&
                    *state.open_version == seen.version;
  if (seen.slot.has_value() && !fenced) {
    state.open_version = seen.version;
  } else {
    state.open_version.reset();
  }
  if (!keep) flags &= ~static_cast<uint32_t>(FOPEN_KEEP_CACHE);
  return flags;
}

// ------------------------------------------------------ session, reads

uint64_t CoherentFs::WantedInitFlags() const { return inner_->WantedInitFlags(); }

absl::Status CoherentFs::Init(const fuse::InitInfo& info) { return inner_->Init(info); }

void CoherentFs::Destroy() {
  inner_->Destroy();
  absl::MutexLock lock(&mu_);
  inodes_.clear();
  prefetched_.clear();
  inodes_[fuse::kRootInode].nlookup = 1;
}

absl::StatusOr<Entry> CoherentFs::Lookup(const Context& ctx, InodeId parent,
                                         absl::string_view name) {
  const Seen dir = See(parent);
  ASSIGN_OR_RETURN(Entry entry, inner_->Lookup(ctx, parent, name));
  if (entry.inode == 0) {
    // A negative entry: "no such name" is a lease on the directory.
    entry.entry_timeout_s = Lease(dir, entry.entry_timeout_s);
    return entry;
  }
  CountLookup(entry.inode);
  LeaseEntry(ctx, parent, dir, &entry);
  return entry;
}

void CoherentFs::Forget(InodeId inode, uint64_t nlookup) {
  inner_->Forget(inode, nlookup);
  if (inode == fuse::kRootInode) return;
  absl::MutexLock lock(&mu_);
  auto it = inodes_.find(inode);
  if (it == inodes_.end()) return;
  if (it->second.nlookup <= nlookup) {
    inodes_.erase(it);
  } else {
    it->second.nlookup -= nlookup;
  }
}

absl::StatusOr<Attr> CoherentFs::GetAttr(const Context& ctx, InodeId inode,
                                         const HandleId* handle) {
  const Seen seen = See(inode);
  ASSIGN_OR_RETURN(Attr attr, inner_->GetAttr(ctx, inode, handle));
  attr.timeout_s = Lease(seen, attr.timeout_s);
  return attr;
}

absl::StatusOr<std::string> CoherentFs::ReadLink(const Context& ctx, InodeId inode) {
  // A symlink's target never changes (retargeting makes a new inode).
  return inner_->ReadLink(ctx, inode);
}

absl::StatusOr<OpenResult> CoherentFs::Open(const Context& ctx, InodeId inode,
                                            uint32_t flags) {
  const bool truncates = (flags & O_TRUNC) != 0;
  std::optional<uint32_t> slot;
  if (truncates) {
    RETURN_IF_ERROR(volume_->BeforeChange());
    ASSIGN_OR_RETURN(slot, SlotForChange(inode));
  }
  const Seen seen = See(inode);
  ASSIGN_OR_RETURN(OpenResult result, inner_->Open(ctx, inode, flags));
  result.open_flags = OpenFlags(inode, seen, result.open_flags);
  if (truncates) {
    absl::Status changed = Changed({*slot});
    if (!changed.ok()) {
      inner_->Release(ctx, inode, result.handle, flags, 0, false).IgnoreError();
      return changed;
    }
  }
  return result;
}

absl::StatusOr<size_t> CoherentFs::Read(const Context& ctx, InodeId inode, HandleId handle,
                                        uint64_t offset, uint32_t size, IovWriter& out) {
  return inner_->Read(ctx, inode, handle, offset, size, out);
}

absl::Status CoherentFs::Flush(const Context& ctx, InodeId inode, HandleId handle,
                               uint64_t lock_owner) {
  return inner_->Flush(ctx, inode, handle, lock_owner);
}

absl::Status CoherentFs::Release(const Context& ctx, InodeId inode, HandleId handle,
                                 uint32_t flags, uint64_t lock_owner, bool flush) {
  return inner_->Release(ctx, inode, handle, flags, lock_owner, flush);
}

absl::Status CoherentFs::Fsync(const Context& ctx, InodeId inode, HandleId handle,
                               bool datasync) {
  return inner_->Fsync(ctx, inode, handle, datasync);
}

absl::StatusOr<OpenResult> CoherentFs::OpenDir(const Context& ctx, InodeId inode,
                                               uint32_t flags) {
  const Seen seen = See(inode);
  ASSIGN_OR_RETURN(OpenResult result, inner_->OpenDir(ctx, inode, flags));
  // A listing usually comes next (READDIRPLUS looks every entry up).
  PrefetchChildren(inode);
  result.open_flags = OpenFlags(inode, seen, result.open_flags);
  return result;
}

absl::Status CoherentFs::ReadDir(const Context& ctx, InodeId inode, HandleId handle,
                                 uint64_t offset, bool plus, fuse::DirSink& sink) {
  if (!plus) return inner_->ReadDir(ctx, inode, handle, offset, plus, sink);
  LeaseSink leased(this, ctx, inode, See(inode), &sink);
  return inner_->ReadDir(ctx, inode, handle, offset, plus, leased);
}

absl::Status CoherentFs::ReleaseDir(const Context& ctx, InodeId inode, HandleId handle) {
  return inner_->ReleaseDir(ctx, inode, handle);
}

absl::Status CoherentFs::FsyncDir(const Context& ctx, InodeId inode, HandleId handle,
                                  bool datasync) {
  return inner_->FsyncDir(ctx, inode, handle, datasync);
}

absl::StatusOr<struct statvfs> CoherentFs::StatFs(const Context& ctx, InodeId inode) {
  return inner_->StatFs(ctx, inode);
}

absl::Status CoherentFs::Access(const Context& ctx, InodeId inode, uint32_t mask) {
  return inner_->Access(ctx, inode, mask);
}

absl::StatusOr<std::string> CoherentFs::GetXattr(const Context& ctx, InodeId inode,
                                                 absl::string_view name) {
  return inner_->GetXattr(ctx, inode, name);
}

absl::StatusOr<std::string> CoherentFs::ListXattr(const Context& ctx, InodeId inode) {
  return inner_->ListXattr(ctx, inode);
}

absl::StatusOr<uint64_t> CoherentFs::Lseek(const Context& ctx, InodeId inode, HandleId handle,
                                           uint64_t offset, uint32_t whence) {
  return inner_->Lseek(ctx, inode, handle, offset, whence);
}

absl::StatusOr<fuse::FileLock> CoherentFs::GetLk(const Context& ctx, InodeId inode,
                                                 HandleId handle, uint64_t owner,
                                                 const fuse::FileLock& lock) {
  return inner_->GetLk(ctx, inode, handle, owner, lock);
}

absl::Status CoherentFs::SetLk(const Context& ctx, InodeId inode, HandleId handle,
                               uint64_t owner, const fuse::FileLock& lock, bool wait) {
  return inner_->SetLk(ctx, inode, handle, owner, lock, wait);
}

// ------------------------------------------------------------- changes
//
// Each follows one pattern: refuse early if strict mode cannot announce the
// change (BeforeChange), find the slots whose cached state the change
// alters, apply it, bump them (Changed). Replies carry zero timeouts.

absl::StatusOr<Attr> CoherentFs::SetAttr(const Context& ctx, InodeId inode,
                                         const fuse::SetAttrIn& in) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t slot, SlotForChange(inode));
  ASSIGN_OR_RETURN(Attr attr, inner_->SetAttr(ctx, inode, in));
  RETURN_IF_ERROR(Changed({slot}));
  attr.timeout_s = 0;
  return attr;
}

absl::StatusOr<size_t> CoherentFs::Write(const Context& ctx, InodeId inode, HandleId handle,
                                         uint64_t offset, uint32_t size, uint32_t write_flags,
                                         IovReader& data) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t slot, SlotForChange(inode));
  ASSIGN_OR_RETURN(size_t written,
                   inner_->Write(ctx, inode, handle, offset, size, write_flags, data));
  RETURN_IF_ERROR(Changed({slot}));
  return written;
}

absl::StatusOr<Entry> CoherentFs::Symlink(const Context& ctx, InodeId parent,
                                          absl::string_view name, absl::string_view target) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t dir, SlotForChange(parent));
  ASSIGN_OR_RETURN(Entry entry, inner_->Symlink(ctx, parent, name, target));
  CountLookup(entry.inode);
  entry.entry_timeout_s = entry.attr_timeout_s = 0;
  RETURN_IF_ERROR(Changed({dir}));
  return entry;
}

absl::StatusOr<Entry> CoherentFs::Mknod(const Context& ctx, InodeId parent,
                                        absl::string_view name, uint32_t mode, uint32_t rdev,
                                        uint32_t umask) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t dir, SlotForChange(parent));
  ASSIGN_OR_RETURN(Entry entry, inner_->Mknod(ctx, parent, name, mode, rdev, umask));
  CountLookup(entry.inode);
  entry.entry_timeout_s = entry.attr_timeout_s = 0;
  RETURN_IF_ERROR(Changed({dir}));
  return entry;
}

absl::StatusOr<Entry> CoherentFs::Mkdir(const Context& ctx, InodeId parent,
                                        absl::string_view name, uint32_t mode,
                                        uint32_t umask) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t dir, SlotForChange(parent));
  ASSIGN_OR_RETURN(Entry entry, inner_->Mkdir(ctx, parent, name, mode, umask));
  CountLookup(entry.inode);
  entry.entry_timeout_s = entry.attr_timeout_s = 0;
  RETURN_IF_ERROR(Changed({dir}));
  return entry;
}

absl::StatusOr<std::pair<Entry, OpenResult>> CoherentFs::Create(const Context& ctx,
                                                                InodeId parent,
                                                                absl::string_view name,
                                                                uint32_t mode, uint32_t flags,
                                                                uint32_t umask) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t dir, SlotForChange(parent));
  // Without O_EXCL an existing file is opened (and with O_TRUNC emptied):
  // bump it too when it exists.
  std::optional<uint32_t> existing;
  if ((flags & O_EXCL) == 0) {
    ASSIGN_OR_RETURN(existing, ChildSlot(ctx, parent, name));
  }
  ASSIGN_OR_RETURN(auto created, inner_->Create(ctx, parent, name, mode, flags, umask));
  CountLookup(created.first.inode);
  created.first.entry_timeout_s = created.first.attr_timeout_s = 0;
  // A fresh file: this guest's page cache of it is empty and current.
  created.second.open_flags &= ~static_cast<uint32_t>(FOPEN_KEEP_CACHE);
  std::vector<uint32_t> slots = {dir};
  if (existing.has_value()) slots.push_back(*existing);
  absl::Status changed = Changed(std::move(slots));
  if (!changed.ok()) {
    inner_->Release(ctx, created.first.inode, created.second.handle, flags, 0, false)
        .IgnoreError();
    Forget(created.first.inode, 1);
    return changed;
  }
  return created;
}

absl::StatusOr<Entry> CoherentFs::Link(const Context& ctx, InodeId inode, InodeId new_parent,
                                       absl::string_view new_name) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t dir, SlotForChange(new_parent));
  ASSIGN_OR_RETURN(uint32_t file, SlotForChange(inode));
  ASSIGN_OR_RETURN(Entry entry, inner_->Link(ctx, inode, new_parent, new_name));
  CountLookup(entry.inode);
  entry.entry_timeout_s = entry.attr_timeout_s = 0;
  RETURN_IF_ERROR(Changed({dir, file}));
  return entry;
}

absl::Status CoherentFs::Unlink(const Context& ctx, InodeId parent, absl::string_view name) {
  return RemoveEntry(ctx, parent, name, [&] { return inner_->Unlink(ctx, parent, name); });
}

absl::Status CoherentFs::Rmdir(const Context& ctx, InodeId parent, absl::string_view name) {
  return RemoveEntry(ctx, parent, name, [&] { return inner_->Rmdir(ctx, parent, name); });
}

absl::Status CoherentFs::RemoveEntry(const Context& ctx, InodeId parent,
                                     absl::string_view name,
                                     const std::function<absl::Status()>& remove) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t dir, SlotForChange(parent));
  ASSIGN_OR_RETURN(std::optional<uint32_t> child, ChildSlot(ctx, parent, name));
  RETURN_IF_ERROR(remove());
  std::vector<uint32_t> slots = {dir};
  // The removed file's link count (it lives on while open or linked).
  if (child.has_value()) slots.push_back(*child);
  return Changed(std::move(slots));
}

absl::Status CoherentFs::Rename(const Context& ctx, InodeId parent, absl::string_view name,
                                InodeId new_parent, absl::string_view new_name,
                                uint32_t flags) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t from_dir, SlotForChange(parent));
  ASSIGN_OR_RETURN(uint32_t to_dir, SlotForChange(new_parent));
  // The moved file (its ctime, and ".." of a directory) and the file it
  // replaces (its link count), if any.
  ASSIGN_OR_RETURN(std::optional<uint32_t> moved, ChildSlot(ctx, parent, name));
  ASSIGN_OR_RETURN(std::optional<uint32_t> replaced, ChildSlot(ctx, new_parent, new_name));
  RETURN_IF_ERROR(inner_->Rename(ctx, parent, name, new_parent, new_name, flags));
  std::vector<uint32_t> slots = {from_dir, to_dir};
  if (moved.has_value()) slots.push_back(*moved);
  if (replaced.has_value()) slots.push_back(*replaced);
  return Changed(std::move(slots));
}

absl::Status CoherentFs::SetXattr(const Context& ctx, InodeId inode, absl::string_view name,
                                  absl::string_view value, uint32_t flags) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t slot, SlotForChange(inode));
  RETURN_IF_ERROR(inner_->SetXattr(ctx, inode, name, value, flags));
  return Changed({slot});
}

absl::Status CoherentFs::RemoveXattr(const Context& ctx, InodeId inode,
                                     absl::string_view name) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t slot, SlotForChange(inode));
  RETURN_IF_ERROR(inner_->RemoveXattr(ctx, inode, name));
  return Changed({slot});
}

absl::Status CoherentFs::Fallocate(const Context& ctx, InodeId inode, HandleId handle,
                                   uint64_t offset, uint64_t length, uint32_t mode) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t slot, SlotForChange(inode));
  RETURN_IF_ERROR(inner_->Fallocate(ctx, inode, handle, offset, length, mode));
  return Changed({slot});
}

absl::StatusOr<size_t> CoherentFs::CopyFileRange(const Context& ctx, InodeId in_inode,
                                                 HandleId in_handle, uint64_t in_offset,
                                                 InodeId out_inode, HandleId out_handle,
                                                 uint64_t out_offset, uint64_t length,
                                                 uint64_t flags) {
  RETURN_IF_ERROR(volume_->BeforeChange());
  ASSIGN_OR_RETURN(uint32_t slot, SlotForChange(out_inode));
  ASSIGN_OR_RETURN(size_t copied,
                   inner_->CopyFileRange(ctx, in_inode, in_handle, in_offset, out_inode,
                                         out_handle, out_offset, length, flags));
  RETURN_IF_ERROR(Changed({slot}));
  return copied;
}

}  // namespace coherefs::agent::coherence
