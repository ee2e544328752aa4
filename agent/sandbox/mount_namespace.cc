#include "agent/sandbox/mount_namespace.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"
#include "common/log.h"
#include "common/unique_fd.h"

namespace coherefs::agent::sandbox {
namespace {

// Where the new root is assembled before pivot_root: the first of these
// directories that exists (a container image may lack /tmp). Mounting over
// it hides nothing the agent needs: every source is opened before, and
// bound from its descriptor. Set once by EnterMountNamespace.
constexpr const char* kStagingCandidates[] = {"/tmp", "/mnt", "/run", "/var/tmp", "/dev/shm"};
std::string g_staging;

// The namespace's descriptor, for threads that join later (read from a
// signal handler, so a plain int written once before they run).
int g_namespace_fd = -1;

// "/a//b/./c/" -> "/a/b/c". No ".." handling: a configured path with ".."
// components is refused.
absl::StatusOr<std::string> Normalize(const std::string& path) {
  if (!absl::StartsWith(path, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("sandbox: \"", path, "\" is not absolute"));
  }
  std::string out;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("sandbox: \"", path, "\" contains .."));
    }
    absl::StrAppend(&out, "/", part);
  }
  return out.empty() ? "/" : out;
}

bool Under(const std::string& path, const std::string& dir) {
  return dir == "/" || path == dir || absl::StartsWith(path, dir + "/");
}

// Creates `rel` (relative to the staging root) and its parents, refusing
// to create anything outside the staging tmpfs (below an earlier bind).
absl::Status MakeDirs(const std::string& path, dev_t staging_dev) {
  std::string at = g_staging;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    const std::string parent = at;
    absl::StrAppend(&at, "/", part);
    struct stat st;
    if (lstat(at.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return ErrnoStatus(ENOTDIR, absl::StrCat("sandbox: ", at));
      continue;
    }
    if (stat(parent.c_str(), &st) != 0) return LastErrnoStatus(absl::StrCat("sandbox: ", parent));
    if (st.st_dev != staging_dev) {
      return absl::FailedPreconditionError(
          absl::StrCat("sandbox: would create ", at, " outside the sandbox root"));
    }
    if (mkdir(at.c_str(), 0755) != 0) return LastErrnoStatus(absl::StrCat("sandbox: mkdir ", at));
  }
  return absl::OkStatus();
}

absl::Status Mount(const char* source, const std::string& target, const char* type,
                   unsigned long flags, const char* data) {
  if (mount(source, target.c_str(), type, flags, data) != 0) {
    return LastErrnoStatus(absl::StrCat("sandbox: mount ", source != nullptr ? source : "",
                                        " on ", target));
  }
  return absl::OkStatus();
}

