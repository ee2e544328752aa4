// FakeFileSystem is an in-memory FileSystem for tests of the FUSE server and
// its transports (server_test, dev_fuse_transport_test, the fuzzer). It keeps
// a small tree of directories, regular files, symlinks and xattrs, with
// deterministic attributes (every timestamp is kTime, ino == inode id) so
// tests can predict reply bytes exactly. It enforces no permissions beyond
// Access(W_OK) on a mode without the owner write bit (EACCES).
//
// Errors: ENOENT (no such name), ESTALE (unknown inode id), EBADF (unknown
// handle), EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ENODATA (xattr), ERANGE is
// left to the server, EAGAIN (SetLk conflict), EINVAL (bad flags), EFBIG
// (a file beyond 4 MiB).
//
// Thread-safe: one mutex around everything.
#ifndef COHEREFS_AGENT_FUSE_FAKE_FILE_SYSTEM_H_
#define COHEREFS_AGENT_FUSE_FAKE_FILE_SYSTEM_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/fuse/file_system.h"

namespace coherefs::agent::fuse {

class FakeFileSystem final : public FileSystem {
 public:
  static constexpr time_t kTime = 1700000000;
  static constexpr double kEntryTimeout = 1.5;  // entry_valid 1 s + 500000000 ns
  static constexpr double kAttrTimeout = 2.25;  // attr_valid 2 s + 250000000 ns

  FakeFileSystem();

  // Test setup and inspection, outside any FUSE session.
  InodeId AddDir(InodeId parent, const std::string& name, uint32_t mode = 0755);
  InodeId AddFile(InodeId parent, const std::string& name, const std::string& data,
                  uint32_t mode = 0644);
  InodeId AddSymlink(InodeId parent, const std::string& name, const std::string& target);
  void AddXattr(InodeId inode, const std::string& name, const std::string& value);
  // The struct stat Lookup/GetAttr would report (zeroed if unknown).
  struct stat Stat(InodeId inode) const;
  uint64_t lookups(InodeId inode) const;
  std::string data(InodeId inode) const;
  // InodeId of `name` in `parent`, 0 if none.
  InodeId Child(InodeId parent, const std::string& name) const;
  size_t open_handles() const;
  int init_calls() const;
  int destroy_calls() const;
  InitInfo init_info() const;
  Context last_context() const;
  void set_wanted_flags(uint64_t flags);
  // Lookup misses return a negative entry with this timeout when > 0,
  // NotFound otherwise (default).
  void set_negative_timeout(double seconds);
  // The next Init fails with this errno (0: succeeds).
  void set_init_errno(int err);

