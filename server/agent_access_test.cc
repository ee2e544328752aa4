#include "server/agent_access.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace coherefs::server {
namespace {

using Ids = std::vector<std::string>;
constexpr auto kDenied = absl::StatusCode::kPermissionDenied;

TEST(AgentAccessTest, MutualTlsBindsAgentIdsToTheCertificate) {
  AgentAccess access(/*mtls=*/true);
  const Ids host_a = {"host-a", "localhost"};  // CN, then DNS SANs
  EXPECT_TRUE(access.CheckAgentId(host_a, "host-a").ok());
  EXPECT_TRUE(access.CheckAgentId(host_a, "localhost").ok());  // a DNS SAN counts
  EXPECT_TRUE(access.CheckAgentId(host_a, "").ok());           // names nobody
  absl::Status s = access.CheckAgentId(host_a, "host-b");
  EXPECT_EQ(s.code(), kDenied);
  EXPECT_EQ(s.message(),
            "agent id \"host-b\" is not the caller's certificate (CN/DNS names: host-a, "
            "localhost)");
  EXPECT_EQ(access.CheckAgentId({}, "host-a").code(), kDenied);
}

TEST(AgentAccessTest, InsecureTrustsTheNamedIdButStillLimitsVolumes) {
  AgentAccess access(/*mtls=*/false);
  EXPECT_TRUE(access.CheckAgentId({}, "anyone").ok());
  access.Registered("host-a", {"v1"});
  EXPECT_TRUE(access.CheckVolume({}, "host-a", "v1").ok());
  absl::Status s = access.CheckVolume({}, "host-a", "v2");
  EXPECT_EQ(s.code(), kDenied);
  EXPECT_EQ(s.message(),
            "agent \"host-a\" is not registered for volume \"v2\" (registered for: v1)");
  // Anonymous callers (tools) and unknown ids (the core says NOT_FOUND).
  EXPECT_TRUE(access.CheckVolume({}, "", "v2").ok());
  EXPECT_TRUE(access.CheckVolume({}, "ghost", "v2").ok());
  // No volumes declared: every volume without TLS (older agents).
  access.Registered("old", {});
  EXPECT_TRUE(access.CheckVolume({}, "old", "v2").ok());
  // Unregistering forgets; registering again replaces the list.
  access.Unregistered("host-a");
  EXPECT_TRUE(access.CheckVolume({}, "host-a", "v2").ok());
  access.Registered("host-a", {"v2", "v3"});
  EXPECT_TRUE(access.CheckVolume({}, "host-a", "v3").ok());
  EXPECT_EQ(access.CheckVolume({}, "host-a", "v1").code(), kDenied);
}

TEST(AgentAccessTest, MutualTlsLimitsAnAgentsCertificateEvenWithoutAnAgentId) {
  AgentAccess access(/*mtls=*/true);
  access.Registered("host-a", {"v1"});
  const Ids host_a = {"host-a"};
  EXPECT_TRUE(access.CheckVolume(host_a, "host-a", "v1").ok());
  EXPECT_EQ(access.CheckVolume(host_a, "host-a", "v2").code(), kDenied);
  // Leaving agent_id out does not escape the rule.
  EXPECT_EQ(access.CheckVolume(host_a, "", "v2").code(), kDenied);
  EXPECT_TRUE(access.CheckVolume(host_a, "", "v1").ok());
  // Another agent's id with host-a's certificate: refused before volumes.
  EXPECT_EQ(access.CheckVolume(host_a, "host-b", "v1").code(), kDenied);
  // An operator certificate is no agent: unrestricted.
  EXPECT_TRUE(access.CheckVolume({"operator"}, "", "v2").ok());
  // With TLS, no volumes declared means none.
  access.Registered("empty", {});
  EXPECT_EQ(access.CheckVolume({"empty"}, "empty", "v1").code(), kDenied);
}

}  // namespace
}  // namespace coherefs::server
