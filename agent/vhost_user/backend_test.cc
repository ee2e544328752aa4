// End-to-end tests of the vhost-user back end (Listener -> Connection ->
// QueueRunner -> Vring) over real Unix sockets, driven by the test front
// end. The fake device copies each chain's readable bytes, each plus one,
// after a one-byte queue tag, into its writable buffers, so every test
// checks exact data through the scatter-gather path.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/vhost_user/listener.h"
#include "common/failpoint.h"
#include "agent/vhost_user/protocol.h"
#include "agent/vhost_user/session_keeper.h"
#include "agent/vhost_user/testing/frontend.h"
#include "gtest/gtest.h"

namespace coherefs::agent::vhost_user {
namespace {

using testing::Frontend;
using testing::FrontendOptions;
using testing::Segment;

struct DeviceStats {
  std::atomic<int> created{0};
  std::atomic<int> resets{0};
  std::atomic<int> in_process{0};
  std::atomic<int> max_concurrent{0};
};

class EchoDevice : public Device {
 public:
  EchoDevice(DeviceStats* stats, uint32_t queues, uint32_t workers,
             absl::Duration delay)
      : stats_(stats), queues_(queues), workers_(workers), delay_(delay) {
    ++stats_->created;
  }
  uint32_t NumQueues() const override { return queues_; }
  std::string Config() const override { return "coherefs-config"; }
  uint32_t WorkersForQueue(uint32_t) const override { return workers_; }
  uint32_t ProcessChain(uint32_t queue, const Chain& chain) override {
    int now = ++stats_->in_process;
    int seen = stats_->max_concurrent.load();
    while (now > seen && !stats_->max_concurrent.compare_exchange_weak(seen, now)) {
    }
    if (delay_ > absl::ZeroDuration()) absl::SleepFor(delay_);
    std::string in;
    for (const iovec& v : chain.readable) {
      in.append(static_cast<const char*>(v.iov_base), v.iov_len);
    }
    std::string out(1, static_cast<char>(queue));
    for (char c : in) out.push_back(static_cast<char>(c + 1));
    size_t pos = 0;
    for (const iovec& v : chain.writable) {
      size_t n = std::min(v.iov_len, out.size() - pos);
      std::memcpy(v.iov_base, out.data() + pos, n);
      pos += n;
    }
    --stats_->in_process;
    return static_cast<uint32_t>(pos);
  }
  void Reset() override { ++stats_->resets; }

 private:
  DeviceStats* stats_;
  uint32_t queues_;
  uint32_t workers_;
  absl::Duration delay_;
};

// Polls `pred` every 5 ms for at most 5 s; its last value.
template <typename Pred>
bool Eventually(Pred pred) {
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!pred() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  return pred();
}

std::string Expected(uint32_t queue, const std::string& in) {
  std::string out(1, static_cast<char>(queue));
  for (char c : in) out.push_back(static_cast<char>(c + 1));
  return out;
}

// What the agent's supervisor does for the back end (agent/supervisor),
// in memory: entries with duplicated fds. Freeze() makes it ignore removals
// from then on, as a crash would: the dying back end never gets to drop
// what it kept, and the next one finds it.
class MemoryKeeper : public SessionKeeper {
 public:
  absl::Status Put(absl::string_view name, absl::string_view blob, int fd) override {
    absl::MutexLock lock(&mu_);
    KeptEntry& e = entries_[std::string(name)];
    e.blob = std::string(blob);
    e.fd.Reset(fd >= 0 ? ::fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1);
    return absl::OkStatus();
  }
  absl::Status Remove(absl::string_view name) override {
    absl::MutexLock lock(&mu_);
    if (frozen_) return absl::OkStatus();
    const std::string prefix = absl::StrCat(name, "/");
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->first == name || absl::StartsWith(it->first, prefix)) {
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
    return absl::OkStatus();
  }
  std::optional<KeptEntry> Take(absl::string_view name) override {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(std::string(name));
    if (it == entries_.end()) return std::nullopt;
    return KeptEntry{it->second.blob,
                     UniqueFd(it->second.fd.valid()
                                  ? ::fcntl(it->second.fd.get(), F_DUPFD_CLOEXEC, 0)
                                  : -1)};
  }
  void Freeze() {
    absl::MutexLock lock(&mu_);
    frozen_ = true;
  }
  void Thaw() {
    absl::MutexLock lock(&mu_);
    frozen_ = false;
  }
  bool Has(const std::string& name) {
    absl::MutexLock lock(&mu_);
    return entries_.count(name) > 0;
  }
  void Set(const std::string& name, std::string blob) {
    absl::MutexLock lock(&mu_);
    entries_[name].blob = std::move(blob);
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, KeptEntry> entries_ ABSL_GUARDED_BY(mu_);
  bool frozen_ ABSL_GUARDED_BY(mu_) = false;
};

class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Bazel's TEST_TMPDIR is too long for sun_path (108 bytes).
    char tmpl[] = "/tmp/vhost-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/vu.sock";
  }
  void TearDown() override {
    listener_.reset();
    ::unlink(path_.c_str());
    ::unlink((path_ + ".b").c_str());
    ::rmdir(dir_.c_str());
  }

  void StartListener(uint32_t queues = 4, uint32_t workers = 0,
                     absl::Duration delay = absl::ZeroDuration(),
                     SessionKeeper* keeper = nullptr) {
    auto l = Listener::Start(
        path_,
        [this, queues, workers, delay] {
          return std::make_unique<EchoDevice>(&stats_, queues, workers, delay);
        },
        keeper);
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(*l);
  }

