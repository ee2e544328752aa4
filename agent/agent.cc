#include "agent/agent.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/config/config.h"
#include "agent/fuse_session.h"
#include "agent/metrics/fuse_ops_collector.h"
#include "agent/metrics/guest_collector.h"
#include "agent/metrics/link_collector.h"
#include "client/coordinator_client.h"
#include "agent/passthrough/passthrough_fs.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "prometheus/exposer.h"

namespace coherefs::agent {
namespace {

// Request queues offered to each guest. QEMU's vhost-user-fs-pci uses
// num-request-queues (default 1) of them and refuses a backend offering
// fewer than it wants, so offer a few.
constexpr uint32_t kRequestQueues = 8;

// Version-table slots per volume when the config does not say.
constexpr uint32_t kDefaultTableCapacity = 1u << 20;

passthrough::Options FsOptions(const config::Volume& volume) {
  passthrough::Options options;
  options.shared_dir = volume.shared_dir();
  switch (volume.cache()) {
    case config::CACHE_NONE:
      options.cache = passthrough::CacheMode::kNone;
      break;
    case config::CACHE_ALWAYS:
      options.cache = passthrough::CacheMode::kAlways;
      break;
    default:
      options.cache = passthrough::CacheMode::kAuto;
  }
  // With zero timeouts the attributes READDIRPLUS carries are useless to the
  // guest and cost a lookup (and later a FORGET) per entry; virtiofsd turns
  // it off for cache=none as well. bench/vm measured `ls -l` at 0.77x of
  // virtiofsd with it on.
  options.readdirplus = volume.cache() != config::CACHE_NONE;
  options.writeback = volume.writeback();
  options.readonly = volume.readonly();
  options.xattr = !volume.has_xattr() || volume.xattr();
  return options;
}

// The host kernel checks permissions against the attributes, as Linux's
// virtiofs driver does in every guest (it mounts with default_permissions):
// the passthrough runs as root and applies the caller's credentials only
// to creates, so host-mount users get the same rules as guests.
fuse::DevFuseTransport::Options HostMountOptions() {
  fuse::DevFuseTransport::Options options;
  options.default_permissions = true;
  return options;
}

const config::Volume* FindVolume(const config::AgentConfig& config, const std::string& name) {
  for (const config::Volume& v : config.volumes()) {
    if (v.name() == name) return &v;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(const config::AgentConfig& config) {
  RETURN_IF_ERROR(config::Validate(config));
  std::unique_ptr<Agent> agent(new Agent(config));
  absl::Status status = agent->StartAll();
  if (!status.ok()) {
    agent->Stop();
    return status;
  }
  return agent;
}

absl::Status Agent::StartAll() {
  RETURN_IF_ERROR(StartCoordinatorLink());
  fuse::Server::Options server_options;
  server_options.stats = &op_stats_;
  for (const config::Guest& g : config_.guests()) {
    const config::Volume* volume = FindVolume(config_, g.volume());
    passthrough::Options fs_options = FsOptions(*volume);
    virtio_fs::DeviceOptions device;
    device.tag = volume->name().substr(0, virtio_fs::kTagSize);
    device.num_request_queues = kRequestQueues;
    device.thread_pool_size = config_.thread_pool_size();
    auto server = virtio_fs::Server::Start(
        g.socket_path(), device,
        [fs_options, server_options] { return NewFuseSession(fs_options, server_options); });
    if (!server.ok()) {
      return absl::Status(server.status().code(),
                          absl::StrCat("guest ", g.name(), ": ", server.status().message()));
    }
    LOG_INFO("serving guest")
        .Kv("guest", g.name())
        .Kv("socket", g.socket_path())
        .Kv("volume", volume->name())
        .Kv("shared_dir", volume->shared_dir())
        .Kv("cache", config::CacheModeName(volume->cache()));
    guests_.push_back(Guest{g.name(), volume->name(), std::move(*server)});
  }
  for (const config::Volume& v : config_.volumes()) {
    if (v.host_mount().empty()) continue;
    HostMount mount{v.name(), v.host_mount(), NewFuseSession(FsOptions(v), server_options),
                    std::make_unique<fuse::DevFuseTransport>(HostMountOptions())};
    int threads = std::max<int>(1, config_.thread_pool_size());
    absl::Status status = mount.transport->Start(v.host_mount(), mount.session.get(), threads);
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("host mount of volume ", v.name(), ": ", status.message()));
    }
    LOG_INFO("mounted volume on host").Kv("volume", v.name()).Kv("dir", v.host_mount());
    host_mounts_.push_back(std::move(mount));
  }
  return StartMetrics();
}

absl::Status Agent::StartCoordinatorLink() {
  if (config_.coordinator().empty()) return absl::OkStatus();
  coherence::CoordinatorLinkOptions options;
  options.target = config_.coordinator();
  options.agent_id = config_.agent_id();
  if (config_.lease_ttl_ms() > 0) options.lease_ttl = absl::Milliseconds(config_.lease_ttl_ms());
  // Best effort: create the volumes the agent serves. When the coordinator
  // is not up yet, the link keeps retrying and an operator (or the
  // coordinator's --volumes) creates them.
  // A short deadline: guests must not wait on an unreachable coordinator.
  client::CoordinatorClientOptions admin_options;
  admin_options.deadline = absl::Seconds(2);
  auto admin = client::CoordinatorClient::Create(config_.coordinator(), admin_options);
  for (const config::Volume& v : config_.volumes()) {
    uint32_t capacity = v.table_capacity() > 0 ? v.table_capacity() : kDefaultTableCapacity;
    ASSIGN_OR_RETURN(auto table, coherence::VersionTable::Create(v.name(), capacity));
    options.volumes.push_back({v.name(), table.get()});
    tables_.emplace_back(v.name(), std::move(table));
    auto created = admin->CreateVolume(v.name(), capacity);
    if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) {
      LOG_WARN("could not create volume at the coordinator; the link will keep trying")
          .Kv("volume", v.name())
          .Kv("error", created.status());
    }
  }
  link_ = std::make_unique<coherence::CoordinatorLink>(std::move(options));
  RETURN_IF_ERROR(link_->Start());
  LOG_INFO("following coordinator")
      .Kv("coordinator", config_.coordinator())
      .Kv("agent_id", config_.agent_id())
      .Kv("volumes", config_.volumes_size());
  return absl::OkStatus();
}

coherence::VersionTable* Agent::version_table(const std::string& volume) const {
  for (const auto& [name, table] : tables_) {
    if (name == volume) return table.get();
  }
  return nullptr;
}

absl::Status Agent::StartMetrics() {
  if (config_.metrics_listen().empty()) return absl::OkStatus();
  collectors_.push_back(std::make_shared<metrics::FuseOpsCollector>(&op_stats_));
  std::vector<metrics::GuestSource> sources;
  for (const Guest& g : guests_) {
    virtio_fs::Server* server = g.server.get();
    sources.push_back({g.name, g.volume, [server] { return server->Metrics(); }});
  }
  collectors_.push_back(std::make_shared<metrics::GuestCollector>(std::move(sources)));
  if (link_ != nullptr) {
    collectors_.push_back(std::make_shared<metrics::LinkCollector>(link_.get(), VolumeNames()));
  }
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(config_.metrics_listen());
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics endpoint ", config_.metrics_listen(), ": ", e.what()));
  }
  for (const auto& c : collectors_) exposer_->RegisterCollectable(c);
  LOG_INFO("metrics endpoint").Kv("address", metrics_address());
  return absl::OkStatus();
}

std::vector<std::string> Agent::VolumeNames() const {
  std::vector<std::string> names;
  for (const config::Volume& v : config_.volumes()) names.push_back(v.name());
  return names;
}

std::string Agent::metrics_address() const {
  if (!exposer_) return "";
  auto ports = exposer_->GetListeningPorts();
  std::string host = config_.metrics_listen().substr(0, config_.metrics_listen().rfind(':'));
  return ports.empty() ? config_.metrics_listen() : absl::StrCat(host, ":", ports[0]);
}

void Agent::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // Metrics first: the collectors read the servers stopped below.
  exposer_.reset();
  for (Guest& g : guests_) g.server->Stop();
  if (link_ != nullptr) link_->Stop();
  for (HostMount& m : host_mounts_) {
    absl::Status status = m.transport->Stop();
    if (!status.ok()) LOG_WARN("unmount failed").Kv("dir", m.dir).Kv("error", status);
  }
  guests_.clear();
  host_mounts_.clear();
}

Agent::Agent(config::AgentConfig config) : config_(std::move(config)) {}

Agent::~Agent() { Stop(); }

}  // namespace coherefs::agent
