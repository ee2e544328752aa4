// The real coherefs-coordinator binary over loopback gRPC: fan-out to many
// subscribers, resume, resync after compaction, a stalled subscriber, every
// bad input with its exact code, restart into a new epoch, health, metrics.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/coordinator_client.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/coordinator/coordinator_process.h"

namespace coherefs::testing {
namespace {

using client::CoordinatorClient;
using client::CoordinatorClientOptions;
using client::SubscribeStream;

constexpr int kEpochShift = 40;

class IntegrationTest : public ::testing::Test {
 protected:
  void StartCoordinator(std::vector<std::string> args = {}) {
    process_ = std::make_unique<CoordinatorProcess>(dir_.path() + "/db",
                                                    std::move(args));
    absl::Status started = process_->Start();
    ASSERT_TRUE(started.ok()) << started;
    client_ = NewClient();
    ASSERT_TRUE(client_->WaitForConnected(absl::Seconds(10)).ok());
  }

  std::unique_ptr<CoordinatorClient> NewClient(bool private_connection = false) {
    CoordinatorClientOptions options;
    options.private_connection = private_connection;
    return CoordinatorClient::Create(process_->target(), options);
  }

  void TearDown() override {
    if (HasFailure() && process_ != nullptr) {
      std::string log = process_->Log();
      if (log.size() > 20000) log = log.substr(log.size() - 20000);
      ADD_FAILURE() << "coordinator log (tail):\n" << log;
    }
  }

