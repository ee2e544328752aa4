#include "agent/vhost_user/testing/frontend.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace coherefs::agent::vhost_user::testing {
namespace {

int PollMs(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
}

uint16_t Load16(const void* p) {
  return __atomic_load_n(static_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE);
}
void Store16(void* p, uint16_t v) {
  __atomic_store_n(static_cast<uint16_t*>(p), v, __ATOMIC_RELEASE);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Frontend>> Frontend::Connect(
    const std::string& socket_path, FrontendOptions options) {
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return LastErrnoStatus("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return LastErrnoStatus("connect " + socket_path);
  }
  UniqueFd mem_fd(::memfd_create("frontend-guest-ram", MFD_CLOEXEC));
  if (!mem_fd.valid()) return LastErrnoStatus("memfd_create");
  size_t len = kMmapOffset + 2 * options.region_size;
  if (::ftruncate(mem_fd.get(), len) != 0) return LastErrnoStatus("ftruncate");
  void* mem = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED,
                     mem_fd.get(), 0);
  if (mem == MAP_FAILED) return LastErrnoStatus("mmap");
  std::unique_ptr<Frontend> fe(new Frontend(options, std::move(sock),
                                            std::move(mem_fd),
                                            static_cast<uint8_t*>(mem), len));
  const uint32_t n = options.queue_size;
  fe->rings_.resize(options.num_queues);
  for (Ring& r : fe->rings_) {
    r.desc_gpa = fe->Alloc(DescTableBytes(n), 16);
    r.avail_gpa = fe->Alloc(AvailRingBytes(n), 2);
    r.used_gpa = fe->Alloc(UsedRingBytes(n), 4);
    r.kick.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    r.call.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!r.kick.valid() || !r.call.valid()) return LastErrnoStatus("eventfd");
    for (uint32_t i = 0; i < n; ++i) r.free.push_back(static_cast<uint16_t>(i));
  }
  return fe;
}

Frontend::Frontend(FrontendOptions options, UniqueFd sock, UniqueFd mem_fd,
                   uint8_t* mem, size_t mem_len)
    : options_(options),
      sock_(std::move(sock)),
      mem_fd_(std::move(mem_fd)),
      mem_(mem),
      mem_len_(mem_len) {}

Frontend::~Frontend() { ::munmap(mem_, mem_len_); }

uint64_t Frontend::Alloc(uint64_t size, uint64_t align) {
  next_free_ = (next_free_ + align - 1) / align * align;
  uint64_t gpa = next_free_;
  next_free_ += size;
  if (next_free_ > guest_end()) abort();  // test bug: memory exhausted
  std::memset(Host(gpa), 0, size);
  return gpa;
}

std::string Frontend::U64(uint64_t v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}

std::string Frontend::State(uint32_t index, uint32_t num) {
  VringState s{index, num};
  return std::string(reinterpret_cast<const char*>(&s), sizeof(s));
}

std::string Frontend::Addr(uint32_t q) const {
  VringAddr a{};
  a.index = q;
  a.desc_user_addr = Uva(rings_[q].desc_gpa);
  a.avail_user_addr = Uva(rings_[q].avail_gpa);
  a.used_user_addr = Uva(rings_[q].used_gpa);
  return std::string(reinterpret_cast<const char*>(&a), sizeof(a));
}

std::string Frontend::MemTable() const {
  uint32_t header[2] = {2, 0};
  std::string p(reinterpret_cast<const char*>(header), sizeof(header));
  for (uint64_t i = 0; i < 2; ++i) {
    MemoryRegion r;
    r.guest_phys_addr = kGuestBase + i * options_.region_size;
    r.memory_size = options_.region_size;
    r.userspace_addr = Uva(r.guest_phys_addr);
    r.mmap_offset = kMmapOffset + i * options_.region_size;
    p.append(reinterpret_cast<const char*>(&r), sizeof(r));
  }
  return p;
}

absl::Status Frontend::SendBytes(const std::string& bytes,
                                 const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    mh.msg_control = control.data();
    mh.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n = ::sendmsg(sock_.get(), &mh, MSG_NOSIGNAL);
  if (n < 0) return LastErrnoStatus("sendmsg");
  if (static_cast<size_t>(n) != bytes.size()) {
    return absl::InternalError("short sendmsg");
  }
  return absl::OkStatus();
}

