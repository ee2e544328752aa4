#include "agent/vhost_user/connection.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace coherefs::agent::vhost_user {

Connection::Connection(UniqueFd socket, DeviceFactory factory,
                       DeviceMetrics* metrics, int stop_fd)
    : socket_(std::move(socket)),
      factory_(std::move(factory)),
      metrics_(metrics),
      stop_fd_(stop_fd),
      close_fd_(::eventfd(0, EFD_CLOEXEC)) {
  // Replies are small, but a front end that never reads must not block
  // this thread (and so Stop) forever.
  timeval send_timeout{5, 0};
  ::setsockopt(socket_.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout,
               sizeof(send_timeout));
  device_ = factory_();
  num_queues_ = device_ ? std::min<uint32_t>(device_->NumQueues(), 256) : 0;
  for (uint32_t i = 0; i < num_queues_; ++i) {
    queues_.push_back(std::make_unique<QueueState>());
  }
}

Connection::~Connection() { ResetSession(); }

void Connection::Close() {
  uint64_t one = 1;
  ssize_t n = ::write(close_fd_.get(), &one, sizeof(one));
  (void)n;
}

std::vector<QueueInfo> Connection::Queues() const {
  absl::MutexLock lock(&info_mu_);
  std::vector<QueueInfo> out;
  for (uint32_t i = 0; i < queues_.size(); ++i) {
    const QueueState& q = *queues_[i];
    QueueInfo info;
    info.index = i;
    info.size = q.num;
    info.started = q.runner != nullptr;
    info.enabled = q.runner != nullptr ? q.runner->enabled() : q.enabled;
    info.in_flight = q.runner != nullptr ? q.runner->in_flight() : 0;
    out.push_back(info);
  }
  return out;
}

uint64_t Connection::OfferedFeatures() const {
  return Bit(kVirtioFVersion1) | Bit(kVirtioRingFIndirectDesc) |
         Bit(kVirtioRingFEventIdx) | Bit(kVhostUserFProtocolFeatures) |
         (device_->Features() & 0xffffff);
}

uint64_t Connection::OfferedProtocolFeatures() const {
  return Bit(kProtocolFMq) | Bit(kProtocolFReplyAck);
}

bool Connection::RingsStartEnabled() const {
  // vhost-user spec, "Ring states": without VHOST_USER_F_PROTOCOL_FEATURES
  // rings are enabled when started; with it they wait for SET_VRING_ENABLE.
  return !(acked_features_ & Bit(kVhostUserFProtocolFeatures));
}

bool Connection::HasOwnReply(uint32_t request) const {
  switch (static_cast<RequestType>(request)) {
    case RequestType::kGetFeatures:
    case RequestType::kGetProtocolFeatures:
    case RequestType::kGetQueueNum:
    case RequestType::kGetVringBase:
    case RequestType::kGetConfig:
    case RequestType::kGetMaxMemSlots:
      return true;
    default:
      return false;
  }
}

absl::Status Connection::CheckIndex(uint32_t index) const {
  if (index >= num_queues_) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring index ", index, " of ", num_queues_));
  }
  return absl::OkStatus();
}

