// Real processes, no mocks: each test starts test_worker (the supervisor,
// which re-executes itself as the worker) and reads what the workers
// report through an inherited pipe. This process is a child subreaper, so
// workers orphaned by a killed supervisor become its children: it can see
// how they died, and reaps them on every exit path.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace {

constexpr int kReportFd = 100;

std::string WorkerPath() {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"),
                      "/agent/supervisor/test_worker");
}

class SupervisorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    // Workers die with the supervisor (pdeathsig) and land here: reap them.
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      const pid_t p = waitpid(-1, nullptr, WNOHANG);
      if (p < 0) break;  // ECHILD: none left
      if (p == 0) usleep(10'000);
    }
    if (report_ >= 0) close(report_);
    if (!dir_.empty()) {
      unlink((dir_ + "/s").c_str());
      rmdir(dir_.c_str());
    }
  }

  // Starts the supervisor with --report-fd and `args`.
  void Start(std::vector<std::string> args) {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    args.insert(args.begin(), {WorkerPath(), absl::StrCat("--report-fd=", kReportFd)});
    started_ = absl::Now();
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      dup2(p[1], kReportFd);  // without close-on-exec
      unsetenv("COHEREFS_STATE_FD");
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(p[1]);
    report_ = p[0];
  }

  // The next report line, or "" at EOF / after `timeout`.
  std::string Line(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        lines_.push_back(line);
        return line;
      }
      const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      pollfd pf{report_, POLLIN, 0};
      if (ms <= 0 || poll(&pf, 1, static_cast<int>(ms)) <= 0) return "";
      char chunk[4096];
      const ssize_t n = read(report_, chunk, sizeof(chunk));
      if (n <= 0) return "";
      buf_.append(chunk, n);
    }
  }

  // Reads lines until one starts with `prefix`; returns it ("" if none).
  std::string LineStarting(absl::string_view prefix) {
    for (std::string l = Line(); !l.empty(); l = Line()) {
      if (absl::StartsWith(l, prefix)) return l;
    }
    return "";
  }

  // Every remaining line until EOF (all workers and the supervisor gone).
  std::vector<std::string> Rest() {
    std::vector<std::string> out;
    for (std::string l = Line(); !l.empty(); l = Line()) out.push_back(l);
    return out;
  }

  // The supervisor's wait status, or -1 if it outlived `timeout`.
  int Wait(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      usleep(10'000);
    }
    return -1;
  }

  static int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

  static pid_t PidIn(const std::string& line) {
    auto pos = line.find("pid=");
    return pos == std::string::npos ? -1 : std::atoi(line.c_str() + pos + 4);
  }

  std::string TempDir() {
    char tmpl[] = "/tmp/cohsup.XXXXXX";
    dir_ = mkdtemp(tmpl);
    return dir_;
  }

  pid_t pid_ = -1;
  int report_ = -1;
  std::string buf_;
  std::vector<std::string> lines_;
  std::string dir_;
  absl::Time started_;
};

TEST_F(SupervisorTest, EntriesOutliveWorkersAndRestartsCount) {
  Start({"--scenario=handover"});
  EXPECT_EQ(LineStarting("g0 ready"), "g0 ready");
  // Worker 1: after worker 0's SIGKILL.
  EXPECT_EQ(LineStarting("g1 restarts="),
            "g1 restarts=1 names=blob,conn/10,conn/2,ev,mem conn=conn/10,conn/2");
  EXPECT_EQ(Line(), "g1 blob=hello blob_fd=no again=none");
  EXPECT_EQ(Line(), "g1 mem=guest memory");
  EXPECT_EQ(Line(), "g1 ev=5 ev_blob=counter");
  // Worker 2: after worker 1's abort(); sees worker 1's writes to the same
  // memfd and eventfd, and the entry worker 1 took is still stored.
  EXPECT_EQ(LineStarting("g2 restarts="),
            "g2 restarts=2 names=blob,conn/10,conn/2,ev,mem conn=conn/10,conn/2");
  EXPECT_EQ(Line(), "g2 blob=hello blob_fd=no again=none");
  EXPECT_EQ(Line(), "g2 mem=guest memory+g1");
  EXPECT_EQ(Line(), "g2 ev=7 ev_blob=counter");
  EXPECT_EQ(ExitCode(Wait()), 0);
  // The first restart is immediate, the second after 100 ms: well under 5 s.
  EXPECT_LT(absl::Now() - started_, absl::Seconds(5));
}

