#include "client/coordinator_client.h"

#include <utility>

#include "common/grpc_status.h"

namespace coherefs::client {

bool SubscribeStream::Read(v1::SubscribeResponse* message) {
  return reader_->Read(message);
}

absl::Status SubscribeStream::Finish() {
  return FromGrpcStatus(reader_->Finish());
}

void SubscribeStream::Cancel() { context_.TryCancel(); }

std::unique_ptr<CoordinatorClient> CoordinatorClient::Create(
    const std::string& target, CoordinatorClientOptions options) {
  grpc::ChannelArguments args;
  if (options.private_connection) {
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  }
  // gRPC's default reconnect backoff grows to 120 s; an agent whose
  // coordinator restarted must find it again within a second or so (it is
  // fenced meanwhile).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // gRPC uses this "minimum backoff" as the deadline of each connection
  // attempt: 100 ms cut TLS handshakes short on a loaded host ("handshaker
  // shutdown"). A refused connection still fails at once.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return std::make_unique<CoordinatorClient>(
      grpc::CreateCustomChannel(target,
                                options.credentials != nullptr
                                    ? options.credentials
                                    : grpc::InsecureChannelCredentials(),
                                args),
      options);
}

CoordinatorClient::CoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                                     CoordinatorClientOptions options)
    : channel_(std::move(channel)),
      stub_(v1::Coordinator::NewStub(channel_)),
      options_(options) {}

absl::Status CoordinatorClient::WaitForConnected(absl::Duration timeout) {
  if (channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError("coordinator channel did not connect");
}

void CoordinatorClient::Prepare(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
}

// Runs one unary call with the client's deadline.
#define COHEREFS_UNARY_(method, request, Response)             \
  grpc::ClientContext context;                                 \
  Prepare(&context);                                           \
  Response response;                                           \
  grpc::Status status = stub_->method(&context, request, &response); \
  if (!status.ok()) return FromGrpcStatus(status);

absl::StatusOr<v1::RegisterAgentResponse> CoordinatorClient::RegisterAgent(
    const std::string& agent_id, absl::Duration lease_ttl,
    uint32_t max_guest_lease_ms, const std::vector<std::string>& volumes) {
  v1::RegisterAgentRequest request;
  request.set_agent_id(agent_id);
  for (const std::string& v : volumes) request.add_volumes(v);
  request.set_lease_ttl_ms(absl::ToInt64Milliseconds(lease_ttl));
  request.set_max_guest_lease_ms(max_guest_lease_ms);
  COHEREFS_UNARY_(RegisterAgent, request, v1::RegisterAgentResponse);
  return response;
}

absl::StatusOr<v1::KeepAliveResponse> CoordinatorClient::KeepAlive(
    const std::string& agent_id, absl::Duration deadline) {
  v1::KeepAliveRequest request;
  request.set_agent_id(agent_id);
  if (deadline <= absl::ZeroDuration() || deadline >= options_.deadline) {
    COHEREFS_UNARY_(KeepAlive, request, v1::KeepAliveResponse);
    return response;
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  v1::KeepAliveResponse response;
  grpc::Status status = stub_->KeepAlive(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::Status CoordinatorClient::UnregisterAgent(const std::string& agent_id) {
  v1::UnregisterAgentRequest request;
  request.set_agent_id(agent_id);
  COHEREFS_UNARY_(UnregisterAgent, request, v1::UnregisterAgentResponse);
  return absl::OkStatus();
}

absl::StatusOr<v1::Volume> CoordinatorClient::CreateVolume(
    const std::string& name, uint32_t capacity) {
  v1::CreateVolumeRequest request;
  request.set_name(name);
  request.set_capacity(capacity);
  COHEREFS_UNARY_(CreateVolume, request, v1::Volume);
  return response;
}

absl::StatusOr<std::vector<v1::Volume>> CoordinatorClient::ListVolumes() {
  v1::ListVolumesRequest request;
  COHEREFS_UNARY_(ListVolumes, request, v1::ListVolumesResponse);
  return std::vector<v1::Volume>(response.volumes().begin(),
                                 response.volumes().end());
}

absl::StatusOr<v1::ListAgentsResponse> CoordinatorClient::ListAgents() {
  v1::ListAgentsRequest request;
  COHEREFS_UNARY_(ListAgents, request, v1::ListAgentsResponse);
  return response;
}

absl::StatusOr<v1::Volume> CoordinatorClient::DescribeVolume(
    const std::string& name) {
  v1::DescribeVolumeRequest request;
  request.set_name(name);
  COHEREFS_UNARY_(DescribeVolume, request, v1::Volume);
  return response;
}

absl::StatusOr<v1::ResolveResponse> CoordinatorClient::Resolve(
    const std::string& volume, const std::vector<std::string>& keys,
    const std::string& agent_id) {
  v1::ResolveRequest request;
  request.set_volume(volume);
  request.set_agent_id(agent_id);
  for (const std::string& key : keys) request.add_keys(key);
  COHEREFS_UNARY_(Resolve, request, v1::ResolveResponse);
  return response;
}

absl::StatusOr<v1::BumpResponse> CoordinatorClient::Bump(
    const std::string& volume, const std::vector<uint32_t>& slots,
    const std::string& agent_id, bool wait_for_leases) {
  v1::BumpRequest request;
  request.set_volume(volume);
  for (uint32_t slot : slots) request.add_slots(slot);
  request.set_agent_id(agent_id);
  request.set_wait_for_leases(wait_for_leases);
  COHEREFS_UNARY_(Bump, request, v1::BumpResponse);
  return response;
}

absl::StatusOr<v1::SnapshotResponse> CoordinatorClient::Snapshot(
    const std::string& volume, uint32_t start_slot, uint32_t max_slots) {
  v1::SnapshotRequest request;
  request.set_volume(volume);
  request.set_start_slot(start_slot);
  request.set_max_slots(max_slots);
  COHEREFS_UNARY_(Snapshot, request, v1::SnapshotResponse);
  return response;
}

absl::StatusOr<std::vector<uint64_t>> CoordinatorClient::FullSnapshot(
    const std::string& volume, uint64_t* resume_seq) {
  std::vector<uint64_t> versions;
  for (uint32_t start = 0;;) {
    absl::StatusOr<v1::SnapshotResponse> page = Snapshot(volume, start);
    if (!page.ok()) return page.status();
    if (start == 0 && resume_seq != nullptr) {
      *resume_seq = page->committed_seq() + 1;
    }
    versions.insert(versions.end(), page->versions().begin(),
                    page->versions().end());
    start += page->versions_size();
    if (page->versions_size() == 0 || start >= page->slots_used()) break;
  }
  return versions;
}

absl::Status CoordinatorClient::AckInvalidations(
    const v1::AckInvalidationsRequest& request) {
  COHEREFS_UNARY_(AckInvalidations, request, v1::AckInvalidationsResponse);
  return absl::OkStatus();
}

#undef COHEREFS_UNARY_

std::unique_ptr<SubscribeStream> CoordinatorClient::Subscribe(
    const std::string& volume, uint64_t from_seq, const std::string& agent_id) {
  v1::SubscribeRequest request;
  request.set_volume(volume);
  request.set_from_seq(from_seq);
  request.set_agent_id(agent_id);
  std::unique_ptr<SubscribeStream> stream(new SubscribeStream());
  stream->reader_ = stub_->Subscribe(&stream->context_, request);
  return stream;
}

}  // namespace coherefs::client
