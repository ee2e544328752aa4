#include "server/coordinator_service.h"

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/failpoint.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/tls.h"

namespace coherefs::server {
namespace {

// tests/faults/README.md. stream.send: before each Subscribe write (error
// ends the stream with the injected status, as a broken send would; sleep
// delays the thread that pumps it). bump.reply: a durable bump, before its
// reply (panic: the "acknowledged or not" window; error: the caller sees a
// failure for a bump that happened).
COHEREFS_FAILPOINT_DEFINE(kStreamSend, "service.stream.send");
COHEREFS_FAILPOINT_DEFINE(kBumpReply, "service.bump.reply");

void ToProto(const VolumeInfo& info, v1::Volume* out) {
  out->set_name(info.name);
  out->set_capacity(info.capacity);
  out->set_slots_used(info.slots_used);
  out->set_committed_seq(info.committed_seq);
  out->set_first_retained_seq(info.first_retained_seq);
}

// A stream that fails before it starts (bad request).
class FailedStream final
    : public grpc::ServerWriteReactor<v1::SubscribeResponse> {
 public:
  explicit FailedStream(const absl::Status& status) {
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

// The state of one Subscribe stream, shared between the reactor and the
// subscription's wake-up callback (which holds it weakly), so a wake-up that
// races with the end of the stream finds `reactor_` null instead of freed
// memory.
class StreamPump : public std::enable_shared_from_this<StreamPump> {
 public:
  StreamPump(grpc::ServerWriteReactor<v1::SubscribeResponse>* reactor,
             std::shared_ptr<Subscription> sub, Metrics* metrics)
      : reactor_(reactor), sub_(std::move(sub)), metrics_(metrics) {}

  void Start() {
    std::weak_ptr<StreamPump> weak = shared_from_this();
    sub_->SetWakeup([weak] {
      if (auto self = weak.lock()) self->Pump();
    });
    Pump();
  }

  // Starts the next write, or finishes the stream, if the stream is idle
  // and the subscription has something. Never holds mu_ while calling into
  // the reactor, since gRPC may run reactions inline.
  void Pump() {
    grpc::ServerWriteReactor<v1::SubscribeResponse>* reactor;
    bool write = false;
    grpc::Status finish;
    {
      absl::MutexLock lock(&mu_);
      if (reactor_ == nullptr || writing_ || finished_) return;
      SubscriptionEvent ev = sub_->Next();
      reactor = reactor_;
      switch (ev.kind) {
        case SubscriptionEvent::Kind::kNone:
          return;
        case SubscriptionEvent::Kind::kEnd:
          finished_ = true;
          finish = ToGrpcStatus(ev.end_status);
          break;
        case SubscriptionEvent::Kind::kInvalidations: {
          response_.Clear();
          auto* batch = response_.mutable_invalidations();
          for (size_t i = 0; i < ev.entries.size(); ++i) {
            const LogEntry& e = ev.entries[i];
            auto* inv = batch->add_invalidations();
            inv->set_seq(e.seq);
            inv->set_slot(e.slot);
            inv->set_version(e.version);
            if (i < ev.publish_times.size()) {
              inv->set_commit_time_unix_ns(
                  static_cast<uint64_t>(absl::ToUnixNanos(ev.publish_times[i])));
            }
          }
          if (metrics_ != nullptr &&
              ev.oldest_publish_time != absl::InfinitePast()) {
            metrics_->ObserveFanoutLatency(absl::Now() -
                                           ev.oldest_publish_time);
          }
          write = true;
          break;
        }
        case SubscriptionEvent::Kind::kProgress:
          response_.Clear();
          response_.mutable_progress()->set_committed_seq(ev.committed_seq);
          response_.mutable_progress()->set_epoch(ev.epoch);
          write = true;
          break;
        case SubscriptionEvent::Kind::kResync: {
          response_.Clear();
          auto* r = response_.mutable_resync_required();
          r->set_needed_seq(ev.needed_seq);
          r->set_first_retained_seq(ev.first_retained_seq);
          r->set_committed_seq(ev.committed_seq);
          LOG_INFO("subscriber needs resync")
              .Kv("volume", sub_->volume())
              .Kv("agent", sub_->agent_id())
              .Kv("needed_seq", ev.needed_seq)
              .Kv("first_retained_seq", ev.first_retained_seq);
          write = true;
          break;
        }
      }
      writing_ = write;
    }
    if (write) {
      absl::Status injected = kStreamSend.Eval();
      if (!injected.ok()) {
        {
          absl::MutexLock lock(&mu_);
          writing_ = false;
          finished_ = true;
        }
        sub_->Cancel();
        reactor->Finish(ToGrpcStatus(injected));
        return;
      }
      reactor->StartWrite(&response_);
    } else {
      reactor->Finish(finish);
    }
  }

  void WriteDone(bool ok) {
    grpc::ServerWriteReactor<v1::SubscribeResponse>* reactor = nullptr;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !finished_ && reactor_ != nullptr) {
        // The client is gone; end the call so OnDone runs.
        finished_ = true;
        reactor = reactor_;
      }
    }
    if (reactor != nullptr) {
      sub_->Cancel();
      reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                                   "subscriber stream broken"));
      return;
    }
    Pump();
  }