  std::unique_ptr<Frontend> Connect(FrontendOptions options = {}) {
    auto fe = Frontend::Connect(path_, options);
    EXPECT_TRUE(fe.ok()) << fe.status();
    return fe.ok() ? std::move(*fe) : nullptr;
  }

  std::unique_ptr<Frontend> ConnectAndNegotiate(FrontendOptions options = {}) {
    auto fe = Connect(options);
    if (fe == nullptr) return nullptr;
    absl::Status s = fe->Negotiate();
    EXPECT_TRUE(s.ok()) << s;
    return s.ok() ? std::move(fe) : nullptr;
  }

  // Writes `in` across readable segments of the given sizes, posts a chain
  // with writable segments of the given sizes, and returns the head.
  uint16_t PostEcho(Frontend& fe, uint32_t q, const std::string& in,
                    std::vector<uint32_t> read_sizes,
                    std::vector<uint32_t> write_sizes, bool indirect,
                    std::vector<uint64_t>* write_gpas) {
    std::vector<Segment> segs;
    size_t pos = 0;
    for (uint32_t n : read_sizes) {
      uint64_t gpa = fe.Alloc(n, 1);
      std::memcpy(fe.Host(gpa), in.data() + pos, n);
      pos += n;
      segs.push_back({gpa, n, false});
    }
    for (uint32_t n : write_sizes) {
      uint64_t gpa = fe.Alloc(n, 1);
      write_gpas->push_back(gpa);
      segs.push_back({gpa, n, true});
    }
    auto head = fe.Post(q, segs, indirect);
    EXPECT_TRUE(head.ok()) << head.status();
    return head.ok() ? *head : 0;
  }

  std::string Gather(Frontend& fe, const std::vector<uint64_t>& gpas,
                     const std::vector<uint32_t>& sizes, uint32_t len) {
    std::string out;
    for (size_t i = 0; i < gpas.size() && out.size() < len; ++i) {
      uint32_t n = std::min<uint32_t>(sizes[i], len - out.size());
      out.append(reinterpret_cast<const char*>(fe.Host(gpas[i])), n);
    }
    return out;
  }

  // One full echo round trip on ring q; asserts the exact bytes.
  void RoundTrip(Frontend& fe, uint32_t q, const std::string& in,
                 bool indirect = false) {
    std::vector<uint64_t> gpas;
    std::vector<uint32_t> wsizes = {3, static_cast<uint32_t>(in.size())};
    uint16_t head = PostEcho(fe, q, in, {static_cast<uint32_t>(in.size())},
                             wsizes, indirect, &gpas);
    fe.Kick(q);
    auto used = fe.WaitUsed(q);
    ASSERT_TRUE(used.ok()) << used.status();
    EXPECT_EQ(used->id, head);
    ASSERT_EQ(used->len, in.size() + 1);
    EXPECT_EQ(Gather(fe, gpas, wsizes, used->len), Expected(q, in));
  }

  // A bad chain must come back as (head, 0); the ring must then still work.
  void ExpectBadChain(Frontend& fe, uint32_t q, uint16_t head) {
    uint64_t before = listener_->metrics().Snapshot().bad_chains;
    fe.Publish(q, head);
    fe.Kick(q);
    auto used = fe.WaitUsed(q);
    ASSERT_TRUE(used.ok()) << used.status();
    EXPECT_EQ(used->id, head);
    EXPECT_EQ(used->len, 0u);
    EXPECT_EQ(listener_->metrics().Snapshot().bad_chains, before + 1);
    RoundTrip(fe, q, "still-serving");
  }

  // Sends a request with NEED_REPLY and expects the failure ack (1), then
  // checks the same connection still answers.
  void ExpectAckFailure(Frontend& fe, RequestType type,
                        const std::string& payload,
                        const std::vector<int>& fds = {}) {
    uint64_t before = listener_->metrics().Snapshot().bad_messages;
    auto ack = fe.SendWithAck(type, payload, fds);
    ASSERT_TRUE(ack.ok()) << ack.status();
    EXPECT_EQ(*ack, 1u) << static_cast<uint32_t>(type);
    EXPECT_EQ(listener_->metrics().Snapshot().bad_messages, before + 1);
    auto features = fe.GetU64(RequestType::kGetFeatures);
    ASSERT_TRUE(features.ok()) << features.status();
  }

  // The back end must close this connection and then serve a new one.
  void ExpectClosedThenServes(Frontend& fe) {
    EXPECT_TRUE(fe.WaitClosed());
    auto fresh = ConnectAndNegotiate();
    ASSERT_NE(fresh, nullptr);
    RoundTrip(*fresh, 0, "after-close");
  }

  std::string dir_;
  std::string path_;
  DeviceStats stats_;
  MemoryKeeper keeper_;  // declared before the listener, which borrows it
  std::unique_ptr<Listener> listener_;
};

TEST_F(BackendTest, NegotiatesLikeQemuAndEchoesMultiSegmentChain) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  EXPECT_EQ(fe->acked_features(),
            Bit(kVirtioFVersion1) | Bit(kVirtioRingFIndirectDesc) |
                Bit(kVirtioRingFEventIdx) | Bit(kVhostUserFProtocolFeatures));
  EXPECT_EQ(fe->acked_protocol_features(),
            Bit(kProtocolFMq) | Bit(kProtocolFReplyAck));
  auto nq = fe->GetU64(RequestType::kGetQueueNum);
  ASSERT_TRUE(nq.ok());
  EXPECT_EQ(*nq, 4u);

