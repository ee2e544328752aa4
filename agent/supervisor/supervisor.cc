#include "agent/supervisor/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/supervisor/protocol.h"
#include "agent/supervisor/state_store.h"
#include "common/errno_status.h"
#include "common/log.h"
#include "common/unique_fd.h"

namespace coherefs::agent::supervisor {
namespace {

// At most this many malformed/refused request lines per minute: a broken
// worker must not flood the log.
constexpr int kLogsPerMinute = 10;

struct Held {
  std::string blob;
  UniqueFd fd;
};

// One message waiting for the worker's socket to take it.
struct Outgoing {
  wire::Op op;
  std::string text;  // kEntry: the entry's name; kAck: the error message
  uint32_t arg = 0;  // kAck: the status code
};

std::string Describe(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return absl::StrCat("signal ", name != nullptr ? absl::StrCat("SIG", name) : "?", " (", sig,
                        ")");
  }
  return absl::StrCat("status ", status);
}

class Supervisor {
 public:
  Supervisor(char** argv, const SupervisorOptions& options) : argv_(argv), opt_(options) {}
  int Run();

 private:
  absl::Status StartWorker();
  void ReadSignals();
  void OnStopSignal(int signo);
  void OnReplaceSignal();
  void OnWorkerExit(int status);
  void ReadRequests();
  absl::Status Handle(wire::Received& r);
  void Flush();
  void CloseSocket();
  void LogRefused(const absl::Status& s);

  char** const argv_;
  const SupervisorOptions opt_;
  sigset_t old_mask_{};
  UniqueFd signals_;

  std::map<std::string, Held> entries_;  // sorted: prefix removal is a range
  size_t blob_bytes_ = 0;

  pid_t worker_ = -1;
  absl::Time worker_started_;
  uint32_t restarts_ = 0;           // the current worker's COHEREFS_RESTARTS
  std::deque<absl::Time> recent_;   // restart times within restart_window
  int quick_streak_ = 0;            // workers in a row that died quickly
  std::optional<absl::Time> restart_at_;
  bool stopping_ = false;
  bool replacing_ = false;          // SIGUSR2: the worker was killed on purpose
  uint32_t replacements_ = 0;       // COHEREFS_REPLACEMENTS
  std::optional<int> exit_code_;

  UniqueFd socket_;
  std::deque<Outgoing> out_;
  uint32_t handed_over_ = 0;
  bool retry_soon_ = false;  // ETOOMANYREFS: no POLLOUT will say when

  absl::Time log_window_ = absl::InfinitePast();
  int logged_ = 0;
  int64_t suppressed_ = 0;
};

int Supervisor::Run() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR2}) sigaddset(&set, s);
  if (sigprocmask(SIG_BLOCK, &set, &old_mask_) != 0) {
    LOG_ERROR("cannot block signals").Kv("error", LastErrnoStatus("sigprocmask"));
    return 1;
  }
  signals_.Reset(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_) {
    LOG_ERROR("cannot start").Kv("error", LastErrnoStatus("signalfd"));
    return 1;
  }
  // Log lines to a closed stderr must not kill the keeper of every session.
  signal(SIGPIPE, SIG_IGN);
  // Every held descriptor is open here, and again in the worker after a
  // hand-over: make room for the cap (the hard limit permitting).
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    const rlim_t want = opt_.max_entries + 1024;
    if (nofile.rlim_cur < want) {
      nofile.rlim_cur = std::min<rlim_t>(want, nofile.rlim_max);
      setrlimit(RLIMIT_NOFILE, &nofile);
    }
  }
  if (absl::Status s = StartWorker(); !s.ok()) {
    LOG_ERROR("cannot start the worker").Kv("error", s);
    return 1;
  }
  while (!exit_code_.has_value()) {
    int timeout_ms = -1;
    if (restart_at_.has_value()) {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, absl::ToInt64Milliseconds(*restart_at_ - absl::Now()) + 1));
    }
    if (retry_soon_) timeout_ms = timeout_ms < 0 ? 10 : std::min(timeout_ms, 10);
    pollfd p[2] = {{signals_.get(), POLLIN, 0}, {-1, 0, 0}};
    if (socket_) {
      p[1].fd = socket_.get();
      p[1].events = POLLIN | (out_.empty() || retry_soon_ ? 0 : POLLOUT);
    }
    if (poll(p, 2, timeout_ms) < 0 && errno != EINTR) {
      LOG_ERROR("poll failed").Kv("error", LastErrnoStatus("poll"));
      return 1;
    }
    if (p[0].revents != 0) ReadSignals();
    if (exit_code_.has_value()) break;
    if (socket_ && p[1].revents != 0) ReadRequests();
    if (socket_ && !out_.empty()) Flush();
    if (restart_at_.has_value() && absl::Now() >= *restart_at_) {
      restart_at_.reset();
      ++restarts_;
      if (absl::Status s = StartWorker(); !s.ok()) {
        LOG_ERROR("cannot restart the worker").Kv("error", s);
        return 1;
      }
    }
  }
  return *exit_code_;
}

