#include "agent/fuse/dev_fuse_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"
#include "common/iov.h"
#include "common/log.h"

namespace coherefs::agent::fuse {
namespace {

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string UnescapeMountinfo(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = field[i + k];
        if (c < '0' || c > '7') octal = false;
        v = v * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

}  // namespace

DevFuseTransport::DevFuseTransport(Options options) : options_(std::move(options)) {}

// Errors were logged by Stop; a destructor has nobody to return them to.
DevFuseTransport::~DevFuseTransport() { Stop().IgnoreError(); }

absl::Status DevFuseTransport::Start(const std::string& mount_dir, RequestHandler* handler,
                                     int threads) {
  absl::MutexLock lock(&mu_);
  if (started_) return absl::FailedPreconditionError("dev fuse transport already started");
  if (threads < 1) return absl::InvalidArgumentError("threads must be >= 1");
  if (options_.buffer_bytes < 8192) {  // FUSE_MIN_READ_BUFFER
    return absl::InvalidArgumentError("buffer_bytes below FUSE_MIN_READ_BUFFER (8192)");
  }
  // Non-blocking: several threads poll the same fd, and all but one of them
  // find the request already taken (EAGAIN) when they read.
  UniqueFd fuse_fd(::open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK));
  if (!fuse_fd) return LastErrnoStatus("open /dev/fuse");
  UniqueFd stop_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd) return LastErrnoStatus("eventfd");

  std::string opts = absl::StrCat("fd=", fuse_fd.get(), ",rootmode=40000,user_id=", ::getuid(),
                                  ",group_id=", ::getgid());
  if (options_.allow_other) opts += ",allow_other";
  if (options_.default_permissions) opts += ",default_permissions";
  if (::mount(options_.fs_name.c_str(), mount_dir.c_str(), "fuse.coherefs",
              MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
    return LastErrnoStatus(absl::StrCat("mount fuse on ", mount_dir));
  }
  LOG_INFO("fuse mounted").Kv("dir", mount_dir).Kv("threads", threads);

  handler_ = handler;
  mount_dir_ = mount_dir;
  fuse_fd_ = std::move(fuse_fd);
  stop_fd_ = std::move(stop_fd);
  requests_ = replies_ = replies_dropped_ = 0;
  workers_running_ = threads;
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back(&DevFuseTransport::Serve, this, fuse_fd_.get(), stop_fd_.get());
  }
  started_ = true;
  return absl::OkStatus();
}

absl::Status DevFuseTransport::Stop() {
  absl::MutexLock lock(&mu_);
  if (!started_) return absl::OkStatus();
  absl::Status status;
  // Detach first so no new request arrives; a busy mount is detached too.
  // EINVAL: no longer a mount point (unmounted from outside). EPERM: the
  // agent's sandbox took the privilege; its unmount helper unmounts.
  if (::umount2(mount_dir_.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != EPERM) {
    status = LastErrnoStatus(absl::StrCat("umount2 ", mount_dir_));
    LOG_WARN("fuse unmount failed").Kv("dir", mount_dir_).Kv("error", status);
  }
  const uint64_t one = 1;
  if (::write(stop_fd_.get(), &one, sizeof(one)) != sizeof(one)) {
    LOG_ERROR("eventfd write failed").Kv("errno", errno);
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  handler_->Shutdown();
  // Closing /dev/fuse ends the connection: anything still waiting on the
  // detached mount gets ENOTCONN instead of hanging.
  fuse_fd_.Reset();
  stop_fd_.Reset();
  LOG_INFO("fuse unmounted").Kv("dir", mount_dir_).Kv("requests", requests_.load());
  started_ = false;
  return status;
}

DevFuseTransport::Stats DevFuseTransport::stats() const {
  return Stats{requests_.load(std::memory_order_relaxed), replies_.load(std::memory_order_relaxed),
               replies_dropped_.load(std::memory_order_relaxed),
               workers_running_.load(std::memory_order_relaxed)};
}

void DevFuseTransport::Serve(int fuse_fd, int stop_fd) {
  struct Exit {
    std::atomic<int>& running;
    ~Exit() { running.fetch_sub(1, std::memory_order_relaxed); }
  } exit{workers_running_};
  std::vector<char> in_buf(options_.buffer_bytes);
  std::vector<char> out_buf(options_.buffer_bytes);
  pollfd fds[2] = {{fuse_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  while (true) {
    fds[0].revents = fds[1].revents = 0;
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("poll /dev/fuse failed").Kv("errno", errno);
      return;
    }
    if (fds[1].revents != 0) return;  // Stop
    // /dev/fuse reports POLLERR once the connection is gone; read tells why.
    ssize_t n = ::read(fuse_fd, in_buf.data(), in_buf.size());
    if (n < 0) {
      // EAGAIN: another thread took the request. ENOENT: the request was
      // interrupted before we could read it. EINTR: a signal.
      if (errno == EAGAIN || errno == ENOENT || errno == EINTR) continue;
      if (errno == ENODEV) return;  // unmounted: the connection is over
      LOG_ERROR("read /dev/fuse failed").Kv("errno", errno);
      return;
    }
    requests_.fetch_add(1, std::memory_order_relaxed);
    IovReader request({{in_buf.data(), static_cast<size_t>(n)}});
    IovWriter reply({{out_buf.data(), out_buf.size()}});
    const size_t len = handler_->HandleRequest(request, reply);
    if (len == 0) continue;  // FORGET, INTERRUPT, ...
    // One write(2) per reply: /dev/fuse takes a reply only whole.
    ssize_t w;
    do {
      w = ::write(fuse_fd, out_buf.data(), len);
    } while (w < 0 && errno == EINTR);
    if (w >= 0) {
      replies_.fetch_add(1, std::memory_order_relaxed);
    } else if (errno == ENOENT) {
      // The request was interrupted or aborted meanwhile: nobody waits.
      replies_dropped_.fetch_add(1, std::memory_order_relaxed);
    } else if (errno == ENODEV) {
      return;
    } else {
      LOG_WARN("write /dev/fuse failed").Kv("errno", errno).Kv("len", len);
    }
  }
}

bool DevFuseTransport::IsMounted(const std::string& dir) {
  // Resolve the parent only: resolving `dir` itself would stat the mount's
  // root, a FUSE request that hangs or fails if the server is gone.
  std::string want = dir;
  while (want.size() > 1 && want.back() == '/') want.pop_back();
  const size_t slash = want.rfind('/');
  if (slash != std::string::npos) {
    const std::string parent = slash == 0 ? "/" : want.substr(0, slash);
    char resolved[PATH_MAX];
    if (::realpath(parent.c_str(), resolved) != nullptr) {
      want = absl::StrCat(std::string(resolved) == "/" ? "" : resolved, want.substr(slash));
    }
  }
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount_point options [optional...] - fstype source super
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 5 || UnescapeMountinfo(f[4]) != want) continue;
    for (size_t i = 5; i + 1 < f.size(); ++i) {
      if (f[i] == "-" && f[i + 1].rfind("fuse", 0) == 0) return true;
    }
  }
  return false;
}

}  // namespace coherefs::agent::fuse
