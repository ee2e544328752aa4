// Against the real servers on loopback (etcd from Debian, our
// coherefs-coordinator): each Target does what the benchmark counts on -
// an acknowledged bump reaches every subscriber exactly once, the health
// round trip works - and the workloads count deliveries, losses and
// latencies correctly on short runs.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "bench/coordinator/coherefs_target.h"
#include "bench/coordinator/etcd_target.h"
#include "bench/coordinator/workload.h"
#include "gtest/gtest.h"

namespace coherefs::bench {
namespace {

std::string TestDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(tmp ? tmp : "/tmp") + "/" + name;
  mkdir(dir.c_str(), 0755);
  return dir;
}

std::string CoordinatorBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") + "/coherefs/server/coherefs-coordinator";
}

absl::StatusOr<std::unique_ptr<Target>> Launch(const std::string& system,
                                               const std::string& dir) {
  if (system == "etcd") {
    EtcdOptions o;
    o.work_dir = dir;
    auto t = EtcdTarget::Launch(o);
    if (!t.ok()) return t.status();
    return std::unique_ptr<Target>(std::move(*t));
  }
  CoherefsOptions o;
  o.binary = CoordinatorBinary();
  o.work_dir = dir;
  auto t = CoherefsTarget::Launch(o);
  if (!t.ok()) return t.status();
  EXPECT_EQ((*t)->ping_method(), "health");
  return std::unique_ptr<Target>(std::move(*t));
}

class TargetTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    static int n = 0;
    auto t = Launch(GetParam(), TestDir(GetParam() + std::to_string(n++)));
    ASSERT_TRUE(t.ok()) << t.status();
    target_ = std::move(*t);
    EXPECT_EQ(target_->name(), GetParam());
  }
  std::unique_ptr<Target> target_;
};

TEST_P(TargetTest, EveryBumpReachesEverySubscriberOnce) {
  constexpr int kFiles = 20;
  ASSERT_TRUE(target_->Prepare(kFiles).ok());
  absl::Mutex mu;
  std::vector<std::multiset<int>> got(2);
  std::vector<std::unique_ptr<Subscription>> subs;
  for (int i = 0; i < 2; ++i) {
    auto sub = target_->Subscribe([&mu, &got, i](int file, int64_t recv_ns) {
      EXPECT_GT(recv_ns, 0);
      absl::MutexLock lock(&mu);
      got[i].insert(file);
    });
    ASSERT_TRUE(sub.ok()) << sub.status();
    subs.push_back(std::move(*sub));
  }
  int pending = kFiles;
  int failed = 0;
  for (int f = 0; f < kFiles; ++f) {
    target_->BumpAsync(f, [&](const absl::Status& s) {
      absl::MutexLock lock(&mu);
      if (!s.ok()) ++failed;
      --pending;
    });
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* n) { return *n == 0; }, &pending));
    EXPECT_EQ(failed, 0);
    auto all_in = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return got[0].size() >= kFiles && got[1].size() >= kFiles;
    };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_in), absl::Seconds(10)));
  }
  absl::SleepFor(absl::Milliseconds(100));  // any duplicate would show now
  std::multiset<int> want;
  for (int f = 0; f < kFiles; ++f) want.insert(f);
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(got[0], want);
    EXPECT_EQ(got[1], want);
  }
  for (const auto& s : subs) EXPECT_TRUE(s->status().ok()) << s->status();
}

