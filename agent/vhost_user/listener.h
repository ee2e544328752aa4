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
// Thread-safety: Start/Stop from one controlling thread; metrics() from any.
#ifndef COHEREFS_AGENT_VHOST_USER_LISTENER_H_
#define COHEREFS_AGENT_VHOST_USER_LISTENER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/vhost_user/device.h"
#include "agent/vhost_user/metrics.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user {

class Listener {
 public:
  // Binds `socket_path` and starts the accept thread. `factory` makes the
  // Device of each session. kInvalidArgument for a path too long for
  // sun_path; see above for existing files; errno statuses otherwise.
  static absl::StatusOr<std::unique_ptr<Listener>> Start(
      std::string socket_path, DeviceFactory factory);

  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Ends the session in progress, joins the threads, removes the socket
  // file. Idempotent.
  void Stop();

  const std::string& socket_path() const { return path_; }
  DeviceMetrics& metrics() { return metrics_; }

 private:
  Listener(std::string path, DeviceFactory factory, UniqueFd listen_fd,
           UniqueFd stop_fd);
  void AcceptLoop();

  const std::string path_;
  const DeviceFactory factory_;
  const UniqueFd listen_fd_;
  const UniqueFd stop_fd_;  // eventfd; written once by Stop, never drained
  DeviceMetrics metrics_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_LISTENER_H_
