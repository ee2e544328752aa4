// A small blocking C++ client for the coordinator service
// (proto/coherefs/v1/coordinator.proto): every call has a deadline, and
// grpc::Status is converted to absl::Status with the same code, so callers
// switch on the codes the proto documents.
//
// Used by the coordinator's integration tests, and by the agent, the
// benchmark and coherectl. Thread-safe: one client may be shared by many
// threads (gRPC stubs are). A SubscribeStream is used by one reader thread;
// Cancel() may be called from any thread.
#ifndef COHEREFS_CLIENT_COORDINATOR_CLIENT_H_
#define COHEREFS_CLIENT_COORDINATOR_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/coherefs/v1/coordinator.grpc.pb.h"

namespace coherefs::client {

struct CoordinatorClientOptions {
  // Deadline of every unary call. Default 10 s.
  absl::Duration deadline = absl::Seconds(10);
  // Give this client its own TCP connection instead of sharing one with
  // other channels to the same target (gRPC's global subchannel pool).
  // Default false.
  bool private_connection = false;
  // Channel credentials (common/tls.h MakeChannelCredentials: mutual TLS,
  // or plaintext under --insecure). Default nullptr: plaintext (tests).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

// One Subscribe stream.
class SubscribeStream {
 public:
  // Blocks for the next message; false once the stream has ended (then call
  // Finish() for the status).
  bool Read(v1::SubscribeResponse* message);
  // The stream's final status (blocks until it is known). OK after a
  // ResyncRequired; see the proto for the others.
  absl::Status Finish();
  // Ends the stream from the client side; Read() then returns false and
  // Finish() returns kCancelled.
  void Cancel();

 private:
  friend class CoordinatorClient;
  SubscribeStream() = default;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderInterface<v1::SubscribeResponse>> reader_;
};

class CoordinatorClient {
 public:
  // A channel to `target` (host:port) with options.credentials.
  static std::unique_ptr<CoordinatorClient> Create(
      const std::string& target, CoordinatorClientOptions options = {});
  CoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                    CoordinatorClientOptions options);

  // Waits until the channel is connected or `timeout` passes
  // (kDeadlineExceeded).
  absl::Status WaitForConnected(absl::Duration timeout);

  // `volumes`: the volumes the agent may use (RegisterAgentRequest.volumes).
  absl::StatusOr<v1::RegisterAgentResponse> RegisterAgent(
      const std::string& agent_id, absl::Duration lease_ttl = absl::ZeroDuration(),
      uint32_t max_guest_lease_ms = 0, const std::vector<std::string>& volumes = {});
  // `deadline` > 0 bounds this call below the client's default (the agent
  // must not wait on a renewal past the lease it renews).
  absl::StatusOr<v1::KeepAliveResponse> KeepAlive(
      const std::string& agent_id, absl::Duration deadline = absl::ZeroDuration());
  absl::Status UnregisterAgent(const std::string& agent_id);

  absl::StatusOr<v1::Volume> CreateVolume(const std::string& name,
                                          uint32_t capacity = 0);
  absl::StatusOr<std::vector<v1::Volume>> ListVolumes();
  absl::StatusOr<v1::Volume> DescribeVolume(const std::string& name);
  // The agents the coordinator knows and the epoch (for operators).
  absl::StatusOr<v1::ListAgentsResponse> ListAgents();

  // `agent_id`: the resolving agent ("" for tools).
  absl::StatusOr<v1::ResolveResponse> Resolve(
      const std::string& volume, const std::vector<std::string>& keys,
      const std::string& agent_id = "");
  absl::StatusOr<v1::BumpResponse> Bump(const std::string& volume,
                                        const std::vector<uint32_t>& slots,
                                        const std::string& agent_id = "",
                                        bool wait_for_leases = false);

  absl::StatusOr<v1::SnapshotResponse> Snapshot(const std::string& volume,
                                                uint32_t start_slot,
                                                uint32_t max_slots = 0);
  // Every page; `*resume_seq` gets the first page's committed_seq + 1, the
  // sequence to subscribe from afterwards.
  absl::StatusOr<std::vector<uint64_t>> FullSnapshot(const std::string& volume,
                                                     uint64_t* resume_seq);

  absl::Status AckInvalidations(const v1::AckInvalidationsRequest& request);

  // Opens a stream (no deadline). Errors such as NOT_FOUND arrive as the
  // stream's Finish() status after Read() returns false.
  std::unique_ptr<SubscribeStream> Subscribe(const std::string& volume,
                                             uint64_t from_seq,
                                             const std::string& agent_id = "");

  v1::Coordinator::Stub* stub() { return stub_.get(); }

 private:
  void Prepare(grpc::ClientContext* context) const;

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::Coordinator::Stub> stub_;
  const CoordinatorClientOptions options_;
};

}  // namespace coherefs::client

#endif  // COHEREFS_CLIENT_COORDINATOR_CLIENT_H_
