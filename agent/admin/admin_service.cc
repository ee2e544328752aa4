#include "agent/admin/admin_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace coherefs::agent::admin {
namespace {

const AdminVolume* FindVolume(const AdminSources& sources, const std::string& name) {
  for (const AdminVolume& v : sources.volumes) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

constexpr uint32_t kMaxPage = 65536;

// The table of `volume`, or the error the proto documents.
absl::StatusOr<coherence::VersionTable*> TableOf(const AdminSources& sources,
                                                 const std::string& volume) {
  if (volume.empty()) return absl::InvalidArgumentError("volume: empty");
  const AdminVolume* v = FindVolume(sources, volume);
  if (v == nullptr) {
    return absl::NotFoundError(absl::StrCat("no volume named \"", volume, "\""));
  }
  if (v->table == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("volume \"", volume, "\" has no version table (no coordinator)"));
  }
  return v->table;
}

uint64_t Load(const std::atomic<uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}

}  // namespace

v1::AgentStatus BuildStatus(const AdminSources& sources) {
  v1::AgentStatus status;
  status.set_agent_id(sources.agent_id);
  status.set_coordinator(sources.coordinator);
  if (sources.link != nullptr) {
    status.set_epoch(sources.link->epoch());
    status.set_fenced(sources.link->fenced());
  }
  for (const AdminVolume& v : sources.volumes) {
    v1::AgentVolumeStatus* out = status.add_volumes();
    out->set_name(v.name);
    out->set_coherence(v.coherence);
    out->set_lease_max_ms(v.lease_max_ms);
    if (v.table != nullptr) {
      coherence::TableHeader header = v.table->ReadHeader();
      out->set_has_table(true);
      out->set_table_capacity(header.capacity);
      out->set_table_slots_used(header.slots_used);
      out->set_table_epoch(header.epoch);
      out->set_table_committed_seq(header.committed_seq);
      // The link's view is authoritative; the header flag mirrors it.
      out->set_fenced(sources.link != nullptr ? sources.link->fenced(v.name) : header.fenced);
    }
    if (v.state != nullptr) {
      const coherence::VolumeCoherenceMetrics& m = v.state->metrics();
      out->set_leases_granted(Load(m.leases_granted));
      out->set_leases_refused(Load(m.leases_refused));
      out->set_bumps(Load(m.bumps));
      out->set_invalidations(Load(m.invalidations));
      out->set_draining(v.state->draining());
    }
  }
  for (const AdminGuest& g : sources.guests) {
    v1::AgentGuestStatus* out = status.add_guests();
    out->set_name(g.name);
    out->set_socket_path(g.socket_path);
    out->set_volume(g.volume);
    if (g.metrics) {
      vhost_user::MetricsSnapshot m = g.metrics();
      out->set_connections(m.connections);
      out->set_requests(m.requests);
      out->set_bad_chains(m.bad_chains);
      out->set_bytes_in(m.bytes_in);
      out->set_bytes_out(m.bytes_out);
    }
    out->set_cache(g.cache);
    if (g.server != nullptr) {
      virtio_fs::GuestSession session = g.server->Session();
      out->set_connected(session.vhost.connected);
      out->set_evicted(session.vhost.evicted);
      out->set_refused_connections(session.vhost.refused);
      out->set_fuse_major(session.fuse.major);
      out->set_fuse_minor(session.fuse.minor);
      out->set_max_write(session.fuse.max_write);
      for (const vhost_user::QueueInfo& q : session.vhost.queues) {
        v1::AgentQueueStatus* qs = out->add_queues();
        qs->set_index(q.index);
        qs->set_size(q.size);
        qs->set_started(q.started);
        qs->set_enabled(q.enabled);
        qs->set_in_flight(q.in_flight);
      }
    }
  }
  return status;
}

absl::StatusOr<v1::GetSlotResponse> ReadSlot(const AdminSources& sources,
                                             const v1::GetSlotRequest& request) {
  absl::StatusOr<coherence::VersionTable*> table = TableOf(sources, request.volume());
  if (!table.ok()) return table.status();
  // Header before the slot: a slot read after the header is at least as new
  // as the header's committed_seq says.
  coherence::TableHeader header = (*table)->ReadHeader();
  absl::StatusOr<uint64_t> version = (*table)->Load(request.slot());
  if (!version.ok()) return version.status();
  v1::GetSlotResponse response;
  response.set_version(*version);
  response.set_slots_used(header.slots_used);
  response.set_epoch(header.epoch);
  response.set_committed_seq(header.committed_seq);
  response.set_fenced(header.fenced);
  return response;
}

absl::StatusOr<v1::ReadTableResponse> ReadTablePage(const AdminSources& sources,
                                                    const v1::ReadTableRequest& request) {
  absl::StatusOr<coherence::VersionTable*> table = TableOf(sources, request.volume());
  if (!table.ok()) return table.status();
  coherence::TableHeader header = (*table)->ReadHeader();
  if (request.start_slot() >= header.capacity) {
    return absl::OutOfRangeError(absl::StrCat("start_slot ", request.start_slot(),
                                              " >= capacity ", header.capacity));
  }
  uint32_t max = request.max_slots() == 0 ? kMaxPage : std::min(request.max_slots(), kMaxPage);
  uint32_t end = request.start_slot() + std::min(max, header.capacity - request.start_slot());
  v1::ReadTableResponse response;
  response.set_slots_used(header.slots_used);
  response.set_epoch(header.epoch);
  response.set_committed_seq(header.committed_seq);
  response.set_fenced(header.fenced);
  response.set_capacity(header.capacity);
  response.set_start_slot(request.start_slot());
  for (uint32_t slot = request.start_slot(); slot < end; ++slot) {
    absl::StatusOr<uint64_t> version = (*table)->Load(slot);
    if (!version.ok()) return version.status();
    response.add_versions(*version);
  }
  return response;
}