// Binds the object open at `fd` on `target` (created as a directory or an
// empty file to match), read-only when asked.
absl::Status BindFd(int fd, const std::string& path, bool read_only, dev_t staging_dev) {
  struct stat st;
  if (fstat(fd, &st) != 0) return LastErrnoStatus(absl::StrCat("sandbox: fstat ", path));
  const std::string target = absl::StrCat(g_staging, path);
  if (S_ISDIR(st.st_mode)) {
    if (absl::Status s = MakeDirs(path, staging_dev); !s.ok()) return s;
  } else {
    const std::string parent = path.substr(0, path.rfind('/'));
    if (absl::Status s = MakeDirs(parent, staging_dev); !s.ok()) return s;
    UniqueFd file(open(target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!file) return LastErrnoStatus(absl::StrCat("sandbox: create ", target));
  }
  const std::string source = absl::StrCat("/proc/self/fd/", fd);
  if (absl::Status s = Mount(source.c_str(), target, nullptr, MS_BIND | MS_REC, nullptr); !s.ok()) {
    return s;
  }
  if (read_only) {
    return Mount(nullptr, target, nullptr,
                 MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  }
  return absl::OkStatus();
}

// Detaches every fuse.coherefs mount in this namespace: the copies of host
// mounts (ours or another agent's) that came along with a shared directory.
absl::Status DetachCoherefsMounts() {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<std::string> points;
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options [optional...] - type ...
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || dash + 1 == f.end()) continue;
    if (*(dash + 1) == "fuse.coherefs") points.push_back(f[4]);
  }
  // Deepest first; mountinfo escapes blanks as \040 (paths with them are
  // detached through the unescaped spelling).
  std::sort(points.begin(), points.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (std::string p : points) {
    for (auto [esc, raw] : {std::pair<const char*, const char*>{"\\040", " "},
                            {"\\011", "\t"}, {"\\012", "\n"}, {"\\134", "\\"}}) {
      p = absl::StrReplaceAll(p, {{esc, raw}});
    }
    if (umount2(p.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
      return LastErrnoStatus(absl::StrCat("sandbox: detach host mount copy ", p));
    }
    LOG_DEBUG("sandbox: detached fuse mount copy").Kv("dir", p);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EnterMountNamespace(const MountPlan& plan) {
  if (unshare(CLONE_NEWNS) != 0) return LastErrnoStatus("sandbox: unshare(CLONE_NEWNS)");
  if (absl::Status s = Mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr); !s.ok()) {
    return s;
  }
  // Open every source while the whole tree is visible, in the new
  // namespace (a bind source must be a mount of the caller's namespace).
  struct Source {
    std::string path;
    UniqueFd fd;
    bool read_only;
  };
  std::vector<Source> sources;
  std::vector<std::string> rw;
  for (const std::string& raw : plan.rw_dirs) {
    auto path = Normalize(raw);
    if (!path.ok()) return path.status();
    rw.push_back(*path);
  }
  std::sort(rw.begin(), rw.end());
  rw.erase(std::unique(rw.begin(), rw.end()), rw.end());
  for (const std::string& path : rw) {
    bool nested = false;
    for (const Source& s : sources) nested |= Under(path, s.path);
    if (nested) continue;  // sorted: a parent comes first and covers it
    UniqueFd fd(open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return LastErrnoStatus(absl::StrCat("sandbox: open ", path));
    sources.push_back(Source{path, std::move(fd), false});
  }
  for (const std::string& raw : plan.ro_paths) {
    auto path = Normalize(raw);
    if (!path.ok()) return path.status();
    bool covered = false;
    for (const Source& s : sources) covered |= Under(*path, s.path);
    if (covered) continue;
    UniqueFd fd(open(path->c_str(), O_PATH | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) continue;
      return LastErrnoStatus(absl::StrCat("sandbox: open ", *path));
    }
    sources.push_back(Source{*path, std::move(fd), true});
  }
  UniqueFd dev_null(open("/dev/null", O_PATH | O_CLOEXEC));
  if (!dev_null) return LastErrnoStatus("sandbox: open /dev/null");

  for (const char* dir : kStagingCandidates) {
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
      g_staging = dir;
      break;
    }
  }
  if (g_staging.empty()) return absl::NotFoundError("sandbox: no directory to build the root in");
  if (absl::Status s = Mount("tmpfs", g_staging, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                             "mode=0755,size=1m,nr_inodes=4096");
      !s.ok()) {
    return s;
  }
  struct stat staging;
  if (stat(g_staging.c_str(), &staging) != 0) return LastErrnoStatus("sandbox: stat staging root");
  for (const Source& s : sources) {
    if (absl::Status st = BindFd(s.fd.get(), s.path, s.read_only, staging.st_dev); !st.ok()) {
      return st;
    }
  }
  bool proc_covered = false;
  for (const Source& s : sources) proc_covered |= Under("/proc", s.path);
  if (!proc_covered) {
    if (absl::Status s = MakeDirs("/proc", staging.st_dev); !s.ok()) return s;
  }
  if (absl::Status s = Mount("proc", absl::StrCat(g_staging, "/proc"), "proc",
                             MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid");
      !s.ok()) {
    return s;
  }
  bool dev_covered = false;
  for (const Source& s : sources) dev_covered |= Under("/dev/null", s.path);
  if (!dev_covered) {
    if (absl::Status s = BindFd(dev_null.get(), "/dev/null", false, staging.st_dev); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = DetachCoherefsMounts(); !s.ok()) return s;
  // Nothing more is created in the root itself.
  if (absl::Status s = Mount(nullptr, g_staging, nullptr,
                             MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
      !s.ok()) {
    return s;
  }
  // pivot_root(".", "."): the old root ends up stacked on the new one and
  // is detached right away (pivot_root(2), "NOTES").
  if (chdir(g_staging.c_str()) != 0) return LastErrnoStatus("sandbox: chdir staging root");
  if (syscall(SYS_pivot_root, ".", ".") != 0) return LastErrnoStatus("sandbox: pivot_root");
  if (umount2(".", MNT_DETACH) != 0) return LastErrnoStatus("sandbox: detach the old root");
  if (chdir("/") != 0) return LastErrnoStatus("sandbox: chdir /");
  const int ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  if (ns < 0) return LastErrnoStatus("sandbox: open /proc/self/ns/mnt");
  g_namespace_fd = ns;
  return absl::OkStatus();
}

int JoinMountNamespace() {
  if (g_namespace_fd < 0) return -EBADF;
  // Threads share one fs_struct (root, cwd); setns into a mount namespace
  // needs the caller to have its own.
  if (unshare(CLONE_FS) != 0) return -errno;
  if (setns(g_namespace_fd, CLONE_NEWNS) != 0) return -errno;
  return 0;
}

}  // namespace coherefs::agent::sandbox
