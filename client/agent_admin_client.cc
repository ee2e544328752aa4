#include "client/agent_admin_client.h"

#include <algorithm>
#include <utility>

#include "common/grpc_status.h"

namespace coherefs::client {

std::unique_ptr<AgentAdminClient> AgentAdminClient::Create(
    const std::string& target, absl::Duration deadline,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  return std::make_unique<AgentAdminClient>(
      grpc::CreateChannel(target, credentials != nullptr ? credentials
                                                         : grpc::InsecureChannelCredentials()),
      deadline);
}

AgentAdminClient::AgentAdminClient(std::shared_ptr<grpc::Channel> channel,
                                   absl::Duration deadline)
    : channel_(std::move(channel)),
      stub_(v1::AgentAdmin::NewStub(channel_)),
      deadline_(deadline) {}

void AgentAdminClient::Prepare(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
}

absl::StatusOr<v1::AgentStatus> AgentAdminClient::GetStatus() {
  grpc::ClientContext context;
  Prepare(&context);
  v1::AgentStatus response;
  grpc::Status status = stub_->GetStatus(&context, v1::GetStatusRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::GetSlotResponse> AgentAdminClient::GetSlot(const std::string& volume,
                                                              uint32_t slot) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::GetSlotRequest request;
  request.set_volume(volume);
  request.set_slot(slot);
  v1::GetSlotResponse response;
  grpc::Status status = stub_->GetSlot(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::DrainResponse> AgentAdminClient::Drain(const std::string& volume,
                                                          bool drain) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::DrainRequest request;
  request.set_volume(volume);
  request.set_drain(drain);
  v1::DrainResponse response;
  grpc::Status status = stub_->Drain(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::ReadTableResponse> AgentAdminClient::ReadTable(const std::string& volume,
                                                                  uint32_t start_slot,
                                                                  uint32_t max_slots) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::ReadTableRequest request;
  request.set_volume(volume);
  request.set_start_slot(start_slot);
  request.set_max_slots(max_slots);
  v1::ReadTableResponse response;
  grpc::Status status = stub_->ReadTable(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<std::vector<uint64_t>> AgentAdminClient::ReadTableRange(
    const std::string& volume, uint32_t end, v1::ReadTableResponse* header) {
  std::vector<uint64_t> versions;
  uint32_t start = 0;
  bool first = true;
  while (first || start < end) {
    // end 0: one slot for the header, its version unused.
    uint32_t want = end == 0 ? 1 : std::min<uint32_t>(end - start, 65536);
    absl::StatusOr<v1::ReadTableResponse> page = ReadTable(volume, start, want);
    if (!page.ok()) return page.status();
    if (first) {
      first = false;
      *header = *page;
      header->clear_versions();
    }
    if (end == 0 || page->versions_size() == 0) break;
    versions.insert(versions.end(), page->versions().begin(), page->versions().end());
    start += page->versions_size();
    if (start >= page->capacity()) break;
  }
  return versions;
}

absl::StatusOr<v1::EvictGuestResponse> AgentAdminClient::EvictGuest(const std::string& name) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::EvictGuestRequest request;
  request.set_name(name);
  v1::EvictGuestResponse response;
  grpc::Status status = stub_->EvictGuest(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::AdmitGuestResponse> AgentAdminClient::AdmitGuest(const std::string& name) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::AdmitGuestRequest request;
  request.set_name(name);
  v1::AdmitGuestResponse response;
  grpc::Status status = stub_->AdmitGuest(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace coherefs::client
