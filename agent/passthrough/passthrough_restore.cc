// PassthroughFs's restart path: the node ids and handles a guest holds, read
// back from the NodeJournal and reopened by file handle (see "Restarts" in
// passthrough_fs.h).
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "agent/passthrough/host_ops.h"
#include "agent/passthrough/passthrough_fs.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace coherefs::agent::passthrough {

namespace {

constexpr uint64_t kSessionWriteback = 1;  // as in passthrough_fs.cc

void NoteError(RestoreReport* report, const absl::Status& status) {
  if (report->first_error.ok() && ErrnoFromStatus(status) != ESTALE) {
    report->first_error = status;
  }
}

// The live fd of a journaled node, or the reason it cannot be trusted.
absl::StatusOr<UniqueFd> ReopenNode(int mount_fd, uint64_t root_mnt_id,
                                    const NodeJournal::NodeRecord& n, InodeKey* key) {
  // Handles are only meaningful on the mount they came from; a node from a
  // mount inside the share has no mount fd here.
  if (n.mnt_id != root_mnt_id) return ErrnoStatus(ESTALE, "restore: node on another mount");
  ASSIGN_OR_RETURN(UniqueFd fd, OpenByFileKey(mount_fd, n.file_key, O_PATH | O_NOFOLLOW));
  struct stat st;
  RETURN_IF_ERROR(StatPathFd(fd.get(), &st, key));
  // File handles carry a generation, so a reused inode number is ESTALE
  // already; checking dev/ino/type as well guards against a journal written
  // for another file system.
  if (key->dev != n.dev || key->ino != n.ino || (st.st_mode & S_IFMT) != n.type) {
    return ErrnoStatus(ESTALE, "restore: handle names another inode");
  }
  return fd;
}

}  // namespace

void PassthroughFs::RestoreFromJournal(int root_fd, const InodeKey& root_key) {
  absl::StatusOr<NodeJournal::Snapshot> snap = journal_->Read();
  journal_->Reset(root_key.mnt_id);
  inodes_.SetJournal(journal_.get());
  if (!snap.ok()) {
    restore_report_.status = snap.status();
    return;
  }
  RestoreReport& r = restore_report_;
  r.skipped = snap->corrupt_slots;
  r.incomplete = snap->incomplete;
  const uint64_t root_mnt = snap->root_mnt_id;
  // open_by_handle_at takes no O_PATH fd as its mount fd (EBADF).
  UniqueFd mount_fd(openat(proc_self_fd_.get(), FdName(root_fd).c_str(),
                           O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!mount_fd) NoteError(&r, LastErrnoStatus("restore: open the share root"));

  for (const NodeJournal::NodeRecord& n : snap->nodes) {
    if (n.id <= fuse::kRootInode) {
      ++r.skipped;
      continue;
    }
    InodeKey key;
    absl::StatusOr<UniqueFd> fd = ReopenNode(mount_fd.get(), root_mnt, n, &key);
    if (!fd.ok()) NoteError(&r, fd.status());
    const bool live = fd.ok();
    if (!live) key = InodeKey{n.dev, n.ino, n.mnt_id};
    UniqueFd owned = live ? std::move(*fd) : UniqueFd();
    if (!inodes_.Restore(n.id, n.generation, n.nlookup, std::move(owned), key,
                         static_cast<mode_t>(n.type), n.file_key)) {
      ++r.skipped;  // duplicate id or key: only a damaged journal has them
      continue;
    }
    ++(live ? r.nodes : r.stale_nodes);
  }
  inodes_.ReserveIdsThrough(snap->max_node_id);
  RestoreHandles(*snap);
  writeback_.store((snap->session_flags & kSessionWriteback) != 0 && options_.writeback &&
                   !options_.readonly);
  journal_->SetSessionFlags(writeback_.load() ? kSessionWriteback : 0);
}

void PassthroughFs::RestoreHandles(const NodeJournal::Snapshot& snap) {
  RestoreReport& r = restore_report_;
  absl::MutexLock lock(&handles_mu_);
  fuse::HandleId max_id = snap.max_handle_id;
  for (const NodeJournal::HandleRecord& h : snap.handles) {
    if (h.id == 0 || handles_.contains(h.id)) {
      ++r.skipped;
      continue;
    }
    auto handle = std::make_shared<Handle>();
    handle->inode = h.node;
    handle->is_dir = h.is_dir;
    int flags = static_cast<int>(h.flags) & ~(O_CREAT | O_EXCL | O_TRUNC);
    if (h.is_dir) flags = O_RDONLY | O_DIRECTORY;
    // Through the restored node's O_PATH fd: the handle reopens exactly the
    // inode the node names (a stale or unknown node leaves it stale).
    absl::StatusOr<InodeRef> node = GetInode(h.node);
    if (node.ok()) {
      absl::StatusOr<UniqueFd> fd = Reopen(**node, flags);
      if (fd.ok()) {
        handle->fd = std::move(*fd);
      } else {
        NoteError(&r, fd.status());
      }
    }
    ++(handle->fd ? r.handles : r.stale_handles);
    NodeJournal::HandleRecord rec = h;
    rec.flags = static_cast<uint32_t>(flags);
    handle->jslot = journal_->AddHandle(rec);
    handles_[h.id] = std::move(handle);
    max_id = std::max<fuse::HandleId>(max_id, h.id);
  }
  next_handle_ = std::max(next_handle_, max_id + 1);
  journal_->NoteIds(0, max_id);
}

}  // namespace coherefs::agent::passthrough
