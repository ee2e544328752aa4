#include "agent/metrics/fuse_ops_collector.h"

#include <linux/fuse.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace coherefs::agent::metrics {
namespace {

TEST(FuseOpsCollectorTest, ExportsCountsErrorsAndCumulativeBuckets) {
  fuse::OpStats stats;
  stats.Record(FUSE_LOOKUP, 0, 2'000);        // 2 us
  stats.Record(FUSE_LOOKUP, ENOENT, 500'000);  // 500 us
  stats.Record(FUSE_GETATTR, 0, 3'000'000'000ull);  // 3 s: +Inf bucket
  auto collector = std::make_shared<FuseOpsCollector>(&stats);
  std::string text = prometheus::TextSerializer().Serialize(collector->Collect());

  EXPECT_NE(text.find("coherefs_agent_fuse_requests_total{op=\"lookup\"} 2"), std::string::npos)
      << text;
  EXPECT_NE(text.find("coherefs_agent_fuse_request_errors_total{op=\"lookup\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("coherefs_agent_fuse_request_errors_total{op=\"getattr\"} 0"),
            std::string::npos);
  // 2 us falls in le=4e-06; both lookups are <= 1 ms.
  EXPECT_NE(text.find("coherefs_agent_fuse_request_duration_seconds_bucket{op=\"lookup\",le=\"4e-06\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("coherefs_agent_fuse_request_duration_seconds_bucket{op=\"lookup\",le=\"0.001\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("coherefs_agent_fuse_request_duration_seconds_bucket{op=\"getattr\",le=\"1\"} 0"),
            std::string::npos);
  EXPECT_NE(text.find("coherefs_agent_fuse_request_duration_seconds_bucket{op=\"getattr\",le=\"+Inf\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("coherefs_agent_fuse_request_duration_seconds_count{op=\"getattr\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace coherefs::agent::metrics
