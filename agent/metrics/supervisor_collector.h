// SupervisorCollector exports whether this agent runs under its supervisor
// and how often the supervisor has restarted its worker (README "Agent
// restarts"): a rising coherefs_agent_worker_restarts_total is a crashing
// agent that guests did not notice -- worth an alert all the same.
//   coherefs_agent_supervised                 gauge 1 | 0
//   coherefs_agent_worker_restarts_total{reason="crash"|"replace"}  counter
//     (replace: SIGUSR2 to the supervisor, e.g. an upgrade)
// The values are fixed for the life of the process (the supervisor tells
// each worker its restart count when it starts it). Thread-safe.
#ifndef COHEREFS_AGENT_METRICS_SUPERVISOR_COLLECTOR_H_
#define COHEREFS_AGENT_METRICS_SUPERVISOR_COLLECTOR_H_

#include <cstdint>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace coherefs::agent::metrics {

class SupervisorCollector final : public prometheus::Collectable {
 public:
  SupervisorCollector(bool supervised, uint32_t restarts, uint32_t replacements)
      : supervised_(supervised), restarts_(restarts), replacements_(replacements) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const bool supervised_;
  const uint32_t restarts_;
  const uint32_t replacements_;
};

}  // namespace coherefs::agent::metrics

#endif  // COHEREFS_AGENT_METRICS_SUPERVISOR_COLLECTOR_H_