absl::Status Connection::Serve() {
  absl::Status result = absl::OkStatus();
  for (;;) {
    if (device_ == nullptr) {
      // The factory failed (at connect or after a reset): nothing to serve.
      result = absl::InternalError("device factory returned no device");
      LOG_ERROR("no device for vhost-user session");
      break;
    }
    pollfd fds[3] = {{socket_.get(), POLLIN, 0},
                     {stop_fd_, POLLIN, 0},
                     {close_fd_.get(), POLLIN, 0}};
    int n = ::poll(fds, 3, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      result = LastErrnoStatus("poll vhost-user socket");
      break;
    }
    if (fds[1].revents & POLLIN) {
      result = absl::CancelledError("stopping");
      break;
    }
    if (fds[2].revents & POLLIN) {
      result = absl::AbortedError("session closed by the agent (guest evicted)");
      break;
    }
    absl::StatusOr<Message> msg = ReadMessage(socket_.get(), stop_fd_);
    if (!msg.ok()) {
      if (absl::IsCancelled(msg.status())) {
        result = msg.status();
        break;
      }
      if (!absl::IsUnavailable(msg.status())) {
        metrics_->AddBadMessage();
        LOG_WARN("closing vhost-user connection").Kv("error", msg.status());
        result = msg.status();
      }
      break;
    }
    const uint32_t code = msg->header.request;
    const bool need_reply = (msg->header.flags & kFlagNeedReply) != 0;
    bool replied = false;
    absl::Status status;
    absl::StatusOr<Request> req = DecodeRequest(std::move(*msg));
    if (req.ok()) {
      LOG_DEBUG("vhost-user request").Kv("request", RequestName(code));
      MaybeAdoptSession(req->type);
      status = Handle(*req, &replied);
    } else {
      status = req.status();
    }
    if (!status.ok()) {
      metrics_->AddBadMessage();
      if (log_limiter_.Allow()) {
        LOG_WARN("vhost-user request failed")
            .Kv("request", RequestName(code))
            .Kv("error", status);
      }
    }
    if (replied) continue;
    if (need_reply && !HasOwnReply(code)) {
      // REPLY_ACK: 0 is success, anything else failure.
      absl::Status w = WriteReplyU64(socket_.get(),
                                     static_cast<RequestType>(code),
                                     status.ok() ? 0 : 1);
      if (!w.ok()) {
        result = w;
        break;
      }
      continue;
    }
    if (!status.ok()) {
      result = status;
      break;
    }
  }
  ResetSession();
  return result;
}

void Connection::MaybeAdoptSession(RequestType first) {
  if (session_started_) return;
  session_started_ = true;
  switch (first) {
    case RequestType::kGetFeatures:
    case RequestType::kGetProtocolFeatures:
    case RequestType::kSetProtocolFeatures:
    case RequestType::kSetOwner:
    case RequestType::kResetOwner:
    case RequestType::kResetDevice:
    case RequestType::kGetQueueNum:
    case RequestType::kGetMaxMemSlots:
    case RequestType::kGetConfig:
      return;  // a fresh handshake (or a query that precedes one)
    default:
      break;
  }
  owner_set_ = true;
  acked_features_ = OfferedFeatures();
  acked_protocol_features_ = OfferedProtocolFeatures();
  metrics_->AddAdoptedSession();
  LOG_WARN("vhost-user front end resumed a session negotiated with an "
           "earlier back end; adopting it")
      .Kv("first_request", RequestName(static_cast<uint32_t>(first)));
}

