// CoherentFs over a real PassthroughFs on a temp dir, two sessions (guests)
// sharing one VolumeCoherence, and an in-memory backend standing in for the
// coordinator (the real one is covered by tests/coherence).
#include "agent/coherence/coherent_fs.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <algorithm>
#include <map>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/coherence/version_table.h"
#include "agent/coherence/volume_coherence.h"
#include "agent/passthrough/passthrough_fs.h"
#include "agent/passthrough/test_util.h"
#include "common/errno_status.h"
#include "gtest/gtest.h"

namespace coherefs::agent::coherence {
namespace {

using fuse::Entry;
using fuse::InodeId;
using fuse::kRootInode;
using passthrough::testing::HostLstat;
using passthrough::testing::RootCtx;
using passthrough::testing::TempTree;
using passthrough::testing::WriteHostFile;
using std::chrono::milliseconds;

// The coordinator's job in memory: a slot per key, versions that only grow,
// raised in the table before Bump returns (as the link does).
class FakeBackend final : public CoherenceBackend {
 public:
  explicit FakeBackend(VersionTable* table) : table_(table) {}

  absl::StatusOr<std::vector<ResolvedSlot>> Resolve(
      const std::vector<std::string>& keys) override {
    absl::MutexLock lock(&mu_);
    if (fenced_) return absl::FailedPreconditionError("fenced");
    ++resolve_calls_;
    std::vector<ResolvedSlot> out;
    for (const std::string& k : keys) {
      auto [it, added] = slots_.emplace(k, static_cast<uint32_t>(slots_.size()));
      out.push_back({it->second, table_->Load(it->second).value()});
    }
    return out;
  }

  absl::StatusOr<BumpOutcome> Bump(const std::vector<uint32_t>& slots,
                                   bool wait_for_leases) override {
    absl::MutexLock lock(&mu_);
    if (!bump_error_.ok()) return bump_error_;
    for (uint32_t s : slots) {
      EXPECT_TRUE(table_->Raise(s, ++counter_).ok());
      bumped_.push_back(s);
    }
    last_wait_flag_ = wait_for_leases;
    return BumpOutcome{lease_wait_ms_};
  }

  bool fenced() const override { return fenced_flag_.load(); }

  void set_fenced(bool f) {
    absl::MutexLock lock(&mu_);
    fenced_ = f;
    fenced_flag_ = f;
  }
  void set_bump_error(absl::Status s) {
    absl::MutexLock lock(&mu_);
    bump_error_ = std::move(s);
  }
  void set_lease_wait_ms(uint32_t ms) {
    absl::MutexLock lock(&mu_);
    lease_wait_ms_ = ms;
  }
  std::vector<uint32_t> bumped() {
    absl::MutexLock lock(&mu_);
    return bumped_;
  }
  void clear_bumped() {
    absl::MutexLock lock(&mu_);
    bumped_.clear();
  }
  bool last_wait_flag() {
    absl::MutexLock lock(&mu_);
    return last_wait_flag_;
  }
  int resolve_calls() {
    absl::MutexLock lock(&mu_);
    return resolve_calls_;
  }

 private:
  VersionTable* const table_;
  absl::Mutex mu_;
  std::map<std::string, uint32_t> slots_ ABSL_GUARDED_BY(mu_);
  uint64_t counter_ ABSL_GUARDED_BY(mu_) = 100;
  std::vector<uint32_t> bumped_ ABSL_GUARDED_BY(mu_);
  absl::Status bump_error_ ABSL_GUARDED_BY(mu_);
  uint32_t lease_wait_ms_ ABSL_GUARDED_BY(mu_) = 0;
  bool last_wait_flag_ ABSL_GUARDED_BY(mu_) = false;
  int resolve_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool fenced_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> fenced_flag_{false};
};

// One guest: its own PassthroughFs and CoherentFs over the shared volume.
struct Guest {
  std::unique_ptr<passthrough::PassthroughFs> fs;
  std::unique_ptr<CoherentFs> coherent;
};

class CoherentFsTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(CoherenceMode::kStrict); }