  std::string in = "the quick brown fox jumps over the lazy dog";
  std::vector<uint64_t> gpas;
  std::vector<uint32_t> wsizes = {1, 7, 100};
  uint16_t head = PostEcho(*fe, 1, in, {4, 0, 10, 29}, wsizes, false, &gpas);
  fe->Kick(1);
  auto used = fe->WaitUsed(1);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, in.size() + 1);
  EXPECT_EQ(Gather(*fe, gpas, wsizes, used->len), Expected(1, in));
  auto m = listener_->metrics().Snapshot();
  EXPECT_EQ(m.requests, 1u);
  EXPECT_EQ(m.bytes_in, in.size());
  EXPECT_EQ(m.bytes_out, in.size() + 1);
  EXPECT_EQ(m.connections, 1u);
}

TEST_F(BackendTest, BufferAcrossTwoRegionsIsSplit) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  // A readable buffer straddling the boundary between regions 0 and 1.
  uint64_t boundary = testing::kGuestBase + fe->options().region_size;
  std::string in = "straddling-the-boundary";
  uint64_t gpa = boundary - 5;
  std::memcpy(fe->Host(gpa), in.data(), in.size());
  uint64_t out = fe->Alloc(64, 1);
  auto head = fe->Post(0, {{gpa, static_cast<uint32_t>(in.size()), false},
                           {out, 64, true}});
  ASSERT_TRUE(head.ok());
  fe->Kick(0);
  auto used = fe->WaitUsed(0);
  ASSERT_TRUE(used.ok()) << used.status();
  ASSERT_EQ(used->len, in.size() + 1);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(fe->Host(out)), used->len),
            Expected(0, in));
}

TEST_F(BackendTest, IndirectDescriptors) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  std::string in = "indirect tables carry the whole chain";
  std::vector<uint64_t> gpas;
  std::vector<uint32_t> wsizes = {2, 2, 2, 100};
  uint16_t head = PostEcho(*fe, 1, in, {1, 2, 30, 4}, wsizes, true, &gpas);
  fe->Kick(1);
  auto used = fe->WaitUsed(1);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(used->id, head);
  ASSERT_EQ(used->len, in.size() + 1);
  EXPECT_EQ(Gather(*fe, gpas, wsizes, used->len), Expected(1, in));
}

TEST_F(BackendTest, SeveralQueuesAtOnceWithWorkers) {
  StartListener(/*queues=*/4, /*workers=*/3, absl::Milliseconds(2));
  FrontendOptions opts;
  opts.num_queues = 4;
  auto fe = ConnectAndNegotiate(opts);
  ASSERT_NE(fe, nullptr);
  struct Posted {
    std::string in;
    std::vector<uint64_t> gpas;
  };
  std::map<std::pair<uint32_t, uint16_t>, Posted> posted;
  const int kPerQueue = 30;
  for (int i = 0; i < kPerQueue; ++i) {
    for (uint32_t q = 0; q < 4; ++q) {
      Posted p;
      p.in = absl::StrCat("q", q, "-req", i, "-", std::string(i, 'x'));
      uint16_t head = PostEcho(*fe, q, p.in, {static_cast<uint32_t>(p.in.size())},
                               {static_cast<uint32_t>(p.in.size() + 1)},
                               i % 2 == 1, &p.gpas);
      posted[{q, head}] = p;
    }
  }
  for (uint32_t q = 0; q < 4; ++q) fe->Kick(q);
  for (uint32_t q = 0; q < 4; ++q) {
    for (int i = 0; i < kPerQueue; ++i) {
      auto used = fe->WaitUsed(q);
      ASSERT_TRUE(used.ok()) << used.status() << " q=" << q << " i=" << i;
      auto it = posted.find({q, static_cast<uint16_t>(used->id)});
      ASSERT_NE(it, posted.end());
      ASSERT_EQ(used->len, it->second.in.size() + 1);
      EXPECT_EQ(std::string(reinterpret_cast<char*>(fe->Host(it->second.gpas[0])),
                            used->len),
                Expected(q, it->second.in));
      posted.erase(it);
    }
  }
  EXPECT_TRUE(posted.empty());
  // Four queues with three workers each and 2 ms per request: requests did
  // overlap (a serial back end would never exceed 1).
  EXPECT_GT(stats_.max_concurrent.load(), 1);
  EXPECT_EQ(listener_->metrics().Snapshot().requests, 4u * kPerQueue);
}

TEST_F(BackendTest, ReplyAckReportsSuccessAndFailure) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  auto ok = fe->SendWithAck(RequestType::kSetVringEnable, Frontend::State(0, 1));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 0u);
  // Queue size 3 is not a power of two.
  ExpectAckFailure(*fe, RequestType::kSetVringNum, Frontend::State(3, 3));
  RoundTrip(*fe, 0, "after-refusal");
}

