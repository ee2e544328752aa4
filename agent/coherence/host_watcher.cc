#include "agent/coherence/host_watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/file_key.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace coherefs::agent::coherence {
namespace {

constexpr uint64_t kDirentMask = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO;
// CLOSE_WRITE besides MODIFY: a writer through a shared mmap sends no
// MODIFY, and its close is the last chance to see the new mtime.
constexpr uint64_t kMarkMask = FAN_ATTRIB | FAN_MODIFY | FAN_CLOSE_WRITE | kDirentMask |
                               FAN_DELETE_SELF | FAN_MOVE_SELF | FAN_ONDIR | FAN_EVENT_ON_CHILD;
// TARGET_FID: dirent events carry the child's handle too (a delete changes
// the child's link count, a rename its ctime). Needs Linux >= 5.17.
constexpr unsigned kInitFlags = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK |
                                FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TARGET_FID;
constexpr size_t kReadBufferBytes = 64 * 1024;
// Reads per wake-up, so a steady stream still lets batches go out.
constexpr int kMaxReadsPerWake = 16;
// UnderRoot() gives up past this depth (PATH_MAX allows ~2048).
constexpr int kMaxDepth = 4096;

union HandleBuffer {
  struct file_handle fh;
  char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
};

// name_to_handle_at(dirfd, name) (symlinks not followed), or of dirfd
// itself when name is empty.
absl::StatusOr<std::string> KeyAt(int dirfd, const char* name) {
  return FileKeyAt(dirfd, name, name[0] == '\0' ? AT_EMPTY_PATH : 0);
}

// The entry went away (or was replaced) while we looked: not an error.
bool Vanished(int err) { return err == ENOENT || err == ESTALE || err == ENOTDIR; }
bool Vanished(const absl::Status& status) { return Vanished(ErrnoFromStatus(status)); }

// A handle inside an info record, if the record is long enough to hold it.
const struct file_handle* HandleIn(const struct fanotify_event_info_header* hdr) {
  const size_t fixed = sizeof(struct fanotify_event_info_fid) + sizeof(struct file_handle);
  if (hdr->len < fixed) return nullptr;
  const auto* info = reinterpret_cast<const struct fanotify_event_info_fid*>(hdr);
  const auto* fh = reinterpret_cast<const struct file_handle*>(info->handle);
  if (fh->handle_bytes > MAX_HANDLE_SZ || fixed + fh->handle_bytes > hdr->len) return nullptr;
  return fh;
}

// A new open file description of a directory: a dup() would share the
// directory offset, and a second listing of it would read nothing.
absl::StatusOr<UniqueFd> ReopenDir(int dir) {
  const int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return LastErrnoStatus("open .");
  return UniqueFd(fd);
}

}  // namespace

struct HostWatcher::Batch {
  explicit Batch(absl::Duration window) : window(window) {}
  void Add(std::string key) {
    if (keys.empty()) deadline = absl::Now() + window;
    keys.insert(std::move(key));
  }
  const absl::Duration window;
  absl::flat_hash_set<std::string> keys;
  absl::Time deadline;
};

absl::StatusOr<std::unique_ptr<HostWatcher>> HostWatcher::Start(Options options,
                                                                ChangeCallback on_changes,
                                                                OverflowCallback on_overflow) {
  if (options.shared_dir.empty() || options.shared_dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "host watcher: shared_dir must be an absolute path, got \"", options.shared_dir, "\""));
  }
  if (!on_changes || !on_overflow) {
    return absl::InvalidArgumentError("host watcher: both callbacks are required");
  }
  if (options.max_batch == 0 || options.coalesce < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("host watcher: max_batch must be > 0, coalesce >= 0");
  }
  std::unique_ptr<HostWatcher> watcher(
      new HostWatcher(std::move(options), std::move(on_changes), std::move(on_overflow)));
  RETURN_IF_ERROR(watcher->Init());
  {
    absl::MutexLock lock(&watcher->stop_mu_);
    HostWatcher* w = watcher.get();
    watcher->thread_ = std::thread([w] { w->Run(); });
  }
  LOG_INFO("host watcher started")
      .Kv("dir", watcher->options_.shared_dir)
      .Kv("marks", watcher->metrics_.marks.load());
  return watcher;
}

