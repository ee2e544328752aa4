// HostWatcher against real fanotify on temp directories under /tmp. Changes
// that must be reported are made by forked children (their tgid is not this
// process's, which the watcher ignores by default); expected keys are
// computed with name_to_handle_at(fd, "", AT_EMPTY_PATH), as
// PassthroughFs::FileKey does, so every exact key-set assertion also checks
// that fanotify's handles equal name_to_handle_at's.
#include "agent/coherence/host_watcher.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_key.h"
#include "gtest/gtest.h"

namespace coherefs::agent::coherence {
namespace {

constexpr absl::Duration kWait = absl::Seconds(5);
// After the expected keys arrived, how long to wait for unexpected ones.
constexpr absl::Duration kQuiet = absl::Milliseconds(150);

// Readable key sets for failure messages.
std::set<std::string> HexSet(const absl::flat_hash_set<std::string>& keys) {
  std::set<std::string> out;
  for (const std::string& k : keys) out.insert(FileKeyHex(k));
  return out;
}

// PassthroughFs::FileKey's bytes for a path (the last component not
// followed): u32 LE handle_type | f_handle of an O_PATH fd.
std::string KeyOf(const std::string& path) {
  const int fd = open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path << ": " << strerror(errno);
  if (fd < 0) return "";
  union {
    struct file_handle fh;
    char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  } buf;
  buf.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  const int rc = name_to_handle_at(fd, "", &buf.fh, &mount_id, AT_EMPTY_PATH);
  EXPECT_EQ(rc, 0) << path << ": " << strerror(errno);
  close(fd);
  if (rc != 0) return "";
  std::string key;
  const uint32_t type = static_cast<uint32_t>(buf.fh.handle_type);
  for (int i = 0; i < 4; ++i) key.push_back(static_cast<char>((type >> (8 * i)) & 0xff));
  key.append(reinterpret_cast<const char*>(buf.fh.f_handle), buf.fh.handle_bytes);
  return key;
}

// Runs `fn` in a forked child (another tgid) and waits for it. The child
// only makes system calls on strings prepared before the fork.
void InChild(const std::function<bool()>& fn) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0) << strerror(errno);
  if (pid == 0) _exit(fn() ? 0 : 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

void Sh(const std::string& dir, const std::string& cmd) {
  InChild([&] {
    if (chdir(dir.c_str()) != 0) return false;
    execl("/bin/sh", "sh", "-ec", cmd.c_str(), static_cast<char*>(nullptr));
    return false;
  });
}

bool WaitUntil(const std::function<bool()>& done) {
  const absl::Time end = absl::Now() + kWait;
  while (!done()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

class Collector {
 public:
  void OnChanges(std::vector<std::string> keys) {
    absl::MutexLock lock(&mu_);
    for (const std::string& k : keys) all_.insert(k);
    batches_.push_back(std::move(keys));
  }
  void OnOverflow() {
    absl::MutexLock lock(&mu_);
    ++overflows_;
  }

  // Waits until every key of `want` has arrived (bounded), then kQuiet more
  // for any unexpected key; returns what arrived and starts afresh.
  absl::flat_hash_set<std::string> Take(const absl::flat_hash_set<std::string>& want) {
    auto has_all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const std::string& k : want) {
        if (!all_.contains(k)) return false;
      }
      return true;
    };
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&has_all), kWait);
    }
    absl::SleepFor(kQuiet);
    absl::MutexLock lock(&mu_);
    absl::flat_hash_set<std::string> out;
    out.swap(all_);
    batches_.clear();
    return out;
  }

  std::vector<std::vector<std::string>> batches() const {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  size_t key_count() const {
    absl::MutexLock lock(&mu_);
    return all_.size();
  }
  int overflows() const {
    absl::MutexLock lock(&mu_);
    return overflows_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> all_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<std::string>> batches_ ABSL_GUARDED_BY(mu_);
  int overflows_ ABSL_GUARDED_BY(mu_) = 0;
};

std::string MakeTempDir() {
  char tmpl[] = "/tmp/host_watcher_test.XXXXXX";
  const char* dir = mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr) << strerror(errno);
  return dir != nullptr ? std::string(dir) : std::string();
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

class HostWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir();
    ASSERT_FALSE(root_.empty());
  }
  void TearDown() override {
    watcher_.reset();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
    for (const std::string& dir : extra_dirs_) std::filesystem::remove_all(dir, ec);
  }

  HostWatcherOptions Defaults() {
    HostWatcherOptions options;
    options.shared_dir = root_;
    return options;
  }

  void StartWatcher(HostWatcherOptions options) {
    absl::StatusOr<std::unique_ptr<HostWatcher>> watcher = HostWatcher::Start(
        std::move(options),
        [this](std::vector<std::string> keys) { collector_.OnChanges(std::move(keys)); },
        [this] { collector_.OnOverflow(); });
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    watcher_ = *std::move(watcher);
  }
  void StartWatcher() { StartWatcher(Defaults()); }

  std::string P(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }

  // Exactly `want` (as keys of paths) is reported.
  void ExpectKeys(const absl::flat_hash_set<std::string>& want) {
    EXPECT_EQ(HexSet(collector_.Take(want)), HexSet(want));
  }

  bool WaitMarks(uint64_t n) {
    return WaitUntil([&] { return watcher_->metrics().marks.load() == n; });
  }

  std::string root_;
  std::vector<std::string> extra_dirs_;
  Collector collector_;
  std::unique_ptr<HostWatcher> watcher_;
};