TEST_F(BackendTest, GetVringBaseStopsRingAndReturnsIndex) {
  StartListener(4, 2);
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  for (int i = 0; i < 5; ++i) RoundTrip(*fe, 1, absl::StrCat("req", i));
  auto base = fe->GetVringBase(1);
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_EQ(*base, 5u);
  // Stopped: a posted chain is not served...
  std::vector<uint64_t> gpas;
  uint16_t head = PostEcho(*fe, 1, "late", {4}, {16}, false, &gpas);
  fe->Kick(1);
  EXPECT_EQ(fe->PollUsed(1, absl::Milliseconds(200)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  // ...until the front end restarts it at that base with a new kick fd.
  ASSERT_EQ(*fe->SendWithAck(RequestType::kSetVringBase, Frontend::State(1, 5)), 0u);
  ASSERT_EQ(*fe->SendWithAck(RequestType::kSetVringKick, Frontend::U64(1),
                             {fe->kick_fd(1)}),
            0u);
  fe->Kick(1);
  auto used = fe->WaitUsed(1);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 5u);
  auto base2 = fe->GetVringBase(1);
  ASSERT_TRUE(base2.ok());
  EXPECT_EQ(*base2, 6u);
}

TEST_F(BackendTest, ReconnectGetsFreshSessionAndResetsDevice) {
  StartListener();
  {
    auto fe = ConnectAndNegotiate();
    ASSERT_NE(fe, nullptr);
    RoundTrip(*fe, 0, "first-session");
    EXPECT_EQ(stats_.resets.load(), 0);
    fe->Disconnect();
  }
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (stats_.resets.load() < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(stats_.resets.load(), 1);
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  RoundTrip(*fe, 0, "second-session");
  EXPECT_EQ(stats_.created.load(), 2);
  EXPECT_EQ(listener_->metrics().Snapshot().connections, 2u);
}

// QEMU's vhost-user-fs with `-chardev socket,reconnect=N` reconnects to a
// restarted back end but never repeats the handshake: the next messages are
// GET_VRING_BASE / SET_VRING_ENABLE(0) when the guest resets the device and
// then vhost_dev_start's SET_FEATURES onwards. The new process must adopt
// that session (before, SET_VRING_ENABLE was refused and the guest's share
// stayed dead even after a reboot).
TEST_F(BackendTest, AdoptsSessionResumedAfterBackEndRestart) {
  StartListener();
  uint64_t features = 0, protocol = 0;
  auto old_fe = ConnectAndNegotiate();
  ASSERT_NE(old_fe, nullptr);
  RoundTrip(*old_fe, 0, "before-restart");
  features = old_fe->acked_features();
  protocol = old_fe->acked_protocol_features();
  ASSERT_NE(protocol & Bit(kProtocolFReplyAck), 0u);
  // The back end "restarts": a new listener (new Connection state) on the
  // same path.
  listener_.reset();
  StartListener();
  auto fe = Connect();
  ASSERT_NE(fe, nullptr);
  auto base = fe->GetVringBase(0);  // device stop, first message
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_EQ(*base, 0u);
  auto off = fe->SendWithAck(RequestType::kSetVringEnable, Frontend::State(0, 0));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(*off, 0u);
  ASSERT_TRUE(fe->StartDevice(features, protocol).ok());
  RoundTrip(*fe, 0, "after-restart");
  RoundTrip(*fe, 1, "other-ring");
  EXPECT_EQ(listener_->metrics().Snapshot().adopted, 1u);
  EXPECT_EQ(listener_->metrics().Snapshot().bad_messages, 0u);
}

// A back end that "dies" (its keeper stops dropping entries, as after a
// crash) is followed by one that resumes the kept session on the kept
// socket: the front end sends nothing, its rings go on where they were,
// and a chain posted while no back end ran is served.
TEST_F(BackendTest, ResumesTheKeptSessionWithoutAHandshake) {
  MemoryKeeper& keeper = keeper_;
  StartListener(4, 0, absl::ZeroDuration(), &keeper);
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  RoundTrip(*fe, 0, "before");
  RoundTrip(*fe, 1, "before-1");
  EXPECT_TRUE(keeper.Has("conn"));
  EXPECT_TRUE(keeper.Has("session"));
  EXPECT_TRUE(keeper.Has("q/0/inflight"));
  keeper.Freeze();
  listener_.reset();  // the back end is gone; the keeper holds the socket
  std::vector<uint64_t> gpas;
  const uint16_t head = PostEcho(*fe, 0, "while-down", {10}, {3, 10}, false, &gpas);
  fe->Kick(0);
  keeper.Thaw();
  StartListener(4, 0, absl::ZeroDuration(), &keeper);
  auto used = fe->WaitUsed(0);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(used->id, head);
  ASSERT_EQ(used->len, 11u);
  EXPECT_EQ(Gather(*fe, gpas, {3, 10}, used->len), Expected(0, "while-down"));
  RoundTrip(*fe, 0, "after");
  RoundTrip(*fe, 1, "after-1");
  // Counted once Resume returns, which may be just after the rings run.
  Eventually([&] { return listener_->metrics().Snapshot().adopted != 0; });
  EXPECT_EQ(listener_->metrics().Snapshot().adopted, 1u);
  EXPECT_EQ(listener_->metrics().Snapshot().bad_messages, 0u);
  // Messages still work on the resumed session, and the vring base is
  // where the rings are.
  auto base = fe->GetVringBase(0);
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_EQ(*base, 3u);
  listener_.reset();  // before the keeper it borrows
}

// A back end that dies after handling a message but before answering it
// leaves the message on the socket (it is only peeked until answered): the
// next back end resumes the session and answers it, so the front end, which
// waits for that answer (QEMU blocks its main loop on it), goes on.
TEST_F(BackendTest, AMessageLeftUnansweredByADeadBackEndIsAnsweredByTheNext) {
  MemoryKeeper& keeper = keeper_;
  StartListener(4, 0, absl::ZeroDuration(), &keeper);
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  RoundTrip(*fe, 0, "before");
  keeper.Freeze();
  ASSERT_TRUE(SetFailpoints("vhost.message.before_reply=1*error").ok());
  absl::StatusOr<uint64_t> ack = absl::UnknownError("not sent");
  std::thread sender([&] {
    ack = fe->SendWithAck(RequestType::kSetVringEnable, Frontend::State(1, 1));
  });
  // The back end "dies" at the failpoint: its session ends unanswered.
  EXPECT_TRUE(Eventually([&] { return !listener_->Session().connected; }));
  listener_.reset();
  ASSERT_TRUE(SetFailpoints("").ok());
  keeper.Thaw();
  StartListener(4, 0, absl::ZeroDuration(), &keeper);
  sender.join();
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(*ack, 0u);
  RoundTrip(*fe, 0, "after");
  RoundTrip(*fe, 1, "ring-1-enabled");
  // Nothing else is pending on the socket: the next request's answer is
  // its own.
  auto features = fe->GetU64(RequestType::kGetFeatures);
  ASSERT_TRUE(features.ok()) << features.status();
  listener_.reset();  // before the keeper it borrows
}

// Kept state that does not fit together is refused: the kept connection is
// closed (the front end sees a disconnect, as without keeping) and the
// back end serves the next front end normally.
TEST_F(BackendTest, RefusesAKeptSessionThatDoesNotFit) {
  for (const std::string& bad :
       {std::string(), std::string("garbage"), std::string(64, '\xff')}) {
    MemoryKeeper keeper;
    StartListener(4, 0, absl::ZeroDuration(), &keeper);
    auto fe = ConnectAndNegotiate();
    ASSERT_NE(fe, nullptr);
    RoundTrip(*fe, 0, "before");
    keeper.Freeze();
    listener_.reset();
    keeper.Set("session", bad);
    keeper.Thaw();
    StartListener(4, 0, absl::ZeroDuration(), &keeper);
    EXPECT_TRUE(fe->WaitClosed()) << bad.size();
    EXPECT_FALSE(keeper.Has("conn"));
    auto fresh = ConnectAndNegotiate();
    ASSERT_NE(fresh, nullptr);
    RoundTrip(*fresh, 0, "fresh");
    listener_.reset();
  }
}

// A normal handshake is not an adoption.
TEST_F(BackendTest, HandshakeIsNotAdoption) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  RoundTrip(*fe, 0, "fresh");
  EXPECT_EQ(listener_->metrics().Snapshot().adopted, 0u);
}

TEST_F(BackendTest, ResetOwnerEndsSessionOnSameConnection) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  RoundTrip(*fe, 0, "before-reset");
  ASSERT_EQ(*fe->SendWithAck(RequestType::kResetOwner, ""), 0u);
  EXPECT_EQ(stats_.resets.load(), 1);
  EXPECT_EQ(stats_.created.load(), 2);
  // Rings are gone: re-negotiate on the same socket and serve again.
  ASSERT_TRUE(fe->Negotiate().ok());
  RoundTrip(*fe, 0, "after-reset");
}

