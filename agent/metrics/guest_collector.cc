#include "agent/metrics/guest_collector.h"

#include <cstdint>

#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace coherefs::agent::metrics {
namespace {

// Where a family's value lives in a snapshot.
struct CounterSpec {
  const char* name;
  const char* help;
  uint64_t vhost_user::MetricsSnapshot::*field;
};

constexpr CounterSpec kCounters[] = {
    {"coherefs_agent_guest_connections_total", "vhost-user sessions accepted from the guest.",
     &vhost_user::MetricsSnapshot::connections},
    {"coherefs_agent_guest_requests_total", "Requests served to the guest.",
     &vhost_user::MetricsSnapshot::requests},
    {"coherefs_agent_guest_bad_chains_total",
     "Descriptor chains from the guest refused as malformed.",
     &vhost_user::MetricsSnapshot::bad_chains},
    {"coherefs_agent_guest_bad_messages_total",
     "vhost-user messages from the guest's front end refused as malformed.",
     &vhost_user::MetricsSnapshot::bad_messages},
    {"coherefs_agent_guest_received_bytes_total", "Request bytes read from the guest.",
     &vhost_user::MetricsSnapshot::bytes_in},
    {"coherefs_agent_guest_sent_bytes_total", "Reply bytes written to the guest.",
     &vhost_user::MetricsSnapshot::bytes_out},
    {"coherefs_agent_guest_adopted_sessions_total",
     "vhost-user sessions the front end resumed after a back-end restart "
     "(adopted without a handshake).",
     &vhost_user::MetricsSnapshot::adopted},
};

#ifndef COHEREFS_VERSION
#define COHEREFS_VERSION "0.1.0"
#endif

}  // namespace

std::vector<prometheus::MetricFamily> GuestCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  std::vector<vhost_user::MetricsSnapshot> snapshots;
  for (const GuestSource& s : sources_) snapshots.push_back(s.read());
  for (const CounterSpec& spec : kCounters) {
    prometheus::MetricFamily family{spec.name, spec.help, prometheus::MetricType::Counter, {}};
    for (size_t i = 0; i < sources_.size(); ++i) {
      prometheus::ClientMetric m;
      m.label = {{"guest", sources_[i].guest}, {"volume", sources_[i].volume}};
      m.counter.value = static_cast<double>(snapshots[i].*spec.field);
      family.metric.push_back(std::move(m));
    }
    families.push_back(std::move(family));
  }
  prometheus::MetricFamily info{"coherefs_agent_build_info", "coherefs-agent version.",
                                prometheus::MetricType::Gauge, {}};
  prometheus::ClientMetric one;
  one.label = {{"version", COHEREFS_VERSION}};
  one.gauge.value = 1;
  info.metric.push_back(one);
  families.push_back(std::move(info));
  return families;
}

}  // namespace coherefs::agent::metrics
