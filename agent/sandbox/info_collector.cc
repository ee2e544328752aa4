#include "agent/sandbox/info_collector.h"

#include "agent/sandbox/sandbox.h"

namespace coherefs::agent::sandbox {

std::vector<prometheus::MetricFamily> InfoCollector::Collect() const {
  const State state = CurrentState();
  prometheus::MetricFamily info{"coherefs_agent_sandbox_info",
                                "Sandbox the agent runs in (mode none: unconfined).",
                                prometheus::MetricType::Gauge, {}};
  prometheus::ClientMetric m;
  m.label = {{"mode", state.mode}, {"seccomp", state.seccomp}};
  m.gauge.value = 1;
  info.metric.push_back(std::move(m));
  return {std::move(info)};
}

}  // namespace coherefs::agent::sandbox
