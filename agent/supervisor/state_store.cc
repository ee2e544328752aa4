#include "agent/supervisor/state_store.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/supervisor/protocol.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace coherefs::agent::supervisor {
namespace {

// The supervisor sends the hand-over as soon as the worker exists; a
// supervisor silent this long is broken, and the worker should exit rather
// than hang half-started.
constexpr int kHandOverTimeoutMs = 30'000;

absl::Status CheckName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("state store: empty name");
  if (name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("state store: name of ", name.size(),
                                                   " bytes; at most ", kMaxNameBytes));
  }
  return absl::OkStatus();
}

// The socket call failed: the supervisor is gone (EPIPE, ECONNRESET) or the
// socket is unusable; either way the caller cannot rely on the store.
absl::Status SocketError(const absl::Status& s) {
  return absl::UnavailableError(absl::StrCat("state store: supervisor unreachable: ", s.message()));
}

bool CoveredBy(absl::string_view name, absl::string_view removed) {
  return name == removed ||
         (name.size() > removed.size() && absl::StartsWith(name, removed) &&
          name[removed.size()] == '/');
}

}  // namespace

StateStore::StateStore(UniqueFd socket, uint32_t restarts)
    : socket_(std::move(socket)), restarts_(restarts) {}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::FromEnvironment() {
  const char* fd_text = std::getenv(kStateFdEnv);
  if (fd_text == nullptr) return std::unique_ptr<StateStore>();
  int fd = -1;
  if (!absl::SimpleAtoi(fd_text, &fd) || fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kStateFdEnv, "=\"", fd_text, "\" is not a descriptor number"));
  }
  if (fcntl(fd, F_GETFD) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kStateFdEnv, "=", fd, ": not an open descriptor"));
  }
  int type = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
    return absl::InvalidArgumentError(
        absl::StrCat(kStateFdEnv, "=", fd, ": not a SOCK_SEQPACKET socket"));
  }
  uint32_t restarts = 0;
  if (const char* r = std::getenv(kRestartsEnv); r != nullptr && !absl::SimpleAtoi(r, &restarts)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kRestartsEnv, "=\"", r, "\" is not a non-negative number"));
  }
  uint32_t replacements = 0;
  if (const char* r = std::getenv(kReplacementsEnv);
      r != nullptr && (!absl::SimpleAtoi(r, &replacements) || replacements > restarts)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kReplacementsEnv, "=\"", r, "\" is not a number up to ", kRestartsEnv));
  }
  // The supervisor cleared close-on-exec for the exec into this process
  // only; nothing this process starts should hold the store.
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return LastErrnoStatus("state socket FD_CLOEXEC");
  absl::StatusOr<std::unique_ptr<StateStore>> store = FromSocket(UniqueFd(fd), restarts);
  if (store.ok()) (*store)->replacements_ = replacements;
  return store;
}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::FromSocket(UniqueFd socket,
                                                                   uint32_t restarts) {
  std::unique_ptr<StateStore> store(new StateStore(std::move(socket), restarts));
  RETURN_IF_ERROR(store->ReadHandOver());
  return store;
}

absl::Status StateStore::ReadHandOver() {
  absl::MutexLock lock(&mu_);
  uint32_t entries = 0;
  while (true) {
    pollfd p{socket_.get(), POLLIN, 0};
    int ready;
    do {
      ready = poll(&p, 1, kHandOverTimeoutMs);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) return LastErrnoStatus("state store: poll");
    if (ready == 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "state store: no hand-over from the supervisor within ", kHandOverTimeoutMs, " ms"));
    }
    ASSIGN_OR_RETURN(wire::Received r, wire::Receive(socket_.get()));
    if (r.eof) {
      return absl::UnavailableError(absl::StrCat(
          "state store: supervisor closed the socket after ", entries, " hand-over entries"));
    }
    if (!r.parse.ok()) {
      return absl::DataLossError(
          absl::StrCat("state store: malformed hand-over: ", r.parse.message()));
    }
    wire::Message& m = r.message;
    if (m.header.op == wire::kEnd) {
      if (m.header.arg != entries) {
        return absl::DataLossError(absl::StrCat("state store: hand-over ended after ", entries,
                                                " entries, supervisor counted ", m.header.arg));
      }
      return absl::OkStatus();
    }
    if (m.header.op != wire::kEntry) {
      return absl::DataLossError(
          absl::StrCat("state store: unexpected message ", m.header.op, " in the hand-over"));
    }
    const size_t want_fds = m.header.arg != 0 ? 1 : 0;
    if (m.fds.size() != want_fds) {
      return absl::DataLossError(absl::StrCat("state store: entry \"", m.name, "\" came with ",
                                              m.fds.size(), " descriptors, want ", want_fds));
    }
    if (absl::Status s = CheckName(m.name); !s.ok()) {
      return absl::DataLossError(absl::StrCat("state store: hand-over: ", s.message()));
    }
    Entry e;
    e.blob = std::move(m.blob);
    if (want_fds) e.fd = std::move(m.fds[0]);
    handed_over_[m.name] = std::move(e);
    ++entries;
  }
}

std::optional<StateStore::Entry> StateStore::Take(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = handed_over_.find(name);
  if (it == handed_over_.end()) return std::nullopt;
  Entry e = std::move(it->second);
  handed_over_.erase(it);
  return e;
}

std::vector<std::string> StateStore::Names(absl::string_view prefix) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [name, entry] : handed_over_) {
    if (absl::StartsWith(name, prefix)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status StateStore::Call(uint32_t op, absl::string_view name, absl::string_view blob,
                              int fd) {
  if (absl::Status s = wire::Send(socket_.get(), static_cast<wire::Op>(op), name, blob, 0, fd);
      !s.ok()) {
    return SocketError(s);
  }
  // Blocking: the supervisor answers each request at once, and if it died
  // the socket reads EOF (and this process gets SIGKILL anyway).
  ASSIGN_OR_RETURN(wire::Received r, wire::Receive(socket_.get()));
  if (r.eof) return absl::UnavailableError("state store: supervisor closed the socket");
  if (!r.parse.ok() || r.message.header.op != wire::kAck) {
    return absl::InternalError(absl::StrCat("state store: bad reply from the supervisor: ",
                                            r.parse.ok() ? "not an ack" : r.parse.message()));
  }
  const auto code = static_cast<absl::StatusCode>(r.message.header.arg);
  if (code == absl::StatusCode::kOk) return absl::OkStatus();
  return absl::Status(code, absl::StrCat("supervisor: ", r.message.blob));
}

absl::Status StateStore::Put(absl::string_view name, absl::string_view blob, int fd) {
  RETURN_IF_ERROR(CheckName(name));
  if (blob.size() > kMaxBlobBytes) {
    return absl::InvalidArgumentError(absl::StrCat("state store: blob of ", blob.size(),
                                                   " bytes; at most ", kMaxBlobBytes));
  }
  absl::MutexLock lock(&mu_);
  return Call(wire::kPut, name, blob, fd);
}

absl::Status StateStore::Remove(absl::string_view name) {
  RETURN_IF_ERROR(CheckName(name));
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Call(wire::kRemove, name, "", -1));
  // What the supervisor no longer holds is no longer there to take.
  for (auto it = handed_over_.begin(); it != handed_over_.end();) {
    if (CoveredBy(it->first, name)) {
      handed_over_.erase(it++);
    } else {
      ++it;
    }
  }
  return absl::OkStatus();
}

}  // namespace coherefs::agent::supervisor
