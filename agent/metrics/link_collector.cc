#include "agent/metrics/link_collector.h"

#include <functional>

#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace coherefs::agent::metrics {
namespace {

using VolumeValue = std::function<double(const coherence::VolumeLinkMetrics&)>;

struct VolumeSpec {
  const char* name;
  const char* help;
  prometheus::MetricType type;
  VolumeValue value;
};

}  // namespace

std::vector<prometheus::MetricFamily> LinkCollector::Collect() const {
  const VolumeSpec specs[] = {
      {"coherefs_agent_fenced", "1 while the volume's table may be stale and no lease is granted.",
       prometheus::MetricType::Gauge,
       [](const auto& m) { return m.fenced.load() ? 1.0 : 0.0; }},
      {"coherefs_agent_invalidations_applied_total",
       "Invalidations from the coordinator applied to the version table.",
       prometheus::MetricType::Counter,
       [](const auto& m) { return static_cast<double>(m.invalidations_applied.load()); }},
      {"coherefs_agent_resyncs_total", "Full table snapshots applied.",
       prometheus::MetricType::Counter,
       [](const auto& m) { return static_cast<double>(m.resyncs.load()); }},
      {"coherefs_agent_coordinator_reconnects_total",
       "Invalidation streams reopened after an error.", prometheus::MetricType::Counter,
       [](const auto& m) { return static_cast<double>(m.reconnects.load()); }},
      {"coherefs_agent_applied_seq", "Last change-log sequence applied to the table.",
       prometheus::MetricType::Gauge,
       [](const auto& m) { return static_cast<double>(m.last_applied_seq.load()); }},
  };
  std::vector<prometheus::MetricFamily> families;
  for (const VolumeSpec& spec : specs) {
    prometheus::MetricFamily family{spec.name, spec.help, spec.type, {}};
    for (const std::string& volume : volumes_) {
      const coherence::VolumeLinkMetrics* m = link_->volume_metrics(volume);
      if (m == nullptr) continue;
      prometheus::ClientMetric metric;
      metric.label = {{"volume", volume}};
      if (spec.type == prometheus::MetricType::Counter) {
        metric.counter.value = spec.value(*m);
      } else {
        metric.gauge.value = spec.value(*m);
      }
      family.metric.push_back(std::move(metric));
    }
    families.push_back(std::move(family));
  }
  prometheus::MetricFamily lapses{"coherefs_agent_coordinator_lease_lapses_total",
                                  "Times the agent's coordinator lease lapsed.",
                                  prometheus::MetricType::Counter,
                                  {}};
  prometheus::ClientMetric total;
  total.counter.value = static_cast<double>(link_->metrics().lease_lapses.load());
  lapses.metric.push_back(total);
  families.push_back(std::move(lapses));
  return families;
}

}  // namespace coherefs::agent::metrics
