#include "agent/metrics/coherence_collector.h"

#include <functional>

#include "agent/metrics/histogram_metric.h"
#include "agent/metrics/volume_families.h"
#include "prometheus/metric_type.h"

namespace coherefs::agent::metrics {
namespace {

// What one scrape reads of a volume: the counters and two values that
// need a walk (live leases) or a header read (slots used).
struct Sample {
  const coherence::VolumeCoherenceMetrics* m;
  double live_leases;
  double slots_used;
};

double Count(const std::atomic<uint64_t>& v) { return static_cast<double>(v.load()); }

}  // namespace

std::vector<prometheus::MetricFamily> CoherenceCollector::Collect() const {
  using prometheus::MetricType;
  using Spec = VolumeSpec<Sample>;
  const std::vector<Spec> specs = {
      {"coherefs_agent_leases_granted_total", "Entry/attr leases granted to guests.",
       MetricType::Counter, [](const Sample& s) { return Count(s.m->leases_granted); }},
      {"coherefs_agent_lease_granted_seconds_total", "Sum of the lengths of granted leases.",
       MetricType::Counter,
       [](const Sample& s) { return Count(s.m->lease_ms_granted) / 1000.0; }},
      {"coherefs_agent_leases_refused_total",
       "Replies that carried no lease: fenced, or a change raced the read.",
       MetricType::Counter, [](const Sample& s) { return Count(s.m->leases_refused); }},
      {"coherefs_agent_live_leases", "Leases guests of this agent may still hold.",
       MetricType::Gauge, [](const Sample& s) { return s.live_leases; }},
      {"coherefs_agent_bumped_slots_total", "Slots bumped after changes by this agent.",
       MetricType::Counter, [](const Sample& s) { return Count(s.m->bumps); }},
      {"coherefs_agent_bump_failures_total", "Bumps the coordinator did not take (retried).",
       MetricType::Counter, [](const Sample& s) { return Count(s.m->bump_failures); }},
      {"coherefs_agent_strict_waits_total",
       "Strict-mode changes that waited for other guests' leases.", MetricType::Counter,
       [](const Sample& s) { return Count(s.m->strict_waits); }},
      {"coherefs_agent_strict_wait_seconds_total", "Time strict-mode changes waited.",
       MetricType::Counter,
       [](const Sample& s) { return Count(s.m->strict_wait_ms) / 1000.0; }},
      {"coherefs_agent_changes_refused_total",
       "Strict-mode changes refused (EIO) because the volume stayed fenced.",
       MetricType::Counter, [](const Sample& s) { return Count(s.m->changes_refused); }},
      {"coherefs_agent_slot_resolves_total", "Resolve calls to the coordinator.",
       MetricType::Counter, [](const Sample& s) { return Count(s.m->resolves); }},
      {"coherefs_agent_slots_resolved_total", "File keys resolved to slots.",
       MetricType::Counter, [](const Sample& s) { return Count(s.m->resolved_keys); }},
      {"coherefs_agent_host_changes_total",
       "Changes seen on the shared directory outside any guest.", MetricType::Counter,
       [](const Sample& s) { return Count(s.m->host_changes); }},
      {"coherefs_agent_invalidated_slots_total",
       "Slots invalidated by the coordinator's stream (leases reported in acks).",
       MetricType::Counter, [](const Sample& s) { return Count(s.m->invalidations); }},
      {"coherefs_agent_table_slots_used", "Allocated slots in the volume's version table.",
       MetricType::Gauge, [](const Sample& s) { return s.slots_used; }},
  };
  std::vector<std::string> volumes;
  std::vector<Sample> samples;
  const auto now = coherence::LeaseClock::now();
  for (const CoherenceSource& src : sources_) {
    volumes.push_back(src.volume);
    samples.push_back(Sample{&src.state->metrics(),
                             static_cast<double>(src.state->leases().LiveLeases(now)),
                             static_cast<double>(src.table->ReadHeader().slots_used)});
  }
  std::vector<prometheus::MetricFamily> families =
      VolumeFamilies<Sample>(specs, volumes, [&](const std::string& v) -> const Sample* {
        for (size_t i = 0; i < volumes.size(); ++i) {
          if (volumes[i] == v) return &samples[i];
        }
        return nullptr;
      });
  prometheus::MetricFamily lengths{"coherefs_agent_lease_length_seconds",
                                   "Lengths of the entry/attr leases granted to guests.",
                                   MetricType::Histogram,
                                   {}};
  for (size_t i = 0; i < volumes.size(); ++i) {
    prometheus::ClientMetric m = HistogramMetric(samples[i].m->lease_length);
    m.label = {{"volume", volumes[i]}};
    lengths.metric.push_back(std::move(m));
  }
  families.push_back(std::move(lengths));
  return families;
}

}  // namespace coherefs::agent::metrics