  TempDir dir_;
  std::unique_ptr<CoordinatorProcess> process_;
  std::unique_ptr<CoordinatorClient> client_;
};

// Reads a stream until `count` invalidations arrived (or 20 s passed),
// skipping progress marks. Returns them in arrival order.
std::vector<v1::Invalidation> ReadInvalidations(SubscribeStream* stream,
                                                size_t count) {
  std::vector<v1::Invalidation> got;
  v1::SubscribeResponse msg;
  while (got.size() < count && stream->Read(&msg)) {
    if (msg.has_invalidations()) {
      for (const auto& inv : msg.invalidations().invalidations()) {
        got.push_back(inv);
      }
    }
  }
  return got;
}

std::vector<std::string> Keys(int n, const std::string& prefix = "file-") {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back(absl::StrCat(prefix, i));
  return keys;
}

TEST_F(IntegrationTest, SubscribersReceiveEveryBumpInOrderExactlyOnce) {
  StartCoordinator();
  ASSERT_TRUE(client_->CreateVolume("shared", 1000).ok());
  ASSERT_TRUE(client_->Resolve("shared", Keys(50)).ok());

  constexpr int kSubscribers = 4, kBumpers = 4, kBumpsEach = 100;
  constexpr size_t kTotal = kBumpers * kBumpsEach;
  std::vector<std::unique_ptr<CoordinatorClient>> sub_clients;
  std::vector<std::unique_ptr<SubscribeStream>> streams;
  for (int i = 0; i < kSubscribers; ++i) {
    sub_clients.push_back(NewClient(true));
    streams.push_back(sub_clients.back()->Subscribe("shared", 0));
    v1::SubscribeResponse hello;
    ASSERT_TRUE(streams.back()->Read(&hello));
    ASSERT_TRUE(hello.has_progress());
    EXPECT_EQ(hello.progress().committed_seq(), 0u);
  }
  std::vector<std::vector<v1::Invalidation>> received(kSubscribers);
  std::vector<std::thread> readers;
  for (int i = 0; i < kSubscribers; ++i) {
    readers.emplace_back([&, i] {
      received[i] = ReadInvalidations(streams[i].get(), kTotal);
    });
  }

  // seq -> (slot, version) as acknowledged to the bumpers.
  absl::Mutex mu;
  std::map<uint64_t, std::pair<uint32_t, uint64_t>> acked;
  std::vector<std::thread> bumpers;
  std::atomic<int> failures{0};
  for (int b = 0; b < kBumpers; ++b) {
    bumpers.emplace_back([&, b] {
      std::mt19937 rng(b);
      for (int i = 0; i < kBumpsEach; ++i) {
        uint32_t slot = rng() % 50;
        auto r = client_->Bump("shared", {slot});
        if (!r.ok()) {
          failures++;
          continue;
        }
        absl::MutexLock lock(&mu);
        acked[r->seqs(0)] = {slot, r->versions(0)};
      }
    });
  }
  for (auto& t : bumpers) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (auto& t : readers) t.join();

  ASSERT_EQ(acked.size(), kTotal);
  EXPECT_EQ(acked.begin()->first, 1u);
  EXPECT_EQ(acked.rbegin()->first, kTotal);
  for (int i = 0; i < kSubscribers; ++i) {
    ASSERT_EQ(received[i].size(), kTotal) << "subscriber " << i;
    for (size_t j = 0; j < kTotal; ++j) {
      const auto& inv = received[i][j];
      ASSERT_EQ(inv.seq(), j + 1) << "subscriber " << i;
      EXPECT_EQ(inv.slot(), acked[j + 1].first);
      EXPECT_EQ(inv.version(), acked[j + 1].second);
    }
  }
  for (auto& s : streams) s->Cancel();
}

TEST_F(IntegrationTest, ResumeFromSequence) {
  StartCoordinator();
  ASSERT_TRUE(client_->CreateVolume("v", 10).ok());
  ASSERT_TRUE(client_->Resolve("v", Keys(3)).ok());
  std::vector<uint64_t> versions;
  for (int i = 0; i < 10; ++i) {
    auto r = client_->Bump("v", {uint32_t(i % 3)});
    ASSERT_TRUE(r.ok()) << r.status();
    versions.push_back(r->versions(0));
  }
  auto stream = client_->Subscribe("v", 6);
  v1::SubscribeResponse hello;
  ASSERT_TRUE(stream->Read(&hello));
  EXPECT_EQ(hello.progress().committed_seq(), 5u);
  auto got = ReadInvalidations(stream.get(), 5);
  ASSERT_EQ(got.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].seq(), uint64_t(6 + i));
    EXPECT_EQ(got[i].version(), versions[5 + i]);
  }
  // Then live.
  ASSERT_TRUE(client_->Bump("v", {0}).ok());
  got = ReadInvalidations(stream.get(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq(), 11u);
  stream->Cancel();
}

TEST_F(IntegrationTest, ResyncRequiredAfterCompaction) {
  StartCoordinator({"--log-retention=10", "--compaction-interval=20ms"});
  ASSERT_TRUE(client_->CreateVolume("v", 10).ok());
  ASSERT_TRUE(client_->Resolve("v", Keys(5)).ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(client_->Bump("v", {uint32_t(i % 5)}).ok());
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (client_->DescribeVolume("v")->first_retained_seq() != 41 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(client_->DescribeVolume("v")->first_retained_seq(), 41u);

  auto stream = client_->Subscribe("v", 1);
  v1::SubscribeResponse msg;
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_progress());
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_resync_required()) << msg.DebugString();
  EXPECT_EQ(msg.resync_required().needed_seq(), 1u);
  EXPECT_EQ(msg.resync_required().first_retained_seq(), 41u);
  EXPECT_EQ(msg.resync_required().committed_seq(), 50u);
  EXPECT_FALSE(stream->Read(&msg));
  EXPECT_TRUE(stream->Finish().ok());

  // The documented recovery: snapshot, then subscribe from its seq + 1.
  uint64_t resume = 0;
  auto table = client_->FullSnapshot("v", &resume);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 5u);
  EXPECT_EQ(resume, 51u);
  auto again = client_->Subscribe("v", resume);
  ASSERT_TRUE(again->Read(&msg));
  ASSERT_TRUE(msg.has_progress());
  auto bumped = client_->Bump("v", {2});
  ASSERT_TRUE(bumped.ok());
  auto got = ReadInvalidations(again.get(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq(), 51u);
  EXPECT_GT(got[0].version(), (*table)[2]);
  again->Cancel();
}

TEST_F(IntegrationTest, StalledSubscriberDoesNotSlowOthers) {
  StartCoordinator({"--subscriber-queue-limit=256"});
  ASSERT_TRUE(client_->CreateVolume("v", 100).ok());
  ASSERT_TRUE(client_->Resolve("v", Keys(100)).ok());

  auto stalled_client = NewClient(true);
  auto stalled = stalled_client->Subscribe("v", 0);
  v1::SubscribeResponse msg;
  ASSERT_TRUE(stalled->Read(&msg));  // then it stops reading

  auto fast_client = NewClient(true);
  auto fast = fast_client->Subscribe("v", 0);
  ASSERT_TRUE(fast->Read(&msg));

  // 20 x 1000 bumps (~400 KB of invalidations): far more than the stalled
  // stream's flow-control window plus its 256-entry queue.
  constexpr int kCalls = 20, kPerCall = 1000;
  constexpr size_t kTotal = kCalls * kPerCall;
  std::vector<v1::Invalidation> fast_got;
  std::thread reader([&] { fast_got = ReadInvalidations(fast.get(), kTotal); });
  std::vector<uint32_t> slots;
  for (int i = 0; i < kPerCall; ++i) slots.push_back(i % 100);
  const absl::Time start = absl::Now();
  for (int c = 0; c < kCalls; ++c) {
    auto r = client_->Bump("v", slots);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  reader.join();
  const absl::Duration elapsed = absl::Now() - start;
  ASSERT_EQ(fast_got.size(), kTotal);
  for (size_t i = 0; i < kTotal; ++i) ASSERT_EQ(fast_got[i].seq(), i + 1);
  // A fan-out blocked on the stalled stream would never get here (the fast
  // reader would hang); the bound is generous for 2 loaded cores.
  EXPECT_LT(elapsed, absl::Seconds(60));

  // The stalled one, once it reads again, still gets every change exactly
  // once and in order (from the stored log).
  auto slow_got = ReadInvalidations(stalled.get(), kTotal);
  ASSERT_EQ(slow_got.size(), kTotal);
  for (size_t i = 0; i < kTotal; ++i) ASSERT_EQ(slow_got[i].seq(), i + 1);
  fast->Cancel();
  stalled->Cancel();
}

TEST_F(IntegrationTest, BadInputGetsExactCodesAndNoCrash) {
  StartCoordinator();
  ASSERT_TRUE(client_->CreateVolume("v", 3).ok());
  ASSERT_TRUE(client_->Resolve("v", Keys(2)).ok());
  using C = absl::StatusCode;

  // Unknown volume.
  EXPECT_EQ(client_->Resolve("nope", {"k"}).status().code(), C::kNotFound);
  EXPECT_EQ(client_->Bump("nope", {0}).status().code(), C::kNotFound);
  EXPECT_EQ(client_->DescribeVolume("nope").status().code(), C::kNotFound);
  EXPECT_EQ(client_->Snapshot("nope", 0).status().code(), C::kNotFound);
  // Bad volume names and duplicate volumes.
  EXPECT_EQ(client_->CreateVolume("../etc").status().code(),
            C::kInvalidArgument);
  EXPECT_EQ(client_->CreateVolume("").status().code(), C::kInvalidArgument);
  EXPECT_EQ(client_->CreateVolume("v").status().code(), C::kAlreadyExists);
  EXPECT_EQ(client_->CreateVolume("huge", (1u << 24) + 1).status().code(),
            C::kInvalidArgument);
  // Bad slots.
  EXPECT_EQ(client_->Bump("v", {2}).status().code(), C::kOutOfRange);
  EXPECT_EQ(client_->Bump("v", {0xffffffffu}).status().code(),
            C::kOutOfRange);
  EXPECT_EQ(client_->Bump("v", {}).status().code(), C::kInvalidArgument);
  // Oversized batches.
  EXPECT_EQ(client_->Bump("v", std::vector<uint32_t>(4097, 0)).status().code(),
            C::kInvalidArgument);
  EXPECT_EQ(client_->Resolve("v", std::vector<std::string>(4097, "k"))
                .status()
                .code(),
            C::kInvalidArgument);
  // Malformed keys.
  EXPECT_EQ(client_->Resolve("v", {""}).status().code(), C::kInvalidArgument);
  EXPECT_EQ(client_->Resolve("v", {std::string(137, 'x')}).status().code(),
            C::kInvalidArgument);
  // Table full (capacity 3, 2 used, 2 new).
  EXPECT_EQ(client_->Resolve("v", {"n1", "n2"}).status().code(),
            C::kResourceExhausted);
  // Agents.
  EXPECT_EQ(client_->RegisterAgent("").status().code(), C::kInvalidArgument);
  ASSERT_TRUE(client_->RegisterAgent("host-a").ok());
  EXPECT_EQ(client_->RegisterAgent("host-a").status().code(),
            C::kAlreadyExists);
  EXPECT_EQ(client_->KeepAlive("ghost").status().code(), C::kNotFound);
  ASSERT_TRUE(client_->RegisterAgent("brief", absl::Milliseconds(100)).ok());
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_EQ(client_->KeepAlive("brief").status().code(),
            C::kFailedPrecondition);
  // Subscriptions.
  ASSERT_TRUE(client_->Bump("v", {0, 1}).ok());  // committed_seq 2
  v1::SubscribeResponse msg;
  auto future = client_->Subscribe("v", 4);
  EXPECT_FALSE(future->Read(&msg));
  EXPECT_EQ(future->Finish().code(), C::kOutOfRange);
  auto unknown_agent = client_->Subscribe("v", 0, "ghost");
  EXPECT_FALSE(unknown_agent->Read(&msg));
  EXPECT_EQ(unknown_agent->Finish().code(), C::kNotFound);
  auto unknown_volume = client_->Subscribe("nope", 0);
  EXPECT_FALSE(unknown_volume->Read(&msg));
  EXPECT_EQ(unknown_volume->Finish().code(), C::kNotFound);
  // Snapshot past the table.
  EXPECT_EQ(client_->Snapshot("v", 3).status().code(), C::kOutOfRange);
  // Strict mode: the bump needs the caller's id; acks are checked.
  EXPECT_EQ(client_->Bump("v", {0}, "", true).status().code(),
            C::kInvalidArgument);
  v1::AckInvalidationsRequest ack;
  ack.set_agent_id("ghost");
  ack.set_volume("v");
  ack.set_seq(1);
  EXPECT_EQ(client_->AckInvalidations(ack).code(), C::kNotFound);
  ack.set_agent_id("host-a");
  ack.set_seq(99);
  EXPECT_EQ(client_->AckInvalidations(ack).code(), C::kOutOfRange);
  ack.set_seq(2);
  ack.add_leases()->set_slot(7);
  EXPECT_EQ(client_->AckInvalidations(ack).code(), C::kOutOfRange);

  // Still serving, and the table is intact.
  auto described = client_->DescribeVolume("v");
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->slots_used(), 2u);
  EXPECT_EQ(described->committed_seq(), 2u);
}

TEST_F(IntegrationTest, ExpiredAgentSubscriptionEnds) {
  StartCoordinator();
  ASSERT_TRUE(client_->CreateVolume("v", 3).ok());
  ASSERT_TRUE(client_->RegisterAgent("host-b", absl::Milliseconds(200)).ok());
  auto stream = client_->Subscribe("v", 0, "host-b");
  v1::SubscribeResponse msg;
  ASSERT_TRUE(stream->Read(&msg));
  while (stream->Read(&msg)) {
  }
  EXPECT_EQ(stream->Finish().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(process_->Log(),
              ::testing::HasSubstr("msg=\"agent lease expired\" agent=host-b"));
}

TEST_F(IntegrationTest, RestartStartsNewEpochAndVersionsKeepGrowing) {
  StartCoordinator();
  ASSERT_TRUE(client_->CreateVolume("v", 10).ok());
  ASSERT_TRUE(client_->Resolve("v", Keys(2)).ok());
  auto agent = client_->RegisterAgent("host-a");
  ASSERT_TRUE(agent.ok());
  const uint64_t epoch = agent->epoch();
  uint64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    auto r = client_->Bump("v", {1});
    ASSERT_TRUE(r.ok());
    last = r->versions(0);
  }
  int status = process_->Stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);

