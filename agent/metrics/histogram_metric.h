// Converts an AtomicHistogram into a Prometheus histogram sample (with the
// +Inf bucket prometheus-cpp's serializer expects), for collectors that
// build their families at scrape time. Header-only; thread-safe as
// AtomicHistogram::Read.
#ifndef COHEREFS_AGENT_METRICS_HISTOGRAM_METRIC_H_
#define COHEREFS_AGENT_METRICS_HISTOGRAM_METRIC_H_

#include <limits>

#include "agent/metrics/atomic_histogram.h"
#include "prometheus/client_metric.h"

namespace coherefs::agent::metrics {

inline prometheus::ClientMetric HistogramMetric(const AtomicHistogram& h) {
  AtomicHistogram::Snapshot s = h.Read();
  prometheus::ClientMetric m;
  m.histogram.sample_count = s.count();
  m.histogram.sample_sum = s.sum;
  for (size_t i = 0; i < s.cumulative.size(); ++i) {
    prometheus::ClientMetric::Bucket b;
    b.cumulative_count = s.cumulative[i];
    b.upper_bound =
        i < s.bounds.size() ? s.bounds[i] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  return m;
}

}  // namespace coherefs::agent::metrics

#endif  // COHEREFS_AGENT_METRICS_HISTOGRAM_METRIC_H_
