#include "agent/metrics/link_collector.h"

#include <functional>

#include "agent/metrics/histogram_metric.h"
#include "agent/metrics/volume_families.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace coherefs::agent::metrics {

std::vector<prometheus::MetricFamily> LinkCollector::Collect() const {
  using Spec = VolumeSpec<coherence::VolumeLinkMetrics>;
  const std::vector<Spec> specs = {
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
      {"coherefs_agent_invalidation_acks_total",
       "Acknowledgements (with remaining guest leases) sent to the coordinator.",
       prometheus::MetricType::Counter,
       [](const auto& m) { return static_cast<double>(m.acks_sent.load()); }},
      {"coherefs_agent_invalidation_ack_failures_total",
       "Acknowledgements the coordinator did not take.", prometheus::MetricType::Counter,
       [](const auto& m) { return static_cast<double>(m.ack_failures.load()); }},
  };
  std::vector<prometheus::MetricFamily> families = VolumeFamilies<coherence::VolumeLinkMetrics>(
      specs, volumes_, [this](const std::string& v) { return link_->volume_metrics(v); });
  prometheus::MetricFamily lapses{"coherefs_agent_coordinator_lease_lapses_total",
                                  "Times the agent's coordinator lease lapsed.",
                                  prometheus::MetricType::Counter,
                                  {}};
  prometheus::ClientMetric total;
  total.counter.value = static_cast<double>(link_->metrics().lease_lapses.load());
  lapses.metric.push_back(total);
  families.push_back(std::move(lapses));
  prometheus::MetricFamily lag{
      "coherefs_agent_invalidation_delivery_lag_seconds",
      "Time from the coordinator's commit of a change to this agent's receipt of its "
      "invalidation (wall clocks; includes their offset across hosts).",
      prometheus::MetricType::Histogram,
      {}};
  for (const std::string& v : volumes_) {
    const coherence::VolumeLinkMetrics* m = link_->volume_metrics(v);
    if (m == nullptr) continue;
    prometheus::ClientMetric metric = HistogramMetric(m->delivery_lag);
    metric.label = {{"volume", v}};
    lag.metric.push_back(std::move(metric));
  }
  families.push_back(std::move(lag));
  return families;
}

}  // namespace coherefs::agent::metrics
