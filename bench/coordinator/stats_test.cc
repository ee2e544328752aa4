#include "bench/coordinator/stats.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace coherefs::bench {
namespace {

TEST(PercentileTest, NearestRankOnHundredSamples) {
  std::vector<int64_t> v;
  for (int64_t i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(Percentile(v, 50), 50);
  EXPECT_EQ(Percentile(v, 99), 99);
  EXPECT_EQ(Percentile(v, 100), 100);
  EXPECT_EQ(Percentile(v, 0), 1);
}

TEST(PercentileTest, SmallAndEmptyInputs) {
  EXPECT_EQ(Percentile({}, 50), 0);
  EXPECT_EQ(Percentile({7}, 99), 7);
  // Two samples: p50 is the first (rank ceil(1.0) = 1), p99 the second.
  EXPECT_EQ(Percentile({3, 9}, 50), 3);
  EXPECT_EQ(Percentile({3, 9}, 99), 9);
}

TEST(SummarizeNanosTest, SortsAndConvertsToMicroseconds) {
  std::vector<int64_t> ns = {5000, 1000, 3000, 2000, 4000};
  LatencySummary s = SummarizeNanos(ns);
  EXPECT_EQ(s.count, 5);
  EXPECT_DOUBLE_EQ(s.p50_us, 3.0);
  EXPECT_DOUBLE_EQ(s.p99_us, 5.0);
  EXPECT_DOUBLE_EQ(s.max_us, 5.0);
  EXPECT_DOUBLE_EQ(s.mean_us, 3.0);
  EXPECT_EQ(ns, (std::vector<int64_t>{1000, 2000, 3000, 4000, 5000}));
}

TEST(SummarizeNanosTest, EmptyIsAllZero) {
  std::vector<int64_t> ns;
  LatencySummary s = SummarizeNanos(ns);
  EXPECT_EQ(s.count, 0);
  EXPECT_DOUBLE_EQ(s.p99_us, 0.0);
}

TEST(SpreadOfTest, OddEvenAndEmpty) {
  Spread odd = SpreadOf({5, 1, 3});
  EXPECT_EQ(odd.n, 3);
  EXPECT_DOUBLE_EQ(odd.median, 3);
  EXPECT_DOUBLE_EQ(odd.min, 1);
  EXPECT_DOUBLE_EQ(odd.max, 5);
  Spread even = SpreadOf({4, 1, 2, 10});
  EXPECT_DOUBLE_EQ(even.median, 3);
  EXPECT_DOUBLE_EQ(even.max, 10);
  EXPECT_EQ(SpreadOf({}).n, 0);
}

}  // namespace
}  // namespace coherefs::bench
