#include "bench/coordinator/stats.h"

#include <algorithm>
#include <cmath>

namespace coherefs::bench {

int64_t Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  // Rank in 1..n; ceil(p/100 * n), at least 1.
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * n));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

LatencySummary SummarizeNanos(std::vector<int64_t>& samples_ns) {
  LatencySummary s;
  if (samples_ns.empty()) return s;
  std::sort(samples_ns.begin(), samples_ns.end());
  s.count = static_cast<int64_t>(samples_ns.size());
  s.p50_us = Percentile(samples_ns, 50) / 1e3;
  s.p99_us = Percentile(samples_ns, 99) / 1e3;
  s.max_us = samples_ns.back() / 1e3;
  double sum = 0;
  for (int64_t v : samples_ns) sum += static_cast<double>(v);
  s.mean_us = sum / static_cast<double>(s.count) / 1e3;
  return s;
}

Spread SpreadOf(std::vector<double> values) {
  Spread s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.n = static_cast<int>(values.size());
  s.min = values.front();
  s.max = values.back();
  const size_t mid = values.size() / 2;
  s.median = values.size() % 2 == 1 ? values[mid]
                                    : (values[mid - 1] + values[mid]) / 2;
  return s;
}

}  // namespace coherefs::bench