TEST_F(SupervisorTest, StoredConnectionSeesNoEofAcrossWorkerDeath) {
  const std::string path = TempDir() + "/s";
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  Start({"--scenario=socket", "--connect=" + path});
  ASSERT_EQ(LineStarting("g0 connected"), "g0 connected");
  int conns[2] = {accept4(listener, nullptr, nullptr, SOCK_CLOEXEC),
                  accept4(listener, nullptr, nullptr, SOCK_CLOEXEC)};
  ASSERT_GE(conns[0], 0);
  ASSERT_GE(conns[1], 0);
  close(listener);
  // Worker 1 has started, so worker 0 is dead.
  ASSERT_TRUE(absl::StartsWith(LineStarting("g1 start"), "g1 start"));
  int stored = -1, unstored = -1;
  for (int c : conns) {
    // One byte at a time: worker 1's greeting may follow on the same stream.
    std::string first;
    char ch;
    while (first.size() < 16 && read(c, &ch, 1) == 1 && ch != '\n') first += ch;
    (first == "stored" ? stored : unstored) = c;
  }
  ASSERT_GE(stored, 0);
  ASSERT_GE(unstored, 0);
  // The connection the dead worker did not store is closed (EOF): the
  // check below can tell.
  char buf[64] = {};
  EXPECT_EQ(read(unstored, buf, sizeof(buf)), 0);
  // The stored one carries worker 1's greeting, not an EOF.
  pollfd pf{stored, POLLIN, 0};
  ASSERT_EQ(poll(&pf, 1, 10'000), 1);
  const ssize_t n = read(stored, buf, sizeof(buf) - 1);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "hello from g1\n");
  ASSERT_EQ(write(stored, "ping", 4), 4);
  EXPECT_EQ(LineStarting("g1 got="), "g1 got=ping");
  EXPECT_EQ(ExitCode(Wait()), 0);
  close(stored);
  close(unstored);
}

TEST_F(SupervisorTest, SigtermStopsWorkerAndExitsWithItsCode) {
  Start({"--scenario=sigterm"});
  const pid_t worker = PidIn(LineStarting("g0 start"));
  ASSERT_GT(worker, 0);
  ASSERT_EQ(LineStarting("g0 ready"), "g0 ready");
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  EXPECT_EQ(LineStarting("g0 got"), "g0 got SIGTERM");
  EXPECT_EQ(ExitCode(Wait()), 0);
  EXPECT_EQ(Rest(), std::vector<std::string>{});  // no restart
}

TEST_F(SupervisorTest, Sigusr2ReplacesTheWorkerKeepingEntriesWithoutCountingACrash) {
  // A restart limit of 1: three replacements must not trip it.
  Start({"--scenario=replace", "--max-restarts=1"});
  EXPECT_EQ(LineStarting("g0 replacements="), "g0 replacements=0 kept=none");
  ASSERT_EQ(LineStarting("g0 ready"), "g0 ready");
  for (int gen = 1; gen <= 3; ++gen) {
    ASSERT_EQ(kill(pid_, SIGUSR2), 0);
    EXPECT_EQ(LineStarting(absl::StrCat("g", gen, " replacements=")),
              absl::StrCat("g", gen, " replacements=", gen, " kept=from g0"));
    ASSERT_EQ(LineStarting(absl::StrCat("g", gen, " ready")), absl::StrCat("g", gen, " ready"));
  }
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  EXPECT_EQ(ExitCode(Wait()), 0);
}

TEST_F(SupervisorTest, StopExitCodeIsTheWorkers) {
  Start({"--scenario=sigterm", "--term-exit=3"});
  ASSERT_EQ(LineStarting("g0 ready"), "g0 ready");
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  EXPECT_EQ(ExitCode(Wait()), 3);
}

TEST_F(SupervisorTest, BadConfigExit2IsNotRestarted) {
  Start({"--scenario=exit2"});
  EXPECT_EQ(ExitCode(Wait()), 2);
  std::vector<std::string> rest = Rest();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(rest[0], "g0 start"));
}

