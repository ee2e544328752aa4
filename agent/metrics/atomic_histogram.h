// AtomicHistogram counts observations into fixed buckets with relaxed
// atomics, for values recorded on hot paths (every lease granted, every
// invalidation received) and exported at scrape time as a Prometheus
// histogram (HistogramMetric in histogram_metric.h). No metrics library
// here, so the coherence layer can hold one without depending on
// prometheus-cpp.
//
// Buckets are upper bounds in seconds, strictly increasing; a value above
// the last bound lands in the implicit +Inf bucket. Each counter is
// monotonic and read independently: a scrape racing an Observe may see the
// bucket count and the sum disagree by that one observation, which
// Prometheus tolerates (rate() over many scrapes).
//
// Thread-safe; not copyable.
#ifndef COHEREFS_AGENT_METRICS_ATOMIC_HISTOGRAM_H_
#define COHEREFS_AGENT_METRICS_ATOMIC_HISTOGRAM_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace coherefs::agent::metrics {

class AtomicHistogram {
 public:
  explicit AtomicHistogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)),
        counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
    for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
  }
  AtomicHistogram(const AtomicHistogram&) = delete;
  AtomicHistogram& operator=(const AtomicHistogram&) = delete;

  void Observe(double seconds) {
    // Prometheus buckets are "less than or equal": le="0.001" holds 0.001.
    size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin();
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    double sum = sum_.load(std::memory_order_relaxed);
    while (!sum_.compare_exchange_weak(sum, sum + seconds, std::memory_order_relaxed)) {
    }
  }

  struct Snapshot {
    std::vector<double> bounds;      // as constructed (no +Inf)
    std::vector<uint64_t> cumulative;  // bounds.size() + 1 entries; last is +Inf
    double sum = 0;
    uint64_t count() const { return cumulative.empty() ? 0 : cumulative.back(); }
  };
  Snapshot Read() const {
    Snapshot s;
    s.bounds = bounds_;
    uint64_t total = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      total += counts_[i].load(std::memory_order_relaxed);
      s.cumulative.push_back(total);
    }
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  const std::vector<double> bounds_;
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// 1 ms .. 60 s: guest lease lengths (the lease max is 1 ms..minutes).
inline std::vector<double> LeaseLengthBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

// 0.5 ms .. 30 s: coordinator commit to agent receipt (loopback is well
// under a millisecond; seconds mean a stalled stream).
inline std::vector<double> DeliveryLagBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

}  // namespace coherefs::agent::metrics

#endif  // COHEREFS_AGENT_METRICS_ATOMIC_HISTOGRAM_H_
