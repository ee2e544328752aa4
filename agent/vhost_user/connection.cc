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

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace coherefs::agent::vhost_user {

COHEREFS_FAILPOINT_DEFINE(kBeforeReply, "vhost.message.before_reply");

Connection::Connection(UniqueFd socket, DeviceFactory factory,
                       DeviceMetrics* metrics, int stop_fd,
                       SessionKeeper* keeper)
    : socket_(std::move(socket)),
      factory_(std::move(factory)),
      metrics_(metrics),
      stop_fd_(stop_fd),
      keeper_(keeper),
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

namespace {

std::string MemName(uint32_t generation, size_t i) {
  return absl::StrCat("mem/", generation, "/", i);
}
std::string QueueName(uint32_t index, const char* what) {
  return absl::StrCat("q/", index, "/", what);
}

}  // namespace

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

bool Connection::ChangesState(uint32_t request) const {
  // The requests with a reply of their own only ask, except GET_VRING_BASE,
  // which stops the ring.
  return !HasOwnReply(request) ||
         static_cast<RequestType>(request) == RequestType::kGetVringBase;
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
    // A pending message (Resume) is there already: only look, do not wait.
    int n = ::poll(fds, 3, pending_.has_value() ? 0 : -1);
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
    // A message the previous process read but did not answer comes first
    // (Resume); every other one is kept as pending until answered, so a
    // process that dies meanwhile leaves it to its successor.
    absl::StatusOr<Message> msg = absl::UnknownError("unread");
    bool kept_pending = false;
    if (pending_.has_value()) {
      msg = std::move(*pending_);
      pending_.reset();
      kept_pending = true;
    } else {
      msg = ReadMessage(socket_.get(), stop_fd_);
    }
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
    if (!kept_pending) KeepPending(*msg);
    const uint32_t code = msg->header.request;
    const size_t msg_fds = msg->fds.size();
    const bool need_reply = (msg->header.flags & kFlagNeedReply) != 0;
    bool replied = false;
    absl::Status status;
    absl::StatusOr<Request> req = DecodeRequest(std::move(*msg));
    if (req.ok()) {
      LOG_DEBUG("vhost-user request").Kv("request", RequestName(code)).Kv("fds", msg_fds);
      MaybeAdoptSession(req->type);
      status = Handle(*req, &replied);
      if (status.ok() && ChangesState(code)) Persist();
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
    if (absl::Status fp = kBeforeReply.Eval(); !fp.ok()) {
      // A test's stand-in for dying here (production arms it with panic):
      // no reply; the message stays kept as pending.
      result = absl::AbortedError("failpoint vhost.message.before_reply");
      break;
    }
    if (!replied && need_reply && !HasOwnReply(code)) {
      // REPLY_ACK: 0 is success, anything else failure.
      absl::Status w = WriteReplyU64(socket_.get(),
                                     static_cast<RequestType>(code),
                                     status.ok() ? 0 : 1);
      if (!w.ok()) {
        result = w;
        break;
      }
      replied = true;
    }
    if (!replied && !status.ok()) {
      result = status;
      break;
    }
    DropPending();
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
      // Map first: a table that fails leaves the old one serving. The new
      // fds are kept under a new generation before the snapshot names it.
      const uint32_t generation = mem_generation_ + 1;
      if (keeper_ != nullptr) {
        for (size_t i = 0; i < req.fds.size(); ++i) {
          KeepFd(MemName(generation, i), req.fds[i].get());
        }
      }
      absl::StatusOr<std::unique_ptr<GuestMemory>> mapped =
          GuestMemory::Map(req.regions, std::move(req.fds));
      if (!mapped.ok()) {
        if (keeper_ != nullptr) {
          (void)keeper_->Remove(absl::StrCat("mem/", generation));
        }
        return mapped.status();
      }
      std::unique_ptr<GuestMemory> mem = std::move(*mapped);
      const uint32_t old_generation = mem_generation_;
      mem_generation_ = generation;
      regions_ = req.regions;
      absl::Status restarted = RestartRunning([this, &mem] {
        memory_ = std::move(mem);
        return absl::OkStatus();
      });
      if (keeper_ != nullptr) {
        Persist();
        (void)keeper_->Remove(absl::StrCat("mem/", old_generation));
      }
      return restarted;
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
      KeepFd(QueueName(req.state.index, "kick"), -1);
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
      KeepFd(QueueName(index, "kick"), req.fds[0].get());
      queues_[index]->kick = std::move(req.fds[0]);
      return MaybeStart(index);
    }

    case RequestType::kSetVringCall: {
      uint32_t index = req.u64 & kVringIndexMask;
      RETURN_IF_ERROR(CheckIndex(index));
      KeepFd(QueueName(index, "call"), req.fds.empty() ? -1 : req.fds[0].get());
      queues_[index]->call_set = !req.fds.empty();
      queues_[index]->call.Set(req.fds.empty() ? UniqueFd()
                                               : std::move(req.fds[0]));
      return absl::OkStatus();
    }

    case RequestType::kSetVringErr: {
      uint32_t index = req.u64 & kVringIndexMask;
      RETURN_IF_ERROR(CheckIndex(index));
      KeepFd(QueueName(index, "err"), req.fds.empty() ? -1 : req.fds[0].get());
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

absl::Status Connection::MaybeStart(uint32_t index, bool resume) {
  QueueState& q = *queues_[index];
  if (q.runner || !memory_ || !q.addr_set || q.num == 0 || !q.kick.valid()) {
    return absl::OkStatus();
  }
  std::vector<uint16_t> retake;
  std::vector<std::pair<uint16_t, uint32_t>> finished;
  uint16_t base = q.base;
  if (resume) {
    // The used index as the guest sees it; Vring::CheckLayout (below) has
    // checked the ring lies in guest memory when it was first started.
    const auto* used_idx = static_cast<const uint16_t*>(
        memory_->UvaToHost(q.addr.used_user_addr + 2, sizeof(uint16_t)));
    if (q.log == nullptr || used_idx == nullptr) {
      return absl::DataLossError(
          absl::StrCat("ring ", index, " ran but its in-flight log was not kept"));
    }
    InflightLog::Recovered r =
        q.log->Recover(__atomic_load_n(used_idx, __ATOMIC_ACQUIRE));
    retake = std::move(r.in_flight);
    finished = std::move(r.done);
    base = r.last_avail_idx;
    LOG_INFO("vhost-user ring resumed")
        .Kv("queue", index)
        .Kv("last_avail_idx", base)
        .Kv("served_again", retake.size())
        .Kv("returned", finished.size());
  } else if (keeper_ != nullptr) {
    if (q.log == nullptr || q.log->num() != q.num) {
      absl::StatusOr<std::unique_ptr<InflightLog>> log = InflightLog::Create(q.num);
      if (log.ok()) {
        q.log = std::move(*log);
      } else {
        LOG_WARN("no in-flight log: this ring will not survive a restart")
            .Kv("queue", index)
            .Kv("error", log.status());
      }
    }
  }
  RingLayout layout;
  layout.num = q.num;
  layout.desc_uva = q.addr.desc_user_addr;
  layout.avail_uva = q.addr.avail_user_addr;
  layout.used_uva = q.addr.used_user_addr;
  layout.event_idx = (acked_features_ & Bit(kVirtioRingFEventIdx)) != 0;
  layout.indirect = (acked_features_ & Bit(kVirtioRingFIndirectDesc)) != 0;
  ASSIGN_OR_RETURN(std::unique_ptr<Vring> ring,
                   Vring::Create(memory_.get(), layout, base, &q.call, q.log.get()));
  if (!resume && q.log != nullptr) {
    q.log->Start(base, ring->UsedIdx());
    KeepFd(QueueName(index, "inflight"), q.log->fd());
  }
  bool enabled = q.enabled || RingsStartEnabled();
  auto runner = std::make_unique<QueueRunner>(
      index, std::move(ring), q.kick.get(), enabled,
      device_->WorkersForQueue(index),
      QueueRunner::Context{device_.get(), metrics_, &log_limiter_});
  runner->set_inflight_log(q.log.get());
  if (resume) runner->ResumeWith(std::move(finished), std::move(retake));
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
  regions_.clear();
  acked_features_ = 0;
  acked_protocol_features_ = 0;
  owner_set_ = false;
  session_started_ = false;
  if (keeper_ != nullptr) {
    (void)keeper_->Remove("mem");
    (void)keeper_->Remove("q");
    (void)keeper_->Remove("session");
  }
  absl::MutexLock lock(&info_mu_);
  for (auto& q : queues_) q = std::make_unique<QueueState>();
}

// ---- Keeping the session -------------------------------------------------

namespace {

constexpr uint32_t kSnapshotMagic = 0x56534643;  // "CFSV"
constexpr uint32_t kSnapshotVersion = 1;

// Fixed-size per-ring part of the snapshot.
struct KeptQueue {
  uint32_t num;
  uint8_t addr_set;
  uint8_t enabled;
  uint8_t has_kick;
  uint8_t has_call;
  uint8_t has_err;
  uint8_t running;
  uint16_t base;
  VringAddr addr;
};

struct KeptHeader {
  uint32_t magic;
  uint32_t version;
  uint64_t acked_features;
  uint64_t acked_protocol_features;
  uint32_t owner_set;
  uint32_t mem_generation;
  uint32_t num_regions;
  uint32_t num_queues;
};

template <typename T>
void Append(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <typename T>
bool Consume(absl::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace

void Connection::KeepFd(const std::string& name, int fd) {
  if (keeper_ == nullptr) return;
  absl::Status s = fd >= 0 ? keeper_->Put(name, "", fd) : keeper_->Remove(name);
  if (!s.ok() && log_limiter_.Allow()) {
    LOG_WARN("cannot keep vhost-user state; a restart will drop this session")
        .Kv("entry", name)
        .Kv("error", s);
  }
}

std::string Connection::Snapshot() const {
  std::string out;
  KeptHeader h{kSnapshotMagic,
               kSnapshotVersion,
               acked_features_,
               acked_protocol_features_,
               owner_set_ ? 1u : 0u,
               mem_generation_,
               static_cast<uint32_t>(memory_ ? regions_.size() : 0),
               num_queues_};
  Append(&out, h);
  if (memory_) {
    for (const MemoryRegion& r : regions_) Append(&out, r);
  }
  for (const auto& qp : queues_) {
    const QueueState& q = *qp;
    KeptQueue k{};
    k.num = q.num;
    k.addr_set = q.addr_set;
    k.enabled = q.enabled;
    k.has_kick = q.kick.valid();
    k.has_call = q.call_set;
    k.has_err = q.err.valid();
    k.running = q.runner != nullptr;
    k.base = q.base;
    k.addr = q.addr;
    Append(&out, k);
  }
  return out;
}

void Connection::Persist() {
  if (keeper_ == nullptr) return;
  absl::Status s = keeper_->Put("session", Snapshot());
  if (!s.ok() && log_limiter_.Allow()) {
    LOG_WARN("cannot keep vhost-user state; a restart will drop this session")
        .Kv("error", s);
  }
}

void Connection::KeepPending(const Message& msg) {
  if (keeper_ == nullptr) return;
  // The fds first, then the bytes: an entry "pending" means all of it is
  // there.
  absl::Status s = absl::OkStatus();
  for (size_t i = 0; i < msg.fds.size() && s.ok(); ++i) {
    s = keeper_->Put(absl::StrCat("pending/fd/", i), "", msg.fds[i].get());
  }
  if (s.ok()) {
    std::string bytes(reinterpret_cast<const char*>(&msg.header), sizeof(msg.header));
    bytes += msg.payload;
    s = keeper_->Put("pending", absl::StrCat(msg.fds.size(), ":", bytes));
  }
  if (!s.ok() && log_limiter_.Allow()) {
    LOG_WARN("cannot keep the vhost-user message being handled").Kv("error", s);
  }
}

void Connection::DropPending() {
  if (keeper_ != nullptr) (void)keeper_->Remove("pending");
}

void Connection::TakePending() {
  std::optional<KeptEntry> kept = keeper_->Take("pending");
  if (!kept.has_value()) return;
  absl::string_view blob = kept->blob;
  const size_t colon = blob.find(':');
  size_t nfds = 0;
  Message msg;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(blob.substr(0, colon), &nfds) ||
      nfds > kMaxFds || blob.size() - colon - 1 < sizeof(Header)) {
    LOG_WARN("kept pending vhost-user message unreadable; dropped");
    DropPending();
    return;
  }
  blob.remove_prefix(colon + 1);
  std::memcpy(&msg.header, blob.data(), sizeof(Header));
  msg.payload = std::string(blob.substr(sizeof(Header)));
  for (size_t i = 0; i < nfds; ++i) {
    std::optional<KeptEntry> fd = keeper_->Take(absl::StrCat("pending/fd/", i));
    msg.fds.push_back(fd.has_value() ? std::move(fd->fd) : UniqueFd());
  }
  LOG_WARN("answering the vhost-user message the previous agent process left unanswered")
      .Kv("request", RequestName(msg.header.request));
  pending_ = std::move(msg);
}

absl::Status Connection::Resume() {
  if (keeper_ == nullptr) return absl::NotFoundError("no keeper");
  std::optional<KeptEntry> kept = keeper_->Take("session");
  if (!kept.has_value()) return absl::NotFoundError("no kept session");
  absl::Status s = Restore(kept->blob);
  if (!s.ok()) {
    ResetSession();
    return s;
  }
  TakePending();
  session_started_ = true;
  metrics_->AddAdoptedSession();
  return absl::OkStatus();
}

absl::Status Connection::Restore(const std::string& snapshot) {
  absl::string_view in(snapshot);
  KeptHeader h;
  if (!Consume(&in, &h) || h.magic != kSnapshotMagic || h.version != kSnapshotVersion) {
    return absl::DataLossError("kept vhost-user session has a bad header");
  }
  if (h.num_queues != num_queues_ || h.num_regions > kMaxFds) {
    return absl::DataLossError(absl::StrCat("kept session has ", h.num_queues,
                                            " rings and ", h.num_regions,
                                            " regions; the device has ", num_queues_));
  }
  if ((h.acked_features & ~OfferedFeatures()) ||
      (h.acked_protocol_features & ~OfferedProtocolFeatures())) {
    return absl::DataLossError("kept session acked features this back end does not offer");
  }
  acked_features_ = h.acked_features;
  acked_protocol_features_ = h.acked_protocol_features;
  owner_set_ = h.owner_set != 0;
  mem_generation_ = h.mem_generation;
  std::vector<MemoryRegion> regions(h.num_regions);
  for (MemoryRegion& r : regions) {
    if (!Consume(&in, &r)) return absl::DataLossError("kept session truncated");
  }
  if (!regions.empty()) {
    std::vector<UniqueFd> fds;
    for (size_t i = 0; i < regions.size(); ++i) {
      std::optional<KeptEntry> e = keeper_->Take(MemName(mem_generation_, i));
      if (!e.has_value() || !e->fd.valid()) {
        return absl::DataLossError(absl::StrCat("memory region ", i, " fd was not kept"));
      }
      fds.push_back(std::move(e->fd));
    }
    ASSIGN_OR_RETURN(memory_, GuestMemory::Map(regions, std::move(fds)));
    regions_ = std::move(regions);
  }
  std::vector<uint32_t> running;
  for (uint32_t i = 0; i < num_queues_; ++i) {
    KeptQueue k;
    if (!Consume(&in, &k)) return absl::DataLossError("kept session truncated");
    if (k.num > kMaxQueueSize || (k.num & (k.num - 1)) != 0) {
      return absl::DataLossError(absl::StrCat("kept ring ", i, " has size ", k.num));
    }
    QueueState& q = *queues_[i];
    {
      absl::MutexLock lock(&info_mu_);
      q.num = k.num;
      q.enabled = k.enabled != 0;
    }
    q.addr_set = k.addr_set != 0;
    q.addr = k.addr;
    q.base = k.base;
    auto take_fd = [&](const char* what) -> UniqueFd {
      std::optional<KeptEntry> e = keeper_->Take(QueueName(i, what));
      return e.has_value() ? std::move(e->fd) : UniqueFd();
    };
    if (k.has_kick) q.kick = take_fd("kick");
    if (k.has_call) {
      q.call.Set(take_fd("call"));
      q.call_set = true;
    }
    if (k.has_err) q.err = take_fd("err");
    if (k.running) {
      UniqueFd log_fd = take_fd("inflight");
      if (!log_fd.valid()) {
        return absl::DataLossError(absl::StrCat("ring ", i, " ran but no in-flight log was kept"));
      }
      ASSIGN_OR_RETURN(q.log, InflightLog::Attach(std::move(log_fd), k.num));
      if (!q.kick.valid() || !memory_ || !q.addr_set) {
        return absl::DataLossError(absl::StrCat("kept ring ", i, " cannot run"));
      }
      RingLayout layout;
      layout.num = q.num;
      layout.desc_uva = q.addr.desc_user_addr;
      layout.avail_uva = q.addr.avail_user_addr;
      layout.used_uva = q.addr.used_user_addr;
      RETURN_IF_ERROR(Vring::CheckLayout(memory_.get(), layout));
      running.push_back(i);
    }
  }
  if (!in.empty()) return absl::DataLossError("kept session has trailing bytes");
  for (uint32_t i : running) RETURN_IF_ERROR(MaybeStart(i, /*resume=*/true));
  return absl::OkStatus();
}

}  // namespace coherefs::agent::vhost_user