absl::Status Frontend::Send(RequestType type, uint32_t flags,
                            const std::string& payload,
                            const std::vector<int>& fds) {
  Header h{static_cast<uint32_t>(type), kVersion | flags,
           static_cast<uint32_t>(payload.size())};
  std::string bytes(reinterpret_cast<const char*>(&h), sizeof(h));
  bytes += payload;
  return SendBytes(bytes, fds);
}

absl::StatusOr<Reply> Frontend::ReadReply(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  Reply reply;
  auto read_exact = [&](char* buf, size_t n) -> absl::Status {
    while (n > 0) {
      pollfd p{sock_.get(), POLLIN, 0};
      int r = ::poll(&p, 1, PollMs(deadline));
      if (r == 0) return absl::DeadlineExceededError("no reply");
      if (r < 0) return LastErrnoStatus("poll");
      ssize_t got = ::recv(sock_.get(), buf, n, 0);
      if (got == 0) return absl::UnavailableError("back end closed");
      if (got < 0) {
        if (errno == EINTR) continue;
        return LastErrnoStatus("recv");
      }
      buf += got;
      n -= got;
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(read_exact(reinterpret_cast<char*>(&reply.header),
                             sizeof(reply.header)));
  if (reply.header.size > 4096) return absl::InternalError("huge reply");
  reply.payload.resize(reply.header.size);
  RETURN_IF_ERROR(read_exact(reply.payload.data(), reply.payload.size()));
  if ((reply.header.flags & (kVersionMask | kFlagReply)) !=
      (kVersion | kFlagReply)) {
    return absl::InternalError("reply without REPLY flag");
  }
  return reply;
}

absl::StatusOr<uint64_t> Frontend::SendWithAck(RequestType type,
                                               const std::string& payload,
                                               const std::vector<int>& fds) {
  RETURN_IF_ERROR(Send(type, kFlagNeedReply, payload, fds));
  ASSIGN_OR_RETURN(Reply r, ReadReply());
  if (r.header.request != static_cast<uint32_t>(type) || r.payload.size() != 8) {
    return absl::InternalError(absl::StrCat("bad ack for ", r.header.request));
  }
  uint64_t v;
  std::memcpy(&v, r.payload.data(), 8);
  return v;
}

absl::StatusOr<uint64_t> Frontend::GetU64(RequestType type) {
  RETURN_IF_ERROR(Send(type, 0, ""));
  ASSIGN_OR_RETURN(Reply r, ReadReply());
  if (r.header.request != static_cast<uint32_t>(type) || r.payload.size() != 8) {
    return absl::InternalError("bad u64 reply");
  }
  uint64_t v;
  std::memcpy(&v, r.payload.data(), 8);
  return v;
}

absl::StatusOr<uint32_t> Frontend::GetVringBase(uint32_t q) {
  RETURN_IF_ERROR(Send(RequestType::kGetVringBase, 0, State(q, 0)));
  ASSIGN_OR_RETURN(Reply r, ReadReply());
  if (r.payload.size() != sizeof(VringState)) {
    return absl::InternalError("bad GET_VRING_BASE reply");
  }
  VringState s;
  std::memcpy(&s, r.payload.data(), sizeof(s));
  if (s.index != q) return absl::InternalError("GET_VRING_BASE: wrong index");
  return s.num;
}

absl::Status Frontend::SendSet(RequestType type, const std::string& payload,
                               const std::vector<int>& fds) {
  if (!(acked_protocol_ & Bit(kProtocolFReplyAck))) {
    return Send(type, 0, payload, fds);
  }
  ASSIGN_OR_RETURN(uint64_t ack, SendWithAck(type, payload, fds));
  if (ack != 0) {
    return absl::InternalError(absl::StrCat("back end refused request ",
                                            static_cast<uint32_t>(type)));
  }
  return absl::OkStatus();
}

absl::Status Frontend::Negotiate() {
  ASSIGN_OR_RETURN(uint64_t offered, GetU64(RequestType::kGetFeatures));
  if (offered & Bit(kVhostUserFProtocolFeatures)) {
    ASSIGN_OR_RETURN(uint64_t proto, GetU64(RequestType::kGetProtocolFeatures));
    acked_protocol_ = proto & options_.protocol_feature_mask;
    RETURN_IF_ERROR(
        Send(RequestType::kSetProtocolFeatures, 0, U64(acked_protocol_)));
    if (acked_protocol_ & Bit(kProtocolFMq)) {
      ASSIGN_OR_RETURN(uint64_t nq, GetU64(RequestType::kGetQueueNum));
      if (nq < options_.num_queues) {
        return absl::InternalError(absl::StrCat("back end has ", nq, " queues"));
      }
    }
  }
  RETURN_IF_ERROR(SendSet(RequestType::kSetOwner, ""));
  return StartDevice(offered & options_.feature_mask, acked_protocol_);
}

absl::Status Frontend::StartDevice(uint64_t features, uint64_t protocol) {
  // A (re)start begins from empty rings, as a driver reset does.
  const uint32_t n = options_.queue_size;
  for (Ring& r : rings_) {
    std::memset(Host(r.avail_gpa), 0, AvailRingBytes(n));
    std::memset(Host(r.used_gpa), 0, UsedRingBytes(n));
    r.avail_idx = r.last_used = 0;
    r.chains.clear();
    r.free.clear();
    for (uint32_t i = 0; i < n; ++i) r.free.push_back(static_cast<uint16_t>(i));
  }
  acked_features_ = features;
  acked_protocol_ = protocol;
  RETURN_IF_ERROR(SendSet(RequestType::kSetFeatures, U64(acked_features_)));
  RETURN_IF_ERROR(SendSet(RequestType::kSetMemTable, MemTable(), MemFds()));
  for (uint32_t q = 0; q < rings_.size(); ++q) {
    RETURN_IF_ERROR(
        SendSet(RequestType::kSetVringNum, State(q, options_.queue_size)));
    RETURN_IF_ERROR(SendSet(RequestType::kSetVringBase, State(q, 0)));
    RETURN_IF_ERROR(SendSet(RequestType::kSetVringAddr, Addr(q)));
    RETURN_IF_ERROR(SendSet(RequestType::kSetVringKick, U64(q), {kick_fd(q)}));
    RETURN_IF_ERROR(SendSet(RequestType::kSetVringCall, U64(q), {call_fd(q)}));
  }
  if (acked_features_ & Bit(kVhostUserFProtocolFeatures)) {
    for (uint32_t q = 0; q < rings_.size(); ++q) {
      RETURN_IF_ERROR(SendSet(RequestType::kSetVringEnable, State(q, 1)));
    }
  }
  return absl::OkStatus();
}

bool Frontend::WaitClosed(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    pollfd p{sock_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, PollMs(deadline));
    if (r <= 0) return false;
    char buf[256];
    ssize_t got = ::recv(sock_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (got == 0) return true;
    if (got < 0 && errno == ECONNRESET) return true;
    // Anything else (a stray reply) is skipped; keep waiting.
  }
}

void Frontend::Disconnect() { sock_.Reset(); }

VirtqDesc* Frontend::Desc(uint32_t q, uint16_t i) const {
  return reinterpret_cast<VirtqDesc*>(Host(rings_[q].desc_gpa)) + i;
}

uint16_t Frontend::TakeDesc(uint32_t q) {
  CheckRing(q);
  Ring& r = rings_[q];
  if (r.free.empty()) abort();  // test bug: ring exhausted
  uint16_t i = r.free.back();
  r.free.pop_back();
  return i;
}

void Frontend::CheckRing(uint32_t q) const {
  if (q >= rings_.size()) {
    std::fprintf(stderr, "test bug: ring %u of %zu\n", q, rings_.size());
    abort();
  }
}

void Frontend::Publish(uint32_t q, uint16_t head) {
  CheckRing(q);
  Ring& r = rings_[q];
  uint8_t* avail = Host(r.avail_gpa);
  uint16_t* ring = reinterpret_cast<uint16_t*>(avail + 4);
  ring[r.avail_idx % options_.queue_size] = head;
  ++r.avail_idx;
  // Entry before index (release store).
  Store16(avail + 2, r.avail_idx);
}

absl::StatusOr<uint16_t> Frontend::Post(uint32_t q,
                                        const std::vector<Segment>& segs,
                                        bool indirect) {
  Ring& r = rings_[q];
  if (segs.empty()) return absl::InvalidArgumentError("empty chain");
  std::vector<uint16_t> used_descs;
  uint16_t head;
  if (indirect) {
    uint64_t table_gpa = Alloc(16 * segs.size(), 16);
    auto* table = reinterpret_cast<VirtqDesc*>(Host(table_gpa));
    for (size_t i = 0; i < segs.size(); ++i) {
      table[i].addr = segs[i].gpa;
      table[i].len = segs[i].len;
      table[i].flags = (segs[i].writable ? kDescFWrite : 0) |
                       (i + 1 < segs.size() ? kDescFNext : 0);
      table[i].next = static_cast<uint16_t>(i + 1);
    }
    head = TakeDesc(q);
    *Desc(q, head) = {table_gpa, static_cast<uint32_t>(16 * segs.size()),
                      kDescFIndirect, 0};
    used_descs.push_back(head);
  } else {
    if (segs.size() > r.free.size()) {
      return absl::ResourceExhaustedError("no free descriptors");
    }
    for (size_t i = 0; i < segs.size(); ++i) used_descs.push_back(TakeDesc(q));
    for (size_t i = 0; i < segs.size(); ++i) {
      VirtqDesc* d = Desc(q, used_descs[i]);
      d->addr = segs[i].gpa;
      d->len = segs[i].len;
      d->flags = (segs[i].writable ? kDescFWrite : 0) |
                 (i + 1 < segs.size() ? kDescFNext : 0);
      d->next = i + 1 < segs.size() ? used_descs[i + 1] : 0;
    }
    head = used_descs[0];
  }
  r.chains[head] = used_descs;
  Publish(q, head);
  return head;
}

void Frontend::Kick(uint32_t q) {
  CheckRing(q);
  uint64_t one = 1;
  ssize_t n = ::write(rings_[q].kick.get(), &one, sizeof(one));
  (void)n;
}

uint16_t Frontend::UsedIdx(uint32_t q) const {
  return Load16(Host(rings_[q].used_gpa) + 2);
}

void Frontend::SetAvailFlags(uint32_t q, uint16_t flags) {
  Store16(Host(rings_[q].avail_gpa), flags);
}

void Frontend::SetUsedEvent(uint32_t q, uint16_t value) {
  Store16(Host(rings_[q].avail_gpa) + 4 + 2 * options_.queue_size, value);
}

VirtqUsedElem Frontend::TakeUsed(uint32_t q) {
  Ring& r = rings_[q];
  VirtqUsedElem e;
  std::memcpy(&e, Host(r.used_gpa) + 4 + 8 * (r.last_used % options_.queue_size),
              sizeof(e));
  ++r.last_used;
  auto it = r.chains.find(static_cast<uint16_t>(e.id));
  if (it != r.chains.end()) {
    for (uint16_t d : it->second) r.free.push_back(d);
    r.chains.erase(it);
  }
  return e;
}

absl::StatusOr<VirtqUsedElem> Frontend::PollUsed(uint32_t q,
                                                 absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (UsedIdx(q) == rings_[q].last_used) {
    if (absl::Now() > deadline) return absl::DeadlineExceededError("no used");
    absl::SleepFor(absl::Milliseconds(1));
  }
  return TakeUsed(q);
}

bool Frontend::CallFired(uint32_t q, absl::Duration timeout) {
  pollfd p{rings_[q].call.get(), POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (r <= 0) return false;
  uint64_t v;
  ssize_t n = ::read(rings_[q].call.get(), &v, sizeof(v));
  (void)n;
  return true;
}

absl::StatusOr<VirtqUsedElem> Frontend::WaitUsed(uint32_t q,
                                                 absl::Duration timeout) {
  CheckRing(q);
  Ring& r = rings_[q];
  const uint32_t n = options_.queue_size;
  uint8_t* avail = Host(r.avail_gpa);
  const bool event_idx = acked_features_ & Bit(kVirtioRingFEventIdx);
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (event_idx) {
      // used_event: notify us when the used index passes last_used.
      Store16(avail + 4 + 2 * n, r.last_used);
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    if (UsedIdx(q) != r.last_used) return TakeUsed(q);
    pollfd p{r.call.get(), POLLIN, 0};
    int rc = ::poll(&p, 1, PollMs(deadline));
    if (rc == 0) return absl::DeadlineExceededError("no used element");
    if (rc < 0 && errno != EINTR) return LastErrnoStatus("poll call fd");
    uint64_t v;
    ssize_t got = ::read(r.call.get(), &v, sizeof(v));
    (void)got;
  }
}

}  // namespace coherefs::agent::vhost_user::testing
