// CoherenceCollector exports each coherent volume's lease and bump counters
// (agent/coherence/volume_coherence.h) at scrape time:
//
//   coherefs_agent_leases_granted_total{volume}         counter
//   coherefs_agent_lease_granted_seconds_total{volume}  counter (sum of lengths)
//   coherefs_agent_lease_length_seconds{volume}         histogram, 1 ms..60 s
//   coherefs_agent_leases_refused_total{volume}         counter (fenced / raced a change)
//   coherefs_agent_live_leases{volume}                  gauge
//   coherefs_agent_bumped_slots_total{volume}           counter
//   coherefs_agent_bump_failures_total{volume}          counter
//   coherefs_agent_strict_waits_total{volume}           counter
//   coherefs_agent_strict_wait_seconds_total{volume}    counter
//   coherefs_agent_changes_refused_total{volume}        counter (strict, fenced)
//   coherefs_agent_slot_resolves_total{volume}          counter (Resolve calls)
//   coherefs_agent_slots_resolved_total{volume}         counter
//   coherefs_agent_host_changes_total{volume}           counter
//   coherefs_agent_invalidated_slots_total{volume}      counter (from other agents)
//   coherefs_agent_table_slots_used{volume}             gauge
//
// Borrows the VolumeCoherence objects and tables (they outlive the
// registration). Thread-safe: reads atomics and takes the lease table's locks.
#ifndef COHEREFS_AGENT_METRICS_COHERENCE_COLLECTOR_H_
#define COHEREFS_AGENT_METRICS_COHERENCE_COLLECTOR_H_

#include <string>
#include <vector>

#include "agent/coherence/volume_coherence.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace coherefs::agent::metrics {

struct CoherenceSource {
  std::string volume;
  coherence::VolumeCoherence* state;
  const coherence::VersionTable* table;
};

class CoherenceCollector final : public prometheus::Collectable {
 public:
  explicit CoherenceCollector(std::vector<CoherenceSource> sources)
      : sources_(std::move(sources)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::vector<CoherenceSource> sources_;
};

}  // namespace coherefs::agent::metrics

#endif  // COHEREFS_AGENT_METRICS_COHERENCE_COLLECTOR_H_
