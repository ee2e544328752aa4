// FuseOpsCollector exports a FUSE server's OpStats to Prometheus at scrape
// time (no per-request work beyond OpStats' own atomics):
//
//   coherefs_agent_fuse_requests_total{op}            counter
//   coherefs_agent_fuse_request_errors_total{op}      counter (error replies)
//   coherefs_agent_fuse_request_duration_seconds{op}  histogram
//
// `op` is the lower-case opcode name, a bounded set. The collector borrows
// the OpStats, which must outlive it (the agent owns both and removes the
// collector from the registry first). Thread-safe: Collect only reads atomics.
#ifndef COHEREFS_AGENT_METRICS_FUSE_OPS_COLLECTOR_H_
#define COHEREFS_AGENT_METRICS_FUSE_OPS_COLLECTOR_H_

#include <vector>

#include "agent/fuse/op_stats.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace coherefs::agent::metrics {

class FuseOpsCollector final : public prometheus::Collectable {
 public:
  explicit FuseOpsCollector(const fuse::OpStats* stats) : stats_(stats) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const fuse::OpStats* const stats_;
};

}  // namespace coherefs::agent::metrics

#endif  // COHEREFS_AGENT_METRICS_FUSE_OPS_COLLECTOR_H_
