// Crash safety: a child process bumps in a loop over the real RocksDB store
// and reports every acknowledged bump over a pipe; it is SIGKILLed at random
// points (during start-up too). After each kill the store is reopened and
// must hold every acknowledged bump, and versions must only grow, across
// all the kills. COHEREFS_CRASH_KILLS sets the number of kills (default 20).
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/coherence_core.h"
#include "server/rocksdb_store.h"
#include "tests/coordinator/coordinator_process.h"

namespace coherefs::testing {
namespace {

using server::LogEntry;
using server::RocksDbStore;

struct Ack {
  uint64_t seq;
  uint32_t slot;
  uint64_t version;
};

struct ChildRun {
  bool ready = false;
  uint64_t epoch = 0;
  std::vector<Ack> acks;
};

// Runs the child and kills it `delay` after it started (if `after_ready`
// is false) or after it reported ready; returns what it acknowledged.
ChildRun RunAndKill(const std::string& dir, absl::Duration delay,
                    bool after_ready) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) abort();
  std::string binary = RunfilePath("tests/coordinator/crash_child");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    execl(binary.c_str(), binary.c_str(), dir.c_str(), "4",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[65536];
  ssize_t n;
  if (after_ready) {
    // Start-up takes a few fsyncs; wait for "ready" (bounded), then aim.
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (out.find('\n') == std::string::npos && absl::Now() < deadline &&
           (n = read(fds[0], buf, sizeof(buf))) > 0) {
      out.append(buf, n);
    }
  }
  absl::SleepFor(delay);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  // Everything in the pipe was written before the kill, so acknowledged.
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fds[0]);

  ChildRun run;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() == 2 && f[0] == "ready") {
      run.ready = absl::SimpleAtoi(f[1], &run.epoch);
      continue;
    }
    Ack a;
    if (f.size() == 3 && absl::SimpleAtoi(f[0], &a.seq) &&
        absl::SimpleAtoi(f[1], &a.slot) && absl::SimpleAtoi(f[2], &a.version)) {
      run.acks.push_back(a);
    } else {
      ADD_FAILURE() << "bad line from child: '" << line << "'";
    }
  }
  return run;
}

TEST(CrashTest, AcknowledgedBumpsSurviveSigkill) {
  int kills = 20;
  if (const char* env = getenv("COHEREFS_CRASH_KILLS")) {
    ASSERT_TRUE(absl::SimpleAtoi(env, &kills)) << env;
  }
  TempDir tmp;
  const std::string dir = tmp.path() + "/db";
  std::mt19937 rng(12345);

  std::map<uint32_t, uint64_t> max_version;  // over every run so far
  std::map<uint64_t, Ack> all_acked;         // seq -> ack
  uint64_t last_epoch = 0;
  int ready_runs = 0;
  size_t total_acks = 0;

  for (int i = 0; i < kills; ++i) {
    // Some kills land during start-up (epoch write, open), most mid-bumps.
    const bool during_startup = rng() % 4 == 0;
    const absl::Duration delay =
        absl::Milliseconds(during_startup ? rng() % 60 : rng() % 150);
    ChildRun run = RunAndKill(dir, delay, !during_startup);
    if (run.ready) {
      ++ready_runs;
      EXPECT_GT(run.epoch, last_epoch) << "epochs must grow across starts";
      last_epoch = run.epoch;
    }
    // Versions only grow: in seq order, each slot's versions increase, and
    // exceed everything acknowledged by earlier children.
    std::sort(run.acks.begin(), run.acks.end(),
              [](const Ack& a, const Ack& b) { return a.seq < b.seq; });
    for (const Ack& a : run.acks) {
      EXPECT_EQ(server::EpochOf(a.version), run.epoch);
      EXPECT_GT(a.version, max_version[a.slot])
          << "slot " << a.slot << " seq " << a.seq << " kill " << i;
      max_version[a.slot] = a.version;
      EXPECT_TRUE(all_acked.emplace(a.seq, a).second)
          << "seq " << a.seq << " acknowledged twice";
    }
    total_acks += run.acks.size();

    // Reopen: every acknowledged bump is there.
    auto store = RocksDbStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    if (!run.ready && all_acked.empty()) continue;  // killed before any state
    auto volumes = (*store)->LoadVolumes();
    ASSERT_TRUE(volumes.ok()) << volumes.status();
    if (volumes->empty()) {
      ASSERT_TRUE(all_acked.empty());
      continue;
    }
    const server::StoredVolume& v = (*volumes)[0];
    for (const auto& [slot, version] : max_version) {
      ASSERT_LT(slot, v.versions.size());
      EXPECT_GE(v.versions[slot], version) << "slot " << slot;
    }
    if (!all_acked.empty()) {
      EXPECT_GE(v.committed_seq, all_acked.rbegin()->first);
    }
    auto log = (*store)->ReadLog("crash", 1, 100000000);
    ASSERT_TRUE(log.ok()) << log.status();
    std::map<uint64_t, LogEntry> by_seq;
    for (const LogEntry& e : *log) by_seq[e.seq] = e;
    for (const auto& [seq, a] : all_acked) {
      auto it = by_seq.find(seq);
      ASSERT_NE(it, by_seq.end()) << "acknowledged seq " << seq << " lost";
      EXPECT_EQ(it->second.slot, a.slot);
      EXPECT_EQ(it->second.version, a.version);
    }
    // The log is dense from 1 to committed_seq.
    EXPECT_EQ(by_seq.size(), v.committed_seq);
  }
  // The test must have exercised something.
  EXPECT_GT(ready_runs, kills / 2);
  EXPECT_GT(total_acks, size_t(kills) * 10);
  RecordProperty("acknowledged_bumps", int(total_acks));
  printf("kills=%d ready_runs=%d acknowledged_bumps=%zu\n", kills, ready_runs,
         total_acks);
}

}  // namespace
}  // namespace coherefs::testing