  void Build(CoherenceMode mode, milliseconds max_lease = milliseconds(400)) {
    a_ = {};
    b_ = {};
    volume_.reset();
    table_ = VersionTable::Create("t", 1024).value();
    backend_ = std::make_unique<FakeBackend>(table_.get());
    VolumeCoherenceOptions options;
    options.volume = "t";
    options.mode = mode;
    options.lease.max_lease = max_lease;
    options.margin = milliseconds(20);
    options.change_timeout = absl::Milliseconds(200);
    options.min_backoff = absl::Milliseconds(5);
    options.max_backoff = absl::Milliseconds(20);
    volume_ = std::make_unique<VolumeCoherence>(options, table_.get(), backend_.get());
    volume_->Start();
    a_ = MakeGuest();
    b_ = MakeGuest();
  }

  Guest MakeGuest() {
    passthrough::Options o;
    o.shared_dir = tree_.share();
    o.cache = passthrough::CacheMode::kAlways;
    o.negative_entries = true;
    Guest g;
    g.fs = passthrough::PassthroughFs::Create(o).value();
    passthrough::PassthroughFs* raw = g.fs.get();
    CoherentFs::KeySource keys;
    keys.key_of = [raw](InodeId i) { return raw->FileKey(i); };
    keys.child_keys = [raw](InodeId d, size_t max) { return raw->ChildKeys(d, max); };
    g.coherent = std::make_unique<CoherentFs>(raw, std::move(keys), volume_.get());
    return g;
  }

  Entry Look(Guest& g, const std::string& name, InodeId parent = kRootInode) {
    absl::StatusOr<Entry> e = g.coherent->Lookup(RootCtx(), parent, name);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *e : Entry{};
  }

  uint32_t SlotOfPath(Guest& g, const std::string& name) {
    Entry e = g.fs->Lookup(RootCtx(), kRootInode, name).value();
    std::string key = g.fs->FileKey(e.inode).value();
    g.fs->Forget(e.inode, 1);
    return volume_->SlotForKey(key).value();
  }

  uint32_t RootSlot(Guest& g) { return volume_->SlotForKey(g.fs->FileKey(kRootInode).value()).value(); }

  static double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

  TempTree tree_;
  std::unique_ptr<VersionTable> table_;
  std::unique_ptr<FakeBackend> backend_;
  std::unique_ptr<VolumeCoherence> volume_;
  Guest a_;
  Guest b_;
};

TEST_F(CoherentFsTest, LookupLeasesAttributesOnTheFileAndTheNameOnTheParent) {
  WriteHostFile(tree_.In("f"), "x");
  Entry e = Look(a_, "f");
  EXPECT_DOUBLE_EQ(e.attr_timeout_s, 0.4);
  EXPECT_DOUBLE_EQ(e.entry_timeout_s, 0.4);
  const auto now = LeaseClock::now();
  // Guest A holds leases on the file's slot and on the root's (the name).
  const uint32_t file = SlotOfPath(a_, "f");
  const uint32_t root = RootSlot(a_);
  EXPECT_GT(volume_->leases().RemainingExcept({file}, b_.coherent->guest(), now),
            milliseconds(300));
  EXPECT_GT(volume_->leases().RemainingExcept({root}, b_.coherent->guest(), now),
            milliseconds(300));
  EXPECT_EQ(volume_->leases().RemainingExcept({file}, a_.coherent->guest(), now),
            LeaseClock::duration::zero());
  // GETATTR leases the file again.
  ASSERT_OK_AND_ASSIGN(fuse::Attr attr, a_.coherent->GetAttr(RootCtx(), e.inode, nullptr));
  EXPECT_DOUBLE_EQ(attr.timeout_s, 0.4);
}

TEST_F(CoherentFsTest, NegativeEntryIsALeaseOnTheParent) {
  ASSERT_OK_AND_ASSIGN(Entry miss, a_.coherent->Lookup(RootCtx(), kRootInode, "nope"));
  EXPECT_EQ(miss.inode, 0u);
  EXPECT_DOUBLE_EQ(miss.entry_timeout_s, 0.4);
  EXPECT_GT(volume_->leases().RemainingExcept({RootSlot(a_)}, b_.coherent->guest(),
                                              LeaseClock::now()),
            milliseconds(300));
  // Guest B's create bumps the parent and waits out A's negative entry.
  const absl::Time start = absl::Now();
  ASSERT_OK(b_.coherent->Create(RootCtx(), kRootInode, "nope", 0644, O_RDWR, 0).status());
  EXPECT_GE(Seconds(absl::Now() - start), 0.3);
  EXPECT_EQ(backend_->bumped(), std::vector<uint32_t>{RootSlot(a_)});
  EXPECT_TRUE(backend_->last_wait_flag());
}

