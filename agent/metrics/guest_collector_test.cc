#include "agent/metrics/guest_collector.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace coherefs::agent::metrics {
namespace {

TEST(GuestCollectorTest, ReadsEverySourceAtScrapeTime) {
  vhost_user::DeviceMetrics a, b;
  a.AddConnection();
  a.AddRequest(100, 40);
  a.AddRequest(10, 4);
  b.AddBadChain();
  auto collector = std::make_shared<GuestCollector>(std::vector<GuestSource>{
      {"vm1", "shared", [&a] { return a.Snapshot(); }},
      {"vm2", "shared", [&b] { return b.Snapshot(); }},
  });
  a.AddRequest(1, 1);  // after registration: must be seen
  std::string text = prometheus::TextSerializer().Serialize(collector->Collect());
  EXPECT_NE(text.find("coherefs_agent_guest_requests_total{guest=\"vm1\",volume=\"shared\"} 3"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("coherefs_agent_guest_received_bytes_total{guest=\"vm1\",volume=\"shared\"} 111"),
            std::string::npos);
  EXPECT_NE(text.find("coherefs_agent_guest_bad_chains_total{guest=\"vm2\",volume=\"shared\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("coherefs_agent_guest_connections_total{guest=\"vm2\",volume=\"shared\"} 0"),
            std::string::npos);
  EXPECT_NE(text.find("coherefs_agent_build_info{version="), std::string::npos);
}

}  // namespace
}  // namespace coherefs::agent::metrics
