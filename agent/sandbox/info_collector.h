// coherefs_agent_sandbox_info{mode, seccomp} 1: what sandbox this process
// entered (sandbox::CurrentState(), "none" before or without one), so a
// dashboard or an alert can spot an agent run with --sandbox=none.
// Thread-safe (Collect reads the state under its lock).
#ifndef COHEREFS_AGENT_SANDBOX_INFO_COLLECTOR_H_
#define COHEREFS_AGENT_SANDBOX_INFO_COLLECTOR_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace coherefs::agent::sandbox {

class InfoCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace coherefs::agent::sandbox

#endif  // COHEREFS_AGENT_SANDBOX_INFO_COLLECTOR_H_
