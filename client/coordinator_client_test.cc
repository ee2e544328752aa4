#include "client/coordinator_client.h"

#include <memory>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/coherence_core.h"
#include "server/coordinator_service.h"
#include "server/memory_store.h"

namespace coherefs::client {
namespace {

using ::testing::ElementsAre;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto core = server::CoherenceCore::Start(&store_, {}, nullptr);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    service_ = std::make_unique<server::CoordinatorService>(core_.get(),
                                                            nullptr);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    target_ = "127.0.0.1:" + std::to_string(port);
    client_ = CoordinatorClient::Create(target_);
  }
  void TearDown() override {
    core_->Stop();
    server_->Shutdown();
  }

  server::MemoryStore store_;
  std::unique_ptr<server::CoherenceCore> core_;
  std::unique_ptr<server::CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
  std::unique_ptr<CoordinatorClient> client_;
};

TEST_F(ClientTest, UnaryCallsRoundTrip) {
  auto agent = client_->RegisterAgent("host-a", absl::Seconds(3), 500);
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->lease_ttl_ms(), 3000u);
  EXPECT_EQ(agent->epoch(), core_->epoch());
  EXPECT_TRUE(client_->KeepAlive("host-a").ok());

  auto volume = client_->CreateVolume("vol", 10);
  ASSERT_TRUE(volume.ok()) << volume.status();
  EXPECT_EQ(volume->capacity(), 10u);
  auto resolved = client_->Resolve("vol", {"a", "b"});
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ASSERT_EQ(resolved->slots_size(), 2);
  EXPECT_EQ(resolved->slots(1).slot(), 1u);
  auto bumped = client_->Bump("vol", {1, 1}, "host-a");
  ASSERT_TRUE(bumped.ok()) << bumped.status();
  EXPECT_THAT(bumped->seqs(), ElementsAre(1, 2));

  auto described = client_->DescribeVolume("vol");
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->slots_used(), 2u);
  EXPECT_EQ(described->committed_seq(), 2u);
  auto all = client_->ListVolumes();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);

  uint64_t resume = 0;
  auto table = client_->FullSnapshot("vol", &resume);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(resume, 3u);
  ASSERT_EQ(table->size(), 2u);
  EXPECT_EQ((*table)[1], bumped->versions(1));
  EXPECT_TRUE(client_->UnregisterAgent("host-a").ok());
}

TEST_F(ClientTest, ErrorsKeepTheirCodes) {
  EXPECT_EQ(client_->DescribeVolume("nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->KeepAlive("ghost").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Resolve("bad name", {"k"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::AckInvalidationsRequest ack;
  ack.set_agent_id("a");
  ack.set_volume("v");
  EXPECT_EQ(client_->AckInvalidations(ack).code(),
            absl::StatusCode::kNotFound);

  CoordinatorClientOptions impatient;
  impatient.deadline = absl::Seconds(-1);  // already passed
  auto hurried = CoordinatorClient::Create(target_, impatient);
  EXPECT_EQ(hurried->ListVolumes().status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ClientTest, ListAgentsOverGrpc) {
  auto empty = client_->ListAgents();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->epoch(), core_->epoch());
  EXPECT_EQ(empty->agents_size(), 0);
  ASSERT_TRUE(client_->CreateVolume("vol", 10).ok());
  ASSERT_TRUE(client_->RegisterAgent("host-a", absl::Seconds(20), 700).ok());
  auto stream = client_->Subscribe("vol", 0, "host-a");
  v1::SubscribeResponse msg;
  ASSERT_TRUE(stream->Read(&msg));  // the stream is open
  auto agents = client_->ListAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  ASSERT_EQ(agents->agents_size(), 1);
  const v1::AgentInfo& a = agents->agents(0);
  EXPECT_EQ(a.agent_id(), "host-a");
  EXPECT_TRUE(a.live());
  EXPECT_EQ(a.lease_ttl_ms(), 20000u);
  EXPECT_GT(a.lease_remaining_ms(), 19000u);
  EXPECT_LE(a.lease_remaining_ms(), 20000u);
  EXPECT_EQ(a.expired_for_ms(), 0u);
  EXPECT_LT(a.last_keepalive_age_ms(), 1000u);
  EXPECT_EQ(a.max_guest_lease_ms(), 700u);
  ASSERT_EQ(a.volumes_size(), 1);
  EXPECT_EQ(a.volumes(0).volume(), "vol");
  EXPECT_TRUE(a.volumes(0).streaming());
  EXPECT_EQ(a.volumes(0).committed_seq(), 0u);
  stream->Cancel();
  while (stream->Read(&msg)) {
  }
}

TEST_F(ClientTest, SubscribeStreamsAndCancels) {
  ASSERT_TRUE(client_->CreateVolume("vol", 10).ok());
  ASSERT_TRUE(client_->Resolve("vol", {"a"}).ok());
  auto stream = client_->Subscribe("vol", 0);
  v1::SubscribeResponse msg;
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_progress());
  EXPECT_EQ(msg.progress().epoch(), core_->epoch());
  const int64_t before_ns = absl::ToUnixNanos(absl::Now());
  auto bumped = client_->Bump("vol", {0});
  ASSERT_TRUE(bumped.ok());
  const int64_t after_ns = absl::ToUnixNanos(absl::Now());
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_invalidations());
  ASSERT_EQ(msg.invalidations().invalidations_size(), 1);
  EXPECT_EQ(msg.invalidations().invalidations(0).seq(), 1u);
  EXPECT_EQ(msg.invalidations().invalidations(0).version(),
            bumped->versions(0));
  // Committed (durable, published) while the Bump call was in progress.
  const int64_t commit_ns =
      static_cast<int64_t>(msg.invalidations().invalidations(0).commit_time_unix_ns());
  EXPECT_GE(commit_ns, before_ns);
  EXPECT_LE(commit_ns, after_ns);
  stream->Cancel();
  while (stream->Read(&msg)) {
  }
  EXPECT_EQ(stream->Finish().code(), absl::StatusCode::kCancelled);

  auto missing = client_->Subscribe("nope", 0);
  EXPECT_FALSE(missing->Read(&msg));
  EXPECT_EQ(missing->Finish().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace coherefs::client
