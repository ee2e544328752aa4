// DevFuseTransport serves a RequestHandler (normally fuse::Server) through
// the host kernel's FUSE driver: it opens /dev/fuse, mounts a "fuse.coherefs"
// file system on a host directory, and runs a pool of threads that each
// read(2) one request, hand it to the handler, and write(2) the reply. It
// is the host-side twin of the virtio-fs device (agent/virtio_fs): same
// handler, same opcodes; /dev/fuse speaks the host kernel's FUSE minor and
// the server negotiates down to its own (7.38).
//
// Mount options: fd=N,rootmode=40000,user_id=<uid>,group_id=<gid>, plus
// allow_other (default on: the mount is for every local user) and
// default_permissions (default off). Without default_permissions the kernel
// does no permission checks of its own and every request reaches the file
// system with the caller's uid/gid/pid in the header; the passthrough file
// system applies those credentials itself, which is the only place that can
// see the real owner and mode on the backing file system and keeps the
// host mount and virtio-fs guests under one set of rules. Turn it on for a
// FileSystem that enforces nothing (e.g. FakeFileSystem served to non-root
// users).
//
// Needs CAP_SYS_ADMIN (mount(2)) and /dev/fuse.
//
// Lifetime: Start mounts and starts the threads; Stop (or the destructor)
// unmounts with umount2(MNT_DETACH), stops and joins the threads, calls
// handler->Shutdown(), and closes /dev/fuse. If the file system is unmounted
// from outside, the kernel ends the connection (read returns ENODEV) and the
// threads exit on their own; Stop then only joins them. A process killed
// with SIGKILL leaves the mount point behind as a dead mount (ENOTCONN)
// until someone runs umount; nothing in-process can prevent that.
//
// Errors from Start: FailedPrecondition (already started), the errno of
// open(/dev/fuse), eventfd or mount(2) as ErrnoStatus (e.g. NotFound for a
// missing directory, PermissionDenied without privilege).
//
// Thread-safety: Start and Stop are serialised by a mutex; the handler is
// called from `threads` threads at once and must be thread-safe.
#ifndef COHEREFS_AGENT_FUSE_DEV_FUSE_TRANSPORT_H_
#define COHEREFS_AGENT_FUSE_DEV_FUSE_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/fuse/request_handler.h"
#include "common/unique_fd.h"

namespace coherefs::agent::fuse {

class DevFuseTransport {
 public:
  struct Options {
    // Per-thread request and reply buffer size. Linux refuses reads into a
    // buffer smaller than max_write + fuse_in_header + fuse_write_in, so
    // this must cover Server::Options::max_write + Server::kWriteOverhead.
    // Default: 1 MiB + 4 KiB (Server's default max_write of 1 MiB).
    size_t buffer_bytes = (1 << 20) + 4096;
    bool allow_other = true;           // default on
    bool default_permissions = false;  // default off; see above
    std::string fs_name = "coherefs";  // the mount's source, as df shows it
  };

  // Counters since Start, readable at any time.
  struct Stats {
    uint64_t requests = 0;         // requests read from /dev/fuse
    uint64_t replies = 0;          // replies written
    uint64_t replies_dropped = 0;  // write got ENOENT: the request was gone
    int workers_running = 0;       // 0 once the connection ended or Stop ran
  };

  DevFuseTransport() : DevFuseTransport(Options()) {}
  explicit DevFuseTransport(Options options);
  ~DevFuseTransport();  // Stop()
  DevFuseTransport(const DevFuseTransport&) = delete;
  DevFuseTransport& operator=(const DevFuseTransport&) = delete;

  // Mounts on `mount_dir` (an existing directory) and serves `handler`
  // (borrowed; must outlive Stop) with `threads` (>= 1) threads.
  absl::Status Start(const std::string& mount_dir, RequestHandler* handler, int threads);
  // Unmounts and stops; idempotent. Returns the umount2 error, if any,
  // other than "not mounted any more".
  absl::Status Stop();

  Stats stats() const;
  // True while a fuse.<fs type> file system is mounted on `dir` in this
  // mount namespace (reads /proc/self/mountinfo).
  static bool IsMounted(const std::string& dir);

 private:
  void Serve(int fuse_fd, int stop_fd);

  const Options options_;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::string mount_dir_ ABSL_GUARDED_BY(mu_);
  RequestHandler* handler_ = nullptr;  // set by Start before threads run
  UniqueFd fuse_fd_ ABSL_GUARDED_BY(mu_);
  UniqueFd stop_fd_ ABSL_GUARDED_BY(mu_);  // eventfd: wakes every worker
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> replies_{0};
  std::atomic<uint64_t> replies_dropped_{0};
  std::atomic<int> workers_running_{0};
};

}  // namespace coherefs::agent::fuse

#endif  // COHEREFS_AGENT_FUSE_DEV_FUSE_TRANSPORT_H_