  void Cancelled() {
    sub_->Cancel();
    Pump();
  }

  void Done() {
    {
      absl::MutexLock lock(&mu_);
      reactor_ = nullptr;
    }
    sub_->SetWakeup(nullptr);
    sub_->Cancel();
  }

 private:
  absl::Mutex mu_;
  grpc::ServerWriteReactor<v1::SubscribeResponse>* reactor_
      ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Written only by the thread that set writing_, read by gRPC until
  // OnWriteDone.
  v1::SubscribeResponse response_;

  const std::shared_ptr<Subscription> sub_;
  Metrics* const metrics_;
};

class SubscribeStream final
    : public grpc::ServerWriteReactor<v1::SubscribeResponse> {
 public:
  SubscribeStream(std::shared_ptr<Subscription> sub, Metrics* metrics)
      : pump_(std::make_shared<StreamPump>(this, std::move(sub), metrics)) {
    pump_->Start();
  }
  void OnWriteDone(bool ok) override { pump_->WriteDone(ok); }
  void OnCancel() override { pump_->Cancelled(); }
  void OnDone() override {
    pump_->Done();
    delete this;
  }

 private:
  const std::shared_ptr<StreamPump> pump_;
};

}  // namespace

CoordinatorService::CoordinatorService(CoherenceCore* core, Metrics* metrics, bool mtls)
    : core_(core), metrics_(metrics), access_(mtls) {}

namespace {

// The caller's certificate identities (empty for plaintext).
std::vector<std::string> Peer(grpc::CallbackServerContext* ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  return auth != nullptr ? PeerIdentities(*auth) : std::vector<std::string>();
}

// A refusal is a security event: log it (the caller sees the same text).
absl::Status Refused(absl::Status s, const char* method, grpc::CallbackServerContext* ctx) {
  if (!s.ok()) {
    LOG_WARN("call refused").Kv("method", method).Kv("peer", ctx->peer()).Kv("status", s);
  }
  return s;
}

}  // namespace

absl::Status CoordinatorService::CheckDeadline(
    grpc::CallbackServerContext* ctx) {
  if (ctx->deadline() < std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError("deadline passed before the call ran");
  }
  return absl::OkStatus();
}

void CoordinatorService::Finish(grpc::ServerUnaryReactor* reactor,
                                const char* method,
                                const absl::Status& status) {
  grpc::Status g = ToGrpcStatus(status);
  if (!g.ok()) {
    if (metrics_ != nullptr) {
      metrics_->CountRpcError(method, GrpcCodeName(g.error_code()));
    }
    LOG_DEBUG("rpc failed").Kv("method", method).Kv("status", status);
  }
  reactor->Finish(g);
}

