#include "agent/agent.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <utility>

#include <sys/mman.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/config/config.h"
#include "agent/fuse_session.h"
#include "agent/kept_state.h"
#include "agent/metrics/coherence_collector.h"
#include "agent/metrics/fuse_ops_collector.h"
#include "agent/metrics/guest_collector.h"
#include "agent/metrics/link_collector.h"
#include "agent/metrics/supervisor_collector.h"
#include "client/coordinator_client.h"
#include "agent/passthrough/passthrough_fs.h"
#include "agent/sandbox/info_collector.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/tls.h"
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
  // Under coherence a negative entry is a lease on its directory like any
  // other, so "no such name" can be cached safely.
  options.negative_entries = volume.coherence() != config::COHERENCE_OFF;
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

// The FUSE InitInfo as kept in the store.
std::string EncodeInit(const fuse::InitInfo& info) {
  return absl::StrCat(info.major, " ", info.minor, " ", info.flags, " ", info.max_write);
}

std::optional<fuse::InitInfo> DecodeInit(const std::string& blob) {
  std::vector<std::string> parts = absl::StrSplit(blob, ' ');
  fuse::InitInfo info;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &info.major) ||
      !absl::SimpleAtoi(parts[1], &info.minor) || !absl::SimpleAtoi(parts[2], &info.flags) ||
      !absl::SimpleAtoi(parts[3], &info.max_write)) {
    return std::nullopt;
  }
  return info;
}

// A guest connection's FUSE session. With a keeper, what must outlive this
// process is kept there: the INIT state ("init") and the node/handle
// journal ("nodes", a memfd); a session the previous process kept is taken
// up (resumed) instead of waiting for an INIT that will not come.
std::unique_ptr<fuse::RequestHandler> NewKeptFuseSession(
    passthrough::Options fs_options, fuse::Server::Options server_options,
    coherence::VolumeCoherence* coherent, vhost_user::SessionKeeper* keeper) {
  if (keeper == nullptr) return NewFuseSession(fs_options, server_options, coherent);
  std::optional<fuse::InitInfo> resume;
  UniqueFd journal;
  if (std::optional<vhost_user::KeptEntry> init = keeper->Take("init"); init.has_value()) {
    resume = DecodeInit(init->blob);
    if (resume.has_value()) {
      if (std::optional<vhost_user::KeptEntry> nodes = keeper->Take("nodes"); nodes.has_value()) {
        journal = std::move(nodes->fd);
      }
    } else {
      LOG_WARN("kept FUSE session unreadable; the guest must mount again").Kv("blob", init->blob);
    }
  }
  if (!journal.valid()) {
    journal.Reset(::memfd_create("coherefs-nodes", MFD_CLOEXEC));
    if (!journal.valid() || !keeper->Put("nodes", "", journal.get()).ok()) {
      LOG_WARN("cannot keep the node journal; a restart will lose this guest's open files")
          .Kv("errno", errno);
      journal.Reset();
    }
  }
  fs_options.journal_fd = journal.get();  // Create dups it
  server_options.on_session_change = [keeper](const fuse::InitInfo* info) {
    absl::Status s = info != nullptr ? keeper->Put("init", EncodeInit(*info)) : keeper->Remove("init");
    if (!s.ok()) LOG_WARN("cannot keep the FUSE session state").Kv("error", s);
  };
  return NewFuseSession(fs_options, server_options, coherent, resume);
}

