// SessionKeeper is where a vhost-user back end keeps what a session needs to
// outlive the back end's process: named entries, each a small blob and at
// most one file descriptor (the connection socket, guest-memory fds, kick/
// call/err eventfds, each ring's in-flight log, the session's negotiated
// state). A back end restarted after a crash finds them again and resumes
// the session without the front end noticing (Connection::Resume).
//
// The vhost-user layer only names entries; who holds them (the agent's
// supervisor, agent/supervisor) is the caller's business. Names are
// relative to one guest socket.
//
// Ownership: Put does not take `fd` (the keeper keeps its own duplicate);
// Take hands over the kept fd and leaves the entry kept.
// Thread-safety: implementations are thread-safe.
#ifndef COHEREFS_AGENT_VHOST_USER_SESSION_KEEPER_H_
#define COHEREFS_AGENT_VHOST_USER_SESSION_KEEPER_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user {

struct KeptEntry {
  std::string blob;
  UniqueFd fd;  // invalid when the entry has none
};

class SessionKeeper {
 public:
  virtual ~SessionKeeper() = default;
  // Keeps `blob` (and a duplicate of `fd` when >= 0) under `name`,
  // replacing what was there; returns once it is kept.
  virtual absl::Status Put(absl::string_view name, absl::string_view blob,
                           int fd = -1) = 0;
  // Drops `name` and every entry under `name` + "/".
  virtual absl::Status Remove(absl::string_view name) = 0;
  // The entry a previous process kept under `name`, once; nullopt if none.
  virtual std::optional<KeptEntry> Take(absl::string_view name) = 0;
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_SESSION_KEEPER_H_
