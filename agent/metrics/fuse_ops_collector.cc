#include "agent/metrics/fuse_ops_collector.h"

#include <limits>
#include <string>

#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace coherefs::agent::metrics {

std::vector<prometheus::MetricFamily> FuseOpsCollector::Collect() const {
  prometheus::MetricFamily requests{"coherefs_agent_fuse_requests_total",
                                    "FUSE requests served, by opcode.",
                                    prometheus::MetricType::Counter,
                                    {}};
  prometheus::MetricFamily errors{"coherefs_agent_fuse_request_errors_total",
                                  "FUSE requests answered with an error, by opcode.",
                                  prometheus::MetricType::Counter,
                                  {}};
  prometheus::MetricFamily duration{
      "coherefs_agent_fuse_request_duration_seconds",
      "Time from decoding a FUSE request to its reply being written, by opcode.",
      prometheus::MetricType::Histogram,
      {}};
  stats_->ForEach([&](const char* name, const fuse::OpStats::Snapshot& snap) {
    std::vector<prometheus::ClientMetric::Label> labels = {{"op", name}};
    prometheus::ClientMetric count;
    count.label = labels;
    count.counter.value = static_cast<double>(snap.count);
    requests.metric.push_back(count);

    prometheus::ClientMetric err;
    err.label = labels;
    err.counter.value = static_cast<double>(snap.errors);
    errors.metric.push_back(err);

    prometheus::ClientMetric hist;
    hist.label = labels;
    hist.histogram.sample_count = snap.count;
    hist.histogram.sample_sum = static_cast<double>(snap.latency_ns_sum) / 1e9;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < fuse::OpStats::kNumBuckets; ++i) {
      cumulative += snap.buckets[i];
      prometheus::ClientMetric::Bucket bucket;
      bucket.cumulative_count = cumulative;
      bucket.upper_bound = i < fuse::OpStats::kBucketBoundsUs.size()
                               ? static_cast<double>(fuse::OpStats::kBucketBoundsUs[i]) / 1e6
                               : std::numeric_limits<double>::infinity();
      hist.histogram.bucket.push_back(bucket);
    }
    duration.metric.push_back(hist);
  });
  return {requests, errors, duration};
}

}  // namespace coherefs::agent::metrics