absl::Status Supervisor::StartWorker() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return LastErrnoStatus("socketpair");
  }
  UniqueFd mine(pair[0]);
  UniqueFd theirs(pair[1]);
  // Built before fork: the child only calls what a forked child may.
  const std::string fd_text = absl::StrCat(theirs.get());
  const std::string restarts_text = absl::StrCat(restarts_);
  const std::string replacements_text = absl::StrCat(replacements_);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return LastErrnoStatus("fork");
  if (pid == 0) {
    // The supervisor is single-threaded, so the child's libc is consistent.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The supervisor may have died before prctl: then nobody would kill us.
    if (getppid() != parent) _exit(1);
    fcntl(theirs.get(), F_SETFD, 0);  // inherited by the exec, and only it
    setenv(kStateFdEnv, fd_text.c_str(), 1);
    setenv(kRestartsEnv, restarts_text.c_str(), 1);
    setenv(kReplacementsEnv, replacements_text.c_str(), 1);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
    execv(opt_.executable.c_str(), argv_);
    const std::string msg =
        absl::StrCat("coherefs supervisor: exec ", opt_.executable, ": ", strerror(errno), "\n");
    (void)!write(STDERR_FILENO, msg.data(), msg.size());
    _exit(1);  // "cannot start"
  }
  theirs.Reset();
  if (fcntl(mine.get(), F_SETFL, O_NONBLOCK) != 0) return LastErrnoStatus("O_NONBLOCK");
  socket_ = std::move(mine);
  worker_ = pid;
  worker_started_ = absl::Now();
  out_.clear();
  retry_soon_ = false;
  handed_over_ = 0;
  for (const auto& [name, held] : entries_) out_.push_back({wire::kEntry, name, 0});
  out_.push_back({wire::kEnd, "", 0});
  LOG_INFO("worker started")
      .Kv("pid", pid)
      .Kv("restarts", restarts_)
      .Kv("entries", entries_.size());
  return absl::OkStatus();
}

void Supervisor::ReadSignals() {
  bool child = false;
  std::vector<int> stops;
  while (true) {
    signalfd_siginfo info[8];
    const ssize_t n = read(signals_.get(), info, sizeof(info));
    if (n <= 0) break;
    for (size_t i = 0; i < static_cast<size_t>(n) / sizeof(info[0]); ++i) {
      if (info[i].ssi_signo == SIGCHLD) {
        child = true;
      } else if (info[i].ssi_signo == SIGUSR2) {
        OnReplaceSignal();
      } else {
        stops.push_back(static_cast<int>(info[i].ssi_signo));
      }
    }
  }
  // Stop requests first: a worker killed by the same terminal hang-up or
  // Ctrl-C must not be restarted.
  for (int s : stops) OnStopSignal(s);
  if (!child) return;
  int status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == worker_) OnWorkerExit(status);
  }
}

void Supervisor::OnReplaceSignal() {
  if (stopping_ || worker_ <= 0 || replacing_) return;
  // Crash-only: the worker is killed exactly as a crash would kill it, so
  // a replacement takes the one path every restart is tested on.
  LOG_INFO("replacing the worker (SIGUSR2)")
      .Kv("worker", worker_)
      .Kv("executable", opt_.executable);
  replacing_ = true;
  kill(worker_, SIGKILL);
}

void Supervisor::OnStopSignal(int signo) {
  const int forward = signo == SIGHUP ? SIGTERM : signo;
  LOG_INFO("stopping")
      .Kv("signal", sigabbrev_np(signo) != nullptr ? sigabbrev_np(signo) : "?")
      .Kv("worker", worker_);
  stopping_ = true;
  if (worker_ > 0) {
    kill(worker_, forward);
  } else if (!exit_code_.has_value()) {
    exit_code_ = 0;  // between workers: nothing to wait for
  }
}

