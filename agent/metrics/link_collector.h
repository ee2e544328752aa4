// LinkCollector exports the agent's coordinator link at scrape time:
//
//   coherefs_agent_fenced{volume}                          gauge (1: fenced)
//   coherefs_agent_invalidations_applied_total{volume}     counter
//   coherefs_agent_resyncs_total{volume}                   counter
//   coherefs_agent_coordinator_reconnects_total{volume}    counter
//   coherefs_agent_applied_seq{volume}                     gauge
//   coherefs_agent_coordinator_lease_lapses_total          counter
//   coherefs_agent_invalidation_delivery_lag_seconds{volume}  histogram, 0.5 ms..30 s
//     (coordinator commit -> receipt here, per invalidation that carries its
//     commit time)
//
// Borrows the link, which must outlive the collector's registration.
// Thread-safe: reads the link's atomics.
#ifndef COHEREFS_AGENT_METRICS_LINK_COLLECTOR_H_
#define COHEREFS_AGENT_METRICS_LINK_COLLECTOR_H_

#include <string>
#include <vector>

#include "agent/coherence/coordinator_link.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace coherefs::agent::metrics {

class LinkCollector final : public prometheus::Collectable {
 public:
  LinkCollector(const coherence::CoordinatorLink* link, std::vector<std::string> volumes)
      : link_(link), volumes_(std::move(volumes)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const coherence::CoordinatorLink* const link_;
  const std::vector<std::string> volumes_;
};

}  // namespace coherefs::agent::metrics

#endif  // COHEREFS_AGENT_METRICS_LINK_COLLECTOR_H_
