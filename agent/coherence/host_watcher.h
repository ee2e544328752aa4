// HostWatcher: detects metadata changes made directly on a volume's backing
// directory, outside any guest (a host process editing the shared tree), and
// reports the file keys of the objects whose cached metadata changed, so the
// agent can bump their slots (DESIGN.md "The coherence contract": whoever
// changes metadata bumps).
//
// How. One fanotify group (fanotify(7), Linux >= 5.17) with
// FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_FID |
// FAN_REPORT_TARGET_FID (TARGET_FID makes CREATE/DELETE/MOVED_* carry the
// child's handle, which a delete or rename also changes), and an INODE mark
// (FAN_EVENT_ON_CHILD | FAN_ONDIR) on every directory of the tree: marked at
// Start(), and as directories are created or moved in (their contents are
// scanned and reported, so entries made before the mark are not missed).
// A marked directory that moves out of the tree is unmarked with its
// subtree. No FAN_MARK_FILESYSTEM / FAN_MARK_MOUNT: only this tree is seen.
//
// Events and the keys they produce:
//   ATTRIB, MODIFY, CLOSE_WRITE on an object      -> the object's key
//   CREATE, DELETE, MOVED_FROM, MOVED_TO in a dir -> the dir's and child's key
//   a directory created or moved in               -> also every entry under it
//   DELETE_SELF, MOVE_SELF                        -> mark bookkeeping (and the
//                                                    dir's key)
//   FAN_Q_OVERFLOW (events lost)                  -> on_overflow(), and the
//                                                    tree is re-marked
// File key: u32 little-endian handle_type | f_handle bytes, the bytes
// name_to_handle_at(fd, "", &fh, &mount_id, AT_EMPTY_PATH) gives for the
// object (PassthroughFs::FileKey). fanotify encodes the same handle on ext4
// (checked by the tests, which compare against name_to_handle_at).
//
// Limits (what is NOT reported):
//  - events caused by processes whose tgid is in `ignore_pids` (by default
//    this process: the agent bumps its own passthrough changes). They still
//    drive mark bookkeeping, so a directory the agent creates is watched.
//    A helper process of the agent that is not listed is reported.
//  - a subtree mounted over a directory of the tree (another st_dev) is not
//    walked or marked; a mount placed after Start() hides its changes too.
//  - the inode replaced by a rename over an existing name: its link count
//    drops, but the kernel tells only marks on that inode (the directory
//    and the moved object are reported).
//  - a hard link to a file in the tree changed through a path outside the
//    tree (no mark sees it), and writes through a shared mmap (no MODIFY;
//    CLOSE_WRITE covers the close).
//  - changes queued when Stop() runs are dropped.
// Privileges. As root (the agent) the group is unlimited. Without
// CAP_SYS_ADMIN, Start() fails with PermissionDenied (EPERM from
// fanotify_init: the UNLIMITED flags are privileged); the agent then logs
// and runs without the watcher, or may retry with `unlimited = false`,
// which unprivileged fanotify accepts (Linux >= 5.13; tested as `nobody`).
// A bounded group has a queue of /proc/sys/fs/fanotify/max_queued_events
// (16384 here; more -> FAN_Q_OVERFLOW -> on_overflow) and at most
// max_user_marks marks (a failed mark -> metrics.mark_errors, on_overflow);
// it reports pid 0 for other processes' events (seen on this kernel), so
// only this process's own changes can be ignored; and marking a new
// directory needs CAP_DAC_READ_SEARCH (open_by_handle_at), failing ->
// on_overflow too.
//
// Ownership: owns its fanotify fd, an eventfd, a descriptor of the shared
// directory and one thread; the callbacks are copied.
// Thread-safety: callbacks run on the watcher's thread, one at a time, never
// after Stop() returns; they must not call Stop() (it joins that thread).
// Stop() and metrics() are thread-safe.
// Errors (Start): InvalidArgument for an empty or relative path, a null
// callback or max_batch 0; NotFound (ENOENT) / FailedPrecondition (ENOTDIR)
// for a missing directory; the errno status of fanotify_init / fanotify_mark
// / name_to_handle_at otherwise (PermissionDenied for EPERM).
#ifndef COHEREFS_AGENT_COHERENCE_HOST_WATCHER_H_
#define COHEREFS_AGENT_COHERENCE_HOST_WATCHER_H_

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

struct fanotify_event_metadata;  // <sys/fanotify.h>