grpc::ServerUnaryReactor* CoordinatorService::RegisterAgent(
    grpc::CallbackServerContext* ctx, const v1::RegisterAgentRequest* request,
    v1::RegisterAgentResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    s = Refused(access_.CheckAgentId(Peer(ctx), request->agent_id()), "RegisterAgent", ctx);
  }
  if (s.ok()) {
    auto grant = core_->RegisterAgent(
        request->agent_id(), absl::Milliseconds(request->lease_ttl_ms()),
        request->max_guest_lease_ms());
    s = grant.status();
    if (grant.ok()) {
      access_.Registered(request->agent_id(), std::vector<std::string>(
                                                  request->volumes().begin(),
                                                  request->volumes().end()));
      response->set_agent_id(request->agent_id());
      response->set_lease_ttl_ms(absl::ToInt64Milliseconds(grant->lease_ttl));
      response->set_epoch(grant->epoch);
    }
  }
  Finish(reactor, "RegisterAgent", s);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::KeepAlive(
    grpc::CallbackServerContext* ctx, const v1::KeepAliveRequest* request,
    v1::KeepAliveResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) s = Refused(access_.CheckAgentId(Peer(ctx), request->agent_id()), "KeepAlive", ctx);
  if (s.ok()) {
    auto grant = core_->KeepAlive(request->agent_id());
    s = grant.status();
    if (grant.ok()) {
      response->set_lease_ttl_ms(absl::ToInt64Milliseconds(grant->lease_ttl));
      response->set_epoch(grant->epoch);
    }
  }
  Finish(reactor, "KeepAlive", s);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::UnregisterAgent(
    grpc::CallbackServerContext* ctx,
    const v1::UnregisterAgentRequest* request,
    v1::UnregisterAgentResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    s = Refused(access_.CheckAgentId(Peer(ctx), request->agent_id()), "UnregisterAgent", ctx);
  }
  if (s.ok()) s = core_->UnregisterAgent(request->agent_id());
  if (s.ok()) access_.Unregistered(request->agent_id());
  Finish(reactor, "UnregisterAgent", s);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::CreateVolume(
    grpc::CallbackServerContext* ctx, const v1::CreateVolumeRequest* request,
    v1::Volume* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (!s.ok()) {
    Finish(reactor, "CreateVolume", s);
    return reactor;
  }
  core_->CreateVolume(request->name(), request->capacity(),
                      [this, reactor, response](absl::StatusOr<VolumeInfo> r) {
                        if (r.ok()) ToProto(*r, response);
                        Finish(reactor, "CreateVolume", r.status());
                      });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::ListVolumes(
    grpc::CallbackServerContext* ctx, const v1::ListVolumesRequest* request,
    v1::ListVolumesResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    for (const VolumeInfo& info : core_->ListVolumes()) {
      ToProto(info, response->add_volumes());
    }
  }
  Finish(reactor, "ListVolumes", s);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::DescribeVolume(
    grpc::CallbackServerContext* ctx, const v1::DescribeVolumeRequest* request,
    v1::Volume* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    auto info = core_->DescribeVolume(request->name());
    s = info.status();
    if (info.ok()) ToProto(*info, response);
  }
  Finish(reactor, "DescribeVolume", s);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Resolve(
    grpc::CallbackServerContext* ctx, const v1::ResolveRequest* request,
    v1::ResolveResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    s = Refused(access_.CheckVolume(Peer(ctx), request->agent_id(), request->volume()),
                "Resolve", ctx);
  }
  if (!s.ok()) {
    Finish(reactor, "Resolve", s);
    return reactor;
  }
  std::vector<std::string> keys(request->keys().begin(),
                                request->keys().end());
  core_->Resolve(request->volume(), std::move(keys),
                 [this, reactor, response](absl::StatusOr<ResolveResult> r) {
                   if (r.ok()) {
                     for (const SlotVersion& sv : r->slots) {
                       auto* out = response->add_slots();
                       out->set_slot(sv.slot);
                       out->set_version(sv.version);
                     }
                     response->set_committed_seq(r->committed_seq);
                   }
                   Finish(reactor, "Resolve", r.status());
                 });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Bump(
    grpc::CallbackServerContext* ctx, const v1::BumpRequest* request,
    v1::BumpResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    s = Refused(access_.CheckVolume(Peer(ctx), request->agent_id(), request->volume()), "Bump",
                ctx);
  }
  if (!s.ok()) {
    Finish(reactor, "Bump", s);
    return reactor;
  }
  BumpOptions options;
  options.agent_id = request->agent_id();
  options.wait_for_leases = request->wait_for_leases();
  core_->Bump(request->volume(),
              std::vector<uint32_t>(request->slots().begin(),
                                    request->slots().end()),
              std::move(options),
              [this, reactor, response](absl::StatusOr<BumpResult> r) {
                if (r.ok()) {
                  for (uint64_t v : r->versions) response->add_versions(v);
                  for (uint64_t seq : r->seqs) response->add_seqs(seq);
                  response->set_lease_wait_ms(
                      absl::ToInt64Milliseconds(r->lease_wait));
                }
                absl::Status status = r.status();
                if (status.ok()) status = kBumpReply.Eval();
                Finish(reactor, "Bump", status);
              });
  return reactor;
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* CoordinatorService::Subscribe(
    grpc::CallbackServerContext* ctx, const v1::SubscribeRequest* request) {
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    s = Refused(access_.CheckVolume(Peer(ctx), request->agent_id(), request->volume()),
                "Subscribe", ctx);
  }
  absl::StatusOr<std::shared_ptr<Subscription>> sub =
      s.ok() ? core_->Subscribe(request->volume(), request->from_seq(),
                                request->agent_id())
             : absl::StatusOr<std::shared_ptr<Subscription>>(s);
  if (!sub.ok()) {
    if (metrics_ != nullptr) {
      metrics_->CountRpcError(
          "Subscribe", GrpcCodeName(ToGrpcStatus(sub.status()).error_code()));
    }
    return new FailedStream(sub.status());
  }
  LOG_DEBUG("subscriber joined")
      .Kv("volume", request->volume())
      .Kv("agent", request->agent_id())
      .Kv("from_seq", request->from_seq());
  return new SubscribeStream(std::move(*sub), metrics_);
}