namespace {

// Every call: compute the answer (or the error), then finish the RPC.
template <typename Response>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx,
                                 absl::StatusOr<Response> result, Response* response) {
  if (result.ok()) *response = std::move(*result);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

}  // namespace

absl::StatusOr<v1::DrainResponse> SetDrain(const AdminSources& sources,
                                           const v1::DrainRequest& request) {
  v1::DrainResponse response;
  bool found = false;
  for (const AdminVolume& v : sources.volumes) {
    if (!request.volume().empty() && v.name != request.volume()) continue;
    found = true;
    if (v.state == nullptr) {
      if (request.volume().empty()) continue;
      return absl::FailedPreconditionError(
          absl::StrCat("volume ", v.name, " has coherence off: it grants no leases"));
    }
    v.state->SetDraining(request.drain());
    response.add_volumes(v.name);
  }
  if (!found && !request.volume().empty()) {
    return absl::NotFoundError(absl::StrCat("no volume named ", request.volume()));
  }
  return response;
}

namespace {

// The server of guest `name`, or the error the proto documents.
absl::StatusOr<virtio_fs::Server*> GuestServer(const AdminSources& sources,
                                              const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("guest name: empty");
  for (const AdminGuest& g : sources.guests) {
    if (g.name != name) continue;
    if (g.server == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("guest \"", name, "\" has no session control"));
    }
    return g.server;
  }
  return absl::NotFoundError(absl::StrCat("no guest named \"", name, "\""));
}

}  // namespace

absl::StatusOr<v1::EvictGuestResponse> EvictGuest(const AdminSources& sources,
                                                  const v1::EvictGuestRequest& request) {
  absl::StatusOr<virtio_fs::Server*> server = GuestServer(sources, request.name());
  if (!server.ok()) return server.status();
  v1::EvictGuestResponse response;
  response.set_was_connected((*server)->Evict());
  LOG_WARN("guest evicted by an operator; its socket refuses connections until admitted")
      .Kv("guest", request.name())
      .Kv("was_connected", response.was_connected());
  return response;
}

absl::StatusOr<v1::AdmitGuestResponse> AdmitGuest(const AdminSources& sources,
                                                  const v1::AdmitGuestRequest& request) {
  absl::StatusOr<virtio_fs::Server*> server = GuestServer(sources, request.name());
  if (!server.ok()) return server.status();
  v1::AdmitGuestResponse response;
  response.set_was_evicted((*server)->Admit());
  LOG_INFO("guest admitted").Kv("guest", request.name()).Kv("was_evicted",
                                                            response.was_evicted());
  return response;
}

grpc::ServerUnaryReactor* AgentAdminService::EvictGuest(grpc::CallbackServerContext* ctx,
                                                        const v1::EvictGuestRequest* request,
                                                        v1::EvictGuestResponse* response) {
  return Answer(ctx, admin::EvictGuest(sources_, *request), response);
}

grpc::ServerUnaryReactor* AgentAdminService::AdmitGuest(grpc::CallbackServerContext* ctx,
                                                        const v1::AdmitGuestRequest* request,
                                                        v1::AdmitGuestResponse* response) {
  return Answer(ctx, admin::AdmitGuest(sources_, *request), response);
}

grpc::ServerUnaryReactor* AgentAdminService::Drain(grpc::CallbackServerContext* ctx,
                                                   const v1::DrainRequest* request,
                                                   v1::DrainResponse* response) {
  return Answer(ctx, SetDrain(sources_, *request), response);
}

grpc::ServerUnaryReactor* AgentAdminService::GetStatus(grpc::CallbackServerContext* ctx,
                                                       const v1::GetStatusRequest*,
                                                       v1::AgentStatus* response) {
  return Answer(ctx, absl::StatusOr<v1::AgentStatus>(BuildStatus(sources_)), response);
}

grpc::ServerUnaryReactor* AgentAdminService::GetSlot(grpc::CallbackServerContext* ctx,
                                                     const v1::GetSlotRequest* request,
                                                     v1::GetSlotResponse* response) {
  return Answer(ctx, ReadSlot(sources_, *request), response);
}

grpc::ServerUnaryReactor* AgentAdminService::ReadTable(grpc::CallbackServerContext* ctx,
                                                       const v1::ReadTableRequest* request,
                                                       v1::ReadTableResponse* response) {
  return Answer(ctx, ReadTablePage(sources_, *request), response);
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    const std::string& listen, AdminSources sources,
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  std::unique_ptr<AdminServer> server(new AdminServer());
  server->service_ = std::make_unique<AgentAdminService>(std::move(sources));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second agent on the same address
  // would then share it silently instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort(
      listen, credentials != nullptr ? credentials : grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("admin endpoint ", listen, ": cannot listen"));
  }
  server->address_ = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
  return server;
}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (server_ != nullptr) {
    server_->Shutdown();
    server_->Wait();
  }
}

}  // namespace coherefs::agent::admin