namespace coherefs::agent::coherence {

struct HostWatcherOptions {
  // Absolute path of the volume's backing directory. Required.
  std::string shared_dir;
  // Event originators (tgids) whose changes are not reported. Default: this
  // process.
  absl::flat_hash_set<pid_t> ignore_pids = {::getpid()};
  // A batch is delivered this long after its first event. Default 5 ms.
  absl::Duration coalesce = absl::Milliseconds(5);
  // ... or as soon as it holds this many distinct keys. Default 4096.
  size_t max_batch = 4096;
  // FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS (needs CAP_SYS_ADMIN).
  // Default true; false gives the kernel's bounded queue and marks.
  bool unlimited = true;
};

// Counters for the metrics endpoint (relaxed atomics; read any time).
struct HostWatcherMetrics {
  std::atomic<uint64_t> events{0};          // fanotify events read
  std::atomic<uint64_t> ignored_events{0};  // of those, from ignore_pids
  std::atomic<uint64_t> batches{0};         // on_changes calls
  std::atomic<uint64_t> keys{0};            // keys delivered
  std::atomic<uint64_t> overflows{0};       // on_overflow calls
  std::atomic<uint64_t> marks{0};           // directories marked now (gauge)
  std::atomic<uint64_t> mark_errors{0};     // directories that could not be
                                            // marked or unmarked
};

class HostWatcher {
 public:
  using Options = HostWatcherOptions;
  // Distinct keys whose metadata changed (no order).
  using ChangeCallback = std::function<void(std::vector<std::string> keys)>;
  // Events were lost: treat every key of the volume as changed.
  using OverflowCallback = std::function<void()>;

  // Marks the tree and starts the watcher thread.
  static absl::StatusOr<std::unique_ptr<HostWatcher>> Start(Options options,
                                                            ChangeCallback on_changes,
                                                            OverflowCallback on_overflow);

  ~HostWatcher();  // Stop()
  HostWatcher(const HostWatcher&) = delete;
  HostWatcher& operator=(const HostWatcher&) = delete;

  // Wakes and joins the watcher thread, closes the descriptors. Idempotent.
  void Stop();

  const HostWatcherMetrics& metrics() const { return metrics_; }

 private:
  struct Batch;

  HostWatcher(Options options, ChangeCallback on_changes, OverflowCallback on_overflow);

  absl::Status Init();
  void Run();
  // Reads what the fanotify fd holds now into `batch`; false on a fatal
  // read error (logged).
  bool ReadEvents(Batch* batch);
  // `event`: the metadata, copied out; `raw`: where it starts in the read
  // buffer (its info records follow).
  void HandleEvent(const struct fanotify_event_metadata& event, const char* raw, Batch* batch);
  void Deliver(Batch* batch);
  // Events were lost (queue overflow, or a directory we could not mark):
  // delivers the batch, then on_overflow(); with `remark`, marks the whole
  // tree again (directories made while events were lost).
  void Overflow(absl::string_view why, const absl::Status& status, bool remark, Batch* batch);

  // Visits `dir` and the directories below it, depth first, skipping other
  // file systems (mounts) and not following symlinks; entries that vanish
  // meanwhile are skipped. `visit(fd, key)` returns false to skip that
  // directory's subtree, or an error that ends the walk. With `found`, the
  // key of every entry below `dir` (not `dir` itself) is appended.
  using Visitor = std::function<absl::StatusOr<bool>(int fd, const std::string& key)>;
  absl::Status WalkTree(UniqueFd dir, const Visitor& visit, std::vector<std::string>* found) const;
  // Marks `dir` and every directory under it (see WalkTree for `found`).
  absl::Status MarkSubtree(UniqueFd dir, std::vector<std::string>* found);
  // Removes the marks of `dir` and the marked directories under it.
  void UnmarkSubtree(UniqueFd dir);
  // Opens a directory by its key (open_by_handle_at on the shared dir).
  absl::StatusOr<UniqueFd> OpenDirByKey(const std::string& key) const;
  // Whether `dir` is the shared directory or below it (walks "..").
  bool UnderRoot(int dir) const;
  // A new directory (created or moved in) reported by an event.
  void AdoptDirectory(const std::string& key, Batch* batch);

  // Constant after construction.
  const Options options_;
  const ChangeCallback on_changes_;
  const OverflowCallback on_overflow_;
  HostWatcherMetrics metrics_;

  // Set by Init(), then used only by the watcher thread (and closed by
  // Stop() after the join).
  UniqueFd root_fd_;
  struct stat root_stat_ {};
  UniqueFd fan_fd_;
  UniqueFd stop_fd_;
  // Keys of the marked directories.
  absl::flat_hash_set<std::string> marked_;
  std::vector<char> read_buf_;

  absl::Mutex stop_mu_;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(stop_mu_);
};

}  // namespace coherefs::agent::coherence

#endif  // COHEREFS_AGENT_COHERENCE_HOST_WATCHER_H_