TEST_F(HostWatcherTest, RejectsBadPathsAndOptions) {
  auto start = [](HostWatcherOptions options) {
    return HostWatcher::Start(
               std::move(options), [](std::vector<std::string>) {}, [] {})
        .status();
  };
  HostWatcherOptions options = Defaults();
  options.shared_dir = "";
  EXPECT_EQ(start(options).code(), absl::StatusCode::kInvalidArgument);
  options.shared_dir = "relative/dir";
  EXPECT_EQ(start(options).code(), absl::StatusCode::kInvalidArgument);
  options.shared_dir = P("missing");
  EXPECT_EQ(start(options).code(), absl::StatusCode::kNotFound);
  WriteFile(P("file"), "x");
  options.shared_dir = P("file");
  EXPECT_EQ(start(options).code(), absl::StatusCode::kFailedPrecondition);  // ENOTDIR
  options = Defaults();
  options.max_batch = 0;
  EXPECT_EQ(start(options).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HostWatcher::Start(Defaults(), nullptr, [] {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HostWatcher::Start(
                Defaults(), [](std::vector<std::string>) {}, nullptr)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// Without CAP_SYS_ADMIN (a child that became `nobody`): the UNLIMITED flags
// are refused with EPERM; a bounded group (unlimited = false) still starts.
TEST_F(HostWatcherTest, WithoutCapSysAdminUnlimitedIsPermissionDenied) {
  ASSERT_EQ(chmod(root_.c_str(), 0755), 0);
  const std::string dir = root_;
  InChild([&] {
    if (setgid(65534) != 0 || setuid(65534) != 0) return false;
    HostWatcherOptions options;
    options.shared_dir = dir;
    auto unlimited = HostWatcher::Start(
        options, [](std::vector<std::string>) {}, [] {});
    if (unlimited.status().code() != absl::StatusCode::kPermissionDenied) return false;
    options.unlimited = false;
    auto bounded = HostWatcher::Start(
        options, [](std::vector<std::string>) {}, [] {});
    return bounded.ok() && (*bounded)->metrics().marks.load() == 1;
  });
}

TEST_F(HostWatcherTest, EventHandlesEqualNameToHandleAt) {
  WriteFile(P("f"), "x");
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(symlink("f", P("l").c_str()), 0);
  StartWatcher();
  EXPECT_EQ(watcher_->metrics().marks.load(), 2u);  // root and d
  // The key of a path without an fd, as client/file_key does, is the same.
  for (const char* rel : {"f", "d", "l"}) {
    union {
      struct file_handle fh;
      char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
    } buf;
    buf.fh.handle_bytes = MAX_HANDLE_SZ;
    int mount_id = 0;
    ASSERT_EQ(name_to_handle_at(AT_FDCWD, P(rel).c_str(), &buf.fh, &mount_id, 0), 0);
    EXPECT_EQ(KeyOf(P(rel)).substr(4),
              std::string(reinterpret_cast<char*>(buf.fh.f_handle), buf.fh.handle_bytes));
  }
  Sh(root_, "chmod 600 f");
  ExpectKeys({KeyOf(P("f"))});
  Sh(root_, "chmod 700 d");  // an event on a marked directory itself
  ExpectKeys({KeyOf(P("d"))});
  Sh(root_, "chmod 700 .");  // the shared directory itself
  ExpectKeys({KeyOf(root_)});
  Sh(root_, "touch -h l");  // the symlink, not its target
  ExpectKeys({KeyOf(P("l"))});
}

TEST_F(HostWatcherTest, AttributeAndDataChangesReportTheObject) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  WriteFile(P("d/f"), "hello");
  StartWatcher();
  const std::string f = KeyOf(P("d/f"));
  Sh(root_, "chmod 640 d/f");
  ExpectKeys({f});
  Sh(root_, "touch d/f");
  ExpectKeys({f});
  Sh(root_, "truncate -s 2 d/f");
  ExpectKeys({f});
  Sh(root_, "echo more >> d/f");
  ExpectKeys({f});
  const std::string path = P("d/f");
  InChild([&] { return setxattr(path.c_str(), "user.k", "v", 1, 0) == 0; });
  ExpectKeys({f});
  InChild([&] { return removexattr(path.c_str(), "user.k") == 0; });
  ExpectKeys({f});
  InChild([&] { return chown(path.c_str(), 1000, 1000) == 0; });
  ExpectKeys({f});
}

TEST_F(HostWatcherTest, EntryChangesReportDirectoryAndChild) {
  ASSERT_EQ(mkdir(P("a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("b").c_str(), 0755), 0);
  WriteFile(P("a/x"), "x");
  StartWatcher();
  const std::string root = KeyOf(root_), a = KeyOf(P("a")), b = KeyOf(P("b"));
  const std::string x = KeyOf(P("a/x"));

  Sh(root_, "echo new > a/new");
  const std::string fresh = KeyOf(P("a/new"));
  ExpectKeys({a, fresh});

  Sh(root_, "ln a/x b/hard");  // a link changes x's link count
  ExpectKeys({b, x});

  Sh(root_, "rm b/hard");
  ExpectKeys({b, x});

  Sh(root_, "mv a/new a/renamed");
  ExpectKeys({a, fresh});

  Sh(root_, "mv a/x b/y");  // both parents and the child
  ExpectKeys({a, b, x});

  Sh(root_, "rm b/y");
  ExpectKeys({b, x});

  Sh(root_, "mkdir c");
  const std::string c = KeyOf(P("c"));
  ExpectKeys({root, c});
  ASSERT_TRUE(WaitMarks(4));  // root, a, b, c

  Sh(root_, "mv c a/c2");  // a directory moved within the tree stays marked
  ExpectKeys({root, a, c});
  EXPECT_EQ(watcher_->metrics().marks.load(), 4u);

  Sh(root_, "rmdir a/c2");
  ExpectKeys({a, c});
  ASSERT_TRUE(WaitMarks(3));
}

// The documented limit: the inode a rename replaces loses a link, but only a
// mark on that inode would be told; the directory and the moved object are.
TEST_F(HostWatcherTest, RenameOverANameReportsDirectoryAndMovedObjectOnly) {
  WriteFile(P("old"), "old");
  WriteFile(P("new"), "new");
  StartWatcher();
  const std::string root = KeyOf(root_), moved = KeyOf(P("new"));
  Sh(root_, "mv new old");
  ExpectKeys({root, moved});
}

TEST_F(HostWatcherTest, NewDirectoriesAreMarkedAndTheirEntriesReported) {
  StartWatcher();
  ASSERT_EQ(watcher_->metrics().marks.load(), 1u);
  // Entries made before the watcher marks the new directories are found by
  // its scan; later ones by events.
  Sh(root_, "mkdir -p a/b/c && echo x > a/b/c/f");
  const std::string root = KeyOf(root_), a = KeyOf(P("a")), b = KeyOf(P("a/b"));
  const std::string c = KeyOf(P("a/b/c")), f = KeyOf(P("a/b/c/f"));
  ExpectKeys({root, a, b, c, f});
  ASSERT_TRUE(WaitMarks(4));
  Sh(root_, "chmod 600 a/b/c/f");
  ExpectKeys({f});
  Sh(root_, "echo y > a/b/c/g");
  ExpectKeys({c, KeyOf(P("a/b/c/g"))});
}

TEST_F(HostWatcherTest, DirectoryMovedInIsWatchedAndMovedOutIsNot) {
  const std::string outside = MakeTempDir();
  ASSERT_FALSE(outside.empty());
  extra_dirs_.push_back(outside);
  ASSERT_EQ(mkdir((outside + "/y").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((outside + "/y/z").c_str(), 0755), 0);
  WriteFile(outside + "/y/z/file", "x");
  WriteFile(P("sentinel"), "s");
  StartWatcher();
  const std::string root = KeyOf(root_), sentinel = KeyOf(P("sentinel"));
  const std::string y = KeyOf(outside + "/y"), z = KeyOf(outside + "/y/z");
  const std::string file = KeyOf(outside + "/y/z/file");

  Sh(root_, absl::StrCat("mv ", outside, "/y y"));
  ExpectKeys({root, y, z, file});
  ASSERT_TRUE(WaitMarks(3));
  Sh(root_, "chmod 600 y/z/file");
  ExpectKeys({file});

  Sh(root_, absl::StrCat("mv y ", outside, "/y2"));
  ExpectKeys({root, y});
  ASSERT_TRUE(WaitMarks(1));
  // Outside the tree now: not reported. The sentinel's change, made after,
  // shows the watcher was listening.
  Sh(root_, absl::StrCat("chmod 644 ", outside, "/y2/z/file; mkdir ", outside,
                         "/y2/z/w; chmod 600 sentinel"));
  ExpectKeys({sentinel});
}

TEST_F(HostWatcherTest, ChangesByIgnoredProcessesAreNotReported) {
  WriteFile(P("f"), "x");
  StartWatcher();  // ignores this process by default
  ASSERT_EQ(chmod(P("f").c_str(), 0600), 0);
  WriteFile(P("g"), "g");
  ASSERT_EQ(rename(P("g").c_str(), P("h").c_str()), 0);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  // Bookkeeping still follows this process's mkdir: d gets a mark...
  ASSERT_TRUE(WaitMarks(2));
  // ...so a host process's change inside it is seen, and nothing of ours is.
  Sh(root_, "echo x > d/child");
  ExpectKeys({KeyOf(P("d")), KeyOf(P("d/child"))});
  EXPECT_GE(watcher_->metrics().ignored_events.load(), 4u);
}

TEST_F(HostWatcherTest, BurstsAreCoalescedAndDeduplicated) {
  constexpr int kFiles = 50;
  constexpr int kAppends = 1000;
  std::vector<std::string> paths;
  absl::flat_hash_set<std::string> want;
  for (int i = 0; i < kFiles; ++i) {
    paths.push_back(P(absl::StrCat("f", i)));
    WriteFile(paths.back(), "");
    want.insert(KeyOf(paths.back()));
  }
  StartWatcher();
  // Flat out: some milliseconds (more on a loaded machine), several
  // coalescing windows.
  InChild([&] {
    for (int i = 0; i < kAppends; ++i) {
      const int fd = open(paths[i % kFiles].c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd < 0 || write(fd, "x", 1) != 1) return false;
      close(fd);
    }
    return true;
  });
  ASSERT_TRUE(WaitUntil([&] { return collector_.key_count() == want.size(); }));
  absl::SleepFor(kQuiet);
  const std::vector<std::vector<std::string>> batches = collector_.batches();
  size_t delivered = 0;
  for (const std::vector<std::string>& batch : batches) {
    delivered += batch.size();
    EXPECT_EQ(absl::flat_hash_set<std::string>(batch.begin(), batch.end()).size(), batch.size())
        << "duplicate key in one batch";
  }
  // Each append is MODIFY + CLOSE_WRITE: 2000 events into far fewer calls.
  EXPECT_LT(batches.size(), 100u);
  EXPECT_GT(watcher_->metrics().events.load(), batches.size());
  EXPECT_EQ(watcher_->metrics().batches.load(), batches.size());
  EXPECT_EQ(watcher_->metrics().keys.load(), delivered);
  EXPECT_EQ(HexSet(collector_.Take(want)), HexSet(want));
}

TEST_F(HostWatcherTest, BatchesAreSplitAtMaxBatch) {
  constexpr int kFiles = 50;
  std::vector<std::string> paths;
  absl::flat_hash_set<std::string> want;
  for (int i = 0; i < kFiles; ++i) {
    paths.push_back(P(absl::StrCat("f", i)));
    WriteFile(paths.back(), "");
    want.insert(KeyOf(paths.back()));
  }
  HostWatcherOptions options = Defaults();
  options.max_batch = 8;
  options.coalesce = absl::Milliseconds(50);
  StartWatcher(options);
  InChild([&] {
    for (const std::string& path : paths) {
      if (chmod(path.c_str(), 0600) != 0) return false;
    }
    return true;
  });
  ASSERT_TRUE(WaitUntil([&] { return collector_.key_count() == want.size(); }));
  const std::vector<std::vector<std::string>> batches = collector_.batches();
  EXPECT_GE(batches.size(), (kFiles + 7) / 8);
  for (const std::vector<std::string>& batch : batches) EXPECT_LE(batch.size(), 8u);
  EXPECT_EQ(HexSet(collector_.Take(want)), HexSet(want));
}

TEST_F(HostWatcherTest, StopIsPromptIdempotentAndEndsCallbacks) {
  WriteFile(P("f"), "x");
  StartWatcher();
  Sh(root_, "chmod 600 f");
  ExpectKeys({KeyOf(P("f"))});
  const absl::Time start = absl::Now();
  watcher_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  watcher_->Stop();
  Sh(root_, "chmod 644 f");
  absl::SleepFor(kQuiet);
  EXPECT_EQ(collector_.key_count(), 0u);
  EXPECT_TRUE(collector_.batches().empty());
  watcher_.reset();  // the destructor after Stop()
}

// A bounded queue (unlimited = false) overflows when the watcher's thread is
// held in a callback while more events than the queue holds arrive: the
// caller is told, and directories made meanwhile are marked again.
TEST_F(HostWatcherTest, QueueOverflowIsReportedAndTheTreeRemarked) {
  int max_queued = 0;
  std::ifstream("/proc/sys/fs/fanotify/max_queued_events") >> max_queued;
  ASSERT_GT(max_queued, 0);
  ASSERT_LT(max_queued, 200000) << "too many files to overflow cheaply";
  ASSERT_EQ(mkdir(P("many").c_str(), 0755), 0);

  absl::Notification entered, release;
  std::atomic<int> calls{0};
  HostWatcherOptions options = Defaults();
  options.unlimited = false;
  options.ignore_pids = {};  // this process's changes fill the queue
  absl::StatusOr<std::unique_ptr<HostWatcher>> watcher = HostWatcher::Start(
      std::move(options),
      [&](std::vector<std::string> keys) {
        if (calls++ == 0) {
          entered.Notify();
          release.WaitForNotification();
        }
        collector_.OnChanges(std::move(keys));
      },
      [this] { collector_.OnOverflow(); });
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  watcher_ = *std::move(watcher);
  WriteFile(P("first"), "x");
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(kWait));
  for (int i = 0; i < max_queued + 100; ++i) {
    const int fd = open(P(absl::StrCat("many/", i)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  // Made while events are being dropped: only the re-marking finds it.
  ASSERT_EQ(mkdir(P("late").c_str(), 0755), 0);
  WriteFile(P("late/f"), "x");
  release.Notify();
  ASSERT_TRUE(WaitUntil([&] { return collector_.overflows() == 1; }));
  EXPECT_EQ(watcher_->metrics().overflows.load(), 1u);
  ASSERT_TRUE(WaitMarks(3)) << watcher_->metrics().marks.load();  // root, many, late
  // The queued events before the overflow were delivered first; drop them.
  collector_.Take({});
  Sh(root_, "chmod 600 late/f");
  ExpectKeys({KeyOf(P("late/f"))});
  EXPECT_EQ(collector_.overflows(), 1);
}

}  // namespace
}  // namespace coherefs::agent::coherence