HostWatcher::HostWatcher(Options options, ChangeCallback on_changes, OverflowCallback on_overflow)
    : options_(std::move(options)),
      on_changes_(std::move(on_changes)),
      on_overflow_(std::move(on_overflow)),
      read_buf_(kReadBufferBytes) {}

HostWatcher::~HostWatcher() { Stop(); }

void HostWatcher::Stop() {
  absl::MutexLock lock(&stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    const uint64_t one = 1;
    // An eventfd write of 8 bytes cannot be short; it fails only if the
    // counter would overflow, which one write per Stop() cannot reach.
    if (write(stop_fd_.get(), &one, sizeof(one)) != sizeof(one)) {
      LOG_ERROR("host watcher: cannot wake the watcher thread").Kv("errno", errno);
    }
    thread_.join();
  }
  fan_fd_.Reset();
  stop_fd_.Reset();
  root_fd_.Reset();
}

absl::Status HostWatcher::Init() {
  const int root = open(options_.shared_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return LastErrnoStatus(absl::StrCat("open ", options_.shared_dir));
  root_fd_.Reset(root);
  if (fstat(root_fd_.get(), &root_stat_) != 0) {
    return LastErrnoStatus(absl::StrCat("fstat ", options_.shared_dir));
  }
  const unsigned flags =
      kInitFlags | (options_.unlimited ? FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS : 0);
  const int fan = fanotify_init(flags, O_RDONLY | O_CLOEXEC | O_LARGEFILE);
  if (fan < 0) return LastErrnoStatus("fanotify_init");
  fan_fd_.Reset(fan);
  const int stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop < 0) return LastErrnoStatus("eventfd");
  stop_fd_.Reset(stop);
  ASSIGN_OR_RETURN(UniqueFd root_again, ReopenDir(root_fd_.get()));
  return MarkSubtree(std::move(root_again), nullptr);
}

