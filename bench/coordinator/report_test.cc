#include "bench/coordinator/report.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace coherefs::bench {
namespace {

std::vector<Sample> ThreeRounds() {
  std::vector<Sample> s;
  const double coherefs[] = {5000, 6000, 5500};
  const double etcd[] = {1000, 1200, 1100};
  for (int r = 0; r < 3; ++r) {
    s.push_back({r, "coherefs", 8, "throughput_bumps_per_s", coherefs[r]});
    s.push_back({r, "etcd", 8, "throughput_bumps_per_s", etcd[r]});
    s.push_back({r, "coherefs", 1, "throughput_bumps_per_s", coherefs[r] * 2});
    s.push_back({r, "host", 0, "fsync_p50_us", 100.0 + r});
  }
  return s;
}

TEST(SummarizeTest, GroupsByMetricSubscribersAndSystem) {
  std::vector<SummaryRow> rows = Summarize(ThreeRounds());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].metric, "throughput_bumps_per_s");
  EXPECT_EQ(rows[0].subscribers, 1);
  EXPECT_TRUE(std::isnan(rows[0].ratio));  // no etcd figure at 1 subscriber
  EXPECT_EQ(rows[1].subscribers, 8);
  EXPECT_DOUBLE_EQ(rows[1].by_system.at("coherefs").median, 5500);
  EXPECT_DOUBLE_EQ(rows[1].by_system.at("coherefs").min, 5000);
  EXPECT_DOUBLE_EQ(rows[1].by_system.at("etcd").max, 1200);
  EXPECT_DOUBLE_EQ(rows[1].ratio, 5.0);
  EXPECT_EQ(rows[2].metric, "fsync_p50_us");
  EXPECT_EQ(rows[2].by_system.at("host").n, 3);
  EXPECT_DOUBLE_EQ(rows[2].by_system.at("host").median, 101);
}

TEST(SamplesCsvTest, HeaderAndOneLinePerSample) {
  std::string csv = SamplesCsv({{0, "etcd", 64, "delivery_p99_us", 1234.5}});
  EXPECT_EQ(csv,
            "round,system,subscribers,metric,value\n"
            "0,etcd,64,delivery_p99_us,1234.5\n");
}

TEST(ReportJsonTest, EscapesAndOmitsNan) {
  std::vector<Sample> samples = ThreeRounds();
  std::string json =
      ReportJson({{"note", "a \"quoted\"\nline"}}, samples, Summarize(samples));
  EXPECT_NE(json.find("\"note\": \"a \\\"quoted\\\"\\nline\""), std::string::npos);
  EXPECT_NE(json.find("\"ratio_coherefs_over_etcd\": null"), std::string::npos);
  EXPECT_NE(json.find("\"ratio_coherefs_over_etcd\": 5}"), std::string::npos);
  EXPECT_NE(json.find("{\"round\": 2, \"system\": \"host\", \"subscribers\": 0, "
                      "\"metric\": \"fsync_p50_us\", \"value\": 102}"),
            std::string::npos);
}

TEST(SummaryTableTest, ShowsMedianSpreadAndRatio) {
  std::string table = SummaryTable(Summarize(ThreeRounds()));
  EXPECT_NE(table.find("5500 [5000-6000]"), std::string::npos);
  EXPECT_NE(table.find("1100 [1000-1200]"), std::string::npos);
  EXPECT_NE(table.find("5.00x"), std::string::npos);
  EXPECT_NE(table.find("101 [100-102]"), std::string::npos);
}

TEST(JsonEscapeTest, ControlCharacters) {
  EXPECT_EQ(JsonEscape(std::string("a\x01" "b\\")), "a\\u0001b\\\\");
}

}  // namespace
}  // namespace coherefs::bench
