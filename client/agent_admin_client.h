// A small blocking client of an agent's admin service
// (proto/coherefs/v1/agent_admin.proto), for coherectl and tests. Every call
// has a deadline; grpc::Status becomes absl::Status with the same code
// (UNAVAILABLE: the agent is not listening there).
//
// Thread-safe (gRPC stubs are).
#ifndef COHEREFS_CLIENT_AGENT_ADMIN_CLIENT_H_
#define COHEREFS_CLIENT_AGENT_ADMIN_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/coherefs/v1/agent_admin.grpc.pb.h"

namespace coherefs::client {

class AgentAdminClient {
 public:
  // A channel to `target` (host:port); `deadline` per call. `credentials`
  // from common/tls.h MakeChannelCredentials (mutual TLS, or plaintext under
  // --insecure); nullptr: plaintext (tests).
  static std::unique_ptr<AgentAdminClient> Create(
      const std::string& target, absl::Duration deadline = absl::Seconds(10),
      std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  AgentAdminClient(std::shared_ptr<grpc::Channel> channel, absl::Duration deadline);

  absl::StatusOr<v1::AgentStatus> GetStatus();
  absl::StatusOr<v1::GetSlotResponse> GetSlot(const std::string& volume, uint32_t slot);
  // Drains (drain=true) or undrains a volume ("" = every coherent volume).
  absl::StatusOr<v1::DrainResponse> Drain(const std::string& volume, bool drain);
  // Closes guest `name`'s vhost-user session and refuses its socket until
  // AdmitGuest (see agent_admin.proto).
  absl::StatusOr<v1::EvictGuestResponse> EvictGuest(const std::string& name);
  absl::StatusOr<v1::AdmitGuestResponse> AdmitGuest(const std::string& name);
  absl::StatusOr<v1::ReadTableResponse> ReadTable(const std::string& volume, uint32_t start_slot,
                                                  uint32_t max_slots = 0);
  // Slots [0, end) in pages (end is clamped to the table's capacity);
  // `*header` gets the first page's header fields (versions left empty).
  absl::StatusOr<std::vector<uint64_t>> ReadTableRange(const std::string& volume, uint32_t end,
                                                       v1::ReadTableResponse* header);

 private:
  void Prepare(grpc::ClientContext* context) const;

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::AgentAdmin::Stub> stub_;
  const absl::Duration deadline_;
};

}  // namespace coherefs::client

#endif  // COHEREFS_CLIENT_AGENT_ADMIN_CLIENT_H_