void HostWatcher::Run() {
  Batch batch(options_.coalesce);
  struct pollfd fds[2] = {{fan_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
  while (true) {
    struct timespec timeout;
    struct timespec* timeout_ptr = nullptr;
    if (!batch.keys.empty()) {
      timeout = absl::ToTimespec(std::max(batch.deadline - absl::Now(), absl::ZeroDuration()));
      timeout_ptr = &timeout;
    }
    const int n = ppoll(fds, 2, timeout_ptr, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      Overflow("ppoll failed", LastErrnoStatus("ppoll"), /*remark=*/false, &batch);
      return;
    }
    // Stop(): what is still queued is dropped (see the header).
    if (fds[1].revents != 0) return;
    if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      Overflow("fanotify fd failed", absl::InternalError("poll error on fanotify fd"),
               /*remark=*/false, &batch);
      return;
    }
    if ((fds[0].revents & POLLIN) && !ReadEvents(&batch)) return;
    if (!batch.keys.empty() &&
        (batch.keys.size() >= options_.max_batch || absl::Now() >= batch.deadline)) {
      Deliver(&batch);
    }
  }
}

bool HostWatcher::ReadEvents(Batch* batch) {
  for (int round = 0; round < kMaxReadsPerWake; ++round) {
    ssize_t len = read(fan_fd_.get(), read_buf_.data(), read_buf_.size());
    if (len < 0) {
      if (errno == EAGAIN) return true;
      if (errno == EINTR) continue;
      Overflow("fanotify read failed", LastErrnoStatus("read fanotify"), /*remark=*/false, batch);
      return false;
    }
    if (len == 0) return true;
    // Records are only 4-byte aligned (names pad to 4, FAN_EVENT_NEXT
    // assumes more), so each event's metadata is copied out, not read in
    // place (UBSan caught the misaligned 64-bit mask).
    const char* buf = reinterpret_cast<const char*>(read_buf_.data());
    for (size_t off = 0; static_cast<size_t>(len) - off >= sizeof(fanotify_event_metadata);) {
      struct fanotify_event_metadata event;
      std::memcpy(&event, buf + off, sizeof(event));
      if (event.event_len < sizeof(event) || event.event_len > static_cast<size_t>(len) - off) break;
      if (event.vers != FANOTIFY_METADATA_VERSION) {
        Overflow("fanotify metadata version mismatch",
                 absl::InternalError(absl::StrCat("fanotify metadata version ", event.vers)),
                 /*remark=*/false, batch);
        return false;
      }
      metrics_.events.fetch_add(1, std::memory_order_relaxed);
      if (event.mask & FAN_Q_OVERFLOW) {
        Overflow("fanotify queue overflow", absl::OkStatus(), /*remark=*/true, batch);
      } else {
        HandleEvent(event, buf + off, batch);
      }
      off += event.event_len;
    }
    if (batch->keys.size() >= options_.max_batch) return true;
  }
  return true;
}

void HostWatcher::HandleEvent(const struct fanotify_event_metadata& event, const char* raw,
                              Batch* batch) {
  // Info records: DFID_NAME (the directory the event was reported in, and
  // the entry's name; "." for an event on a marked directory itself) and,
  // for events on entries, FID (the entry: the object, or the dirent
  // target).
  const struct file_handle* dir_fh = nullptr;
  const struct file_handle* obj_fh = nullptr;
  const char* p = raw + event.metadata_len;
  const char* end = raw + event.event_len;
  while (p + sizeof(struct fanotify_event_info_header) <= end) {
    const auto* hdr = reinterpret_cast<const struct fanotify_event_info_header*>(p);
    if (hdr->len < sizeof(*hdr) || hdr->len > end - p) break;
    switch (hdr->info_type) {
      case FAN_EVENT_INFO_TYPE_FID:
        obj_fh = HandleIn(hdr);
        break;
      case FAN_EVENT_INFO_TYPE_DFID_NAME:
      case FAN_EVENT_INFO_TYPE_DFID:
        dir_fh = HandleIn(hdr);
        break;
      default:
        break;
    }
    p += hdr->len;
  }
  const std::string dir = dir_fh != nullptr ? FileKeyOfHandle(*dir_fh) : std::string();
  const std::string obj = obj_fh != nullptr ? FileKeyOfHandle(*obj_fh) : std::string();
  const uint64_t mask = event.mask;
  const bool dirent = (mask & kDirentMask) != 0;

  // Mark bookkeeping, whoever made the change: a directory the agent
  // creates must be watched for later host changes inside it.
  if ((mask & (FAN_CREATE | FAN_MOVED_TO)) && (mask & FAN_ONDIR) && !obj.empty() &&
      !marked_.contains(obj)) {
    AdoptDirectory(obj, batch);
  }
  // Self events are reported on the marked directory (DFID_NAME ".").
  const std::string& self = obj.empty() ? dir : obj;
  if ((mask & FAN_DELETE_SELF) && !self.empty()) {
    // The kernel drops an inode's marks when the inode is removed.
    marked_.erase(self);
    metrics_.marks.store(marked_.size(), std::memory_order_relaxed);
  } else if ((mask & FAN_MOVE_SELF) && marked_.contains(self)) {
    absl::StatusOr<UniqueFd> fd = OpenDirByKey(self);
    if (fd.ok() && !UnderRoot(fd->get())) UnmarkSubtree(*std::move(fd));
  }

  if (options_.ignore_pids.contains(static_cast<pid_t>(event.pid))) {
    metrics_.ignored_events.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!obj.empty()) batch->Add(obj);
  // A change of an entry (not of the object's own attributes) changes the
  // directory; an event with no FID is one on the marked directory itself.
  if ((dirent || obj.empty()) && !dir.empty()) batch->Add(dir);
}

void HostWatcher::AdoptDirectory(const std::string& key, Batch* batch) {
  absl::StatusOr<UniqueFd> fd = OpenDirByKey(key);
  if (!fd.ok()) {
    if (Vanished(fd.status())) return;
    metrics_.mark_errors.fetch_add(1, std::memory_order_relaxed);
    Overflow("cannot open a new directory", fd.status(), /*remark=*/false, batch);
    return;
  }
  // Moved in and out again before we got here: not ours any more.
  if (!UnderRoot(fd->get())) return;
  // Entries made before the mark sent no event to it: report them all.
  std::vector<std::string> found;
  const absl::Status status = MarkSubtree(*std::move(fd), &found);
  for (std::string& k : found) batch->Add(std::move(k));
  if (!status.ok()) {
    metrics_.mark_errors.fetch_add(1, std::memory_order_relaxed);
    Overflow("cannot mark a new directory", status, /*remark=*/false, batch);
  }
}

void HostWatcher::Deliver(Batch* batch) {
  std::vector<std::string> all(batch->keys.begin(), batch->keys.end());
  batch->keys.clear();
  for (size_t i = 0; i < all.size(); i += options_.max_batch) {
    const size_t n = std::min(options_.max_batch, all.size() - i);
    std::vector<std::string> chunk(std::make_move_iterator(all.begin() + i),
                                   std::make_move_iterator(all.begin() + i + n));
    metrics_.batches.fetch_add(1, std::memory_order_relaxed);
    metrics_.keys.fetch_add(n, std::memory_order_relaxed);
    on_changes_(std::move(chunk));
  }
}

void HostWatcher::Overflow(absl::string_view why, const absl::Status& status, bool remark,
                           Batch* batch) {
  LOG_WARN("host watcher lost events; the whole volume counts as changed")
      .Kv("why", why)
      .Kv("status", status)
      .Kv("dir", options_.shared_dir);
  if (!batch->keys.empty()) Deliver(batch);
  metrics_.overflows.fetch_add(1, std::memory_order_relaxed);
  on_overflow_();
  if (!remark) return;
  // Lost events may include CREATE of directories (unmarked now) and
  // DELETE_SELF of others (stale keys): rebuild the marks from the tree.
  marked_.clear();
  absl::StatusOr<UniqueFd> root_again = ReopenDir(root_fd_.get());
  absl::Status marked =
      root_again.ok() ? MarkSubtree(*std::move(root_again), nullptr) : root_again.status();
  if (!marked.ok()) {
    metrics_.mark_errors.fetch_add(1, std::memory_order_relaxed);
    LOG_ERROR("host watcher cannot mark the tree again; changes may go unseen")
        .Kv("status", marked)
        .Kv("dir", options_.shared_dir);
  }
}

absl::Status HostWatcher::WalkTree(UniqueFd dir, const Visitor& visit,
                                   std::vector<std::string>* found) const {
  struct Level {
    UniqueFd fd;
    std::vector<std::string> subdirs;
    size_t next = 0;
  };
  // Visits one directory; lists it (subdirectories, found keys) unless the
  // visitor skips it. Returns whether it was entered.
  auto enter = [&](UniqueFd fd, std::vector<Level>* stack) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(std::string key, KeyAt(fd.get(), ""));
    ASSIGN_OR_RETURN(bool descend, visit(fd.get(), key));
    if (!descend) return false;
    Level level{std::move(fd), {}, 0};
    ASSIGN_OR_RETURN(UniqueFd list, ReopenDir(level.fd.get()));
    const int list_fd = list.Release();
    DIR* d = fdopendir(list_fd);
    if (d == nullptr) {
      absl::Status status = LastErrnoStatus("fdopendir");
      close(list_fd);
      return status;
    }
    // readdir() errors are not told apart from the end here: an entry
    // missed this way was being changed, and its change is an event.
    while (struct dirent* entry = readdir(d)) {
      const char* name = entry->d_name;
      if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
      bool is_dir = entry->d_type == DT_DIR;
      if (entry->d_type == DT_UNKNOWN) {
        struct stat st;
        if (fstatat(level.fd.get(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        is_dir = S_ISDIR(st.st_mode);
      }
      if (found != nullptr) {
        absl::StatusOr<std::string> child = KeyAt(level.fd.get(), name);
        if (child.ok()) found->push_back(*std::move(child));
      }
      if (is_dir) level.subdirs.emplace_back(name);
    }
    closedir(d);
    stack->push_back(std::move(level));
    return true;
  };

  std::vector<Level> stack;
  RETURN_IF_ERROR(enter(std::move(dir), &stack).status());
  while (!stack.empty()) {
    Level& top = stack.back();
    if (top.next == top.subdirs.size()) {
      stack.pop_back();
      continue;
    }
    const std::string name = top.subdirs[top.next++];  // a copy: enter() grows `stack`
    const int fd =
        openat(top.fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (Vanished(errno) || errno == ELOOP) continue;
      return LastErrnoStatus(absl::StrCat("open ", name));
    }
    UniqueFd child(fd);
    struct stat st;
    if (fstat(child.get(), &st) != 0) return LastErrnoStatus(absl::StrCat("fstat ", name));
    // Another file system mounted here: its changes are not ours to see.
    if (st.st_dev != root_stat_.st_dev) continue;
    absl::Status status = enter(std::move(child), &stack).status();
    if (!status.ok() && !Vanished(status)) return status;
  }
  return absl::OkStatus();
}

absl::Status HostWatcher::MarkSubtree(UniqueFd dir, std::vector<std::string>* found) {
  const absl::Status status = WalkTree(
      std::move(dir),
      [this](int fd, const std::string& key) -> absl::StatusOr<bool> {
        if (marked_.contains(key)) return true;
        if (fanotify_mark(fan_fd_.get(), FAN_MARK_ADD | FAN_MARK_ONLYDIR, kMarkMask, fd, nullptr) !=
            0) {
          return LastErrnoStatus("fanotify_mark");
        }
        marked_.insert(key);
        return true;
      },
      found);
  metrics_.marks.store(marked_.size(), std::memory_order_relaxed);
  return status;
}

void HostWatcher::UnmarkSubtree(UniqueFd dir) {
  const absl::Status status = WalkTree(
      std::move(dir),
      [this](int fd, const std::string& key) -> absl::StatusOr<bool> {
        // Below an unmarked directory nothing is ours.
        if (!marked_.contains(key)) return false;
        if (fanotify_mark(fan_fd_.get(), FAN_MARK_REMOVE | FAN_MARK_ONLYDIR, kMarkMask, fd,
                          nullptr) != 0 &&
            errno != ENOENT) {
          return LastErrnoStatus("fanotify_mark remove");
        }
        marked_.erase(key);
        return true;
      },
      nullptr);
  metrics_.marks.store(marked_.size(), std::memory_order_relaxed);
  if (!status.ok()) {
    // Left marked: events from outside the tree are reported, which costs
    // bumps but loses nothing.
    metrics_.mark_errors.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("host watcher cannot unmark a directory moved out").Kv("status", status);
  }
}

absl::StatusOr<UniqueFd> HostWatcher::OpenDirByKey(const std::string& key) const {
  if (key.size() < 4 || key.size() - 4 > MAX_HANDLE_SZ) {
    return absl::InvalidArgumentError("host watcher: malformed file key");
  }
  HandleBuffer buf;
  uint32_t type = 0;
  for (int i = 0; i < 4; ++i)
    type |= static_cast<uint32_t>(static_cast<uint8_t>(key[i])) << (8 * i);
  buf.fh.handle_type = static_cast<int>(type);
  buf.fh.handle_bytes = key.size() - 4;
  memcpy(buf.fh.f_handle, key.data() + 4, key.size() - 4);
  const int fd = open_by_handle_at(root_fd_.get(), &buf.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return LastErrnoStatus("open_by_handle_at");
  return UniqueFd(fd);
}

bool HostWatcher::UnderRoot(int dir) const {
  const int first = fcntl(dir, F_DUPFD_CLOEXEC, 0);
  if (first < 0) return false;
  UniqueFd cur(first);
  for (int depth = 0; depth < kMaxDepth; ++depth) {
    struct stat st;
    if (fstat(cur.get(), &st) != 0) return false;
    if (st.st_dev == root_stat_.st_dev && st.st_ino == root_stat_.st_ino) return true;
    const int up = openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (up < 0) return false;  // deleted meanwhile
    UniqueFd parent(up);
    struct stat parent_st;
    if (fstat(parent.get(), &parent_st) != 0) return false;
    // ".." of the top is itself: the walk passed no shared dir.
    if (parent_st.st_dev == st.st_dev && parent_st.st_ino == st.st_ino) return false;
    cur = std::move(parent);
  }
  return false;
}

}  // namespace coherefs::agent::coherence
