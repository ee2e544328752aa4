#include "server/coherence_core.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/memory_store.h"

namespace coherefs::server {
namespace {

using ::testing::ElementsAre;
using Kind = SubscriptionEvent::Kind;

class RecordingObserver : public CoreObserver {
 public:
  void OnGroupCommit(size_t requests, size_t bumps,
                     absl::Duration store_latency) override {
    absl::MutexLock lock(&mu_);
    commits_.push_back(requests);
  }
  void OnAgentExpired(const std::string& agent_id) override {
    absl::MutexLock lock(&mu_);
    expired_.push_back(agent_id);
  }
  void OnResync() override { resyncs_++; }
  void OnSubscriberOverflow() override { overflows_++; }

  std::vector<size_t> commits() {
    absl::MutexLock lock(&mu_);
    return commits_;
  }
  std::vector<std::string> expired() {
    absl::MutexLock lock(&mu_);
    return expired_;
  }
  std::atomic<int> resyncs_{0};
  std::atomic<int> overflows_{0};

 private:
  absl::Mutex mu_;
  std::vector<size_t> commits_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> expired_ ABSL_GUARDED_BY(mu_);
};

class CoreTest : public ::testing::Test {
 protected:
  void StartCore() {
    core_.reset();
    auto core = CoherenceCore::Start(&store_, options_, &observer_);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }

  std::vector<uint32_t> ResolveSlots(const std::string& volume,
                                     std::vector<std::string> keys) {
    auto r = core_->ResolveSync(volume, std::move(keys));
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<uint32_t> slots;
    if (r.ok()) {
      for (const auto& sv : r->slots) slots.push_back(sv.slot);
    }
    return slots;
  }

  // Pulls events until `want` invalidations arrived or a non-invalidation,
  // non-progress event shows up; fails after 5 s.
  std::vector<LogEntry> Collect(Subscription* sub, size_t want,
                                SubscriptionEvent* last = nullptr) {
    std::vector<LogEntry> got;
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (got.size() < want && absl::Now() < deadline) {
      SubscriptionEvent ev = sub->Next();
      if (ev.kind == Kind::kInvalidations) {
        got.insert(got.end(), ev.entries.begin(), ev.entries.end());
      } else if (ev.kind == Kind::kNone || ev.kind == Kind::kProgress) {
        if (ev.kind == Kind::kNone) absl::SleepFor(absl::Milliseconds(1));
      } else {
        if (last != nullptr) *last = ev;
        break;
      }
    }
    return got;
  }

  // The next event that is not kNone, waiting up to 5 s.
  SubscriptionEvent NextEvent(Subscription* sub) {
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      SubscriptionEvent ev = sub->Next();
      if (ev.kind != Kind::kNone) return ev;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return SubscriptionEvent();
  }

  MemoryStore store_;
  CoreOptions options_;
  RecordingObserver observer_;
  std::unique_ptr<CoherenceCore> core_;
};

TEST_F(CoreTest, EpochStartsAtOneAndGrowsPerStart) {
  StartCore();
  EXPECT_EQ(core_->epoch(), 1u);
  StartCore();
  EXPECT_EQ(core_->epoch(), 2u);
  EXPECT_EQ(*store_.LoadEpoch(), 2u);
}

TEST_F(CoreTest, CreateListDescribeVolumes) {
  StartCore();
  auto b = core_->CreateVolumeSync("vol-b", 16);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->capacity, 16u);
  auto a = core_->CreateVolumeSync("vol-a", 0);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->capacity, kDefaultCapacity);

  std::vector<VolumeInfo> all = core_->ListVolumes();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "vol-a");
  EXPECT_EQ(all[1].name, "vol-b");

  auto d = core_->DescribeVolume("vol-b");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->slots_used, 0u);
  EXPECT_EQ(d->committed_seq, 0u);
  EXPECT_EQ(d->first_retained_seq, 1u);
}