TEST_F(BackendTest, GarbageOnOneSocketDoesNotDisturbAnother) {
  StartListener();
  DeviceStats other_stats;
  std::string other_path = path_ + ".b";
  auto other = Listener::Start(other_path, [&other_stats] {
    return std::make_unique<EchoDevice>(&other_stats, 2, 1, absl::ZeroDuration());
  });
  ASSERT_TRUE(other.ok()) << other.status();
  auto good = Frontend::Connect(other_path);
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE((*good)->Negotiate().ok());
  RoundTrip(**good, 0, "good-guest-1");

  auto bad = ConnectAndNegotiate();
  ASSERT_NE(bad, nullptr);
  ASSERT_TRUE(bad->SendBytes(std::string(64, '\xff'), {}).ok());
  EXPECT_TRUE(bad->WaitClosed());
  bad.reset();

  RoundTrip(**good, 1, "good-guest-2");
  EXPECT_EQ((*other)->metrics().Snapshot().bad_messages, 0u);
  EXPECT_EQ(listener_->metrics().Snapshot().bad_messages, 1u);
  // The garbage socket accepts again.
  auto again = ConnectAndNegotiate();
  ASSERT_NE(again, nullptr);
  RoundTrip(*again, 0, "bad-guest-back");
}

// ---- malformed messages ----

TEST_F(BackendTest, WrongPayloadSizeWithNeedReplyIsRefused) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  ExpectAckFailure(*fe, RequestType::kSetFeatures, "1234");   // 4, not 8
  ExpectAckFailure(*fe, RequestType::kSetVringNum, "123");    // 3, not 8
  ExpectAckFailure(*fe, RequestType::kSetVringAddr, "0123456789");
  ExpectAckFailure(*fe, RequestType::kSetOwner, "x");         // wants none
  RoundTrip(*fe, 0, "still-fine");
}

TEST_F(BackendTest, WrongPayloadSizeWithoutNeedReplyClosesConnection) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(fe->Send(RequestType::kSetVringBase, 0, "1234").ok());
  EXPECT_TRUE(fe->WaitClosed());
  // The session was torn down before the socket closed.
  EXPECT_EQ(stats_.resets.load(), 1);
  ExpectClosedThenServes(*fe);
}

// With a keeper: the bad message that ended the session is not left kept
// as pending, where a later session resumed after a crash would take it as
// its own; nor is anything else of the session.
TEST_F(BackendTest, SessionClosedForABadMessageLeavesNothingKept) {
  StartListener(4, 0, absl::ZeroDuration(), &keeper_);
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  EXPECT_TRUE(keeper_.Has("conn"));
  ASSERT_TRUE(fe->Send(RequestType::kSetVringBase, 0, "1234").ok());
  EXPECT_TRUE(fe->WaitClosed());
  EXPECT_TRUE(Eventually([&] { return !keeper_.Has("conn"); }));
  EXPECT_FALSE(keeper_.Has("pending"));
  EXPECT_FALSE(keeper_.Has("session"));
  listener_.reset();
}

