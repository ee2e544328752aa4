#include "agent/metrics/supervisor_collector.h"

#include <utility>

namespace coherefs::agent::metrics {

std::vector<prometheus::MetricFamily> SupervisorCollector::Collect() const {
  prometheus::MetricFamily supervised{
      "coherefs_agent_supervised",
      "1 when the agent runs as its supervisor's worker (restarts keep guest sessions).",
      prometheus::MetricType::Gauge, {}};
  prometheus::ClientMetric s;
  s.gauge.value = supervised_ ? 1 : 0;
  supervised.metric.push_back(std::move(s));
  prometheus::MetricFamily restarts{
      "coherefs_agent_worker_restarts_total",
      "Times the supervisor restarted the agent's worker: after a crash, or replacing it on "
      "request (SIGUSR2).",
      prometheus::MetricType::Counter, {}};
  for (const auto& [reason, n] : {std::pair<const char*, uint32_t>{"crash", restarts_ - replacements_},
                                  {"replace", replacements_}}) {
    prometheus::ClientMetric r;
    r.label = {{"reason", reason}};
    r.counter.value = n;
    restarts.metric.push_back(std::move(r));
  }
  return {std::move(supervised), std::move(restarts)};
}

}  // namespace coherefs::agent::metrics