absl::Status Connection::Handle(Request& req, bool* replied) {
  const int sock = socket_.get();
  switch (req.type) {
    case RequestType::kGetFeatures:
      RETURN_IF_ERROR(WriteReplyU64(sock, req.type, OfferedFeatures()));
      *replied = true;
      return absl::OkStatus();

    case RequestType::kSetFeatures: {
      if (req.u64 & ~OfferedFeatures()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "features 0x", absl::Hex(req.u64 & ~OfferedFeatures()),
            " were not offered"));
      }
      uint64_t features = req.u64;
      // Ring flags (EVENT_IDX, INDIRECT) are fixed when a ring starts.
      return RestartRunning([this, features] {
        acked_features_ = features;
        return absl::OkStatus();
      });
    }

    case RequestType::kSetOwner:
      owner_set_ = true;
      return absl::OkStatus();

    case RequestType::kResetOwner:
    case RequestType::kResetDevice:
      ResetSession();
      device_ = factory_();
      return absl::OkStatus();

    case RequestType::kGetProtocolFeatures:
      RETURN_IF_ERROR(
          WriteReplyU64(sock, req.type, OfferedProtocolFeatures()));
      *replied = true;
      return absl::OkStatus();

    case RequestType::kSetProtocolFeatures:
      if (req.u64 & ~OfferedProtocolFeatures()) {
        return absl::InvalidArgumentError("protocol features not offered");
      }
      acked_protocol_features_ = req.u64;
      return absl::OkStatus();

    case RequestType::kGetQueueNum:
      RETURN_IF_ERROR(WriteReplyU64(sock, req.type, num_queues_));
      *replied = true;
      return absl::OkStatus();

    case RequestType::kSetMemTable: {
      // Map first: a table that fails leaves the old one serving.
      ASSIGN_OR_RETURN(std::unique_ptr<GuestMemory> mem,
                       GuestMemory::Map(req.regions, std::move(req.fds)));
      return RestartRunning([this, &mem] {
        memory_ = std::move(mem);
        return absl::OkStatus();
      });
    }

    case RequestType::kSetVringNum: {
      RETURN_IF_ERROR(CheckIndex(req.state.index));
      uint32_t num = req.state.num;
      if (num == 0 || num > kMaxQueueSize || (num & (num - 1)) != 0) {
        return absl::InvalidArgumentError(absl::StrCat("queue size ", num));
      }
      StopRing(req.state.index);
      {
        absl::MutexLock lock(&info_mu_);
        queues_[req.state.index]->num = num;
      }
      return MaybeStart(req.state.index);
    }

    case RequestType::kSetVringAddr: {
      RETURN_IF_ERROR(CheckIndex(req.addr.index));
      if (req.addr.flags & kVringAddrFLog) {
        return absl::InvalidArgumentError("used-ring logging not supported");
      }
      QueueState& q = *queues_[req.addr.index];
      if (memory_ && q.num != 0) {
        RingLayout layout;
        layout.num = q.num;
        layout.desc_uva = req.addr.desc_user_addr;
        layout.avail_uva = req.addr.avail_user_addr;
        layout.used_uva = req.addr.used_user_addr;
        RETURN_IF_ERROR(Vring::CheckLayout(memory_.get(), layout));
      }
      StopRing(req.addr.index);
      q.addr = req.addr;
      q.addr_set = true;
      return MaybeStart(req.addr.index);
    }

    case RequestType::kSetVringBase: {
      RETURN_IF_ERROR(CheckIndex(req.state.index));
      if (req.state.num > 0xffff) {
        return absl::InvalidArgumentError("ring base over 16 bits");
      }
      StopRing(req.state.index);
      queues_[req.state.index]->base = static_cast<uint16_t>(req.state.num);
      return MaybeStart(req.state.index);
    }

    case RequestType::kGetVringBase: {
      RETURN_IF_ERROR(CheckIndex(req.state.index));
      // "Stop the ring": wait for in-flight chains, then report where the
      // next one starts. The kick fd goes; a new SET_VRING_KICK restarts.
      StopRing(req.state.index);
      QueueState& q = *queues_[req.state.index];
      q.kick.Reset();
      VringState reply{req.state.index, q.base};
      RETURN_IF_ERROR(WriteReply(
          sock, req.type,
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&reply),
                              sizeof(reply))));
      *replied = true;
      return absl::OkStatus();
    }

    case RequestType::kSetVringKick: {
      uint32_t index = req.u64 & kVringIndexMask;
      RETURN_IF_ERROR(CheckIndex(index));
      if (req.u64 & kVringNoFdMask) {
        return absl::InvalidArgumentError("kick without fd (polling) unsupported");
      }
      StopRing(index);
      queues_[index]->kick = std::move(req.fds[0]);
      return MaybeStart(index);
    }

    case RequestType::kSetVringCall: {
      uint32_t index = req.u64 & kVringIndexMask;
      RETURN_IF_ERROR(CheckIndex(index));
      queues_[index]->call.Set(req.fds.empty() ? UniqueFd()
                                               : std::move(req.fds[0]));
      return absl::OkStatus();
    }

    case RequestType::kSetVringErr: {
      uint32_t index = req.u64 & kVringIndexMask;
      RETURN_IF_ERROR(CheckIndex(index));
      queues_[index]->err =
          req.fds.empty() ? UniqueFd() : std::move(req.fds[0]);
      return absl::OkStatus();
    }

    case RequestType::kSetVringEnable: {
      RETURN_IF_ERROR(CheckIndex(req.state.index));
      if (!(acked_features_ & Bit(kVhostUserFProtocolFeatures))) {
        return absl::FailedPreconditionError(
            "SET_VRING_ENABLE without VHOST_USER_F_PROTOCOL_FEATURES");
      }
      if (req.state.num > 1) {
        return absl::InvalidArgumentError("enable must be 0 or 1");
      }
      QueueState& q = *queues_[req.state.index];
      {
        absl::MutexLock lock(&info_mu_);
        q.enabled = req.state.num == 1;
      }
      if (q.runner) q.runner->SetEnabled(q.enabled);
      return absl::OkStatus();
    }

    case RequestType::kGetConfig: {
      // Reply with the requested window of the config space, or (vhost-user
      // spec) a zero-size payload when it is out of range.
      std::string config = device_->Config();
      const ConfigHeader& h = req.config;
      std::string reply(reinterpret_cast<const char*>(&h), sizeof(h));
      if (h.offset <= config.size() && h.size <= config.size() - h.offset) {
        reply.append(config, h.offset, h.size);
      } else {
        reply.clear();
      }
      RETURN_IF_ERROR(WriteReply(
          sock, req.type,
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(reply.data()),
                              reply.size())));
      *replied = true;
      return reply.empty() ? absl::InvalidArgumentError("config out of range")
                           : absl::OkStatus();
    }

    default:
      return absl::UnimplementedError(
          absl::StrCat(RequestName(static_cast<uint32_t>(req.type)),
                       " is not supported"));
  }
}