  // FileSystem.
  uint64_t WantedInitFlags() const override;
  absl::Status Init(const InitInfo& info) override;
  void Destroy() override;
  absl::StatusOr<Entry> Lookup(const Context& ctx, InodeId parent,
                               absl::string_view name) override;
  void Forget(InodeId inode, uint64_t nlookup) override;
  absl::StatusOr<Attr> GetAttr(const Context& ctx, InodeId inode,
                               const HandleId* handle) override;
  absl::StatusOr<Attr> SetAttr(const Context& ctx, InodeId inode, const SetAttrIn& in) override;
  absl::StatusOr<std::string> ReadLink(const Context& ctx, InodeId inode) override;
  absl::StatusOr<Entry> Symlink(const Context& ctx, InodeId parent, absl::string_view name,
                                absl::string_view target) override;
  absl::StatusOr<Entry> Mknod(const Context& ctx, InodeId parent, absl::string_view name,
                              uint32_t mode, uint32_t rdev, uint32_t umask) override;
  absl::StatusOr<Entry> Mkdir(const Context& ctx, InodeId parent, absl::string_view name,
                              uint32_t mode, uint32_t umask) override;
  absl::Status Unlink(const Context& ctx, InodeId parent, absl::string_view name) override;
  absl::Status Rmdir(const Context& ctx, InodeId parent, absl::string_view name) override;
  absl::Status Rename(const Context& ctx, InodeId parent, absl::string_view name,
                      InodeId new_parent, absl::string_view new_name, uint32_t flags) override;
  absl::StatusOr<Entry> Link(const Context& ctx, InodeId inode, InodeId new_parent,
                             absl::string_view new_name) override;
  absl::StatusOr<OpenResult> Open(const Context& ctx, InodeId inode, uint32_t flags) override;
  absl::StatusOr<std::pair<Entry, OpenResult>> Create(const Context& ctx, InodeId parent,
                                                      absl::string_view name, uint32_t mode,
                                                      uint32_t flags, uint32_t umask) override;
  absl::StatusOr<size_t> Read(const Context& ctx, InodeId inode, HandleId handle,
                              uint64_t offset, uint32_t size, IovWriter& out) override;
  absl::StatusOr<size_t> Write(const Context& ctx, InodeId inode, HandleId handle,
                               uint64_t offset, uint32_t size, uint32_t write_flags,
                               IovReader& data) override;
  absl::Status Flush(const Context& ctx, InodeId inode, HandleId handle,
                     uint64_t lock_owner) override;
  absl::Status Release(const Context& ctx, InodeId inode, HandleId handle, uint32_t flags,
                       uint64_t lock_owner, bool flush) override;
  absl::Status Fsync(const Context& ctx, InodeId inode, HandleId handle, bool datasync) override;
  absl::StatusOr<OpenResult> OpenDir(const Context& ctx, InodeId inode, uint32_t flags) override;
  absl::Status ReadDir(const Context& ctx, InodeId inode, HandleId handle, uint64_t offset,
                       bool plus, DirSink& sink) override;
  absl::Status ReleaseDir(const Context& ctx, InodeId inode, HandleId handle) override;
  absl::Status FsyncDir(const Context& ctx, InodeId inode, HandleId handle,
                        bool datasync) override;
  absl::StatusOr<struct statvfs> StatFs(const Context& ctx, InodeId inode) override;
  absl::Status Access(const Context& ctx, InodeId inode, uint32_t mask) override;
  absl::Status SetXattr(const Context& ctx, InodeId inode, absl::string_view name,
                        absl::string_view value, uint32_t flags) override;
  absl::StatusOr<std::string> GetXattr(const Context& ctx, InodeId inode,
                                       absl::string_view name) override;
  absl::StatusOr<std::string> ListXattr(const Context& ctx, InodeId inode) override;
  absl::Status RemoveXattr(const Context& ctx, InodeId inode, absl::string_view name) override;
  absl::Status Fallocate(const Context& ctx, InodeId inode, HandleId handle, uint64_t offset,
                         uint64_t length, uint32_t mode) override;
  absl::StatusOr<uint64_t> Lseek(const Context& ctx, InodeId inode, HandleId handle,
                                 uint64_t offset, uint32_t whence) override;
  absl::StatusOr<size_t> CopyFileRange(const Context& ctx, InodeId in_inode, HandleId in_handle,
                                       uint64_t in_offset, InodeId out_inode,
                                       HandleId out_handle, uint64_t out_offset,
                                       uint64_t length, uint64_t flags) override;
  absl::StatusOr<FileLock> GetLk(const Context& ctx, InodeId inode, HandleId handle,
                                 uint64_t owner, const FileLock& lock) override;
  absl::Status SetLk(const Context& ctx, InodeId inode, HandleId handle, uint64_t owner,
                     const FileLock& lock, bool wait) override;

 private:
  struct Node {
    struct stat st {};
    std::string data;  // file contents or symlink target
    std::map<std::string, InodeId> children;
    std::map<std::string, std::string> xattrs;
    uint64_t lookups = 0;
  };
  struct Lock {
    InodeId inode;
    uint64_t owner;
    FileLock lock;
  };

  absl::StatusOr<Node*> Find(InodeId inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Node*> FindDir(InodeId inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckHandle(InodeId inode, HandleId handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  InodeId NewNode(InodeId parent, const std::string& name, uint32_t mode)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Entry MakeEntry(InodeId inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);  // counts a lookup
  absl::StatusOr<Entry> MakeNode(const Context& ctx, InodeId parent, absl::string_view name,
                                 uint32_t mode, const std::string& data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Touch(const Context& ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<InodeId, Node> nodes_ ABSL_GUARDED_BY(mu_);
  std::map<HandleId, InodeId> handles_ ABSL_GUARDED_BY(mu_);
  std::vector<Lock> locks_ ABSL_GUARDED_BY(mu_);
  InodeId next_inode_ ABSL_GUARDED_BY(mu_) = 2;
  HandleId next_handle_ ABSL_GUARDED_BY(mu_) = 100;
  uint64_t wanted_flags_ ABSL_GUARDED_BY(mu_) = 0;
  double negative_timeout_ ABSL_GUARDED_BY(mu_) = 0;
  int init_errno_ ABSL_GUARDED_BY(mu_) = 0;
  int init_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int destroy_calls_ ABSL_GUARDED_BY(mu_) = 0;
  InitInfo init_info_ ABSL_GUARDED_BY(mu_);
  Context last_context_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coherefs::agent::fuse

#endif  // COHEREFS_AGENT_FUSE_FAKE_FILE_SYSTEM_H_