TEST_F(CoherentFsTest, StrictChangeWaitsForOtherGuestsLeasesNotItsOwn) {
  WriteHostFile(tree_.In("f"), "x");
  Entry ea = Look(a_, "f");
  fuse::SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = 0600;
  // Only A holds a lease: A's own chmod does not wait for it.
  absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(fuse::Attr attr, a_.coherent->SetAttr(RootCtx(), ea.inode, in));
  EXPECT_LT(Seconds(absl::Now() - start), 0.2);
  EXPECT_EQ(attr.timeout_s, 0);  // the slot just changed
  EXPECT_EQ(HostLstat(tree_.In("f")).st_mode & 07777, 0600u);
  // B takes a lease (0.4 s here is the max: the change was a moment ago,
  // so B gets none at all) ...
  Entry eb = Look(b_, "f");
  EXPECT_EQ(eb.attr_timeout_s, 0);
  EXPECT_EQ(eb.st.st_mode & 07777, 0600u);
  // ... and a fresh volume shows the wait: B holds the max lease, A waits.
  Build(CoherenceMode::kStrict);
  Entry eb2 = Look(b_, "f");
  ASSERT_DOUBLE_EQ(eb2.attr_timeout_s, 0.4);
  Entry ea2 = Look(a_, "f");
  in.mode = 0640;
  start = absl::Now();
  ASSERT_OK(a_.coherent->SetAttr(RootCtx(), ea2.inode, in).status());
  const double waited = Seconds(absl::Now() - start);
  EXPECT_GE(waited, 0.35);
  EXPECT_LT(waited, 2.0);
  EXPECT_EQ(backend_->bumped(), std::vector<uint32_t>{SlotOfPath(a_, "f")});
  EXPECT_GE(volume_->metrics().strict_waits.load(), 1u);
}

TEST_F(CoherentFsTest, StrictChangeWaitsForRemoteLeasesTheCoordinatorReports) {
  WriteHostFile(tree_.In("f"), "x");
  Entry e = Look(a_, "f");
  backend_->set_lease_wait_ms(250);
  fuse::SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = 0600;
  const absl::Time start = absl::Now();
  ASSERT_OK(a_.coherent->SetAttr(RootCtx(), e.inode, in).status());
  // The remote agents' reports already include their margins.
  EXPECT_GE(Seconds(absl::Now() - start), 0.25);
}

TEST_F(CoherentFsTest, LeasesShrinkAfterAChangeAndRecover) {
  WriteHostFile(tree_.In("f"), "x");
  Entry e = Look(a_, "f");
  fuse::SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = 0600;
  ASSERT_OK(a_.coherent->SetAttr(RootCtx(), e.inode, in).status());
  Entry eb = Look(b_, "f");
  EXPECT_EQ(eb.attr_timeout_s, 0);
  absl::SleepFor(absl::Milliseconds(300));  // age 0.3 s -> 30 ms lease
  ASSERT_OK_AND_ASSIGN(fuse::Attr attr, b_.coherent->GetAttr(RootCtx(), eb.inode, nullptr));
  EXPECT_GE(attr.timeout_s, 0.025);
  EXPECT_LE(attr.timeout_s, 0.1);
}