void Supervisor::OnWorkerExit(int status) {
  const absl::Time now = absl::Now();
  const absl::Duration lived = now - worker_started_;
  const pid_t pid = worker_;
  worker_ = -1;
  CloseSocket();
  const bool exited = WIFEXITED(status);
  const int code = exited ? WEXITSTATUS(status) : -1;
  if (stopping_) {
    LOG_INFO("worker stopped").Kv("pid", pid).Kv("how", Describe(status));
    exit_code_ = exited ? code : 1;
    return;
  }
  if (replacing_) {
    // Asked for (an upgrade): not a crash, no backoff, no give-up count.
    replacing_ = false;
    ++replacements_;
    restart_at_ = now;
    LOG_INFO("worker replaced; starting the new one")
        .Kv("pid", pid)
        .Kv("replacements", replacements_)
        .Kv("entries", entries_.size());
    return;
  }
  if (exited && (code == 0 || code == 2 || (code == 1 && restarts_ == 0))) {
    // Done (0), bad configuration (2), or the first worker could not start
    // (1): a restart would do the same again.
    if (code == 0) {
      LOG_INFO("worker exited").Kv("pid", pid).Kv("how", Describe(status));
    } else {
      LOG_ERROR("worker exited").Kv("pid", pid).Kv("how", Describe(status));
    }
    exit_code_ = code;
    return;
  }
  LOG_WARN("worker died")
      .Kv("pid", pid)
      .Kv("how", Describe(status))
      .Kv("restarts", restarts_)
      .Kv("lived_ms", absl::ToInt64Milliseconds(lived))
      .Kv("entries", entries_.size());
  while (!recent_.empty() && now - recent_.front() > opt_.restart_window) recent_.pop_front();
  if (static_cast<int>(recent_.size()) >= opt_.max_restarts) {
    LOG_ERROR("worker keeps dying; giving up")
        .Kv("restarts_in_window", recent_.size())
        .Kv("window_s", absl::ToInt64Seconds(opt_.restart_window));
    exit_code_ = 1;
    return;
  }
  recent_.push_back(now);
  quick_streak_ = lived < opt_.quick_crash ? quick_streak_ + 1 : 1;
  absl::Duration delay = absl::ZeroDuration();
  if (quick_streak_ > 1) {
    delay = opt_.backoff_initial;
    for (int i = 2; i < quick_streak_ && delay < opt_.backoff_max; ++i) delay *= 2;
    delay = std::min(delay, opt_.backoff_max);
  }
  restart_at_ = now + delay;
  LOG_INFO("restarting the worker")
      .Kv("restart", restarts_ + 1)
      .Kv("delay_ms", absl::ToInt64Milliseconds(delay))
      .Kv("entries", entries_.size());
}

void Supervisor::CloseSocket() {
  socket_.Reset();
  out_.clear();
  retry_soon_ = false;
}

void Supervisor::ReadRequests() {
  // Bounded: a worker flooding requests must not starve signal handling.
  for (int i = 0; i < 256 && socket_; ++i) {
    absl::StatusOr<wire::Received> r = wire::Receive(socket_.get(), MSG_DONTWAIT);
    if (!r.ok()) {
      // ECONNRESET: the worker exited with replies it never read — an
      // exit, not a fault of the socket.
      if (ErrnoFromStatus(r.status()) != ECONNRESET) {
        LOG_WARN("state socket failed").Kv("error", r.status());
      }
      CloseSocket();
      return;
    }
    if (r->would_block) return;
    if (r->eof) {
      // The worker closed its end (it is exiting); SIGCHLD follows.
      CloseSocket();
      return;
    }
    absl::Status s = Handle(*r);
    if (!s.ok()) LogRefused(s);
    out_.push_back({wire::kAck, std::string(s.message()), static_cast<uint32_t>(s.code())});
  }
}

