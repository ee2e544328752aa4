// The program supervisor_test runs in place of coherefs-agent: like the
// agent, it is the supervisor when COHEREFS_STATE_FD is unset (it calls
// RunSupervisor with its own argv) and the worker when it is set. As the
// worker it plays one --scenario and writes what it saw, one line per
// event, to the descriptor --report-fd (inherited through the supervisor).
//
//   test_worker --scenario=handover --report-fd=100 [--max-restarts=N]
//               [--max-entries=N] [--max-bytes=N] [--connect=PATH] [--term-exit=N]
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/sandbox/seccomp_filter.h"
#include "agent/supervisor/protocol.h"
#include "agent/supervisor/state_store.h"
#include "agent/supervisor/supervisor.h"

namespace {

namespace sv = coherefs::agent::supervisor;
namespace wire = coherefs::agent::supervisor::wire;

struct Args {
  std::string scenario;
  int report_fd = -1;
  int max_restarts = 10;
  size_t max_entries = 65'536;
  size_t max_bytes = size_t{64} << 20;
  std::string connect;
  int term_exit = 0;
};

Args g_args;
uint32_t g_gen = 0;

void Report(const std::string& line) {
  const std::string l = absl::StrCat("g", g_gen, " ", line, "\n");
  (void)!write(g_args.report_fd, l.data(), l.size());
}

[[noreturn]] void Fail(const std::string& what) {
  Report(absl::StrCat("FAIL ", what));
  _exit(97);
}

void Check(const absl::Status& s, const std::string& what) {
  if (!s.ok()) Fail(absl::StrCat(what, ": ", s.ToString()));
}

std::string ReadAllAt(int fd) {
  char buf[256];
  const ssize_t n = pread(fd, buf, sizeof(buf), 0);
  return n > 0 ? std::string(buf, n) : std::string();
}

int ConnectTo(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) Fail("connect");
  return fd;
}

void Handover(sv::StateStore& store) {
  if (g_gen == 0) {
    Check(store.Put("blob", "hello"), "put blob");
    int mem = memfd_create("test-mem", MFD_CLOEXEC);
    (void)!write(mem, "guest memory", 12);
    Check(store.Put("mem", "", mem), "put mem");
    close(mem);  // the supervisor's copy keeps it alive
    int ev = eventfd(5, EFD_CLOEXEC);
    Check(store.Put("ev", "counter", ev), "put ev");
    close(ev);
    for (const char* n : {"conn/1", "conn/1/ring", "conn/10", "conn/2"}) {
      Check(store.Put(n, n), n);
    }
    Check(store.Remove("conn/1"), "remove conn/1");
    Check(store.Remove("never-there"), "remove never-there");
    Report("ready");
    raise(SIGKILL);
  }
  Report(absl::StrCat("restarts=", store.restarts(), " names=", absl::StrJoin(store.Names(""), ","),
                      " conn=", absl::StrJoin(store.Names("conn/"), ",")));
  auto blob = store.Take("blob");
  Report(absl::StrCat("blob=", blob ? blob->blob : "none",
                      " blob_fd=", blob && blob->fd.valid() ? "yes" : "no",
                      " again=", store.Take("blob") ? "some" : "none"));
  auto mem = store.Take("mem");
  if (!mem || !mem->fd.valid()) Fail("no mem fd");
  Report(absl::StrCat("mem=", ReadAllAt(mem->fd.get())));
  auto ev = store.Take("ev");
  if (!ev || !ev->fd.valid()) Fail("no ev fd");
  uint64_t value = 0;
  (void)!read(ev->fd.get(), &value, sizeof(value));
  Report(absl::StrCat("ev=", value, " ev_blob=", ev->blob));
  if (g_gen == 1) {
    // Visible to the next worker only if the supervisor holds the same
    // kernel objects, not copies.
    (void)!pwrite(mem->fd.get(), "+g1", 3, 12);
    value = 7;
    (void)!write(ev->fd.get(), &value, sizeof(value));
    abort();
  }
  _exit(0);
}