TEST_F(CoreTest, VolumeErrors) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 4).ok());
  EXPECT_EQ(core_->CreateVolumeSync("v", 4).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(core_->CreateVolumeSync("", 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->CreateVolumeSync("a/b", 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->CreateVolumeSync(std::string(65, 'x'), 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->CreateVolumeSync("big", kMaxCapacity + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->DescribeVolume("nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoreTest, ResolveAllocatesDenseStableSlots) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  auto r = core_->ResolveSync("v", {"k0", "k1", "k0", "k2"});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->slots.size(), 4u);
  EXPECT_EQ(r->slots[0].slot, 0u);
  EXPECT_EQ(r->slots[1].slot, 1u);
  EXPECT_EQ(r->slots[2].slot, 0u);
  EXPECT_EQ(r->slots[3].slot, 2u);
  for (const auto& sv : r->slots) {
    EXPECT_EQ(sv.version, uint64_t{1} << kEpochShift);
  }
  // Known keys come from the fast path; the store is not written again.
  int commits = store_.commit_count();
  EXPECT_THAT(ResolveSlots("v", {"k2", "k1"}), ElementsAre(2, 1));
  EXPECT_EQ(store_.commit_count(), commits);
  EXPECT_EQ(core_->DescribeVolume("v")->slots_used, 3u);
}

TEST_F(CoreTest, ResolveErrors) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 2).ok());
  EXPECT_EQ(core_->ResolveSync("nope", {"k"}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->ResolveSync("v", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->ResolveSync("v", {""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      core_->ResolveSync("v", {std::string(kMaxKeyBytes + 1, 'k')})
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(core_->ResolveSync("v", {std::string(kMaxKeyBytes, 'k')}).ok());
  std::vector<std::string> many(kMaxBatch + 1, "k");
  EXPECT_EQ(core_->ResolveSync("v", many).status().code(),
            absl::StatusCode::kInvalidArgument);
  // One slot left; two new keys: the request fails as a whole.
  EXPECT_EQ(core_->ResolveSync("v", {"a", "b"}).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(core_->DescribeVolume("v")->slots_used, 1u);
  EXPECT_TRUE(core_->ResolveSync("v", {"a", "a"}).ok());
  EXPECT_EQ(core_->ResolveSync("v", {"c"}).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(CoreTest, BumpGrowsVersionsAndAssignsDenseSeqs) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a", "b"}), ElementsAre(0, 1));
  const uint64_t base = uint64_t{1} << kEpochShift;
  auto r = core_->BumpSync("v", {0, 1, 0});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->versions, ElementsAre(base | 1, base | 1, base | 2));
  EXPECT_THAT(r->seqs, ElementsAre(1, 2, 3));
  auto r2 = core_->BumpSync("v", {1});
  ASSERT_TRUE(r2.ok());
  EXPECT_THAT(r2->versions, ElementsAre(base | 2));
  EXPECT_THAT(r2->seqs, ElementsAre(4));
  auto resolved = core_->ResolveSync("v", {"a", "b"});
  EXPECT_EQ(resolved->slots[0].version, base | 2);
  EXPECT_EQ(resolved->slots[1].version, base | 2);
  EXPECT_EQ(resolved->committed_seq, 4u);
}

TEST_F(CoreTest, BumpErrors) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  EXPECT_EQ(core_->BumpSync("nope", {0}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->BumpSync("v", {1}).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(core_->BumpSync("v", {7}).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(core_->BumpSync("v", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->BumpSync("v", std::vector<uint32_t>(kMaxBatch + 1, 0))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(core_->BumpSync("v", std::vector<uint32_t>(kMaxBatch, 0)).ok());
  BumpOptions strict;
  strict.wait_for_leases = true;  // needs the caller's agent id
  EXPECT_EQ(core_->BumpSync("v", {0}, strict).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CoreTest, RestartKeepsSlotsAndVersionsGrowIntoNewEpoch) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a", "b"}), ElementsAre(0, 1));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  const uint64_t before = core_->ResolveSync("v", {"a"})->slots[0].version;

  StartCore();
  EXPECT_EQ(core_->epoch(), 2u);
  auto r = core_->ResolveSync("v", {"b", "a", "c"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->slots[0].slot, 1u);
  EXPECT_EQ(r->slots[1].slot, 0u);
  EXPECT_EQ(r->slots[1].version, before);
  EXPECT_EQ(r->slots[2].slot, 2u);
  EXPECT_EQ(r->committed_seq, 5u);
  auto bumped = core_->BumpSync("v", {0});
  ASSERT_TRUE(bumped.ok());
  EXPECT_GT(bumped->versions[0], before);
  EXPECT_EQ(bumped->versions[0], (uint64_t{2} << kEpochShift) | 1);
  EXPECT_THAT(bumped->seqs, ElementsAre(6));
}

TEST_F(CoreTest, ConcurrentBumpsShareGroupCommits) {
  store_.SetCommitDelay(absl::Milliseconds(20));
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 64).ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 16; ++i) keys.push_back("k" + std::to_string(i));
  ASSERT_EQ(ResolveSlots("v", keys).size(), 16u);
  const int commits_before = store_.commit_count();

  constexpr int kThreads = 16, kPerThread = 5;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!core_->BumpSync("v", {uint32_t(t)}).ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const int commits = store_.commit_count() - commits_before;
  // 80 bumps, 20 ms per commit: without sharing that is 80 commits.
  EXPECT_LT(commits, kThreads * kPerThread / 2);
  size_t biggest = 0;
  for (size_t n : observer_.commits()) biggest = std::max(biggest, n);
  EXPECT_GT(biggest, 1u);
  EXPECT_EQ(core_->DescribeVolume("v")->committed_seq,
            uint64_t{kThreads * kPerThread});
}

TEST_F(CoreTest, ConcurrentResolvesOfNewKeysAgreeOnSlots) {
  store_.SetCommitDelay(absl::Milliseconds(5));
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 64).ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i) keys.push_back("k" + std::to_string(i));
  constexpr int kThreads = 8;
  std::vector<std::vector<uint32_t>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread asks in a different order.
      std::vector<std::string> mine = keys;
      std::rotate(mine.begin(), mine.begin() + t, mine.end());
      auto r = core_->ResolveSync("v", mine);
      if (!r.ok()) return;
      seen[t].resize(keys.size());
      for (size_t i = 0; i < mine.size(); ++i) {
        seen[t][(i + t) % keys.size()] = r->slots[i].slot;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), keys.size()) << "thread " << t;
    EXPECT_EQ(seen[t], seen[0]) << "thread " << t;
  }
  EXPECT_EQ(core_->DescribeVolume("v")->slots_used, keys.size());
  // And they survive a restart.
  StartCore();
  EXPECT_EQ(ResolveSlots("v", keys), seen[0]);
}

TEST_F(CoreTest, StoreFailureFailsBatchAndFencesWrites) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  store_.FailNextCommit(absl::UnavailableError("disk gone"));
  EXPECT_EQ(core_->BumpSync("v", {0}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(core_->BumpSync("v", {0}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(core_->DescribeVolume("v")->committed_seq, 0u);
  // A restart (new core over the same store) serves again.
  StartCore();
  EXPECT_TRUE(core_->BumpSync("v", {0}).ok());
}

TEST_F(CoreTest, SubscriberGetsEveryBumpInOrderAndIsWoken) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a", "b"}), ElementsAre(0, 1));
  auto sub = core_->Subscribe("v", 0, "");
  ASSERT_TRUE(sub.ok()) << sub.status();
  std::atomic<int> wakes{0};
  (*sub)->SetWakeup([&] { wakes++; });

  SubscriptionEvent hello = (*sub)->Next();
  EXPECT_EQ(hello.kind, Kind::kProgress);
  EXPECT_EQ(hello.epoch, core_->epoch());
  EXPECT_EQ(hello.committed_seq, 0u);
  EXPECT_EQ((*sub)->Next().kind, Kind::kNone);

  auto r = core_->BumpSync("v", {1, 0});
  ASSERT_TRUE(r.ok());
  // Callers are completed before subscribers are woken; allow for that.
  for (int i = 0; i < 1000 && wakes.load() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(wakes.load(), 1);
  SubscriptionEvent ev = (*sub)->Next();
  ASSERT_EQ(ev.kind, Kind::kInvalidations);
  ASSERT_EQ(ev.entries.size(), 2u);
  EXPECT_EQ(ev.entries[0], (LogEntry{1, 1, r->versions[0]}));
  EXPECT_EQ(ev.entries[1], (LogEntry{2, 0, r->versions[1]}));
  EXPECT_NE(ev.oldest_publish_time, absl::InfinitePast());
  // Every live entry carries its commit time (the wire's commit_time).
  ASSERT_EQ(ev.publish_times.size(), 2u);
  EXPECT_EQ(ev.publish_times[0], ev.oldest_publish_time);
  EXPECT_GE(ev.publish_times[1], ev.publish_times[0]);
  EXPECT_LE(ev.publish_times[1], absl::Now());
  EXPECT_EQ((*sub)->Next().kind, Kind::kNone);
  EXPECT_EQ(core_->GetStats().subscribers, 1u);
  (*sub)->Cancel();
  EXPECT_EQ(core_->GetStats().subscribers, 0u);
}

TEST_F(CoreTest, ResumeFromSequenceReadsStoredLogThenLive) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  auto sub = core_->Subscribe("v", 3, "");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ((*sub)->Next().committed_seq, 2u);  // hello
  ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  std::vector<LogEntry> got = Collect(sub->get(), 4);
  ASSERT_EQ(got.size(), 4u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].seq, 3 + i);
  ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  got = Collect(sub->get(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 7u);
  EXPECT_EQ((*sub)->Next().kind, Kind::kNone);
}

TEST_F(CoreTest, EntriesReadBackFromTheLogCarryNoCommitTime) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  auto sub = core_->Subscribe("v", 1, "");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ((*sub)->Next().kind, Kind::kProgress);
  SubscriptionEvent ev = NextEvent(sub->get());
  ASSERT_EQ(ev.kind, Kind::kInvalidations);
  ASSERT_EQ(ev.entries.size(), 1u);
  EXPECT_TRUE(ev.publish_times.empty());
}

TEST_F(CoreTest, ListAgentsReportsLeasesStreamsAndAcks) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_TRUE(core_->CreateVolumeSync("w", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  EXPECT_TRUE(core_->ListAgents().empty());
  ASSERT_TRUE(core_->RegisterAgent("b", absl::Seconds(30), 6000).ok());
  ASSERT_TRUE(core_->RegisterAgent("a", absl::Milliseconds(100), 1500).ok());
  auto sub_b = core_->Subscribe("v", 0, "b");
  ASSERT_TRUE(sub_b.ok());
  ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  // b takes both invalidations off its stream and acks the first.
  std::vector<LogEntry> got = Collect(sub_b->get(), 2);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(core_->AckInvalidations("b", "v", 1, {}).ok());
  // b also followed w once; its stream there is gone.
  auto sub_w = core_->Subscribe("w", 0, "b");
  ASSERT_TRUE(sub_w.ok());
  (*sub_w)->Cancel();

  // a's 100 ms lease runs out (no keep-alive).
  absl::SleepFor(absl::Milliseconds(300));
  std::vector<AgentInfo> agents = core_->ListAgents();
  ASSERT_EQ(agents.size(), 2u);
  const AgentInfo& a = agents[0];
  EXPECT_EQ(a.agent_id, "a");
  EXPECT_FALSE(a.live);
  EXPECT_EQ(a.lease_remaining, absl::ZeroDuration());
  EXPECT_EQ(a.lease_ttl, absl::Milliseconds(100));
  EXPECT_GE(a.expired_for, absl::Milliseconds(150));
  EXPECT_GE(a.since_keepalive, absl::Milliseconds(300));
  EXPECT_EQ(a.max_guest_lease_ms, 1500u);
  EXPECT_TRUE(a.volumes.empty());

  const AgentInfo& b = agents[1];
  EXPECT_EQ(b.agent_id, "b");
  EXPECT_TRUE(b.live);
  EXPECT_GT(b.lease_remaining, absl::Seconds(29));
  EXPECT_LE(b.lease_remaining, absl::Seconds(30));
  EXPECT_EQ(b.expired_for, absl::ZeroDuration());
  EXPECT_LT(b.since_keepalive, absl::Seconds(1));
  EXPECT_GE(b.since_keepalive, absl::Milliseconds(300));
  EXPECT_EQ(b.max_guest_lease_ms, 6000u);
  ASSERT_EQ(b.volumes.size(), 2u);
  EXPECT_EQ(b.volumes[0].volume, "v");
  EXPECT_TRUE(b.volumes[0].streaming);
  EXPECT_EQ(b.volumes[0].committed_seq, 2u);
  EXPECT_EQ(b.volumes[0].delivered_seq, 2u);
  EXPECT_EQ(b.volumes[0].acked_seq, 1u);
  EXPECT_EQ(b.volumes[1].volume, "w");
  EXPECT_FALSE(b.volumes[1].streaming);
  EXPECT_EQ(b.volumes[1].delivered_seq, 0u);
  EXPECT_EQ(b.volumes[1].acked_seq, 0u);

  // A keep-alive resets the age; unregistering forgets the agent.
  ASSERT_TRUE(core_->KeepAlive("b").ok());
  EXPECT_LT(core_->ListAgents()[1].since_keepalive, absl::Milliseconds(100));
  ASSERT_TRUE(core_->UnregisterAgent("b").ok());
  agents = core_->ListAgents();
  ASSERT_EQ(agents.size(), 1u);
  EXPECT_EQ(agents[0].agent_id, "a");
}

TEST_F(CoreTest, SubscribeFromTheFutureIsOutOfRange) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  ASSERT_TRUE(core_->BumpSync("v", {0, 0}).ok());
  EXPECT_TRUE(core_->Subscribe("v", 3, "").ok());  // the next one: fine
  EXPECT_EQ(core_->Subscribe("v", 4, "").status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(core_->Subscribe("nope", 0, "").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->Subscribe("v", 0, "ghost").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoreTest, OverflowingSubscriberCatchesUpFromLogExactlyOnce) {
  options_.subscriber_queue_limit = 4;
  options_.max_delivery_batch = 3;
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a", "b"}), ElementsAre(0, 1));
  auto slow = core_->Subscribe("v", 0, "");
  auto fast = core_->Subscribe("v", 0, "");
  ASSERT_TRUE(slow.ok() && fast.ok());
  std::vector<LogEntry> fast_got;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(core_->BumpSync("v", {uint32_t(i % 2)}).ok());
    auto got = Collect(fast->get(), 1);
    fast_got.insert(fast_got.end(), got.begin(), got.end());
  }
  EXPECT_GE(observer_.overflows_.load(), 1);
  std::vector<LogEntry> slow_got = Collect(slow->get(), 20);
  ASSERT_EQ(slow_got.size(), 20u);
  ASSERT_EQ(fast_got.size(), 20u);
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(slow_got[i].seq, i + 1);
    EXPECT_EQ(slow_got[i], fast_got[i]);
  }
  // Back on the live queue after catching up.
  ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  auto live = Collect(slow->get(), 1);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].seq, 21u);
  EXPECT_EQ((*slow)->Next().kind, Kind::kNone);
}

TEST_F(CoreTest, CompactionByCountGivesResyncRequired) {
  options_.log_retention_entries = 5;
  options_.compaction_interval = absl::Milliseconds(5);
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (core_->DescribeVolume("v")->first_retained_seq != 16 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(core_->DescribeVolume("v")->first_retained_seq, 16u);

  auto sub = core_->Subscribe("v", 2, "");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(NextEvent(sub->get()).kind, Kind::kProgress);
  SubscriptionEvent ev = NextEvent(sub->get());
  ASSERT_EQ(ev.kind, Kind::kResync);
  EXPECT_EQ(ev.needed_seq, 2u);
  EXPECT_EQ(ev.first_retained_seq, 16u);
  EXPECT_EQ(ev.committed_seq, 20u);
  SubscriptionEvent end = NextEvent(sub->get());
  EXPECT_EQ(end.kind, Kind::kEnd);
  EXPECT_TRUE(end.end_status.ok());
  EXPECT_EQ(observer_.resyncs_.load(), 1);

  // A retained sequence still resumes.
  auto ok = core_->Subscribe("v", 16, "");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(Collect(ok->get(), 5).size(), 5u);
}

TEST_F(CoreTest, CompactionByAge) {
  options_.log_retention_entries = 0;
  options_.log_retention_age = absl::Milliseconds(50);
  options_.compaction_interval = absl::Milliseconds(5);
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (core_->DescribeVolume("v")->first_retained_seq != 4 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(core_->DescribeVolume("v")->first_retained_seq, 4u);
  EXPECT_TRUE(store_.ReadLog("v", 1, 10)->empty());
}

// An agent whose lease ran out registers again before the reaper saw the
// expiry: the old registration's stream ends (it subscribes again) instead
// of living on outside strict-mode lease gathering.
TEST_F(CoreTest, RegisteringAgainEndsTheExpiredRegistrationsStreams) {
  options_.lease_check_interval = absl::Hours(1);  // the reaper stays idle
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_TRUE(core_->RegisterAgent("a3", absl::Milliseconds(1), 0).ok());
  auto sub = core_->Subscribe("v", 0, "a3");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(NextEvent(sub->get()).kind, Kind::kProgress);
  absl::SleepFor(options_.min_lease_ttl + absl::Milliseconds(50));
  ASSERT_TRUE(core_->RegisterAgent("a3", absl::Seconds(5), 0).ok());
  SubscriptionEvent end = NextEvent(sub->get());
  ASSERT_EQ(end.kind, Kind::kEnd);
  EXPECT_EQ(end.end_status.code(), absl::StatusCode::kFailedPrecondition);
  auto again = core_->Subscribe("v", 0, "a3");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(NextEvent(again->get()).kind, Kind::kProgress);
}

TEST_F(CoreTest, AgentLeaseLifecycle) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  EXPECT_EQ(core_->RegisterAgent("", absl::ZeroDuration(), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto grant = core_->RegisterAgent("a1", absl::ZeroDuration(), 1000);
  ASSERT_TRUE(grant.ok());
  EXPECT_EQ(grant->lease_ttl, options_.default_lease_ttl);
  EXPECT_EQ(grant->epoch, core_->epoch());
  EXPECT_EQ(core_->RegisterAgent("a1", absl::ZeroDuration(), 0)
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(core_->KeepAlive("a1").ok());
  EXPECT_EQ(core_->KeepAlive("ghost").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->GetStats().live_agents, 1u);

  // A short lease that is not renewed expires and ends its subscription.
  auto short_grant =
      core_->RegisterAgent("a2", absl::Milliseconds(1), 0);  // clamped
  ASSERT_TRUE(short_grant.ok());
  EXPECT_EQ(short_grant->lease_ttl, options_.min_lease_ttl);
  auto sub = core_->Subscribe("v", 0, "a2");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(NextEvent(sub->get()).kind, Kind::kProgress);
  SubscriptionEvent end = NextEvent(sub->get());
  ASSERT_EQ(end.kind, Kind::kEnd);
  EXPECT_EQ(end.end_status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(observer_.expired(), ElementsAre("a2"));
  EXPECT_EQ(core_->KeepAlive("a2").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(core_->Subscribe("v", 0, "a2").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // It may register again.
  EXPECT_TRUE(core_->RegisterAgent("a2", absl::Seconds(5), 0).ok());

  // Unregistering ends the agent's subscriptions with CANCELLED.
  auto sub1 = core_->Subscribe("v", 0, "a1");
  ASSERT_TRUE(sub1.ok());
  EXPECT_EQ(NextEvent(sub1->get()).kind, Kind::kProgress);
  ASSERT_TRUE(core_->UnregisterAgent("a1").ok());
  SubscriptionEvent cancelled = NextEvent(sub1->get());
  ASSERT_EQ(cancelled.kind, Kind::kEnd);
  EXPECT_EQ(cancelled.end_status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(core_->KeepAlive("a1").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->UnregisterAgent("a1").code(), absl::StatusCode::kNotFound);
}

TEST_F(CoreTest, ProgressMarksReachIdleSubscribers) {
  options_.progress_interval = absl::Milliseconds(20);
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  ASSERT_TRUE(core_->BumpSync("v", {0, 0}).ok());
  auto sub = core_->Subscribe("v", 0, "");
  ASSERT_TRUE(sub.ok());
  absl::Notification woken;
  (*sub)->SetWakeup([&] {
    if (!woken.HasBeenNotified()) woken.Notify();
  });
  EXPECT_EQ((*sub)->Next().kind, Kind::kProgress);  // hello
  EXPECT_EQ((*sub)->Next().kind, Kind::kNone);
  ASSERT_TRUE(woken.WaitForNotificationWithTimeout(absl::Seconds(5)));
  SubscriptionEvent ev = (*sub)->Next();
  ASSERT_EQ(ev.kind, Kind::kProgress);
  EXPECT_EQ(ev.committed_seq, 2u);
  EXPECT_EQ(ev.epoch, core_->epoch());
}

TEST_F(CoreTest, SnapshotPages) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a", "b", "c"}), ElementsAre(0, 1, 2));
  auto bumped = core_->BumpSync("v", {1});
  ASSERT_TRUE(bumped.ok());
  const uint64_t base = uint64_t{1} << kEpochShift;
  auto page = core_->Snapshot("v", 0, 2);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->versions, ElementsAre(base, base | 1));
  EXPECT_EQ(page->slots_used, 3u);
  EXPECT_EQ(page->committed_seq, 1u);
  auto rest = core_->Snapshot("v", 2, 0);
  ASSERT_TRUE(rest.ok());
  EXPECT_THAT(rest->versions, ElementsAre(base));
  EXPECT_TRUE(core_->Snapshot("v", 3, 0)->versions.empty());
  EXPECT_EQ(core_->Snapshot("v", 4, 0).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(core_->Snapshot("nope", 0, 0).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoreTest, StopEndsStreamsAndRefusesWrites) {
  StartCore();
  ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
  ASSERT_THAT(ResolveSlots("v", {"a"}), ElementsAre(0));
  auto sub = core_->Subscribe("v", 0, "");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ((*sub)->Next().kind, Kind::kProgress);
  core_->Stop();
  SubscriptionEvent end = (*sub)->Next();
  ASSERT_EQ(end.kind, Kind::kEnd);
  EXPECT_EQ(end.end_status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(core_->BumpSync("v", {0}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(core_->ResolveSync("v", {"new"}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(core_->Subscribe("v", 0, "").status().code(),
            absl::StatusCode::kUnavailable);
}

class StrictTest : public CoreTest {
 protected:
  void SetUp() override {
    // Restarts within a test are about other rules; the grace has its own.
    options_.strict_grace = absl::ZeroDuration();
    StartCore();
    ASSERT_TRUE(core_->CreateVolumeSync("v", 8).ok());
    ASSERT_THAT(ResolveSlots("v", {"a", "b"}), ElementsAre(0, 1));
    ASSERT_TRUE(core_->RegisterAgent("writer", absl::Seconds(10), 1000).ok());
  }
  static BumpOptions Strict() {
    BumpOptions o;
    o.agent_id = "writer";
    o.wait_for_leases = true;
    return o;
  }
};

TEST_F(StrictTest, NoOtherAgentsMeansNoWait) {
  // The writer's own subscription does not count.
  auto own = core_->Subscribe("v", 0, "writer");
  ASSERT_TRUE(own.ok());
  auto r = core_->BumpSync("v", {0}, Strict());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->lease_wait, absl::ZeroDuration());
  EXPECT_THAT(r->seqs, ElementsAre(1));
}

TEST_F(StrictTest, WaitsForSubscribedAgentsAckAndReturnsItsLease) {
  ASSERT_TRUE(core_->RegisterAgent("reader", absl::Seconds(10), 5000).ok());
  auto sub = core_->Subscribe("v", 0, "reader");
  ASSERT_TRUE(sub.ok());
  absl::Notification done;
  absl::StatusOr<BumpResult> result;
  core_->Bump("v", {1}, Strict(), [&](absl::StatusOr<BumpResult> r) {
    result = std::move(r);
    done.Notify();
  });
  // Durable and published, but the reader has not acknowledged it.
  std::vector<LogEntry> got = Collect(sub->get(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  // Acks of other slots or older seqs do not count for slot 1.
  ASSERT_TRUE(core_->AckInvalidations("reader", "v", got[0].seq,
                                      {{1, 300}, {0, 4000}})
                  .ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->lease_wait, absl::Milliseconds(150));
  EXPECT_LE(result->lease_wait, absl::Milliseconds(300));
}

TEST_F(StrictTest, SilentAgentCountsAsItsMaxGuestLease) {
  options_.lease_check_interval = absl::Milliseconds(10);
  StartCore();
  ASSERT_TRUE(core_->RegisterAgent("writer", absl::Seconds(10), 0).ok());
  ASSERT_TRUE(core_->RegisterAgent("mute", absl::Milliseconds(200), 1000).ok());
  auto sub = core_->Subscribe("v", 0, "mute");
  ASSERT_TRUE(sub.ok());
  const absl::Time start = absl::Now();
  auto r = core_->BumpSync("v", {0}, Strict());
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(took, absl::Milliseconds(150));  // waited for the ack timeout
  // max_guest_lease_ms (1000) from the end of its lease (registration +
  // 200 ms): it may have granted guest leases until then.
  EXPECT_GT(r->lease_wait, absl::Milliseconds(1100) - took);
  EXPECT_LE(r->lease_wait, absl::Milliseconds(1200) - took + absl::Milliseconds(50));
}

TEST_F(StrictTest, AfterARestartStrictBumpsWaitOutTheGrace) {
  options_.strict_grace = absl::Milliseconds(800);
  StartCore();  // epoch 2: leases of the previous run may be live
  ASSERT_TRUE(core_->RegisterAgent("writer", absl::Seconds(10), 1000).ok());
  auto r = core_->BumpSync("v", {0}, Strict());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->lease_wait, absl::Milliseconds(600));
  EXPECT_LE(r->lease_wait, absl::Milliseconds(800));
  // A bump without wait_for_leases is not held back.
  auto plain = core_->BumpSync("v", {0});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->lease_wait, absl::ZeroDuration());
  absl::SleepFor(absl::Milliseconds(850));
  r = core_->BumpSync("v", {0}, Strict());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lease_wait, absl::ZeroDuration());
}

TEST_F(StrictTest, FollowerWhoseStreamEndedCountsItsMaxGuestLease) {
  ASSERT_TRUE(core_->RegisterAgent("other", absl::Seconds(10), 700).ok());
  {
    auto sub = core_->Subscribe("v", 0, "other");
    ASSERT_TRUE(sub.ok());
    ASSERT_TRUE(core_->BumpSync("v", {1}).ok());
    ASSERT_TRUE(core_->AckInvalidations("other", "v", 1, {}).ok());
    (*sub)->Cancel();
  }
  // Live, not subscribed now, but it followed "v": its guests may still
  // hold what it granted before the stream broke.
  auto r = core_->BumpSync("v", {0}, Strict());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->lease_wait, absl::Milliseconds(600));
  EXPECT_LE(r->lease_wait, absl::Milliseconds(700));
}

TEST_F(StrictTest, RecentlyExpiredAgentStillCounts) {
  ASSERT_TRUE(core_->RegisterAgent("gone", absl::Milliseconds(100), 2000).ok());
  absl::SleepFor(absl::Milliseconds(300));
  auto r = core_->BumpSync("v", {0}, Strict());
  ASSERT_TRUE(r.ok()) << r.status();
  // Its guests may hold leases until its lease ended (registration + 100
  // ms) + 2000 ms, not only 2000 ms past its last contact.
  EXPECT_GT(r->lease_wait, absl::Milliseconds(1700));
  EXPECT_LE(r->lease_wait, absl::Milliseconds(1800));
}

TEST_F(StrictTest, AckErrors) {
  ASSERT_TRUE(core_->BumpSync("v", {0}).ok());
  EXPECT_EQ(core_->AckInvalidations("ghost", "v", 1, {}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->AckInvalidations("writer", "nope", 1, {}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->AckInvalidations("writer", "v", 2, {}).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(core_->AckInvalidations("writer", "v", 1, {{5, 10}}).code(),
            absl::StatusCode::kOutOfRange);
  std::vector<std::pair<uint32_t, uint32_t>> many(kMaxBatch + 1, {0, 1});
  EXPECT_EQ(core_->AckInvalidations("writer", "v", 1, many).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(core_->AckInvalidations("writer", "v", 1, {{0, 10}}).ok());
}

TEST_F(StrictTest, StopFailsWaitingBumps) {
  ASSERT_TRUE(core_->RegisterAgent("reader", absl::Seconds(10), 5000).ok());
  auto sub = core_->Subscribe("v", 0, "reader");
  ASSERT_TRUE(sub.ok());
  absl::Notification done;
  absl::Status status;
  core_->Bump("v", {0}, Strict(), [&](absl::StatusOr<BumpResult> r) {
    status = r.status();
    done.Notify();
  });
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  core_->Stop();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace coherefs::server
