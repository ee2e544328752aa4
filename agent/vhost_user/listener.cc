#include "agent/vhost_user/listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "agent/vhost_user/connection.h"
#include "common/errno_status.h"
#include "common/log.h"

namespace coherefs::agent::vhost_user {
namespace {

absl::StatusOr<sockaddr_un> MakeAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("socket path empty or too long");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// Removes `path` if it is a socket nobody accepts on any more.
absl::Status RemoveStaleSocket(const std::string& path,
                               const sockaddr_un& addr) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return LastErrnoStatus("lstat socket path");
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(path + " exists and is not a socket");
  }
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return LastErrnoStatus("socket");
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr),
                sizeof(addr)) == 0) {
    return absl::AlreadyExistsError(path + " is served by another process");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return LastErrnoStatus("unlink stale socket");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Start(
    std::string socket_path, DeviceFactory factory, SessionKeeper* keeper) {
  absl::StatusOr<sockaddr_un> addr = MakeAddress(socket_path);
  if (!addr.ok()) return addr.status();
  if (absl::Status s = RemoveStaleSocket(socket_path, *addr); !s.ok()) return s;
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return LastErrnoStatus("socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr),
             sizeof(*addr)) != 0) {
    return LastErrnoStatus("bind " + socket_path);
  }
  if (::listen(fd.get(), 1) != 0) {
    absl::Status s = LastErrnoStatus("listen");
    ::unlink(socket_path.c_str());
    return s;
  }
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  if (!stop.valid()) {
    absl::Status s = LastErrnoStatus("eventfd");
    ::unlink(socket_path.c_str());
    return s;
  }
  std::unique_ptr<Listener> l(new Listener(std::move(socket_path),
                                           std::move(factory), std::move(fd),
                                           std::move(stop), keeper));
  l->thread_ = std::thread([raw = l.get()] { raw->AcceptLoop(); });
  LOG_INFO("vhost-user socket listening").Kv("path", l->path_);
  return l;
}

Listener::Listener(std::string path, DeviceFactory factory,
                   UniqueFd listen_fd, UniqueFd stop_fd,
                   SessionKeeper* keeper)
    : path_(std::move(path)),
      factory_(std::move(factory)),
      listen_fd_(std::move(listen_fd)),
      stop_fd_(std::move(stop_fd)),
      keeper_(keeper) {}

Listener::~Listener() { Stop(); }

void Listener::Stop() {
  if (stopped_) return;
  stopped_ = true;
  uint64_t one = 1;
  ssize_t n = ::write(stop_fd_.get(), &one, sizeof(one));
  (void)n;
  if (thread_.joinable()) thread_.join();
  ::unlink(path_.c_str());
}

SessionInfo Listener::Session() const {
  absl::MutexLock lock(&mu_);
  SessionInfo info;
  info.connected = session_ != nullptr;
  info.evicted = evicted_;
  info.refused = refused_;
  if (session_ != nullptr) info.queues = session_->Queues();
  return info;
}

bool Listener::Evict() {
  absl::MutexLock lock(&mu_);
  evicted_ = true;
  if (session_ == nullptr) return false;
  session_->Close();
  return true;
}

bool Listener::Admit() {
  absl::MutexLock lock(&mu_);
  return std::exchange(evicted_, false);
}

void Listener::AcceptLoop() {
  if (keeper_ != nullptr) {
    if (std::optional<KeptEntry> kept = keeper_->Take("conn");
        kept.has_value() && kept->fd.valid()) {
      metrics_.AddConnection();
      absl::Status s = ServeSession(std::move(kept->fd), /*resume=*/true);
      if (absl::IsCancelled(s)) return;
      LOG_INFO("vhost-user front end gone").Kv("path", path_).Kv("status", s);
    }
  }
  for (;;) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("poll on vhost-user listener failed").Kv("errno", errno);
      return;
    }
    if (fds[1].revents & POLLIN) return;
    UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      LOG_ERROR("accept failed").Kv("path", path_).Kv("errno", errno);
      // EMFILE and friends: back off instead of spinning on the listener.
      ::poll(fds + 1, 1, 100);
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      if (evicted_) {
        // Closed at once (conn goes out of scope): a QEMU that reconnects
        // every second would otherwise flood the log, hence the limiter.
        ++refused_;
        if (refused_log_.Allow()) {
          LOG_WARN("refused a connection of an evicted guest").Kv("path", path_);
        }
        continue;
      }
    }
    metrics_.AddConnection();
    LOG_INFO("vhost-user front end connected").Kv("path", path_);
    if (keeper_ != nullptr) {
      if (absl::Status kept = keeper_->Put("conn", "", conn.get()); !kept.ok()) {
        LOG_WARN("cannot keep the vhost-user connection; a restart will drop it")
            .Kv("path", path_)
            .Kv("error", kept);
      }
    }
    absl::Status s = ServeSession(std::move(conn), /*resume=*/false);
    if (absl::IsCancelled(s)) return;
    LOG_INFO("vhost-user front end gone").Kv("path", path_).Kv("status", s);
  }
}

absl::Status Listener::ServeSession(UniqueFd conn, bool resume) {
  absl::Status s;
  {
    Connection session(std::move(conn), factory_, &metrics_, stop_fd_.get(),
                       keeper_);
    if (resume) {
      if (absl::Status r = session.Resume(); !r.ok()) {
        LOG_ERROR("cannot resume the kept vhost-user session; closing it")
            .Kv("path", path_)
            .Kv("error", r);
        s = r;
      } else {
        LOG_WARN("resumed the vhost-user session a previous agent process served")
            .Kv("path", path_);
      }
    }
    if (s.ok()) {
      {
        absl::MutexLock lock(&mu_);
        session_ = &session;
        // Evicted between the caller's check and now.
        if (evicted_) session.Close();
      }
      s = session.Serve();
      absl::MutexLock lock(&mu_);
      session_ = nullptr;
    }
  }
  // The session is over (a crash never gets here): nothing of it may be
  // resumed later -- nor a message it left unanswered (a session closed
  // for a bad message) be taken for the next session's.
  if (keeper_ != nullptr) {
    (void)keeper_->Remove("pending");
    (void)keeper_->Remove("conn");  // last: it marks a resumable session
  }
  return s;
}

}  // namespace coherefs::agent::vhost_user
