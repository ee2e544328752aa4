// CoordinatorLink against the real coherefs-coordinator binary over loopback
// gRPC: propagation between two links ("hosts"), fencing across a
// coordinator restart, resync after log compaction, exact error codes.
#include "agent/coherence/coordinator_link.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/coherence/version_table.h"
#include "client/coordinator_client.h"
#include "tests/coordinator/coordinator_process.h"
#include "gtest/gtest.h"

namespace coherefs::agent::coherence {
namespace {

constexpr uint32_t kCapacity = 4096;

// The real coordinator on a fixed loopback port (so a restart is found at
// the same address) and a data directory kept across restarts.
class Coordinator {
 public:
  explicit Coordinator(std::vector<std::string> extra_args)
      : port_(coherefs::testing::PickFreePort()) {
    // Later flags win: this replaces the runner's --listen=127.0.0.1:0.
    extra_args.push_back(absl::StrCat("--listen=127.0.0.1:", port_));
    process_ = std::make_unique<coherefs::testing::CoordinatorProcess>(dir_.path(),
                                                                      std::move(extra_args));
  }
  bool Start() { return process_->Start().ok(); }
  // SIGTERM (SIGKILL after 10 s). True on a clean exit.
  bool Stop() { return process_->Stop() == 0; }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  pid_t pid() const { return process_->pid(); }
  std::string Log() const { return process_->Log(); }

 private:
  coherefs::testing::TempDir dir_;
  const int port_;
  std::unique_ptr<coherefs::testing::CoordinatorProcess> process_;
};

std::unique_ptr<VersionTable> NewTable(const std::string& volume) {
  auto table = VersionTable::Create(volume, kCapacity);
  if (!table.ok()) abort();
  return *std::move(table);
}

CoordinatorLinkOptions Options(const std::string& target,
                               const std::string& agent, absl::Duration ttl,
                               const std::string& volume, VersionTable* table) {
  CoordinatorLinkOptions o;
  o.target = target;
  o.agent_id = agent;
  o.lease_ttl = ttl;
  o.max_guest_lease_ms = 1000;
  o.volumes = {{volume, table}};
  o.rpc_deadline = absl::Seconds(2);
  return o;
}

// Polls `pred` every 5 ms for at most `timeout`.
template <typename Pred>
bool Eventually(absl::Duration timeout, Pred pred) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return pred();
}

uint64_t Version(const VersionTable& t, uint32_t slot) {
  auto v = t.Load(slot);
  return v.ok() ? *v : ~uint64_t{0};
}

std::vector<std::string> Keys(const std::string& prefix, int n) {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back(absl::StrCat(prefix, i));
  return keys;
}

class LinkTest : public ::testing::Test {
 protected:
  void StartCoordinator(std::vector<std::string> extra) {
    coordinator_ = std::make_unique<Coordinator>(std::move(extra));
    ASSERT_TRUE(coordinator_->Start()) << coordinator_->Log();
    admin_ = client::CoordinatorClient::Create(coordinator_->target());
    ASSERT_TRUE(admin_->WaitForConnected(absl::Seconds(10)).ok());
    ASSERT_TRUE(admin_->CreateVolume("vol", kCapacity).ok());
  }
  uint64_t CommittedSeq() {
    auto v = admin_->DescribeVolume("vol");
    return v.ok() ? v->committed_seq() : 0;
  }

  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<client::CoordinatorClient> admin_;
};

TEST_F(LinkTest, BumpsThroughOneLinkReachTheOtherInOrder) {
  StartCoordinator({});
  auto table_a = NewTable("vol");
  auto table_b = NewTable("vol");
  CoordinatorLink a(Options(coordinator_->target(), "host-a", absl::Seconds(5),
                            "vol", table_a.get()));
  CoordinatorLink b(Options(coordinator_->target(), "host-b", absl::Seconds(5),
                            "vol", table_b.get()));
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  ASSERT_TRUE(a.WaitUnfenced(absl::Seconds(10)));
  ASSERT_TRUE(b.WaitUnfenced(absl::Seconds(10)));

  auto slots = a.Resolve("vol", Keys("file", 10));
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 10u);

  // One bump: A's own table has it when Bump returns; B's within 5 s.
  const uint32_t s0 = (*slots)[0].slot();
  auto bumped = a.Bump("vol", {s0});
  ASSERT_TRUE(bumped.ok()) << bumped.status();
  ASSERT_EQ(bumped->versions.size(), 1u);
  const uint64_t v0 = bumped->versions[0];
  EXPECT_GT(v0, (*slots)[0].version());
  EXPECT_EQ(Version(*table_a, s0), v0);
  EXPECT_TRUE(Eventually(absl::Seconds(5),
                         [&] { return Version(*table_b, s0) == v0; }));
  EXPECT_EQ(Version(*table_b, s0), v0);