TEST_F(BackendTest, MissingAndExtraFdsAreRefused) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  // KICK without the no-fd bit but no fd.
  ExpectAckFailure(*fe, RequestType::kSetVringKick, Frontend::U64(0));
  // CALL with the no-fd bit and an fd anyway.
  ExpectAckFailure(*fe, RequestType::kSetVringCall,
                   Frontend::U64(0 | kVringNoFdMask), {fe->call_fd(0)});
  // SET_FEATURES never carries an fd.
  ExpectAckFailure(*fe, RequestType::kSetFeatures,
                   Frontend::U64(fe->acked_features()), {fe->call_fd(0)});
  // A memory table with two regions and one fd.
  ExpectAckFailure(*fe, RequestType::kSetMemTable, fe->MemTable(),
                   {fe->MemFds()[0]});
  RoundTrip(*fe, 0, "fds-checked");
}

TEST_F(BackendTest, TooManyFdsClosesConnection) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  std::vector<int> fds(kMaxFds + 1, fe->call_fd(0));
  ASSERT_TRUE(fe->Send(RequestType::kSetVringCall, kFlagNeedReply,
                       Frontend::U64(0), fds)
                  .ok());
  ExpectClosedThenServes(*fe);
}

TEST_F(BackendTest, UnknownRequest) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  ExpectAckFailure(*fe, static_cast<RequestType>(99), "");
  ExpectAckFailure(*fe, RequestType::kSetLogBase, std::string(16, '\0'));
  ExpectAckFailure(*fe, RequestType::kSetLogFd, "", {fe->call_fd(0)});
  ExpectAckFailure(*fe, RequestType::kAddMemReg, std::string(40, '\0'),
                   {fe->MemFds()[0]});
  ExpectAckFailure(*fe, RequestType::kSetConfig, std::string(12, '\0'));
  ASSERT_TRUE(fe->Send(static_cast<RequestType>(1000), 0, "").ok());
  ExpectClosedThenServes(*fe);
}

TEST_F(BackendTest, BadMemoryTables) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  // Nine regions (the limit is eight).
  {
    uint32_t hdr[2] = {9, 0};
    std::string p(reinterpret_cast<char*>(hdr), 8);
    p += std::string(9 * sizeof(MemoryRegion), '\0');
    ExpectAckFailure(*fe, RequestType::kSetMemTable, p,
                     std::vector<int>(8, fe->MemFds()[0]));
  }
  auto table_with = [&](const MemoryRegion& r) {
    uint32_t hdr[2] = {1, 0};
    std::string p(reinterpret_cast<char*>(hdr), 8);
    p.append(reinterpret_cast<const char*>(&r), sizeof(r));
    return p;
  };
  // Region bigger than the file behind it.
  ExpectAckFailure(*fe, RequestType::kSetMemTable,
                   table_with({testing::kGuestBase, 1ull << 40, 0x7000000000,
                               0}),
                   {fe->MemFds()[0]});
  // Address + size overflows.
  ExpectAckFailure(*fe, RequestType::kSetMemTable,
                   table_with({~0ull - 10, 4096, 0, 0}), {fe->MemFds()[0]});
  // A region of size zero.
  ExpectAckFailure(*fe, RequestType::kSetMemTable,
                   table_with({testing::kGuestBase, 0, 0, 0}),
                   {fe->MemFds()[0]});
  // The refused tables left the old one serving.
  RoundTrip(*fe, 0, "old-table-still-mapped");
}

TEST_F(BackendTest, BadRingParametersAreRefused) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  ExpectAckFailure(*fe, RequestType::kSetVringNum, Frontend::State(4, 64));
  ExpectAckFailure(*fe, RequestType::kSetVringNum, Frontend::State(0, 65536));
  ExpectAckFailure(*fe, RequestType::kSetVringBase, Frontend::State(0, 70000));
  ExpectAckFailure(*fe, RequestType::kSetVringKick, Frontend::U64(7),
                   {fe->kick_fd(0)});
  ExpectAckFailure(*fe, RequestType::kSetVringEnable, Frontend::State(0, 2));
  // Unoffered feature (VHOST_F_LOG_ALL, for migration).
  ExpectAckFailure(*fe, RequestType::kSetFeatures,
                   Frontend::U64(fe->acked_features() | Bit(kVhostFLogAll)));
  ExpectAckFailure(*fe, RequestType::kSetProtocolFeatures,
                   Frontend::U64(Bit(kProtocolFConfigureMemSlots)));
  // Ring addresses outside guest memory: refused when the ring would start.
  ASSERT_EQ(*fe->SendWithAck(RequestType::kSetVringNum, Frontend::State(3, 64)), 0u);
  VringAddr a{};
  a.index = 3;
  a.desc_user_addr = 0x10;
  a.avail_user_addr = 0x2000;
  a.used_user_addr = 0x4000;
  ExpectAckFailure(*fe, RequestType::kSetVringAddr,
                   std::string(reinterpret_cast<char*>(&a), sizeof(a)));
  RoundTrip(*fe, 0, "rings-checked");
}

TEST_F(BackendTest, FramingErrorsCloseConnection) {
  StartListener();
  {
    auto fe = ConnectAndNegotiate();
    ASSERT_NE(fe, nullptr);
    Header h{static_cast<uint32_t>(RequestType::kSetFeatures), kVersion,
             1u << 20};  // huge size
    ASSERT_TRUE(fe->SendBytes(std::string(reinterpret_cast<char*>(&h), sizeof(h)), {}).ok());
    ExpectClosedThenServes(*fe);
  }
  {
    auto fe = ConnectAndNegotiate();
    ASSERT_NE(fe, nullptr);
    Header h{static_cast<uint32_t>(RequestType::kGetFeatures), 0x2, 0};  // version 2
    ASSERT_TRUE(fe->SendBytes(std::string(reinterpret_cast<char*>(&h), sizeof(h)), {}).ok());
    ExpectClosedThenServes(*fe);
  }
  {
    // Header promises 8 bytes, 4 arrive, then the front end dies.
    auto fe = ConnectAndNegotiate();
    ASSERT_NE(fe, nullptr);
    Header h{static_cast<uint32_t>(RequestType::kSetFeatures), kVersion, 8};
    ASSERT_TRUE(fe->SendBytes(std::string(reinterpret_cast<char*>(&h), sizeof(h)) + "abcd", {}).ok());
    fe->Disconnect();
    auto fresh = ConnectAndNegotiate();
    ASSERT_NE(fresh, nullptr);
    RoundTrip(*fresh, 0, "after-truncation");
  }
  EXPECT_EQ(listener_->metrics().Snapshot().bad_messages, 3u);
}