absl::Status Supervisor::Handle(wire::Received& r) {
  if (!r.parse.ok()) return r.parse;
  wire::Message& m = r.message;
  if (m.name.empty()) return absl::InvalidArgumentError("empty name");
  switch (m.header.op) {
    case wire::kPut: {
      if (m.fds.size() > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("put \"", m.name, "\" with ", m.fds.size(), " descriptors; at most one"));
      }
      auto it = entries_.find(m.name);
      if (it == entries_.end() && entries_.size() >= opt_.max_entries) {
        return absl::ResourceExhaustedError(
            absl::StrCat("store full: ", entries_.size(), " entries"));
      }
      const size_t old_bytes = it == entries_.end() ? 0 : it->second.blob.size();
      const size_t bytes = blob_bytes_ - old_bytes + m.blob.size();
      if (bytes > opt_.max_blob_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "store full: ", blob_bytes_, " blob bytes held, at most ", opt_.max_blob_bytes));
      }
      Held& h = entries_[m.name];
      h.blob = m.blob;
      h.fd = m.fds.empty() ? UniqueFd() : std::move(m.fds[0]);
      blob_bytes_ = bytes;
      return absl::OkStatus();
    }
    case wire::kRemove: {
      if (!m.fds.empty() || !m.blob.empty()) {
        return absl::InvalidArgumentError("remove with a blob or descriptor");
      }
      auto drop = [&](std::map<std::string, Held>::iterator it) {
        blob_bytes_ -= it->second.blob.size();
        return entries_.erase(it);
      };
      if (auto it = entries_.find(m.name); it != entries_.end()) drop(it);
      const std::string sub = m.name + "/";
      for (auto it = entries_.lower_bound(sub);
           it != entries_.end() && absl::StartsWith(it->first, sub);) {
        it = drop(it);
      }
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown op ", m.header.op));
  }
}

void Supervisor::Flush() {
  retry_soon_ = false;
  while (socket_ && !out_.empty()) {
    const Outgoing& o = out_.front();
    absl::Status s;
    if (o.op == wire::kEntry) {
      auto it = entries_.find(o.text);
      if (it == entries_.end()) {  // removed since the hand-over was queued
        out_.pop_front();
        continue;
      }
      s = wire::Send(socket_.get(), wire::kEntry, it->first, it->second.blob,
                     it->second.fd ? 1 : 0, it->second.fd.get(), MSG_DONTWAIT);
    } else if (o.op == wire::kEnd) {
      s = wire::Send(socket_.get(), wire::kEnd, "", "", handed_over_, -1, MSG_DONTWAIT);
    } else {
      s = wire::Send(socket_.get(), o.op, "", o.text, o.arg, -1, MSG_DONTWAIT);
    }
    if (!s.ok()) {
      const int err = ErrnoFromStatus(s);
      if (err == EAGAIN || err == EWOULDBLOCK) return;  // POLLOUT resumes
      if (err == ETOOMANYREFS) {  // too many descriptors in flight
        retry_soon_ = true;
        return;
      }
      // The worker is gone or going; SIGCHLD follows.
      LOG_WARN("state socket send failed").Kv("error", s);
      CloseSocket();
      return;
    }
    if (o.op == wire::kEntry) ++handed_over_;
    if (o.op == wire::kEnd) {
      LOG_INFO("entries handed over").Kv("pid", worker_).Kv("entries", handed_over_);
    }
    out_.pop_front();
  }
}

void Supervisor::LogRefused(const absl::Status& s) {
  const absl::Time now = absl::Now();
  if (now - log_window_ >= absl::Minutes(1)) {
    if (suppressed_ > 0) {
      LOG_WARN("refused requests not logged").Kv("count", suppressed_);
    }
    log_window_ = now;
    logged_ = 0;
    suppressed_ = 0;
  }
  if (logged_ >= kLogsPerMinute) {
    ++suppressed_;
    return;
  }
  ++logged_;
  LOG_WARN("request refused").Kv("pid", worker_).Kv("error", s);
}

}  // namespace

int RunSupervisor(char** argv, const SupervisorOptions& options) {
  SetLogComponent("supervisor");
  SupervisorOptions resolved = options;
  if (resolved.executable == "/proc/self/exe") {
    // Exec the binary by its own path: the worker's comm (ps, pgrep,
    // /proc/PID/status) is then "coherefs-agent", not "exe".
    char path[4096];
    const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n > 0) {
      path[n] = '\0';
      if (access(path, X_OK) == 0) resolved.executable = path;
    }
  }
  return Supervisor(argv, resolved).Run();
}

}  // namespace coherefs::agent::supervisor