  // 200 bumps, one slot each, cycling over the ten slots.
  const uint64_t applied_before =
      b.volume_metrics("vol")->invalidations_applied.load();
  std::vector<uint64_t> last(10, 0);
  for (int i = 0; i < 200; ++i) {
    auto r = a.Bump("vol", {(*slots)[i % 10].slot()});
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_GT(r->versions[0], last[i % 10]);
    last[i % 10] = r->versions[0];
  }
  const uint64_t committed = CommittedSeq();
  ASSERT_EQ(committed, 201u);
  ASSERT_TRUE(Eventually(absl::Seconds(5), [&] {
    return table_b->ReadHeader().committed_seq == committed;
  }));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Version(*table_b, (*slots)[i].slot()), last[i]) << i;
    EXPECT_EQ(Version(*table_a, (*slots)[i].slot()), last[i]) << i;
  }
  const VolumeLinkMetrics* mb = b.volume_metrics("vol");
  EXPECT_EQ(mb->invalidations_applied.load() - applied_before, 200u);
  EXPECT_EQ(mb->last_applied_seq.load(), committed);
  // Every entry arrived in order: no gap forced a resync after the first.
  EXPECT_EQ(mb->resyncs.load(), 1u);
  EXPECT_FALSE(b.fenced());
  EXPECT_FALSE(table_b->ReadHeader().fenced);
  EXPECT_EQ(table_b->ReadHeader().slots_used, 10u);
  a.Stop();
  b.Stop();
}

TEST_F(LinkTest, FencedUntilSyncedAndWhileTheCoordinatorIsGone) {
  StartCoordinator({});
  auto table = NewTable("vol");
  const absl::Duration ttl = absl::Milliseconds(500);
  CoordinatorLink link(
      Options(coordinator_->target(), "host-a", ttl, "vol", table.get()));
  EXPECT_TRUE(link.fenced());
  EXPECT_TRUE(link.fenced("vol"));
  EXPECT_TRUE(table->ReadHeader().fenced);
  ASSERT_TRUE(link.Start().ok());
  ASSERT_TRUE(link.WaitUnfenced(absl::Seconds(10)));
  EXPECT_FALSE(link.fenced());
  EXPECT_FALSE(table->ReadHeader().fenced);
  const uint64_t epoch1 = link.epoch();
  EXPECT_EQ(table->ReadHeader().epoch, epoch1);

  const std::vector<std::string> keys = Keys("f", 8);
  auto slots = link.Resolve("vol", keys);
  ASSERT_TRUE(slots.ok()) << slots.status();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(link.Bump("vol", {(*slots)[i].slot()}).ok());
  }
  std::vector<uint64_t> before;
  for (const auto& sv : *slots) before.push_back(Version(*table, sv.slot()));

  // Coordinator gone: fenced by the time the lease would have expired.
  const absl::Time stopped = absl::Now();
  ASSERT_TRUE(coordinator_->Stop()) << coordinator_->Log();
  ASSERT_TRUE(link.WaitFenced(ttl + absl::Milliseconds(300)));
  EXPECT_LE(absl::Now() - stopped, ttl + absl::Milliseconds(300));
  EXPECT_TRUE(link.fenced());
  EXPECT_TRUE(table->ReadHeader().fenced);
  EXPECT_TRUE(link.metrics().fenced.load());
  // (The volume is fenced as soon as its stream breaks, before the lease
  // lapses.) Once the lease has lapsed both calls refuse locally.
  EXPECT_TRUE(Eventually(ttl + absl::Milliseconds(500), [&] {
    return link.Resolve("vol", keys).status().code() ==
           absl::StatusCode::kFailedPrecondition;
  }));
  EXPECT_EQ(link.Bump("vol", {0}).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Same port, same data: re-register, new epoch, resync, unfence.
  ASSERT_TRUE(coordinator_->Start()) << coordinator_->Log();
  ASSERT_TRUE(link.WaitUnfenced(absl::Seconds(10)));
  EXPECT_FALSE(link.fenced());
  EXPECT_FALSE(table->ReadHeader().fenced);
  EXPECT_GT(link.epoch(), epoch1);
  EXPECT_EQ(table->ReadHeader().epoch, link.epoch());
  EXPECT_GE(link.metrics().registrations.load(), 2u);
  EXPECT_GE(link.volume_metrics("vol")->resyncs.load(), 2u);

  auto fresh = link.Resolve("vol", keys);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ((*fresh)[i].slot(), (*slots)[i].slot());
    EXPECT_GE(Version(*table, (*slots)[i].slot()), before[i]) << i;
    EXPECT_EQ(Version(*table, (*slots)[i].slot()), (*fresh)[i].version()) << i;
  }
  // A bump under the new epoch carries it in the high bits.
  auto r = link.Bump("vol", {(*slots)[0].slot()});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->versions[0] >> 40, link.epoch());
  link.Stop();
  EXPECT_TRUE(table->ReadHeader().fenced);
  EXPECT_TRUE(link.fenced());
}