TEST_F(CoherentFsTest, NameChangesBumpParentsAndTheFilesTheyTouch) {
  ASSERT_EQ(mkdir(tree_.In("d").c_str(), 0755), 0);
  WriteHostFile(tree_.In("f"), "x");
  WriteHostFile(tree_.In("d/g"), "y");
  Entry d = Look(a_, "d");
  const uint32_t root = RootSlot(a_);
  const uint32_t dir = SlotOfPath(a_, "d");
  const uint32_t f = SlotOfPath(a_, "f");
  Entry g = a_.fs->Lookup(RootCtx(), d.inode, "g").value();
  const uint32_t gs = volume_->SlotForKey(a_.fs->FileKey(g.inode).value()).value();
  a_.fs->Forget(g.inode, 1);

  // rename f over d/g: both parents, the moved file, the replaced file.
  ASSERT_OK(a_.coherent->Rename(RootCtx(), kRootInode, "f", d.inode, "g", 0));
  std::vector<uint32_t> bumped = backend_->bumped();
  std::sort(bumped.begin(), bumped.end());
  std::vector<uint32_t> want = {root, dir, f, gs};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(bumped, want);

  backend_->clear_bumped();
  ASSERT_OK(a_.coherent->Unlink(RootCtx(), d.inode, "g"));
  bumped = backend_->bumped();
  std::sort(bumped.begin(), bumped.end());
  want = {dir, f};  // f's inode now lives at d/g
  std::sort(want.begin(), want.end());
  EXPECT_EQ(bumped, want);

  backend_->clear_bumped();
  ASSERT_OK(a_.coherent->Mkdir(RootCtx(), kRootInode, "e", 0755, 0).status());
  EXPECT_EQ(backend_->bumped(), std::vector<uint32_t>{root});
  backend_->clear_bumped();
  ASSERT_OK(a_.coherent->Rmdir(RootCtx(), kRootInode, "e"));
  bumped = backend_->bumped();
  ASSERT_EQ(bumped.size(), 2u);
  EXPECT_EQ(bumped[0] == root || bumped[1] == root, true);

  // A failing change bumps nothing.
  backend_->clear_bumped();
  EXPECT_ERRNO(a_.coherent->Unlink(RootCtx(), kRootInode, "missing"), ENOENT);
  EXPECT_TRUE(backend_->bumped().empty());
}

TEST_F(CoherentFsTest, LinkAndXattrAndWriteBumpTheFile) {
  WriteHostFile(tree_.In("f"), "x");
  Entry e = Look(a_, "f");
  const uint32_t f = SlotOfPath(a_, "f");
  const uint32_t root = RootSlot(a_);
  ASSERT_OK(a_.coherent->Link(RootCtx(), e.inode, kRootInode, "f2").status());
  std::vector<uint32_t> bumped = backend_->bumped();
  std::sort(bumped.begin(), bumped.end());
  std::vector<uint32_t> want = {root, f};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(bumped, want);

  backend_->clear_bumped();
  ASSERT_OK(a_.coherent->SetXattr(RootCtx(), e.inode, "user.k", "v", 0));
  ASSERT_OK(a_.coherent->RemoveXattr(RootCtx(), e.inode, "user.k"));
  EXPECT_EQ(backend_->bumped(), (std::vector<uint32_t>{f, f}));

  backend_->clear_bumped();
  ASSERT_OK_AND_ASSIGN(fuse::OpenResult open, a_.coherent->Open(RootCtx(), e.inode, O_RDWR));
  std::string data = "hello";
  IovReader reader({iovec{data.data(), data.size()}});
  ASSERT_OK(a_.coherent->Write(RootCtx(), e.inode, open.handle, 0, 5, 0, reader).status());
  ASSERT_OK(a_.coherent->Release(RootCtx(), e.inode, open.handle, O_RDWR, 0, false));
  EXPECT_EQ(backend_->bumped(), std::vector<uint32_t>{f});
  EXPECT_EQ(HostLstat(tree_.In("f")).st_size, 5);
}