grpc::ServerUnaryReactor* CoordinatorService::Snapshot(
    grpc::CallbackServerContext* ctx, const v1::SnapshotRequest* request,
    v1::SnapshotResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    auto page = core_->Snapshot(request->volume(), request->start_slot(),
                                request->max_slots());
    s = page.status();
    if (page.ok()) {
      response->set_committed_seq(page->committed_seq);
      response->set_epoch(page->epoch);
      response->set_start_slot(page->start_slot);
      response->set_slots_used(page->slots_used);
      response->mutable_versions()->Add(page->versions.begin(),
                                        page->versions.end());
    }
  }
  Finish(reactor, "Snapshot", s);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::AckInvalidations(
    grpc::CallbackServerContext* ctx,
    const v1::AckInvalidationsRequest* request,
    v1::AckInvalidationsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    s = Refused(access_.CheckVolume(Peer(ctx), request->agent_id(), request->volume()),
                "AckInvalidations", ctx);
  }
  if (s.ok()) {
    std::vector<std::pair<uint32_t, uint32_t>> leases;
    leases.reserve(request->leases_size());
    for (const v1::SlotLease& l : request->leases()) {
      leases.emplace_back(l.slot(), l.remaining_ms());
    }
    s = core_->AckInvalidations(request->agent_id(), request->volume(),
                                request->seq(), leases);
  }
  Finish(reactor, "AckInvalidations", s);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::ListAgents(
    grpc::CallbackServerContext* ctx, const v1::ListAgentsRequest* request,
    v1::ListAgentsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = CheckDeadline(ctx);
  if (s.ok()) {
    response->set_epoch(core_->epoch());
    for (const AgentInfo& a : core_->ListAgents()) {
      v1::AgentInfo* out = response->add_agents();
      out->set_agent_id(a.agent_id);
      out->set_live(a.live);
      out->set_lease_remaining_ms(absl::ToInt64Milliseconds(a.lease_remaining));
      out->set_lease_ttl_ms(absl::ToInt64Milliseconds(a.lease_ttl));
      out->set_expired_for_ms(absl::ToInt64Milliseconds(a.expired_for));
      out->set_last_keepalive_age_ms(absl::ToInt64Milliseconds(a.since_keepalive));
      out->set_max_guest_lease_ms(a.max_guest_lease_ms);
      for (const AgentVolumeState& v : a.volumes) {
        v1::AgentVolumeState* vs = out->add_volumes();
        vs->set_volume(v.volume);
        vs->set_streaming(v.streaming);
        vs->set_committed_seq(v.committed_seq);
        vs->set_delivered_seq(v.delivered_seq);
        vs->set_acked_seq(v.acked_seq);
      }
    }
  }
  Finish(reactor, "ListAgents", s);
  return reactor;
}

}  // namespace coherefs::server