TEST_F(BackendTest, GetConfig) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  ConfigHeader h{9, 6, 0};
  std::string p(reinterpret_cast<char*>(&h), sizeof(h));
  p += std::string(6, '\0');
  ASSERT_TRUE(fe->Send(RequestType::kGetConfig, 0, p).ok());
  auto r = fe->ReadReply();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->payload.size(), sizeof(h) + 6);
  EXPECT_EQ(r->payload.substr(sizeof(h)), "config");
  // Out of range: a zero-size reply, and the connection goes on.
  ConfigHeader bad{10, 100, 0};
  std::string q(reinterpret_cast<char*>(&bad), sizeof(bad));
  q += std::string(100, '\0');
  ASSERT_TRUE(fe->Send(RequestType::kGetConfig, 0, q).ok());
  auto r2 = fe->ReadReply();
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->header.size, 0u);
  RoundTrip(*fe, 0, "config-read");
}

// ---- bad descriptor chains ----

TEST_F(BackendTest, BadChainsReturnZeroLengthAndRingGoesOn) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  const uint32_t q = 0;
  uint64_t buf = fe->Alloc(64, 16);
  auto desc = [&](uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                  uint16_t next) { *fe->Desc(q, i) = {addr, len, flags, next}; };

  {  // Address outside guest memory.
    uint16_t d = fe->TakeDesc(q);
    desc(d, fe->guest_end() + 4096, 16, 0, 0);
    ExpectBadChain(*fe, q, d);
  }
  {  // Buffer running off the end of memory.
    uint16_t d = fe->TakeDesc(q);
    desc(d, fe->guest_end() - 8, 16, kDescFWrite, 0);
    ExpectBadChain(*fe, q, d);
  }
  {  // Address + length wraps around 2^64.
    uint16_t d = fe->TakeDesc(q);
    desc(d, ~0ull - 4, 0xffffffff, 0, 0);
    ExpectBadChain(*fe, q, d);
  }
  {  // A loop: a -> b -> a.
    uint16_t a = fe->TakeDesc(q), b = fe->TakeDesc(q);
    desc(a, buf, 8, kDescFNext, b);
    desc(b, buf, 8, kDescFNext, a);
    ExpectBadChain(*fe, q, a);
  }
  {  // next index beyond the queue size.
    uint16_t a = fe->TakeDesc(q);
    desc(a, buf, 8, kDescFNext, 200);
    ExpectBadChain(*fe, q, a);
  }
  {  // Readable after writable.
    uint16_t a = fe->TakeDesc(q), b = fe->TakeDesc(q);
    desc(a, buf, 8, kDescFWrite | kDescFNext, b);
    desc(b, buf, 8, 0, 0);
    ExpectBadChain(*fe, q, a);
  }
  {  // Indirect inside indirect.
    uint64_t inner = fe->Alloc(16, 16);
    uint64_t outer = fe->Alloc(16, 16);
    *reinterpret_cast<VirtqDesc*>(fe->Host(inner)) = {buf, 8, 0, 0};
    *reinterpret_cast<VirtqDesc*>(fe->Host(outer)) = {inner, 16, kDescFIndirect, 0};
    uint16_t a = fe->TakeDesc(q);
    desc(a, outer, 16, kDescFIndirect, 0);
    ExpectBadChain(*fe, q, a);
  }
  {  // Indirect with NEXT.
    uint64_t table = fe->Alloc(16, 16);
    *reinterpret_cast<VirtqDesc*>(fe->Host(table)) = {buf, 8, 0, 0};
    uint16_t a = fe->TakeDesc(q), b = fe->TakeDesc(q);
    desc(a, table, 16, kDescFIndirect | kDescFNext, b);
    desc(b, buf, 8, kDescFWrite, 0);
    ExpectBadChain(*fe, q, a);
  }
  {  // Indirect table length not a multiple of 16, and one outside memory.
    uint16_t a = fe->TakeDesc(q);
    desc(a, buf, 24, kDescFIndirect, 0);
    ExpectBadChain(*fe, q, a);
    uint16_t b = fe->TakeDesc(q);
    desc(b, fe->guest_end(), 32, kDescFIndirect, 0);
    ExpectBadChain(*fe, q, b);
  }
  {  // A loop inside an indirect table.
    uint64_t table = fe->Alloc(32, 16);
    auto* t = reinterpret_cast<VirtqDesc*>(fe->Host(table));
    t[0] = {buf, 8, kDescFNext, 1};
    t[1] = {buf, 8, kDescFNext, 0};
    uint16_t a = fe->TakeDesc(q);
    desc(a, table, 32, kDescFIndirect, 0);
    ExpectBadChain(*fe, q, a);
  }
  EXPECT_EQ(listener_->metrics().Snapshot().bad_chains, 11u);
}

TEST_F(BackendTest, HeadOutOfRangeIsSkipped) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  fe->Publish(0, 1000);  // no such descriptor: nothing can be returned
  fe->Kick(0);
  RoundTrip(*fe, 0, "after-skip");
  EXPECT_EQ(listener_->metrics().Snapshot().bad_chains, 1u);
}

