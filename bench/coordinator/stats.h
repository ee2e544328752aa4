// Small statistics for the benchmark: latency percentiles within one run
// and median/min/max across repeated rounds.
//
// Pure functions over values; thread-compatible.
#ifndef COHEREFS_BENCH_COORDINATOR_STATS_H_
#define COHEREFS_BENCH_COORDINATOR_STATS_H_

#include <cstdint>
#include <vector>

namespace coherefs::bench {

// Nearest-rank percentile (p in [0, 100]) of ascending `sorted`: the
// smallest sample such that at least p% of the samples are <= it. 0 for an
// empty vector.
int64_t Percentile(const std::vector<int64_t>& sorted, double p);

// Latencies of one run, in microseconds.
struct LatencySummary {
  int64_t count = 0;
  double p50_us = 0;
  double p99_us = 0;
  double max_us = 0;
  double mean_us = 0;
};

// Summarises samples given in nanoseconds (sorts them in place).
LatencySummary SummarizeNanos(std::vector<int64_t>& samples_ns);

// A figure measured once per round, summarised across rounds.
struct Spread {
  int n = 0;
  double median = 0;  // mean of the two middle values for an even n
  double min = 0;
  double max = 0;
};

Spread SpreadOf(std::vector<double> values);

}  // namespace coherefs::bench

#endif  // COHEREFS_BENCH_COORDINATOR_STATS_H_
