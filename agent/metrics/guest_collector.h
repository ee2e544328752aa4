// GuestCollector exports each guest socket's vhost-user counters at scrape
// time, labelled by guest and volume (a bounded set: the configured guests):
//
//   coherefs_agent_guest_connections_total{guest,volume}
//   coherefs_agent_guest_requests_total{guest,volume}
//   coherefs_agent_guest_bad_chains_total{guest,volume}
//   coherefs_agent_guest_bad_messages_total{guest,volume}
//   coherefs_agent_guest_received_bytes_total{guest,volume}
//   coherefs_agent_guest_sent_bytes_total{guest,volume}
//   coherefs_agent_guest_adopted_sessions_total{guest,volume}
//
// plus coherefs_agent_build_info{version} 1. Each source's `read` is called
// on every scrape; it must stay valid as long as the collector is
// registered. Thread-safe if the `read` functions are.
#ifndef COHEREFS_AGENT_METRICS_GUEST_COLLECTOR_H_
#define COHEREFS_AGENT_METRICS_GUEST_COLLECTOR_H_

#include <functional>
#include <string>
#include <vector>

#include "agent/vhost_user/metrics.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace coherefs::agent::metrics {

struct GuestSource {
  std::string guest;
  std::string volume;
  std::function<vhost_user::MetricsSnapshot()> read;
};

class GuestCollector final : public prometheus::Collectable {
 public:
  explicit GuestCollector(std::vector<GuestSource> sources) : sources_(std::move(sources)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::vector<GuestSource> sources_;
};

}  // namespace coherefs::agent::metrics

#endif  // COHEREFS_AGENT_METRICS_GUEST_COLLECTOR_H_