  StartCoordinator();
  auto again = client_->RegisterAgent("host-a");  // the old lease is gone
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->epoch(), epoch + 1);
  auto resolved = client_->Resolve("v", {"file-1"});
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->slots(0).slot(), 1u);
  EXPECT_EQ(resolved->slots(0).version(), last);
  EXPECT_EQ(resolved->committed_seq(), 5u);

  // A subscriber resuming across the restart learns the new epoch first,
  // then gets the new change with the next sequence number.
  auto stream = client_->Subscribe("v", 6);
  v1::SubscribeResponse msg;
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_progress());
  EXPECT_EQ(msg.progress().epoch(), epoch + 1);
  auto bumped = client_->Bump("v", {1});
  ASSERT_TRUE(bumped.ok());
  EXPECT_GT(bumped->versions(0), last);
  EXPECT_EQ(bumped->versions(0) >> kEpochShift, epoch + 1);
  auto got = ReadInvalidations(stream.get(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq(), 6u);
  stream->Cancel();
}

TEST_F(IntegrationTest, StrictBumpWaitsForOtherAgentsLeaseReport) {
  StartCoordinator();
  ASSERT_TRUE(client_->CreateVolume("v", 10).ok());
  ASSERT_TRUE(client_->Resolve("v", Keys(2)).ok());
  ASSERT_TRUE(client_->RegisterAgent("writer", absl::Seconds(10), 1000).ok());
  ASSERT_TRUE(client_->RegisterAgent("reader", absl::Seconds(10), 5000).ok());
  auto reader_client = NewClient(true);
  auto stream = reader_client->Subscribe("v", 0, "reader");
  v1::SubscribeResponse msg;
  ASSERT_TRUE(stream->Read(&msg));

  // The reader acks every invalidation, reporting a 400 ms guest lease.
  std::thread reader([&] {
    auto got = ReadInvalidations(stream.get(), 1);
    if (got.size() != 1) return;
    v1::AckInvalidationsRequest ack;
    ack.set_agent_id("reader");
    ack.set_volume("v");
    ack.set_seq(got[0].seq());
    auto* lease = ack.add_leases();
    lease->set_slot(got[0].slot());
    lease->set_remaining_ms(400);
    absl::Status acked = reader_client->AckInvalidations(ack);
    EXPECT_TRUE(acked.ok()) << acked;
  });
  auto r = client_->Bump("v", {1}, "writer", true);
  reader.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->lease_wait_ms(), 200u);
  EXPECT_LE(r->lease_wait_ms(), 400u);
  stream->Cancel();
}