TEST_F(SupervisorTest, FirstWorkerCannotStartExit1IsNotRestarted) {
  Start({"--scenario=exit1"});
  EXPECT_EQ(ExitCode(Wait()), 1);
  EXPECT_EQ(Rest().size(), 1u);
}

TEST_F(SupervisorTest, CrashLoopGivesUpAfterTheLimit) {
  Start({"--scenario=crash", "--max-restarts=3"});
  EXPECT_EQ(ExitCode(Wait(absl::Seconds(20))), 1);
  std::vector<std::string> rest = Rest();
  // Workers 0..3: three restarts, then no fourth.
  ASSERT_EQ(rest.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(absl::StartsWith(rest[i], absl::StrCat("g", i, " start")));
  // Backoff: 0, 100, 200 ms between workers.
  EXPECT_GE(absl::Now() - started_, absl::Milliseconds(300));
}

TEST_F(SupervisorTest, KillingTheSupervisorKillsTheWorker) {
  Start({"--scenario=sleep"});
  const std::string start = LineStarting("g0 start");
  const pid_t worker = PidIn(start);
  ASSERT_GT(worker, 0);
  EXPECT_NE(start.find(absl::StrCat("ppid=", pid_)), std::string::npos) << start;
  ASSERT_EQ(LineStarting("g0 ready"), "g0 ready");
  ASSERT_EQ(kill(pid_, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid_, &status, 0), pid_);
  pid_ = -1;
  // Orphaned, the worker is reparented to this subreaper: it must die of
  // SIGKILL (pdeathsig), not keep sleeping.
  int wstatus = 0;
  pid_t got = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while ((got = waitpid(worker, &wstatus, WNOHANG)) == 0 && absl::Now() < deadline) {
    usleep(10'000);
  }
  ASSERT_EQ(got, worker);
  EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL);
}

TEST_F(SupervisorTest, MalformedRequestsGetErrorAcksAndCapsRefuse) {
  Start({"--scenario=malformed", "--max-entries=3", "--max-bytes=100000"});
  EXPECT_EQ(ExitCode(Wait()), 0);
  std::vector<std::string> rest = Rest();
  auto code_of = [&](const std::string& name) -> std::string {
    const std::string key = "g0 case=" + name + " code=";
    for (const auto& l : rest) {
      if (absl::StartsWith(l, key)) {
        const std::string tail = l.substr(key.size());
        return tail.substr(0, tail.find(' '));
      }
    }
    return "missing";
  };
  for (const char* c : {"short", "lengths", "name_too_long", "too_big", "unknown_op",
                        "empty_name", "two_fds", "api_long_name", "api_big_blob"}) {
    EXPECT_EQ(code_of(c), "INVALID_ARGUMENT") << c;
  }
  EXPECT_NE(std::find(rest.begin(), rest.end(), "g0 two_fds_closed=1"), rest.end());
  for (const char* c : {"valid", "e1", "e2", "e1_replace", "remove_e2", "big1", "remove_e1",
                        "big1_shrink", "big2_after"}) {
    EXPECT_EQ(code_of(c), "OK") << c;
  }
  EXPECT_EQ(code_of("e3_over_count"), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(code_of("big2_over_bytes"), "RESOURCE_EXHAUSTED");
  for (const auto& l : rest) EXPECT_FALSE(absl::StrContains(l, "FAIL")) << l;
}

TEST_F(SupervisorTest, StoreWorksUnderTheAgentsSeccompFilter) {
  // A call off the allowlist would kill the worker with SIGSYS: no report
  // line, and a crash loop instead of exit 0.
  Start({"--scenario=seccomp", "--max-restarts=1"});
  EXPECT_EQ(LineStarting("g0 ready"), "g0 ready");
  EXPECT_EQ(LineStarting("g1 names="), "g1 names=mem mem=sealed in");
  EXPECT_EQ(ExitCode(Wait()), 0);
}

}  // namespace