TEST_P(TargetTest, PingIsAHealthCheckTheServerAnswers) {
  absl::Status s = target_->Ping();
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(TargetTest, ShortWorkloadsCountEveryDelivery) {
  ThroughputOptions t;
  t.clients = 4;
  t.subscribers = 3;
  t.warmup = absl::Milliseconds(100);
  t.duration = absl::Milliseconds(500);
  LatencyOptions l;
  l.subscribers = 3;
  l.rate_per_s = 100;
  l.duration = absl::Milliseconds(500);
  ASSERT_EQ(FilesNeeded(t, l), 64);
  ASSERT_TRUE(target_->Prepare(FilesNeeded(t, l)).ok());

  auto tr = RunThroughput(*target_, t);
  ASSERT_TRUE(tr.ok()) << tr.status();
  EXPECT_EQ(tr->failed, 0) << tr->first_error;
  EXPECT_GT(tr->acked_in_window, 0);
  EXPECT_GE(tr->acked_total, tr->acked_in_window);
  EXPECT_EQ(tr->expected_deliveries, tr->acked_total * 3);
  EXPECT_EQ(tr->delivered, tr->expected_deliveries);
  EXPECT_EQ(tr->lost, 0);

  auto lr = RunLatency(*target_, l);
  ASSERT_TRUE(lr.ok()) << lr.status();
  EXPECT_EQ(lr->bumps, 50);
  EXPECT_EQ(lr->acked, 50);
  EXPECT_EQ(lr->expected_deliveries, 150);
  EXPECT_EQ(lr->delivered, 150);
  EXPECT_EQ(lr->lost, 0);
  EXPECT_EQ(lr->duplicates, 0);
  EXPECT_EQ(lr->delivery.count, 150);
  EXPECT_EQ(lr->ack.count, 50);
  EXPECT_EQ(lr->fanout.count, 150);
  EXPECT_GT(lr->delivery.p50_us, 0);
  EXPECT_LE(lr->delivery.p50_us, lr->delivery.p99_us);
}

TEST_P(TargetTest, BadWorkloadOptionsAreInvalidArgument) {
  ThroughputOptions t;
  t.clients = 0;
  EXPECT_EQ(RunThroughput(*target_, t).status().code(),
            absl::StatusCode::kInvalidArgument);
  LatencyOptions l;
  l.subscribers = 0;
  EXPECT_EQ(RunLatency(*target_, l).status().code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Systems, TargetTest,
                         ::testing::Values("etcd", "coherefs"),
                         [](const auto& info) { return info.param; });

TEST(LaunchTest, MissingBinariesAreNotFound) {
  EtcdOptions e;
  e.binary = "/nonexistent/etcd";
  e.work_dir = TestDir("missing-etcd");
  EXPECT_EQ(EtcdTarget::Launch(e).status().code(), absl::StatusCode::kNotFound);
  CoherefsOptions c;
  c.binary = "/nonexistent/coherefs-coordinator";
  c.work_dir = TestDir("missing-coherefs");
  EXPECT_EQ(CoherefsTarget::Launch(c).status().code(), absl::StatusCode::kNotFound);
  c.binary = "";
  EXPECT_EQ(CoherefsTarget::Launch(c).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CoherefsTargetTest, BumpOfAnUnpreparedFileIsOutOfRange) {
  CoherefsOptions c;
  c.binary = CoordinatorBinary();
  c.work_dir = TestDir("unprepared");
  auto t = CoherefsTarget::Launch(c);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*t)->Prepare(4).ok());
  absl::Status got = absl::UnknownError("not called");
  (*t)->BumpAsync(4, [&got](const absl::Status& s) { got = s; });
  EXPECT_EQ(got.code(), absl::StatusCode::kOutOfRange);
}

TEST(LaunchTest, CoordinatorThatExitsAtOnceIsUnavailable) {
  CoherefsOptions c;
  c.binary = CoordinatorBinary();
  c.work_dir = TestDir("bad-flag");
  c.extra_flags = {"--log-level=nonsense"};  // the coordinator exits 2
  auto t = CoherefsTarget::Launch(c);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable) << t.status();
}

TEST(FsyncFloorTest, MeasuresEveryWriteInBothModesAndCleansUp) {
  for (FsyncMode mode : {FsyncMode::kAppend, FsyncMode::kOverwrite}) {
    auto s = MeasureFsync(TestDir("fsync"), 20, mode);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->count, 20);
    EXPECT_GT(s->p50_us, 0);
    EXPECT_EQ(access((TestDir("fsync") + "/fsync-probe").c_str(), F_OK), -1);
  }
}

TEST(FsyncFloorTest, MissingDirIsNotFound) {
  EXPECT_EQ(MeasureFsync("/nonexistent/dir", 5).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace coherefs::bench