// Runs the binary with `arg` and returns its exit status (-1 if abnormal).
int ExitCodeWith(const std::string& arg, const std::string& data_dir) {
  std::string binary = RunfilePath("server/coherefs-coordinator");
  std::string dir_flag = "--data-dir=" + data_dir;
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(binary.c_str(), binary.c_str(), "--listen=127.0.0.1:0",
          "--metrics-listen=", dir_flag.c_str(), arg.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(IntegrationTest, BadFlagsExitWithStatusTwo) {
  const std::string data = dir_.path() + "/flags-db";
  for (const char* arg :
       {"--no-such-flag=1", "--lease-ttl=soon", "--lease-ttl=1ms",
        "--log-level=loud", "--volumes=a:b:c", "--log-retention=-5",
        "--listen=nowhere", "positional"}) {
    EXPECT_EQ(ExitCodeWith(arg, data), 2) << arg;
  }
}

TEST_F(IntegrationTest, HealthServiceReportsServing) {
  StartCoordinator();
  auto channel =
      grpc::CreateChannel(process_->target(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  // grpc.health.v1.HealthCheckRequest{service: ""} is the empty message.
  grpc::ByteBuffer request;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check",
                 grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = s;
                   done.Notify();
                 });
  done.WaitForNotification();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // HealthCheckResponse{status: SERVING (1)}: field 1, varint 1.
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

// GET /metrics over a plain socket.
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  std::string req = absl::StrCat("GET ", path,
                                 " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (write(fd, req.data(), req.size()) != ssize_t(req.size())) {
    close(fd);
    return "";
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  return out;
}

TEST_F(IntegrationTest, MetricsAreExported) {
  const int metrics_port = PickFreePort();
  ASSERT_NE(metrics_port, 0);
  StartCoordinator({absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port)});
  ASSERT_TRUE(client_->CreateVolume("v", 10).ok());
  ASSERT_TRUE(client_->Resolve("v", Keys(2)).ok());
  ASSERT_TRUE(client_->Bump("v", {0, 1, 0}).ok());
  EXPECT_EQ(client_->Bump("v", {9}).status().code(),
            absl::StatusCode::kOutOfRange);
  std::string text = HttpGet(metrics_port, "/metrics");
  for (const char* name :
       {"coherefs_coordinator_bump_batch_size_bucket",
        "coherefs_coordinator_fsync_seconds_bucket",
        "coherefs_coordinator_fanout_latency_seconds_bucket",
        "coherefs_coordinator_subscribers ",
        "coherefs_coordinator_subscriber_queue_depth{stat=\"max\"}",
        "coherefs_coordinator_resyncs_total ",
        "coherefs_coordinator_agents ",
        "coherefs_coordinator_agent_expirations_total ",
        "coherefs_coordinator_rocksdb_size_bytes ",
        "coherefs_coordinator_epoch 1",
        "coherefs_coordinator_build_info{version=\"0.1.0\"} 1"}) {
    EXPECT_THAT(text, ::testing::HasSubstr(name));
  }
  EXPECT_THAT(text, ::testing::HasSubstr("coherefs_coordinator_bumps_total 3"));
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "coherefs_coordinator_rpc_errors_total{code=\"OUT_OF_"
                        "RANGE\",method=\"Bump\"} 1"));
}

}  // namespace
}  // namespace coherefs::testing