absl::Status Connection::MaybeStart(uint32_t index) {
  QueueState& q = *queues_[index];
  if (q.runner || !memory_ || !q.addr_set || q.num == 0 || !q.kick.valid()) {
    return absl::OkStatus();
  }
  RingLayout layout;
  layout.num = q.num;
  layout.desc_uva = q.addr.desc_user_addr;
  layout.avail_uva = q.addr.avail_user_addr;
  layout.used_uva = q.addr.used_user_addr;
  layout.event_idx = (acked_features_ & Bit(kVirtioRingFEventIdx)) != 0;
  layout.indirect = (acked_features_ & Bit(kVirtioRingFIndirectDesc)) != 0;
  ASSIGN_OR_RETURN(std::unique_ptr<Vring> ring,
                   Vring::Create(memory_.get(), layout, q.base, &q.call));
  bool enabled = q.enabled || RingsStartEnabled();
  auto runner = std::make_unique<QueueRunner>(
      index, std::move(ring), q.kick.get(), enabled,
      device_->WorkersForQueue(index),
      QueueRunner::Context{device_.get(), metrics_, &log_limiter_});
  RETURN_IF_ERROR(runner->Start());
  absl::MutexLock lock(&info_mu_);
  q.runner = std::move(runner);
  return absl::OkStatus();
}

void Connection::StopRing(uint32_t index) {
  QueueState& q = *queues_[index];
  if (!q.runner) return;
  // Stop without the lock (it waits for in-flight chains); Queues() may
  // read the runner meanwhile, so it is released under the lock after.
  q.runner->Stop();
  q.base = q.runner->last_avail_idx();
  absl::MutexLock lock(&info_mu_);
  q.runner.reset();
}

void Connection::StopAllRings() {
  for (uint32_t i = 0; i < queues_.size(); ++i) StopRing(i);
}

absl::Status Connection::RestartRunning(
    const std::function<absl::Status()>& change) {
  std::vector<uint32_t> running;
  for (uint32_t i = 0; i < queues_.size(); ++i) {
    if (queues_[i]->runner) running.push_back(i);
  }
  StopAllRings();
  absl::Status status = change();
  for (uint32_t i : running) {
    absl::Status s = MaybeStart(i);
    if (status.ok()) status = s;
  }
  return status;
}

void Connection::ResetSession() {
  StopAllRings();
  if (device_) {
    device_->Reset();
    device_.reset();
  }
  memory_.reset();
  acked_features_ = 0;
  acked_protocol_features_ = 0;
  owner_set_ = false;
  session_started_ = false;
  absl::MutexLock lock(&info_mu_);
  for (auto& q : queues_) q = std::make_unique<QueueState>();
}

}  // namespace coherefs::agent::vhost_user