// A coordinator that hangs (SIGSTOP: connections stay open, nothing
// answers, as in a partition that drops packets) while a keep-alive is in
// flight: the call's own deadline (5 s here) is longer than the lease, yet
// the fence goes up when the lease runs out, and the lease is lapsed for
// every caller even before that.
TEST_F(LinkTest, FencesOnTimeWhileAKeepAliveHangs) {
  StartCoordinator({});
  auto table = NewTable("vol");
  const absl::Duration ttl = absl::Milliseconds(1500);
  CoordinatorLinkOptions options =
      Options(coordinator_->target(), "host-a", ttl, "vol", table.get());
  options.rpc_deadline = absl::Seconds(5);
  CoordinatorLink link(options);
  ASSERT_TRUE(link.Start().ok());
  ASSERT_TRUE(link.WaitUnfenced(absl::Seconds(10)));
  EXPECT_FALSE(link.lease_lapsed());
  const pid_t pid = coordinator_->pid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{pid};
  const absl::Time stopped = absl::Now();
  ASSERT_TRUE(link.WaitFenced(ttl + absl::Milliseconds(300)))
      << "fence published " << absl::Now() - stopped << " after the hang";
  EXPECT_TRUE(link.lease_lapsed());
  EXPECT_TRUE(table->ReadHeader().fenced);
  EXPECT_TRUE(link.metrics().fenced.load());
  ::kill(pid, SIGCONT);
  // The coordinator expired us meanwhile (or not yet): either way the link
  // comes back.
  ASSERT_TRUE(link.WaitUnfenced(absl::Seconds(15))) << coordinator_->Log();
  EXPECT_FALSE(link.lease_lapsed());
  link.Stop();
}

TEST_F(LinkTest, ResyncsFromSnapshotAfterCompaction) {
  StartCoordinator({"--log-retention=10", "--compaction-interval=100ms"});
  auto table_a = NewTable("vol");
  auto table_b = NewTable("vol");
  CoordinatorLink a(Options(coordinator_->target(), "host-a", absl::Seconds(5),
                            "vol", table_a.get()));
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(a.WaitUnfenced(absl::Seconds(10)));
  auto slots = a.Resolve("vol", Keys("g", 20));
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_TRUE(a.Bump("vol", {(*slots)[0].slot()}).ok());

  uint64_t b_seq = 0;
  {
    CoordinatorLink b(Options(coordinator_->target(), "host-b",
                              absl::Seconds(5), "vol", table_b.get()));
    ASSERT_TRUE(b.Start().ok());
    ASSERT_TRUE(b.WaitUnfenced(absl::Seconds(10)));
    ASSERT_TRUE(Eventually(absl::Seconds(5), [&] {
      return table_b->ReadHeader().committed_seq == CommittedSeq();
    }));
    b_seq = table_b->ReadHeader().committed_seq;
    EXPECT_EQ(b_seq, 1u);
    b.Stop();  // B is away: the table keeps its epoch and committed_seq.
  }
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(a.Bump("vol", {(*slots)[i % 20].slot()}).ok());
  }
  // Wait (bounded) for compaction to drop what B needs next.
  ASSERT_TRUE(Eventually(absl::Seconds(10), [&] {
    auto v = admin_->DescribeVolume("vol");
    return v.ok() && v->first_retained_seq() > b_seq + 1;
  }));

  // The table B kept says seq 1: B must stay fenced until the snapshot is
  // in. Record the table's sequence at every unfence.
  absl::Mutex events_mu;
  std::vector<uint64_t> unfenced_at;
  CoordinatorLinkOptions options = Options(
      coordinator_->target(), "host-b", absl::Seconds(5), "vol", table_b.get());
  options.on_fence_change = [&](const std::string& volume, bool fenced) {
    if (fenced) return;
    absl::MutexLock lock(&events_mu);
    unfenced_at.push_back(table_b->ReadHeader().committed_seq);
  };
  CoordinatorLink b(options);
  ASSERT_TRUE(b.Start().ok());
  ASSERT_TRUE(b.WaitUnfenced(absl::Seconds(10)));
  const uint64_t committed = CommittedSeq();
  ASSERT_EQ(committed, 101u);
  {
    absl::MutexLock lock(&events_mu);
    ASSERT_EQ(unfenced_at.size(), 1u);
    EXPECT_EQ(unfenced_at[0], committed);
  }
  ASSERT_TRUE(Eventually(absl::Seconds(5), [&] {
    return table_b->ReadHeader().committed_seq == committed;
  }));
  // It resumed from seq 2, was told to resync, and applied one snapshot.
  EXPECT_EQ(b.volume_metrics("vol")->resyncs.load(), 1u);
  auto snapshot = admin_->Snapshot("vol", 0, 0);
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->slots_used(), 20u);
  ASSERT_EQ(snapshot->versions_size(), 20);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Version(*table_b, i), snapshot->versions(i)) << i;
  }
  EXPECT_EQ(Version(*table_b, 20), 0u);
  EXPECT_EQ(table_b->ReadHeader().slots_used, 20u);
  EXPECT_FALSE(table_b->ReadHeader().fenced);
}

