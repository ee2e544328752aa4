// Prometheus metrics of the coordinator (prometheus-cpp). Names follow
// coherefs_coordinator_<what>_<unit>; no per-volume, per-agent or
// per-subscriber labels, so cardinality stays fixed.
//
// Metrics is a CoreObserver (group commits, expirations, resyncs) and is
// also fed by the gRPC service (fan-out latency, RPC errors) and by a
// periodic Refresh() with the core's gauges. Thread-safe (prometheus-cpp
// metrics are). The registry is owned here; Expose() serves it over HTTP.
#ifndef COHEREFS_SERVER_METRICS_H_
#define COHEREFS_SERVER_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/coherence_core.h"

namespace coherefs::server {

class Metrics final : public CoreObserver {
 public:
  explicit Metrics(absl::string_view version);

  // CoreObserver.
  void OnGroupCommit(size_t requests, size_t bumps,
                     absl::Duration store_latency) override;
  void OnAgentExpired(const std::string& agent_id) override;
  void OnResync() override;
  void OnSubscriberOverflow() override;

  // Time from a change's commit to its write on a subscriber's stream.
  void ObserveFanoutLatency(absl::Duration latency);
  // A failed RPC, by method and gRPC status code name.
  void CountRpcError(absl::string_view method, absl::string_view code);
  // Gauges from the core and the store.
  void Refresh(const CoreStats& stats, uint64_t store_size_bytes);

  // Serves /metrics on `listen` (host:port; port 0 picks one). Returns the
  // bound port. Errors: kUnavailable if the address cannot be bound.
  absl::StatusOr<int> Expose(const std::string& listen);

  prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;

  prometheus::Counter* bumps_;
  prometheus::Counter* commits_;
  prometheus::Histogram* batch_size_;
  prometheus::Histogram* fsync_seconds_;
  prometheus::Histogram* fanout_seconds_;
  prometheus::Gauge* subscribers_;
  prometheus::Gauge* queue_depth_max_;
  prometheus::Gauge* queue_depth_sum_;
  prometheus::Counter* resyncs_;
  prometheus::Counter* overflows_;
  prometheus::Gauge* agents_;
  prometheus::Counter* expirations_;
  prometheus::Gauge* store_bytes_;
  prometheus::Gauge* epoch_;
  prometheus::Gauge* volumes_;
  prometheus::Family<prometheus::Counter>* rpc_errors_;
};

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_METRICS_H_
