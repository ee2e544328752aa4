// The gRPC face of the coordinator (proto/coherefs/v1/coordinator.proto),
// on the callback API. It only adapts: rejects calls whose deadline has
// passed, converts messages, calls the CoherenceCore, converts the status
// with ToGrpcStatus(), records metrics. All logic lives in the core.
//
// Subscribe streams have one outstanding write each; the core's
// per-subscriber queue (or its catch-up from the stored log) holds the rest,
// so a slow stream never blocks bumps or other streams.
//
// The core and the metrics (may be null) must outlive the service, and the
// gRPC server must be shut down before the core is destroyed. Thread-safe.
#ifndef COHEREFS_SERVER_COORDINATOR_SERVICE_H_
#define COHEREFS_SERVER_COORDINATOR_SERVICE_H_

#include "proto/coherefs/v1/coordinator.grpc.pb.h"
#include "server/agent_access.h"
#include "server/coherence_core.h"
#include "server/metrics.h"

namespace coherefs::server {

class CoordinatorService final
    : public coherefs::v1::Coordinator::CallbackService {
 public:
  // `mtls`: the server authenticates callers with client certificates, so
  // agent ids are bound to them (server/agent_access.h); false: --insecure.
  CoordinatorService(CoherenceCore* core, Metrics* metrics, bool mtls = false);

  grpc::ServerUnaryReactor* RegisterAgent(
      grpc::CallbackServerContext* ctx,
      const v1::RegisterAgentRequest* request,
      v1::RegisterAgentResponse* response) override;
  grpc::ServerUnaryReactor* KeepAlive(grpc::CallbackServerContext* ctx,
                                      const v1::KeepAliveRequest* request,
                                      v1::KeepAliveResponse* response) override;
  grpc::ServerUnaryReactor* UnregisterAgent(
      grpc::CallbackServerContext* ctx,
      const v1::UnregisterAgentRequest* request,
      v1::UnregisterAgentResponse* response) override;
  grpc::ServerUnaryReactor* CreateVolume(grpc::CallbackServerContext* ctx,
                                         const v1::CreateVolumeRequest* request,
                                         v1::Volume* response) override;
  grpc::ServerUnaryReactor* ListVolumes(
      grpc::CallbackServerContext* ctx, const v1::ListVolumesRequest* request,
      v1::ListVolumesResponse* response) override;
  grpc::ServerUnaryReactor* DescribeVolume(
      grpc::CallbackServerContext* ctx,
      const v1::DescribeVolumeRequest* request,
      v1::Volume* response) override;
  grpc::ServerUnaryReactor* Resolve(grpc::CallbackServerContext* ctx,
                                    const v1::ResolveRequest* request,
                                    v1::ResolveResponse* response) override;
  grpc::ServerUnaryReactor* Bump(grpc::CallbackServerContext* ctx,
                                 const v1::BumpRequest* request,
                                 v1::BumpResponse* response) override;
  grpc::ServerWriteReactor<v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* ctx,
      const v1::SubscribeRequest* request) override;
  grpc::ServerUnaryReactor* Snapshot(grpc::CallbackServerContext* ctx,
                                     const v1::SnapshotRequest* request,
                                     v1::SnapshotResponse* response) override;
  grpc::ServerUnaryReactor* AckInvalidations(
      grpc::CallbackServerContext* ctx,
      const v1::AckInvalidationsRequest* request,
      v1::AckInvalidationsResponse* response) override;
  grpc::ServerUnaryReactor* ListAgents(
      grpc::CallbackServerContext* ctx, const v1::ListAgentsRequest* request,
      v1::ListAgentsResponse* response) override;

 private:
  // Finishes `reactor` with `status`, counting errors by method.
  void Finish(grpc::ServerUnaryReactor* reactor, const char* method,
              const absl::Status& status);
  // DEADLINE_EXCEEDED if the call's deadline has already passed.
  static absl::Status CheckDeadline(grpc::CallbackServerContext* ctx);

  CoherenceCore* const core_;
  Metrics* const metrics_;
  AgentAccess access_;
};

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_COORDINATOR_SERVICE_H_