// A process that replaces a dead one of the same agent (restarted by the
// agent's supervisor) takes the still-live registration over instead of
// waiting out its lease fenced; without that option it waits.
TEST_F(LinkTest, TakesOverALiveRegistrationOnlyWhenAskedTo) {
  StartCoordinator({});
  const absl::Duration ttl = absl::Seconds(8);
  // The dead process's registration (it never unregistered).
  ASSERT_TRUE(admin_->RegisterAgent("host-r", ttl, 1000, {"vol"}).ok());
  {
    auto table = NewTable("vol");
    CoordinatorLink waits(Options(coordinator_->target(), "host-r", ttl, "vol", table.get()));
    ASSERT_TRUE(waits.Start().ok());
    EXPECT_FALSE(waits.WaitUnfenced(absl::Seconds(2)));  // the lease is still live
    EXPECT_TRUE(table->ReadHeader().fenced);
    // Its Stop does not unregister (it never registered): the lease stays.
  }
  auto table = NewTable("vol");
  CoordinatorLinkOptions o = Options(coordinator_->target(), "host-r", ttl, "vol", table.get());
  o.adopt_live_registration = true;
  CoordinatorLink takes_over(std::move(o));
  const absl::Time started = absl::Now();
  ASSERT_TRUE(takes_over.Start().ok());
  ASSERT_TRUE(takes_over.WaitUnfenced(absl::Seconds(5)));
  EXPECT_LT(absl::Now() - started, absl::Seconds(5));  // well before the 8 s lease
  auto slots = takes_over.Resolve("vol", Keys("r", 2));
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_TRUE(takes_over.Bump("vol", {(*slots)[0].slot()}).ok());
}

TEST_F(LinkTest, ExactErrorCodes) {
  StartCoordinator({});
  auto table = NewTable("vol");
  {
    CoordinatorLinkOptions bad = Options(coordinator_->target(), "host-a",
                                         absl::Seconds(5), "vol", nullptr);
    CoordinatorLink link(bad);
    EXPECT_EQ(link.Start().code(), absl::StatusCode::kInvalidArgument);
  }
  CoordinatorLink link(Options(coordinator_->target(), "host-a",
                               absl::Seconds(5), "vol", table.get()));
  // Before a lease is granted.
  EXPECT_EQ(link.Resolve("vol", {"k"}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(link.Start().ok());
  EXPECT_EQ(link.Start().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(link.WaitUnfenced(absl::Seconds(10)));

  // The link registered for "vol" only: the coordinator refuses any other
  // volume before looking it up (RegisterAgentRequest.volumes).
  EXPECT_EQ(link.Resolve("nope", {"k"}).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(link.Bump("nope", {0}).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(link.Bump("vol", {7}).status().code(),
            absl::StatusCode::kOutOfRange);  // not allocated
  EXPECT_EQ(link.Resolve("vol", {""}).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Coordinator down, lease still live (5 s): the transport's code. The
  // volume is fenced at once: without its stream it hears of no change.
  ASSERT_TRUE(coordinator_->Stop());
  EXPECT_TRUE(link.WaitFenced(absl::Seconds(2)));
  EXPECT_EQ(link.Resolve("vol", {"k"}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(link.Bump("vol", {0}).status().code(),
            absl::StatusCode::kUnavailable);
  link.Stop();
  link.Stop();  // idempotent
  EXPECT_EQ(link.Resolve("vol", {"k"}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace coherefs::agent::coherence
