#include "agent/agent.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "absl/time/clock.h"
#include "agent/config/config.h"
#include "client/coordinator_client.h"
#include "tests/coordinator/coordinator_process.h"
#include "gtest/gtest.h"

namespace coherefs::agent {
namespace {

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/coherefs-agent-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(mkdir((dir_ + "/shared").c_str(), 0755), 0);
  }
  void TearDown() override { system(("rm -rf " + dir_).c_str()); }

  config::AgentConfig Config(std::vector<std::string> sockets) {
    config::FlagOverrides flags;
    flags.shared_dir = dir_ + "/shared";
    flags.socket_paths = std::move(sockets);
    auto config = config::ApplyFlags(config::AgentConfig(), flags);
    EXPECT_TRUE(config.ok()) << config.status();
    return *config;
  }

  static bool IsSocket(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
  }

  std::string dir_;
};

TEST_F(AgentTest, ServesEverySocketAndRemovesThemOnStop) {
  auto agent = Agent::Start(Config({dir_ + "/a.sock", dir_ + "/b.sock"}));
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_TRUE(IsSocket(dir_ + "/a.sock"));
  EXPECT_TRUE(IsSocket(dir_ + "/b.sock"));
  (*agent)->Stop();
  EXPECT_FALSE(IsSocket(dir_ + "/a.sock"));
  EXPECT_FALSE(IsSocket(dir_ + "/b.sock"));
}

TEST_F(AgentTest, InvalidConfigIsRefusedBeforeAnythingStarts) {
  config::AgentConfig config = Config({dir_ + "/a.sock"});
  config.mutable_volumes(0)->set_shared_dir(dir_ + "/missing");
  EXPECT_EQ(Agent::Start(config).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsSocket(dir_ + "/a.sock"));
}

TEST_F(AgentTest, SocketServedByAnotherProcessIsAlreadyExistsAndNothingKeepsRunning) {
  // Someone else accepts on b.sock.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string busy = dir_ + "/b.sock";
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", busy.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);

  auto agent = Agent::Start(Config({dir_ + "/a.sock", busy}));
  EXPECT_EQ(agent.status().code(), absl::StatusCode::kAlreadyExists) << agent.status();
  // The first guest's socket was started and must have been stopped again.
  EXPECT_FALSE(IsSocket(dir_ + "/a.sock"));
  EXPECT_TRUE(IsSocket(busy));  // not ours to remove
  close(fd);
}

TEST_F(AgentTest, UnbindableMetricsAddressIsUnavailable) {
  config::AgentConfig config = Config({dir_ + "/a.sock"});
  config.set_metrics_listen("203.0.113.1:1");  // not an address of this host
  auto agent = Agent::Start(config);
  EXPECT_EQ(agent.status().code(), absl::StatusCode::kUnavailable) << agent.status();
  EXPECT_FALSE(IsSocket(dir_ + "/a.sock"));
}

TEST_F(AgentTest, MetricsOnAnEphemeralPortReportTheBoundAddress) {
  config::AgentConfig config = Config({dir_ + "/a.sock"});
  config.set_metrics_listen("127.0.0.1:0");
  auto agent = Agent::Start(config);
  ASSERT_TRUE(agent.ok()) << agent.status();
  std::string address = (*agent)->metrics_address();
  EXPECT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
  EXPECT_NE(address, "127.0.0.1:0");
}

TEST_F(AgentTest, FollowsTheCoordinatorIntoItsVersionTable) {
  coherefs::testing::TempDir data;
  coherefs::testing::CoordinatorProcess coordinator(data.path(), {});
  ASSERT_TRUE(coordinator.Start().ok()) << coordinator.Log();

  config::AgentConfig config = Config({dir_ + "/a.sock"});
  config.set_coordinator(coordinator.target());
  config.set_agent_id("host-a");
  config.set_insecure(true);
  config.mutable_volumes(0)->set_table_capacity(1024);
  auto agent = Agent::Start(config);
  ASSERT_TRUE(agent.ok()) << agent.status();
  coherence::CoordinatorLink* link = (*agent)->coordinator_link();
  ASSERT_NE(link, nullptr);
  // The agent created its volume at the coordinator and synced its table.
  ASSERT_TRUE(link->WaitUnfenced(absl::Seconds(20))) << coordinator.Log();
  coherence::VersionTable* table = (*agent)->version_table("default");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ((*agent)->version_table("other"), nullptr);

  // Another host bumps a file: the agent's table shows the new version.
  auto admin = client::CoordinatorClient::Create(coordinator.target());
  auto slots = admin->Resolve("default", {"file-key-1"});
  ASSERT_TRUE(slots.ok()) << slots.status();
  uint32_t slot = slots->slots(0).slot();
  auto bumped = admin->Bump("default", {slot});
  ASSERT_TRUE(bumped.ok()) << bumped.status();
  const uint64_t want = bumped->versions(0);
  const absl::Time end = absl::Now() + absl::Seconds(10);
  uint64_t got = 0;
  while (absl::Now() < end) {
    auto v = table->Load(slot);
    ASSERT_TRUE(v.ok());
    got = *v;
    if (got == want) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(got, want);
  (*agent)->Stop();
  EXPECT_TRUE(link->fenced());
}

TEST_F(AgentTest, BadCoordinatorAddressIsInvalidArgument) {
  config::AgentConfig config = Config({dir_ + "/a.sock"});
  config.set_coordinator("no-port");
  config.set_agent_id("host-a");
  EXPECT_EQ(Agent::Start(config).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coherefs::agent