TEST_F(CoherentFsTest, KeepCacheOnlyWhileTheVersionIsTheOneOfThePreviousOpen) {
  WriteHostFile(tree_.In("f"), "x");
  Entry ea = Look(a_, "f");
  Entry eb = Look(b_, "f");
  auto open_flags = [&](Guest& g, InodeId inode) {
    fuse::OpenResult r = g.coherent->Open(RootCtx(), inode, O_RDONLY).value();
    EXPECT_TRUE(g.coherent->Release(RootCtx(), inode, r.handle, O_RDONLY, 0, false).ok());
    return r.open_flags;
  };
  EXPECT_EQ(open_flags(a_, ea.inode) & FOPEN_KEEP_CACHE, 0u);  // first open
  EXPECT_NE(open_flags(a_, ea.inode) & FOPEN_KEEP_CACHE, 0u);  // unchanged since
  fuse::SetAttrIn in;
  in.valid = FATTR_SIZE;
  in.size = 0;
  Build(CoherenceMode::kBounded);  // no waiting in this test
  ea = Look(a_, "f");
  eb = Look(b_, "f");
  open_flags(a_, ea.inode);
  ASSERT_NE(open_flags(a_, ea.inode) & FOPEN_KEEP_CACHE, 0u);
  ASSERT_OK(b_.coherent->SetAttr(RootCtx(), eb.inode, in).status());
  // The bounded bump lands in the background; then A's cache must go.
  for (int i = 0; i < 200 && backend_->bumped().empty(); ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_FALSE(backend_->bumped().empty());
  EXPECT_EQ(open_flags(a_, ea.inode) & FOPEN_KEEP_CACHE, 0u);
  EXPECT_NE(open_flags(a_, ea.inode) & FOPEN_KEEP_CACHE, 0u);
}

TEST_F(CoherentFsTest, BoundedChangeReturnsAtOnceAndBumpsInTheBackground) {
  Build(CoherenceMode::kBounded, milliseconds(2000));
  WriteHostFile(tree_.In("f"), "x");
  Entry eb = Look(b_, "f");
  ASSERT_DOUBLE_EQ(eb.attr_timeout_s, 2.0);
  Entry ea = Look(a_, "f");
  fuse::SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = 0600;
  const absl::Time start = absl::Now();
  ASSERT_OK(a_.coherent->SetAttr(RootCtx(), ea.inode, in).status());
  EXPECT_LT(Seconds(absl::Now() - start), 0.5);
  for (int i = 0; i < 200 && backend_->bumped().empty(); ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(backend_->bumped(), std::vector<uint32_t>{SlotOfPath(a_, "f")});
  EXPECT_FALSE(backend_->last_wait_flag());
}

TEST_F(CoherentFsTest, FencedAgentGrantsNothingAndRefusesStrictChangesUnapplied) {
  WriteHostFile(tree_.In("f"), "x");
  const mode_t before = HostLstat(tree_.In("f")).st_mode & 07777;
  ASSERT_NE(before, 0600u);
  Entry ea = Look(a_, "f");
  backend_->set_fenced(true);
  ASSERT_OK_AND_ASSIGN(fuse::Attr attr, a_.coherent->GetAttr(RootCtx(), ea.inode, nullptr));
  EXPECT_EQ(attr.timeout_s, 0);
  Entry again = Look(a_, "f");
  EXPECT_EQ(again.attr_timeout_s, 0);
  EXPECT_EQ(again.entry_timeout_s, 0);
  fuse::SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = 0600;
  EXPECT_ERRNO(a_.coherent->SetAttr(RootCtx(), ea.inode, in), EIO);
  EXPECT_EQ(HostLstat(tree_.In("f")).st_mode & 07777, before);  // not applied
  EXPECT_ERRNO(a_.coherent->Mkdir(RootCtx(), kRootInode, "d", 0755, 0), EIO);
  EXPECT_FALSE(passthrough::testing::HostExists(tree_.In("d")));
  EXPECT_EQ(volume_->metrics().changes_refused.load(), 2u);
  backend_->set_fenced(false);
  ASSERT_OK(a_.coherent->SetAttr(RootCtx(), ea.inode, in).status());
}

TEST_F(CoherentFsTest, FailedStrictBumpIsEioAndRetriedInTheBackground) {
  WriteHostFile(tree_.In("f"), "x");
  Entry ea = Look(a_, "f");
  backend_->set_bump_error(absl::UnavailableError("coordinator down"));
  fuse::SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = 0600;
  EXPECT_ERRNO(a_.coherent->SetAttr(RootCtx(), ea.inode, in), EIO);
  backend_->set_bump_error(absl::OkStatus());
  for (int i = 0; i < 400 && backend_->bumped().empty(); ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(backend_->bumped(), std::vector<uint32_t>{SlotOfPath(a_, "f")});
  EXPECT_GE(volume_->metrics().bump_failures.load(), 1u);
}

TEST_F(CoherentFsTest, ReadDirPlusLeasesEveryEntryAndTracksIt) {
  ASSERT_EQ(mkdir(tree_.In("d").c_str(), 0755), 0);
  for (int i = 0; i < 20; ++i) WriteHostFile(tree_.In("d/f" + std::to_string(i)), "x");
  Entry d = Look(a_, "d");
  ASSERT_OK_AND_ASSIGN(fuse::OpenResult h, a_.coherent->OpenDir(RootCtx(), d.inode, 0));
  passthrough::testing::RecordingSink sink;
  ASSERT_OK(a_.coherent->ReadDir(RootCtx(), d.inode, h.handle, 0, true, sink));
  int leased = 0;
  for (const auto& item : sink.items) {
    if (!item.has_plus || item.plus.inode == 0) continue;
    EXPECT_DOUBLE_EQ(item.plus.attr_timeout_s, 0.4) << item.name;
    EXPECT_DOUBLE_EQ(item.plus.entry_timeout_s, 0.4) << item.name;
    ++leased;
  }
  EXPECT_EQ(leased, 20);
  EXPECT_EQ(a_.coherent->TrackedInodes(), 1u + 1u + 20u);  // root, d, files
  for (const auto& item : sink.items) {
    if (item.has_plus && item.plus.inode != 0) a_.coherent->Forget(item.plus.inode, 1);
  }
  EXPECT_EQ(a_.coherent->TrackedInodes(), 2u);
  ASSERT_OK(a_.coherent->ReleaseDir(RootCtx(), d.inode, h.handle));
}

TEST_F(CoherentFsTest, ConcurrentMissesShareResolveCalls) {
  for (int i = 0; i < 64; ++i) WriteHostFile(tree_.In("f" + std::to_string(i)), "x");
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([this, t] {
      for (int i = t; i < 64; i += 8) Look(a_, "f" + std::to_string(i));
    });
  }
  for (auto& th : threads) th.join();
  // The root, then its 64 entries in one prefetch batch: two calls (a
  // third if a racing miss beat the prefetch to a key).
  EXPECT_LE(backend_->resolve_calls(), 3);
  EXPECT_LE(volume_->metrics().resolved_keys.load(), 66u);
}

TEST_F(CoherentFsTest, LeasesForReportsRemainingLeasesAndShortensFutureOnes) {
  WriteHostFile(tree_.In("f"), "x");
  Look(b_, "f");
  const uint32_t f = SlotOfPath(a_, "f");
  std::vector<uint32_t> slots = {f};
  std::vector<SlotRemaining> r = volume_->LeasesFor(&slots);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].slot, f);
  EXPECT_GT(r[0].remaining, milliseconds(300));
  EXPECT_LE(r[0].remaining, milliseconds(420));  // lease + margin
  // The invalidation counts as a change: new leases on f are short.
  EXPECT_EQ(volume_->leases().LeaseFor(f, LeaseClock::now()), LeaseClock::duration::zero());
  EXPECT_EQ(volume_->LeasesFor(nullptr).size(), 2u);  // f and the root's name lease
}

