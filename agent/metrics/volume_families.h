// Builds Prometheus metric families with one series per volume from a table
// of specs (name, help, type, how to read the value from a per-volume
// metrics struct). Shared by the collectors that export per-volume atomics.
//
// Header-only; thread-safety is that of the getter and the value functions.
#ifndef COHEREFS_AGENT_METRICS_VOLUME_FAMILIES_H_
#define COHEREFS_AGENT_METRICS_VOLUME_FAMILIES_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace coherefs::agent::metrics {

template <typename M>
struct VolumeSpec {
  const char* name;
  const char* help;
  prometheus::MetricType type;
  std::function<double(const M&)> value;
};

// `get(volume)` returns the volume's metrics or nullptr (no series then).
template <typename M>
std::vector<prometheus::MetricFamily> VolumeFamilies(
    const std::vector<VolumeSpec<M>>& specs, const std::vector<std::string>& volumes,
    const std::function<const M*(const std::string&)>& get) {
  std::vector<prometheus::MetricFamily> families;
  for (const VolumeSpec<M>& spec : specs) {
    prometheus::MetricFamily family{spec.name, spec.help, spec.type, {}};
    for (const std::string& volume : volumes) {
      const M* m = get(volume);
      if (m == nullptr) continue;
      prometheus::ClientMetric metric;
      metric.label = {{"volume", volume}};
      if (spec.type == prometheus::MetricType::Counter) {
        metric.counter.value = spec.value(*m);
      } else {
        metric.gauge.value = spec.value(*m);
      }
      family.metric.push_back(std::move(metric));
    }
    families.push_back(std::move(family));
  }
  return families;
}

}  // namespace coherefs::agent::metrics

#endif  // COHEREFS_AGENT_METRICS_VOLUME_FAMILIES_H_
