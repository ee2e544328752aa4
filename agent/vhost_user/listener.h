// Listener owns one vhost-user Unix socket (one guest device): it listens,
// accepts one front end at a time (vhost-user has one front end per
// socket), serves it on a Connection, and after a disconnect -- every ring
// stopped, Device::Reset() called, memory unmapped, fds closed -- accepts
// the next one, so a guest that reconnects gets a fresh session.
//
// A stale socket file at the path (nobody accepting) is replaced; a path
// where another process still accepts is refused with kAlreadyExists, and a
// path that is not a socket with kFailedPrecondition. Stop() (or the
// destructor) ends the current session, joins every thread and removes the
// socket file.
//
// Eviction: Evict() closes the current session (as a disconnect would) and
// makes the listener refuse new connections -- accept and close at once,
// counted in SessionInfo::refused -- until Admit(). An operator kicks a
// misbehaving guest and it stays out even if its front end reconnects.
//
// Keeping (optional SessionKeeper, see Connection): the accepted socket is
// kept as "conn" while its session lasts, and a listener started after a
// crash first resumes the kept session on it (Connection::Resume), then
// accepts as usual. A kept session that cannot be resumed is closed: the
// front end sees a disconnect, as it would have without keeping.
//
// Thread-safety: Start/Stop from one controlling thread; metrics(),
// Session(), Evict() and Admit() from any.
#ifndef COHEREFS_AGENT_VHOST_USER_LISTENER_H_
#define COHEREFS_AGENT_VHOST_USER_LISTENER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/vhost_user/connection.h"
#include "agent/vhost_user/device.h"
#include "agent/vhost_user/log_limiter.h"
#include "agent/vhost_user/metrics.h"
#include "agent/vhost_user/session_keeper.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user {

// The socket's session, now.
struct SessionInfo {
  bool connected = false;   // a front end's session is being served
  bool evicted = false;     // new connections are refused (Evict)
  uint64_t refused = 0;     // connections refused while evicted
  std::vector<QueueInfo> queues;  // empty when not connected
};

class Listener {
 public:
  // Binds `socket_path` and starts the accept thread. `factory` makes the
  // Device of each session. kInvalidArgument for a path too long for
  // sun_path; see above for existing files; errno statuses otherwise.
  // `keeper` (may be null) must outlive the Listener.
  static absl::StatusOr<std::unique_ptr<Listener>> Start(
      std::string socket_path, DeviceFactory factory,
      SessionKeeper* keeper = nullptr);

  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Ends the session in progress, joins the threads, removes the socket
  // file. Idempotent.
  void Stop();

  const std::string& socket_path() const { return path_; }
  DeviceMetrics& metrics() { return metrics_; }

  SessionInfo Session() const;
  // Closes the current session (returns whether there was one) and refuses
  // new connections until Admit().
  bool Evict();
  // Accepts connections again; returns whether the listener was evicted.
  bool Admit();

 private:
  Listener(std::string path, DeviceFactory factory, UniqueFd listen_fd,
           UniqueFd stop_fd, SessionKeeper* keeper);
  void AcceptLoop();
  // Serves one front end on `conn` until it goes; `resume`: take up the
  // kept session first. Returns Serve's status (kCancelled: stopping).
  absl::Status ServeSession(UniqueFd conn, bool resume);

  const std::string path_;
  const DeviceFactory factory_;
  const UniqueFd listen_fd_;
  const UniqueFd stop_fd_;  // eventfd; written once by Stop, never drained
  SessionKeeper* const keeper_;
  DeviceMetrics metrics_;
  mutable absl::Mutex mu_;
  Connection* session_ ABSL_GUARDED_BY(mu_) = nullptr;  // on AcceptLoop's stack
  bool evicted_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
  LogLimiter refused_log_{1};
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_LISTENER_H_
