#include "server/metrics.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace coherefs::server {
namespace {

// 50 us .. ~3 s, doubling: covers a page-cache fsync up to a stalled disk,
// and an in-process hand-off up to a congested stream.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  std::vector<double> b;
  for (double s = 50e-6; s < 4; s *= 2) b.push_back(s);
  return b;
}

}  // namespace

Metrics::Metrics(absl::string_view version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  bumps_ = &prometheus::BuildCounter()
                .Name("coherefs_coordinator_bumps_total")
                .Help("Slot bumps committed (one per log entry).")
                .Register(r)
                .Add({});
  commits_ = &prometheus::BuildCounter()
                  .Name("coherefs_coordinator_group_commits_total")
                  .Help("Store commits (each one fsync) by the committer.")
                  .Register(r)
                  .Add({});
  batch_size_ = &prometheus::BuildHistogram()
                     .Name("coherefs_coordinator_bump_batch_size")
                     .Help("Requests (bumps, allocating resolves, volume "
                           "creations) sharing one group commit.")
                     .Register(r)
                     .Add({}, prometheus::Histogram::BucketBoundaries{
                                  1, 2, 4, 8, 16, 32, 64, 128, 256, 512,
                                  1024});
  fsync_seconds_ = &prometheus::BuildHistogram()
                        .Name("coherefs_coordinator_fsync_seconds")
                        .Help("Latency of one store commit (write + fsync).")
                        .Register(r)
                        .Add({}, LatencyBuckets());
  fanout_seconds_ =
      &prometheus::BuildHistogram()
           .Name("coherefs_coordinator_fanout_latency_seconds")
           .Help("From a change's commit to its write on a subscriber stream "
                 "(live-queue deliveries only).")
           .Register(r)
           .Add({}, LatencyBuckets());
  subscribers_ = &prometheus::BuildGauge()
                      .Name("coherefs_coordinator_subscribers")
                      .Help("Open Subscribe streams.")
                      .Register(r)
                      .Add({});
  auto& depth = prometheus::BuildGauge()
                    .Name("coherefs_coordinator_subscriber_queue_depth")
                    .Help("Entries waiting in subscriber live queues.")
                    .Register(r);
  queue_depth_max_ = &depth.Add({{"stat", "max"}});
  queue_depth_sum_ = &depth.Add({{"stat", "sum"}});
  resyncs_ = &prometheus::BuildCounter()
                  .Name("coherefs_coordinator_resyncs_total")
                  .Help("ResyncRequired sent (needed seq was compacted).")
                  .Register(r)
                  .Add({});
  overflows_ = &prometheus::BuildCounter()
                    .Name("coherefs_coordinator_subscriber_overflows_total")
                    .Help("Subscribers switched from their live queue to "
                          "reading the stored log.")
                    .Register(r)
                    .Add({});
  agents_ = &prometheus::BuildGauge()
                 .Name("coherefs_coordinator_agents")
                 .Help("Agents with a live lease.")
                 .Register(r)
                 .Add({});
  expirations_ = &prometheus::BuildCounter()
                      .Name("coherefs_coordinator_agent_expirations_total")
                      .Help("Agent leases that expired without renewal.")
                      .Register(r)
                      .Add({});
  store_bytes_ = &prometheus::BuildGauge()
                      .Name("coherefs_coordinator_rocksdb_size_bytes")
                      .Help("Bytes in the RocksDB directory.")
                      .Register(r)
                      .Add({});
  epoch_ = &prometheus::BuildGauge()
                .Name("coherefs_coordinator_epoch")
                .Help("The coordinator's epoch (incremented at each start).")
                .Register(r)
                .Add({});
  volumes_ = &prometheus::BuildGauge()
                  .Name("coherefs_coordinator_volumes")
                  .Help("Volumes.")
                  .Register(r)
                  .Add({});
  prometheus::BuildGauge()
      .Name("coherefs_coordinator_build_info")
      .Help("Always 1; the labels describe the build.")
      .Register(r)
      .Add({{"version", std::string(version)}})
      .Set(1);
  rpc_errors_ = &prometheus::BuildCounter()
                     .Name("coherefs_coordinator_rpc_errors_total")
                     .Help("RPCs that returned an error, by method and code.")
                     .Register(r);
}

void Metrics::OnGroupCommit(size_t requests, size_t bumps,
                            absl::Duration store_latency) {
  commits_->Increment();
  bumps_->Increment(double(bumps));
  batch_size_->Observe(double(requests));
  fsync_seconds_->Observe(absl::ToDoubleSeconds(store_latency));
}

void Metrics::OnAgentExpired(const std::string& agent_id) {
  expirations_->Increment();
}

void Metrics::OnResync() { resyncs_->Increment(); }

void Metrics::OnSubscriberOverflow() { overflows_->Increment(); }

void Metrics::ObserveFanoutLatency(absl::Duration latency) {
  fanout_seconds_->Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::CountRpcError(absl::string_view method, absl::string_view code) {
  rpc_errors_->Add({{"method", std::string(method)}, {"code", std::string(code)}})
      .Increment();
}

void Metrics::Refresh(const CoreStats& stats, uint64_t store_size_bytes) {
  subscribers_->Set(double(stats.subscribers));
  queue_depth_max_->Set(double(stats.queue_depth_max));
  queue_depth_sum_->Set(double(stats.queue_depth_sum));
  agents_->Set(double(stats.live_agents));
  epoch_->Set(double(stats.epoch));
  volumes_->Set(double(stats.volumes));
  store_bytes_->Set(double(store_size_bytes));
}

absl::StatusOr<int> Metrics::Expose(const std::string& listen) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics listener on ", listen, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace coherefs::server