TEST_F(BackendTest, IndirectWithoutNegotiationIsBadChain) {
  StartListener();
  FrontendOptions opts;
  opts.feature_mask = ~Bit(kVirtioRingFIndirectDesc);
  auto fe = ConnectAndNegotiate(opts);
  ASSERT_NE(fe, nullptr);
  uint64_t buf = fe->Alloc(16, 16);
  uint64_t table = fe->Alloc(16, 16);
  *reinterpret_cast<VirtqDesc*>(fe->Host(table)) = {buf, 8, 0, 0};
  uint16_t a = fe->TakeDesc(0);
  *fe->Desc(0, a) = {table, 16, kDescFIndirect, 0};
  ExpectBadChain(*fe, 0, a);
}

TEST_F(BackendTest, AvailIndexJumpBreaksOnlyThatRing) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  // Claim 1000 new buffers on a 64-entry ring.
  for (int i = 0; i < 1000; ++i) fe->Publish(1, 0);
  fe->Kick(1);
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (listener_->metrics().Snapshot().bad_chains < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(listener_->metrics().Snapshot().bad_chains, 1u);
  EXPECT_EQ(fe->UsedIdx(1), 0);
  RoundTrip(*fe, 0, "other-ring-fine");
}

// ---- interrupt suppression ----

TEST_F(BackendTest, NoInterruptFlagSuppressesCalls) {
  StartListener();
  FrontendOptions opts;
  opts.feature_mask = ~Bit(kVirtioRingFEventIdx);
  auto fe = ConnectAndNegotiate(opts);
  ASSERT_NE(fe, nullptr);
  fe->SetAvailFlags(0, kAvailFNoInterrupt);
  std::vector<uint64_t> gpas;
  uint16_t head = PostEcho(*fe, 0, "quiet", {5}, {8}, false, &gpas);
  fe->Kick(0);
  auto used = fe->PollUsed(0, absl::Seconds(5));
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(used->id, head);
  EXPECT_FALSE(fe->CallFired(0, absl::Milliseconds(100)));
  fe->SetAvailFlags(0, 0);
  RoundTrip(*fe, 0, "loud");  // waits on the call fd
}

TEST_F(BackendTest, EventIdxSignalsOnlyAtUsedEvent) {
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(fe->acked_features() & Bit(kVirtioRingFEventIdx));
  // Ask to be notified only when used idx passes 2: the first two
  // completions (indexes 0 and 1) stay silent, the third signals.
  fe->SetUsedEvent(0, 2);
  for (int i = 0; i < 2; ++i) {
    std::vector<uint64_t> gpas;
    PostEcho(*fe, 0, "x", {1}, {4}, false, &gpas);
    fe->Kick(0);
    ASSERT_TRUE(fe->PollUsed(0, absl::Seconds(5)).ok());
    fe->SetUsedEvent(0, 2);
  }
  EXPECT_FALSE(fe->CallFired(0, absl::Milliseconds(100)));
  std::vector<uint64_t> gpas;
  PostEcho(*fe, 0, "y", {1}, {4}, false, &gpas);
  fe->Kick(0);
  EXPECT_TRUE(fe->CallFired(0, absl::Seconds(5)));
  ASSERT_TRUE(fe->PollUsed(0, absl::Seconds(1)).ok());
}

// ---- listener lifecycle ----

TEST_F(BackendTest, StopEndsSessionAndRemovesSocket) {
  StartListener(4, 2);
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  RoundTrip(*fe, 0, "before-stop");
  listener_->Stop();
  EXPECT_EQ(stats_.resets.load(), 1);
  EXPECT_NE(::access(path_.c_str(), F_OK), 0);
  EXPECT_TRUE(fe->WaitClosed());
}

TEST_F(BackendTest, StopIsPromptWhileFrontEndStallsMidMessage) {
  StartListener(4, 2);
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  // Half a header, then nothing.
  ASSERT_TRUE(fe->SendBytes("\x02\x00\x00\x00\x01\x00", {}).ok());
  absl::SleepFor(absl::Milliseconds(20));
  absl::Time start = absl::Now();
  listener_->Stop();
  // Without the stop-aware read, Stop would block for good; 5 s is slack
  // for a loaded machine.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(stats_.resets.load(), 1);
}

TEST_F(BackendTest, FactoryWithoutDeviceClosesEachConnection) {
  auto l = Listener::Start(path_, [] { return std::unique_ptr<Device>(); });
  ASSERT_TRUE(l.ok()) << l.status();
  listener_ = std::move(*l);
  for (int i = 0; i < 2; ++i) {
    auto fe = Connect();
    ASSERT_NE(fe, nullptr);
    EXPECT_TRUE(fe->WaitClosed());
  }
  EXPECT_EQ(listener_->metrics().Snapshot().connections, 2u);
}

TEST_F(BackendTest, StaleSocketIsReplacedLiveOneAndFilesAreNot) {
  {  // A socket file whose owner is gone.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
  }
  StartListener();
  auto fe = ConnectAndNegotiate();
  ASSERT_NE(fe, nullptr);
  RoundTrip(*fe, 0, "replaced");
  // Our own live socket: refused.
  auto second = Listener::Start(path_, [] { return nullptr; });
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  // A regular file: refused.
  std::string file = path_ + ".file";
  std::ofstream(file) << "x";
  auto third = Listener::Start(file, [] { return nullptr; });
  EXPECT_EQ(third.status().code(), absl::StatusCode::kFailedPrecondition);
  ::unlink(file.c_str());
  auto long_path = Listener::Start(std::string(200, 'a'), [] { return nullptr; });
  EXPECT_EQ(long_path.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coherefs::agent::vhost_user