void SocketSurvives(sv::StateStore& store) {
  if (g_gen == 0) {
    int kept = ConnectTo(g_args.connect);
    (void)!write(kept, "stored\n", 7);
    Check(store.Put("conn", "vhost-user", kept), "put conn");
    int lost = ConnectTo(g_args.connect);
    (void)!write(lost, "unstored\n", 9);
    Report("connected");
    raise(SIGKILL);
  }
  auto conn = store.Take("conn");
  if (!conn || !conn->fd.valid()) Fail("no conn");
  const char hello[] = "hello from g1\n";
  (void)!write(conn->fd.get(), hello, sizeof(hello) - 1);
  char buf[64] = {};
  const ssize_t n = read(conn->fd.get(), buf, sizeof(buf) - 1);
  Report(absl::StrCat("got=", n > 0 ? std::string(buf, n) : "EOF"));
  _exit(0);
}

// Raw packets on the state socket: what a broken worker could send.
absl::Status RawCall(int fd, const std::string& packet, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(packet.data()), packet.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  if (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0) Fail(absl::StrCat("raw sendmsg: ", strerror(errno)));
  auto r = wire::Receive(fd);
  if (!r.ok() || r->eof || !r->parse.ok() || r->message.header.op != wire::kAck) {
    Fail("no ack");
  }
  return absl::Status(static_cast<absl::StatusCode>(r->message.header.arg), r->message.blob);
}

std::string Packet(uint32_t op, uint32_t name_len, uint32_t blob_len, const std::string& body) {
  wire::Header h{op, name_len, blob_len, 0};
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h)) + body;
}

void ReportCase(const std::string& name, const absl::Status& s) {
  Report(absl::StrCat("case=", name, " code=", absl::StatusCodeToString(s.code()), " msg=",
                      s.message()));
}