const config::Volume* FindVolume(const config::AgentConfig& config, const std::string& name) {
  for (const config::Volume& v : config.volumes()) {
    if (v.name() == name) return &v;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(const config::AgentConfig& config,
                                                    supervisor::StateStore* store) {
  RETURN_IF_ERROR(config::Validate(config));
  std::unique_ptr<Agent> agent(new Agent(config, store));
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
    coherence::VolumeCoherence* coherent = coherence(volume->name());
    Guest guest{g.name(), volume->name()};
    if (store_ != nullptr) {
      guest.vhost_keeper =
          std::make_unique<PrefixKeeper>(store_, absl::StrCat("guest/", g.name(), "/vhost/"));
      guest.fuse_keeper =
          std::make_shared<PrefixKeeper>(store_, absl::StrCat("guest/", g.name(), "/fuse/"));
    }
    auto server = virtio_fs::Server::Start(
        g.socket_path(), device,
        [fs_options, server_options, coherent, keeper = guest.fuse_keeper] {
          return NewKeptFuseSession(fs_options, server_options, coherent, keeper.get());
        },
        guest.vhost_keeper.get());
    if (!server.ok()) {
      return absl::Status(server.status().code(),
                          absl::StrCat("guest ", g.name(), ": ", server.status().message()));
    }
    LOG_INFO("serving guest")
        .Kv("guest", g.name())
        .Kv("socket", g.socket_path())
        .Kv("volume", volume->name())
        .Kv("shared_dir", volume->shared_dir())
        .Kv("cache", config::CacheModeName(volume->cache()))
        .Kv("coherence", config::CoherenceModeName(volume->coherence()));
    guest.server = std::move(*server);
    guests_.push_back(std::move(guest));
  }
  for (const config::Volume& v : config_.volumes()) {
    if (v.host_mount().empty()) continue;
    HostMount mount{v.name(), v.host_mount(),
                    NewFuseSession(FsOptions(v), server_options, coherence(v.name())),
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
  RETURN_IF_ERROR(StartMetrics());
  return StartAdmin();
}

absl::Status Agent::StartAdmin() {
  if (config_.admin_listen().empty()) return absl::OkStatus();
  admin::AdminSources sources;
  if (link_ != nullptr) {
    sources.agent_id = config_.agent_id();
    sources.coordinator = config_.coordinator();
    sources.link = link_.get();
  }
  for (const config::Volume& v : config_.volumes()) {
    coherence::VolumeCoherence* state = coherence(v.name());
    sources.volumes.push_back({v.name(), std::string(config::CoherenceModeName(v.coherence())),
                               state != nullptr ? v.lease_max_ms() : 0, version_table(v.name()),
                               state});
  }
  for (const Guest& g : guests_) {
    virtio_fs::Server* server = g.server.get();
    sources.guests.push_back({g.name, server->socket_path(), g.volume,
                              [server] { return server->Metrics(); }});
    sources.guests.back().cache =
        std::string(config::CacheModeName(FindVolume(config_, g.volume)->cache()));
    sources.guests.back().server = server;
  }
  ASSIGN_OR_RETURN(auto credentials, MakeServerCredentials(config::TransportOf(config_)));
  ASSIGN_OR_RETURN(admin_, admin::AdminServer::Start(config_.admin_listen(), std::move(sources),
                                                     std::move(credentials)));
  LOG_INFO("admin endpoint").Kv("address", admin_->address());
  return absl::OkStatus();
}

absl::Status Agent::StartCoordinatorLink() {
  if (config_.coordinator().empty()) return absl::OkStatus();
  coherence::CoordinatorLinkOptions options;
  options.target = config_.coordinator();
  options.agent_id = config_.agent_id();
  options.adopt_live_registration = restarted();
  if (config_.lease_ttl_ms() > 0) options.lease_ttl = absl::Milliseconds(config_.lease_ttl_ms());
  ASSIGN_OR_RETURN(options.credentials, MakeChannelCredentials(config::TransportOf(config_)));
  // Best effort: create the volumes the agent serves. When the coordinator
  // is not up yet, the link keeps retrying and an operator (or the
  // coordinator's --volumes) creates them.
  // A short deadline: guests must not wait on an unreachable coordinator.
  client::CoordinatorClientOptions admin_options;
  admin_options.deadline = absl::Seconds(2);
  admin_options.credentials = options.credentials;
  auto admin = client::CoordinatorClient::Create(config_.coordinator(), admin_options);
  for (const config::Volume& v : config_.volumes()) {
    uint32_t capacity = v.table_capacity() > 0 ? v.table_capacity() : kDefaultTableCapacity;
    ASSIGN_OR_RETURN(auto table, MakeTable(v.name(), capacity));
    options.volumes.push_back({v.name(), table.get()});
    tables_.emplace_back(v.name(), std::move(table));
    auto created = admin->CreateVolume(v.name(), capacity);
    if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) {
      LOG_WARN("could not create volume at the coordinator; the link will keep trying")
          .Kv("volume", v.name())
          .Kv("error", created.status());
    }
  }
  RETURN_IF_ERROR(StartCoherence(&options));
  link_ = std::make_unique<coherence::CoordinatorLink>(std::move(options));
  for (CoherentVolume& cv : coherent_) {
    cv.backend = std::make_unique<coherence::LinkBackend>(link_.get(), cv.name);
    coherence::VersionTable* table = version_table(cv.name);
    const config::Volume* v = FindVolume(config_, cv.name);
    coherence::VolumeCoherenceOptions vo;
    vo.volume = cv.name;
    vo.mode = v->coherence() == config::COHERENCE_BOUNDED ? coherence::CoherenceMode::kBounded
                                                          : coherence::CoherenceMode::kStrict;
    vo.lease.max_lease = std::chrono::milliseconds(v->lease_max_ms());
    vo.margin = std::chrono::milliseconds(v->lease_margin_ms());
    cv.state = std::make_unique<coherence::VolumeCoherence>(vo, table, cv.backend.get());
    if (restarted()) {
      // The dead process's leases are unknown: assume every slot is leased
      // for as long as any lease it could have granted.
      cv.state->leases().AssumeLeasedUntil(coherence::LeaseClock::now() + vo.lease.max_lease +
                                           vo.margin);
    }
    cv.state->Start();
    if (v->host_watch()) {
      coherence::HostWatcherOptions wo;
      wo.shared_dir = v->shared_dir();
      coherence::VolumeCoherence* state = cv.state.get();
      auto watcher = coherence::HostWatcher::Start(
          wo, [state](std::vector<std::string> keys) { state->OnHostChanges(keys); },
          [state] { state->OnHostOverflow(); });
      if (watcher.ok()) {
        cv.watcher = std::move(*watcher);
      } else {
        // Guests stay coherent with each other; host-side edits then reach
        // them only when their leases end.
        LOG_WARN("host watch unavailable; changes made on the host are not announced")
            .Kv("volume", cv.name)
            .Kv("error", watcher.status());
      }
    }
    LOG_INFO("volume coherence")
        .Kv("volume", cv.name)
        .Kv("mode", coherence::CoherenceModeName(vo.mode))
        .Kv("lease_max_ms", v->lease_max_ms())
        .Kv("lease_margin_ms", v->lease_margin_ms())
        .Kv("host_watch", cv.watcher != nullptr);
  }
  RETURN_IF_ERROR(link_->Start());
  RETURN_IF_ERROR(ExportTables());
  LOG_INFO("following coordinator")
      .Kv("coordinator", config_.coordinator())
      .Kv("agent_id", config_.agent_id())
      .Kv("volumes", config_.volumes_size());
  return absl::OkStatus();
}

absl::Status Agent::StartCoherence(coherence::CoordinatorLinkOptions* link_options) {
  uint32_t longest_ms = 0;
  for (const config::Volume& v : config_.volumes()) {
    if (v.coherence() == config::COHERENCE_OFF) continue;
    coherent_.push_back(CoherentVolume{v.name(), nullptr, nullptr});
    longest_ms = std::max(longest_ms, v.lease_max_ms() + v.lease_margin_ms());
  }
  // What the coordinator assumes of this agent's guests once it stops
  // hearing from us: the longest lease plus margin, and a second for the
  // wake-up of our lease thread after our own deadline (we stop granting
  // then, the coordinator times us out later still).
  link_options->max_guest_lease_ms = coherent_.empty() ? 0 : longest_ms + 1000;
  link_options->lease_reporter = [this](const std::string& volume,
                                        const std::vector<uint32_t>* slots) {
    std::vector<v1::SlotLease> out;
    for (const coherence::SlotRemaining& r : ReportLeases(volume, slots)) {
      v1::SlotLease lease;
      lease.set_slot(r.slot);
      lease.set_remaining_ms(static_cast<uint32_t>(r.remaining.count()));
      out.push_back(lease);
    }
    return out;
  };
  return absl::OkStatus();
}

std::vector<coherence::SlotRemaining> Agent::ReportLeases(const std::string& volume,
                                                          const std::vector<uint32_t>* slots) {
  coherence::VolumeCoherence* state = coherence(volume);
  if (state == nullptr) return {};
  return state->LeasesFor(slots);
}

coherence::VolumeCoherence* Agent::coherence(const std::string& volume) const {
  for (const CoherentVolume& cv : coherent_) {
    if (cv.name == volume) return cv.state.get();
  }
  return nullptr;
}

absl::Status Agent::ExportTables() const {
  if (config_.table_export_dir().empty()) return absl::OkStatus();
  for (const auto& [name, table] : tables_) {
    std::string json = absl::StrCat("{\"volume\": \"", name, "\", \"path\": \"",
                                    table->ExportPath(), "\", \"size\": ",
                                    table->mapping_size(), ", \"qemu_args\": [");
    std::vector<std::string> args = table->QemuArgs(absl::StrCat("coherefs-", name));
    for (size_t i = 0; i < args.size(); ++i) {
      absl::StrAppend(&json, i == 0 ? "" : ", ", "\"", args[i], "\"");
    }
    absl::StrAppend(&json, "]}\n");
    const std::string path = absl::StrCat(config_.table_export_dir(), "/", name, ".table.json");
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << json;
      if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
    }
    LOG_INFO("version table exported").Kv("volume", name).Kv("info", path);
  }
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
  collectors_.push_back(std::make_shared<sandbox::InfoCollector>());
  collectors_.push_back(std::make_shared<metrics::SupervisorCollector>(
      store_ != nullptr, store_ != nullptr ? store_->restarts() : 0,
      store_ != nullptr ? store_->replacements() : 0));
  std::vector<metrics::GuestSource> sources;
  for (const Guest& g : guests_) {
    virtio_fs::Server* server = g.server.get();
    sources.push_back({g.name, g.volume, [server] { return server->Metrics(); }});
  }
  collectors_.push_back(std::make_shared<metrics::GuestCollector>(std::move(sources)));
  if (link_ != nullptr) {
    collectors_.push_back(std::make_shared<metrics::LinkCollector>(link_.get(), VolumeNames()));
  }
  if (!coherent_.empty()) {
    std::vector<metrics::CoherenceSource> sources;
    for (const CoherentVolume& cv : coherent_) {
      sources.push_back({cv.name, cv.state.get(), version_table(cv.name)});
    }
    collectors_.push_back(std::make_shared<metrics::CoherenceCollector>(std::move(sources)));
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
  // Metrics and admin first: they read the servers stopped below.
  exposer_.reset();
  if (admin_ != nullptr) admin_->Stop();
  for (Guest& g : guests_) g.server->Stop();
  for (HostMount& m : host_mounts_) {
    absl::Status status = m.transport->Stop();
    if (!status.ok()) LOG_WARN("unmount failed").Kv("dir", m.dir).Kv("error", status);
  }
  guests_.clear();
  host_mounts_.clear();
  // No session is left to use the coherence state; stop it before the link
  // it bumps through.
  for (CoherentVolume& cv : coherent_) {
    if (cv.watcher != nullptr) cv.watcher->Stop();
    if (cv.state != nullptr) cv.state->Stop();
  }
  if (link_ != nullptr) link_->Stop();
}

Agent::Agent(config::AgentConfig config, supervisor::StateStore* store)
    : config_(std::move(config)), store_(store) {}

bool Agent::restarted() const { return store_ != nullptr && store_->restarts() > 0; }

absl::StatusOr<std::unique_ptr<coherence::VersionTable>> Agent::MakeTable(
    const std::string& volume, uint32_t capacity) {
  if (store_ == nullptr) return coherence::VersionTable::Create(volume, capacity);
  const std::string name = "table/" + volume;
  if (std::optional<supervisor::StateStore::Entry> kept = store_->Take(name);
      kept.has_value() && kept->fd.valid()) {
    auto adopted = coherence::VersionTable::Adopt(volume, capacity, kept->fd.get());
    if (adopted.ok()) {
      LOG_INFO("took up the version table a previous agent process kept").Kv("volume", volume);
      return adopted;
    }
    // Guests that map the old table see it fenced for good: it is never
    // unfenced again, and new guests get the new one.
    LOG_WARN("cannot take up the kept version table; starting a new one")
        .Kv("volume", volume)
        .Kv("error", adopted.status());
  }
  ASSIGN_OR_RETURN(auto table, coherence::VersionTable::Create(volume, capacity, /*keepable=*/true));
  if (absl::Status kept = store_->Put(name, "", table->fd()); !kept.ok()) {
    LOG_WARN("cannot keep the version table; a restart will give guests a new one")
        .Kv("volume", volume)
        .Kv("error", kept);
  }
  return table;
}

Agent::~Agent() { Stop(); }

}  // namespace coherefs::agent