TEST_F(CoherentFsTest, HostChangesAreResolvedInOneBatchAndBumpedInTheBackground) {
  WriteHostFile(tree_.In("f"), "x");
  WriteHostFile(tree_.In("g"), "y");
  auto key = [&](const std::string& name) {
    Entry e = a_.fs->Lookup(RootCtx(), kRootInode, name).value();
    std::string k = a_.fs->FileKey(e.inode).value();
    a_.fs->Forget(e.inode, 1);
    return k;
  };
  const int calls_before = backend_->resolve_calls();
  volume_->OnHostChanges({key("f"), key("g"), key("f")});
  EXPECT_EQ(backend_->resolve_calls(), calls_before + 1);
  for (int i = 0; i < 200 && backend_->bumped().size() < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  std::vector<uint32_t> bumped = backend_->bumped();
  std::sort(bumped.begin(), bumped.end());
  std::vector<uint32_t> want = {SlotOfPath(a_, "f"), SlotOfPath(a_, "g")};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(bumped, want);
  EXPECT_FALSE(backend_->last_wait_flag());  // nobody waits for a host process
  EXPECT_EQ(volume_->metrics().host_changes.load(), 3u);
  // The changed files' leases are short now.
  EXPECT_EQ(volume_->leases().LeaseFor(want[0], LeaseClock::now()),
            LeaseClock::duration::zero());
}

TEST_F(CoherentFsTest, DrainingGrantsNoLeasesButChangesGoOn) {
  WriteHostFile(tree_.In("f"), "x");
  volume_->SetDraining(true);
  EXPECT_TRUE(volume_->draining());
  Entry e = Look(a_, "f");
  EXPECT_EQ(e.attr_timeout_s, 0);
  EXPECT_EQ(e.entry_timeout_s, 0);
  fuse::SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = 0600;
  ASSERT_OK(a_.coherent->SetAttr(RootCtx(), e.inode, in).status());
  EXPECT_EQ(HostLstat(tree_.In("f")).st_mode & 07777, 0600u);
  volume_->SetDraining(false);
  Entry g = Look(b_, "f");
  // Leases are back (short: the file just changed, but the parent's is long).
  EXPECT_DOUBLE_EQ(g.entry_timeout_s, 0.4);
}

}  // namespace
}  // namespace coherefs::agent::coherence
