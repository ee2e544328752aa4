#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/metrics/atomic_histogram.h"
#include "agent/metrics/histogram_metric.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace coherefs::agent::metrics {
namespace {

TEST(AtomicHistogramTest, BucketsAreLessOrEqualAndCumulative) {
  AtomicHistogram h({0.001, 0.01, 1});
  h.Observe(0.0005);
  h.Observe(0.001);  // on the bound: le="0.001"
  h.Observe(0.002);
  h.Observe(5);      // +Inf only
  AtomicHistogram::Snapshot s = h.Read();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3, 3, 4}));
  EXPECT_EQ(s.count(), 4u);
  EXPECT_DOUBLE_EQ(s.sum, 0.0005 + 0.001 + 0.002 + 5);
}

TEST(AtomicHistogramTest, ConcurrentObservationsAreAllCounted) {
  AtomicHistogram h(LeaseLengthBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; ++i) h.Observe(0.25);
    });
  }
  for (auto& t : threads) t.join();
  AtomicHistogram::Snapshot s = h.Read();
  EXPECT_EQ(s.count(), 40000u);
  EXPECT_DOUBLE_EQ(s.sum, 10000.0);
  // 0.25 is a bound: every observation is in le="0.25" and above, none below.
  EXPECT_EQ(s.cumulative[6], 0u);   // le=0.1
  EXPECT_EQ(s.cumulative[7], 40000u);  // le=0.25
}

TEST(HistogramMetricTest, SerializesWithInfBucket) {
  AtomicHistogram h({0.5, 1});
  h.Observe(0.7);
  h.Observe(3);
  prometheus::MetricFamily family{"coherefs_test_seconds", "help",
                                  prometheus::MetricType::Histogram, {}};
  family.metric.push_back(HistogramMetric(h));
  family.metric.back().label = {{"volume", "v"}};
  std::string text = prometheus::TextSerializer().Serialize({family});
  EXPECT_NE(text.find("coherefs_test_seconds_bucket{volume=\"v\",le=\"0.5\"} 0"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("coherefs_test_seconds_bucket{volume=\"v\",le=\"1\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("coherefs_test_seconds_bucket{volume=\"v\",le=\"+Inf\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("coherefs_test_seconds_count{volume=\"v\"} 2"), std::string::npos);
  EXPECT_NE(text.find("coherefs_test_seconds_sum{volume=\"v\"} 3.7"), std::string::npos);
}

}  // namespace
}  // namespace coherefs::agent::metrics
