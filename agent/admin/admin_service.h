// The agent's admin gRPC service (proto/coherefs/v1/agent_admin.proto):
// GetStatus, GetSlot and ReadTable over the state the Agent already keeps
// (coordinator link, version tables, volume coherence, guest device
// metrics and sessions), and the calls that change something: Drain
// (whether a volume grants leases, VolumeCoherence::SetDraining) and
// EvictGuest/AdmitGuest (close a guest's vhost-user session and refuse its
// socket, or accept it again: virtio_fs::Server::Evict/Admit).
//
// Ownership: AdminSources borrows the link, tables and coherence states;
// the Agent keeps them alive until after AdminServer::Stop() has returned.
// Thread-safety: the service's methods run on gRPC threads and read atomics,
// seqlocked table headers and the guests' session snapshots
// (virtio_fs::Server::Session, which locks inside); Drain sets an atomic,
// EvictGuest/AdmitGuest go through the thread-safe Server::Evict/Admit. The
// service needs no lock of its own.
//
// Errors (as the proto documents): INVALID_ARGUMENT (empty volume name),
// NOT_FOUND (no table for the volume), OUT_OF_RANGE (slot >= capacity);
// Drain: NOT_FOUND (unknown volume), FAILED_PRECONDITION (coherence off);
// EvictGuest/AdmitGuest: INVALID_ARGUMENT (empty name), NOT_FOUND (unknown
// guest);
// AdminServer::Start: UNAVAILABLE when the address cannot be bound.
#ifndef COHEREFS_AGENT_ADMIN_ADMIN_SERVICE_H_
#define COHEREFS_AGENT_ADMIN_ADMIN_SERVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/coherence/coordinator_link.h"
#include "agent/coherence/version_table.h"
#include "agent/coherence/volume_coherence.h"
#include "agent/vhost_user/metrics.h"
#include "agent/virtio_fs/device.h"
#include "grpcpp/grpcpp.h"
#include "proto/coherefs/v1/agent_admin.grpc.pb.h"

namespace coherefs::agent::admin {

struct AdminVolume {
  std::string name;
  std::string coherence;  // "strict" | "bounded" | "off"
  uint32_t lease_max_ms = 0;
  coherence::VersionTable* table = nullptr;        // nullptr: no coordinator
  coherence::VolumeCoherence* state = nullptr;     // nullptr: coherence off
};

struct AdminGuest {
  std::string name;
  std::string socket_path;
  std::string volume;
  std::function<vhost_user::MetricsSnapshot()> metrics;  // may be empty
  std::string cache;  // "none" | "auto" | "always"
  // The guest's socket server (may be null: no session detail, and
  // EvictGuest/AdmitGuest answer FAILED_PRECONDITION).
  virtio_fs::Server* server = nullptr;
};

struct AdminSources {
  std::string agent_id;     // "" without a coordinator
  std::string coordinator;  // "" without a coordinator
  coherence::CoordinatorLink* link = nullptr;
  std::vector<AdminVolume> volumes;
  std::vector<AdminGuest> guests;
};

// The core of the service, callable without gRPC (and tested so).
v1::AgentStatus BuildStatus(const AdminSources& sources);
absl::StatusOr<v1::GetSlotResponse> ReadSlot(const AdminSources& sources,
                                             const v1::GetSlotRequest& request);
absl::StatusOr<v1::ReadTableResponse> ReadTablePage(const AdminSources& sources,
                                                    const v1::ReadTableRequest& request);
absl::StatusOr<v1::DrainResponse> SetDrain(const AdminSources& sources,
                                           const v1::DrainRequest& request);
absl::StatusOr<v1::EvictGuestResponse> EvictGuest(const AdminSources& sources,
                                                  const v1::EvictGuestRequest& request);
absl::StatusOr<v1::AdmitGuestResponse> AdmitGuest(const AdminSources& sources,
                                                  const v1::AdmitGuestRequest& request);

class AgentAdminService final : public v1::AgentAdmin::CallbackService {
 public:
  explicit AgentAdminService(AdminSources sources) : sources_(std::move(sources)) {}

  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* ctx,
                                      const v1::GetStatusRequest* request,
                                      v1::AgentStatus* response) override;
  grpc::ServerUnaryReactor* GetSlot(grpc::CallbackServerContext* ctx,
                                    const v1::GetSlotRequest* request,
                                    v1::GetSlotResponse* response) override;
  grpc::ServerUnaryReactor* ReadTable(grpc::CallbackServerContext* ctx,
                                      const v1::ReadTableRequest* request,
                                      v1::ReadTableResponse* response) override;
  grpc::ServerUnaryReactor* Drain(grpc::CallbackServerContext* ctx,
                                  const v1::DrainRequest* request,
                                  v1::DrainResponse* response) override;
  grpc::ServerUnaryReactor* EvictGuest(grpc::CallbackServerContext* ctx,
                                       const v1::EvictGuestRequest* request,
                                       v1::EvictGuestResponse* response) override;
  grpc::ServerUnaryReactor* AdmitGuest(grpc::CallbackServerContext* ctx,
                                       const v1::AdmitGuestRequest* request,
                                       v1::AdmitGuestResponse* response) override;

 private:
  const AdminSources sources_;
};

// The service on its own gRPC server, with health checking and reflection.
class AdminServer {
 public:
  // Listens on `listen` (host:port; port 0 picks one) with `credentials`
  // (common/tls.h MakeServerCredentials: mutual TLS, so every caller needs
  // a client certificate the CA signed; or plaintext under --insecure).
  // nullptr: plaintext (tests).
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(
      const std::string& listen, AdminSources sources,
      std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // host:port actually bound.
  const std::string& address() const { return address_; }
  // Ends in-flight calls and stops serving. Idempotent.
  void Stop();

 private:
  AdminServer() = default;
  std::unique_ptr<AgentAdminService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  bool stopped_ = false;
};

}  // namespace coherefs::agent::admin

#endif  // COHEREFS_AGENT_ADMIN_ADMIN_SERVICE_H_