void Malformed(sv::StateStore& store) {
  const int fd = std::atoi(std::getenv(sv::kStateFdEnv));
  ReportCase("short", RawCall(fd, "abc", {}));
  ReportCase("lengths", RawCall(fd, Packet(wire::kPut, 5, 100, "named"), {}));
  ReportCase("name_too_long", RawCall(fd, Packet(wire::kPut, 256, 0, std::string(256, 'n')), {}));
  ReportCase("too_big", RawCall(fd, std::string(wire::kMaxMessageBytes + 100, 'x'), {}));
  ReportCase("unknown_op", RawCall(fd, Packet(99, 1, 0, "x"), {}));
  ReportCase("empty_name", RawCall(fd, Packet(wire::kPut, 0, 1, "b"), {}));
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) Fail("pipe");
  ReportCase("two_fds", RawCall(fd, Packet(wire::kPut, 3, 0, "two"), {p[0], p[0]}));
  close(p[0]);
  // Every read end is closed only if the supervisor dropped both copies.
  signal(SIGPIPE, SIG_IGN);
  const bool closed = write(p[1], "x", 1) < 0 && errno == EPIPE;
  Report(absl::StrCat("two_fds_closed=", closed ? 1 : 0));
  // Local checks of the API, never sent.
  ReportCase("api_long_name", store.Put(std::string(256, 'n'), "b"));
  ReportCase("api_big_blob", store.Put("b", std::string(sv::kMaxBlobBytes + 1, 'b')));
  // Still serving.
  ReportCase("valid", store.Put("ok", "fine"));
  // Caps (run with --max-entries=3 --max-bytes=100000).
  ReportCase("e1", store.Put("e1", "1"));
  ReportCase("e2", store.Put("e2", "2"));
  ReportCase("e3_over_count", store.Put("e3", "3"));
  ReportCase("e1_replace", store.Put("e1", "one"));
  ReportCase("remove_e2", store.Remove("e2"));
  ReportCase("big1", store.Put("big1", std::string(60'000, 'a')));
  ReportCase("remove_e1", store.Remove("e1"));
  ReportCase("big2_over_bytes", store.Put("big2", std::string(60'000, 'a')));
  ReportCase("big1_shrink", store.Put("big1", "small"));
  ReportCase("big2_after", store.Put("big2", std::string(60'000, 'a')));
  _exit(0);
}

// Under the agent's own seccomp allowlist (kill on anything else), from
// the hand-over on: every call the store makes must be on the list.
void UnderSeccomp(sv::StateStore& store) {
  if (g_gen == 0) {
    int mem = memfd_create("seccomp-mem", MFD_CLOEXEC);
    if (mem < 0) Fail("memfd_create");
    (void)!write(mem, "sealed in", 9);
    Check(store.Put("mem", "m", mem), "put mem");
    Check(store.Put("gone/1", "x"), "put gone/1");
    Check(store.Remove("gone"), "remove gone");
    Report("ready");
    raise(SIGKILL);
  }
  const std::string names = absl::StrJoin(store.Names(""), ",");
  auto mem = store.Take("mem");
  Report(absl::StrCat("names=", names,
                      " mem=", mem && mem->fd.valid() ? ReadAllAt(mem->fd.get()) : "none"));
  _exit(0);
}

int Worker() {
  if (g_args.scenario == "seccomp") {
    Check(coherefs::agent::sandbox::InstallSeccompFilter(
              coherefs::agent::sandbox::SeccompAction::kKill),
          "seccomp");
  }
  auto store = sv::StateStore::FromEnvironment();
  if (!store.ok()) {
    std::fprintf(stderr, "test_worker: %s\n", store.status().ToString().c_str());
    return 1;
  }
  if (*store == nullptr) Fail("no store");
  g_gen = (*store)->restarts();
  Report(absl::StrCat("start pid=", getpid(), " ppid=", getppid()));
  const std::string& s = g_args.scenario;
  if (s == "handover") Handover(**store);
  if (s == "socket") SocketSurvives(**store);
  if (s == "malformed") Malformed(**store);
  if (s == "seccomp") UnderSeccomp(**store);
  if (s == "exit1") return 1;
  if (s == "exit2") return 2;
  if (s == "crash") abort();
  if (s == "sigterm") {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    Report("ready");
    int sig = 0;
    sigwait(&set, &sig);
    Report("got SIGTERM");
    return g_args.term_exit;
  }
  if (s == "replace") {
    // Replaced on request (SIGUSR2 to the supervisor): the store and the
    // counts carry over; each generation says what it was handed, then
    // waits for SIGTERM.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    auto kept = (*store)->Take("kept");
    if (g_gen == 0) Check((*store)->Put("kept", "from g0"), "put kept");
    Report(absl::StrCat("replacements=", (*store)->replacements(),
                        " kept=", kept ? kept->blob : "none"));
    Report("ready");
    int sig = 0;
    sigwait(&set, &sig);
    return 0;
  }
  if (s == "sleep") {
    Report("ready");
    for (int i = 0; i < 600; ++i) sleep(1);
    return 0;
  }
  Fail("unknown scenario " + s);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    auto value = [&](absl::string_view flag, auto* out) {
      if (!absl::ConsumePrefix(&a, flag)) return false;
      if constexpr (std::is_same_v<decltype(out), std::string*>) {
        *out = std::string(a);
      } else {
        if (!absl::SimpleAtoi(a, out)) std::exit(64);
      }
      return true;
    };
    if (value("--scenario=", &g_args.scenario) || value("--report-fd=", &g_args.report_fd) ||
        value("--max-restarts=", &g_args.max_restarts) ||
        value("--max-entries=", &g_args.max_entries) ||
        value("--max-bytes=", &g_args.max_bytes) || value("--connect=", &g_args.connect) ||
        value("--term-exit=", &g_args.term_exit)) {
      continue;
    }
    std::fprintf(stderr, "test_worker: unknown argument %s\n", argv[i]);
    return 64;
  }
  if (std::getenv(sv::kStateFdEnv) == nullptr) {
    sv::SupervisorOptions options;
    options.max_restarts = g_args.max_restarts;
    options.max_entries = g_args.max_entries;
    options.max_blob_bytes = g_args.max_bytes;
    return sv::RunSupervisor(argv, options);
  }
  return Worker();
}
