#include "agent/vhost_user/message.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/scm_rights.h"

namespace coherefs::agent::vhost_user {
namespace {

// What a request must carry: an exact payload size (or a check function for
// variable sizes) and how many fds.
enum class FdRule { kNone, kOptionalOne, kOne, kPerRegion };

bool AddOverflows(uint64_t a, uint64_t b) { return a + b < a; }

absl::Status CheckRegion(const MemoryRegion& r) {
  if (r.memory_size == 0) return absl::InvalidArgumentError("region of size 0");
  if (AddOverflows(r.guest_phys_addr, r.memory_size) ||
      AddOverflows(r.userspace_addr, r.memory_size) ||
      AddOverflows(r.mmap_offset, r.memory_size)) {
    return absl::InvalidArgumentError("region address + size overflows");
  }
  return absl::OkStatus();
}

absl::Status CheckSize(const Message& msg, size_t want) {
  if (msg.payload.size() != want) {
    return absl::InvalidArgumentError(
        absl::StrCat(RequestName(msg.header.request), ": payload of ",
                     msg.payload.size(), " bytes, want ", want));
  }
  return absl::OkStatus();
}

absl::Status CheckFds(const Message& msg, size_t want) {
  if (msg.fds.size() != want) {
    return absl::InvalidArgumentError(
        absl::StrCat(RequestName(msg.header.request), ": ", msg.fds.size(),
                     " fds, want ", want));
  }
  return absl::OkStatus();
}

template <typename T>
T Load(const std::string& payload, size_t offset = 0) {
  T value;
  std::memcpy(&value, payload.data() + offset, sizeof(T));
  return value;
}

}  // namespace

std::string RequestName(uint32_t request) {
  switch (static_cast<RequestType>(request)) {
    case RequestType::kGetFeatures: return "GET_FEATURES";
    case RequestType::kSetFeatures: return "SET_FEATURES";
    case RequestType::kSetOwner: return "SET_OWNER";
    case RequestType::kResetOwner: return "RESET_OWNER";
    case RequestType::kSetMemTable: return "SET_MEM_TABLE";
    case RequestType::kSetLogBase: return "SET_LOG_BASE";
    case RequestType::kSetLogFd: return "SET_LOG_FD";
    case RequestType::kSetVringNum: return "SET_VRING_NUM";
    case RequestType::kSetVringAddr: return "SET_VRING_ADDR";
    case RequestType::kSetVringBase: return "SET_VRING_BASE";
    case RequestType::kGetVringBase: return "GET_VRING_BASE";
    case RequestType::kSetVringKick: return "SET_VRING_KICK";
    case RequestType::kSetVringCall: return "SET_VRING_CALL";
    case RequestType::kSetVringErr: return "SET_VRING_ERR";
    case RequestType::kGetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case RequestType::kSetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case RequestType::kGetQueueNum: return "GET_QUEUE_NUM";
    case RequestType::kSetVringEnable: return "SET_VRING_ENABLE";
    case RequestType::kGetConfig: return "GET_CONFIG";
    case RequestType::kSetConfig: return "SET_CONFIG";
    case RequestType::kResetDevice: return "RESET_DEVICE";
    case RequestType::kGetMaxMemSlots: return "GET_MAX_MEM_SLOTS";
    case RequestType::kAddMemReg: return "ADD_MEM_REG";
    case RequestType::kRemMemReg: return "REM_MEM_REG";
  }
  return absl::StrCat("REQUEST_", request);
}

absl::StatusOr<Header> ParseHeader(absl::Span<const uint8_t> bytes) {
  if (bytes.size() != sizeof(Header)) {
    return absl::DataLossError("short vhost-user header");
  }
  Header h;
  std::memcpy(&h, bytes.data(), sizeof(h));
  if ((h.flags & kVersionMask) != kVersion) {
    return absl::DataLossError(
        absl::StrCat("vhost-user version ", h.flags & kVersionMask));
  }
  if (h.flags & kFlagReply) {
    return absl::DataLossError("front end sent a message flagged as reply");
  }
  if (h.size > kMaxPayloadSize) {
    return absl::DataLossError(
        absl::StrCat("payload of ", h.size, " bytes is over the limit"));
  }
  return h;
}

absl::StatusOr<Request> DecodeRequest(Message msg) {
  Request req;
  req.type = static_cast<RequestType>(msg.header.request);
  req.need_reply = (msg.header.flags & kFlagNeedReply) != 0;
  const std::string& p = msg.payload;
  switch (req.type) {
    // No payload, no fds.
    case RequestType::kGetFeatures:
    case RequestType::kSetOwner:
    case RequestType::kResetOwner:
    case RequestType::kGetProtocolFeatures:
    case RequestType::kGetQueueNum:
    case RequestType::kResetDevice:
    case RequestType::kGetMaxMemSlots:
      // QEMU sends RESET_OWNER with a u64 of 0 in some versions: accept both.
      if (req.type == RequestType::kResetOwner && p.size() == 8) {
        if (auto s = CheckFds(msg, 0); !s.ok()) return s;
        break;
      }
      if (auto s = CheckSize(msg, 0); !s.ok()) return s;
      if (auto s = CheckFds(msg, 0); !s.ok()) return s;
      break;

    case RequestType::kSetFeatures:
    case RequestType::kSetProtocolFeatures:
      if (auto s = CheckSize(msg, 8); !s.ok()) return s;
      if (auto s = CheckFds(msg, 0); !s.ok()) return s;
      req.u64 = Load<uint64_t>(p);
      break;

    case RequestType::kSetLogBase:
    case RequestType::kSetLogFd:
      // Dirty logging exists for live migration, which coherefs does not
      // offer (VHOST_F_LOG_ALL and LOG_SHMFD are never advertised).
      return absl::UnimplementedError(absl::StrCat(
          RequestName(msg.header.request), ": no migration support"));

    case RequestType::kSetVringNum:
    case RequestType::kSetVringBase:
    case RequestType::kGetVringBase:
    case RequestType::kSetVringEnable:
      if (auto s = CheckSize(msg, sizeof(VringState)); !s.ok()) return s;
      if (auto s = CheckFds(msg, 0); !s.ok()) return s;
      req.state = Load<VringState>(p);
      break;

    case RequestType::kSetVringAddr:
      if (auto s = CheckSize(msg, sizeof(VringAddr)); !s.ok()) return s;
      if (auto s = CheckFds(msg, 0); !s.ok()) return s;
      req.addr = Load<VringAddr>(p);
      break;

    case RequestType::kSetVringKick:
    case RequestType::kSetVringCall:
    case RequestType::kSetVringErr: {
      if (auto s = CheckSize(msg, 8); !s.ok()) return s;
      req.u64 = Load<uint64_t>(p);
      if (req.u64 & ~(kVringIndexMask | kVringNoFdMask)) {
        return absl::InvalidArgumentError(
            absl::StrCat(RequestName(msg.header.request), ": reserved bits set"));
      }
      size_t want = (req.u64 & kVringNoFdMask) ? 0 : 1;
      if (auto s = CheckFds(msg, want); !s.ok()) return s;
      break;
    }

    case RequestType::kSetMemTable: {
      if (p.size() < kMemTableHeaderSize) {
        return absl::InvalidArgumentError("SET_MEM_TABLE: short payload");
      }
      uint32_t n = Load<uint32_t>(p);
      if (n == 0 || n > kMaxMemRegions) {
        return absl::InvalidArgumentError(
            absl::StrCat("SET_MEM_TABLE: ", n, " regions"));
      }
      if (auto s = CheckSize(msg, kMemTableHeaderSize + n * sizeof(MemoryRegion));
          !s.ok()) {
        return s;
      }
      if (auto s = CheckFds(msg, n); !s.ok()) return s;
      for (uint32_t i = 0; i < n; ++i) {
        auto r = Load<MemoryRegion>(p, kMemTableHeaderSize + i * sizeof(MemoryRegion));
        if (auto s = CheckRegion(r); !s.ok()) return s;
        req.regions.push_back(r);
      }
      break;
    }

    case RequestType::kAddMemReg:
    case RequestType::kRemMemReg: {
      // u64 padding then one region; ADD carries its fd, REM may or may not.
      if (auto s = CheckSize(msg, 8 + sizeof(MemoryRegion)); !s.ok()) return s;
      if (req.type == RequestType::kAddMemReg) {
        if (auto s = CheckFds(msg, 1); !s.ok()) return s;
      } else if (msg.fds.size() > 1) {
        return absl::InvalidArgumentError("REM_MEM_REG: more than one fd");
      }
      auto r = Load<MemoryRegion>(p, 8);
      if (auto s = CheckRegion(r); !s.ok()) return s;
      req.regions.push_back(r);
      break;
    }

    case RequestType::kGetConfig:
    case RequestType::kSetConfig: {
      if (p.size() < sizeof(ConfigHeader)) {
        return absl::InvalidArgumentError("config: short payload");
      }
      req.config = Load<ConfigHeader>(p);
      if (req.config.size > kMaxConfigSize) {
        return absl::InvalidArgumentError("config: size over the limit");
      }
      if (auto s = CheckSize(msg, sizeof(ConfigHeader) + req.config.size);
          !s.ok()) {
        return s;
      }
      if (auto s = CheckFds(msg, 0); !s.ok()) return s;
      break;
    }

    default:
      return absl::UnimplementedError(
          absl::StrCat("unknown vhost-user request ", msg.header.request));
  }
  req.fds = std::move(msg.fds);
  return req;
}

namespace {

// Waits until `fd` is readable; kCancelled if `stop_fd` fires first.
absl::Status WaitReadable(int fd, int stop_fd) {
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(p, stop_fd >= 0 ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus("poll vhost-user socket");
    }
    if (stop_fd >= 0 && (p[1].revents & POLLIN)) {
      return absl::CancelledError("stopping");
    }
    return absl::OkStatus();
  }
}

// Reads exactly `n` bytes (the rest of a message). Retries on EINTR.
absl::Status ReadFull(int fd, int stop_fd, char* buf, size_t n) {
  while (n > 0) {
    if (absl::Status s = WaitReadable(fd, stop_fd); !s.ok()) return s;
    ssize_t got = ::recv(fd, buf, n, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::DataLossError(
          absl::StrCat("recv vhost-user message: ", std::strerror(errno)));
    }
    if (got == 0) return absl::DataLossError("peer closed mid-message");
    buf += got;
    n -= static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Message> ReadMessage(int fd, int stop_fd) {
  Message msg;
  uint8_t raw[sizeof(Header)];
  iovec iov{raw, sizeof(raw)};
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof(control);
  if (absl::Status s = WaitReadable(fd, stop_fd); !s.ok()) return s;
  ssize_t got;
  do {
    // The fds ride on the first byte of the message: one recvmsg gets them.
    got = ::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return LastErrnoStatus("recvmsg vhost-user header");
  // Take ownership of every fd first, so each error path closes them.
  TakeScmRights(mh, &msg.fds);
  if (got == 0) return absl::UnavailableError("front end closed the socket");
  if (mh.msg_flags & MSG_CTRUNC) {
    return absl::DataLossError("more fds than any request carries");
  }
  if (static_cast<size_t>(got) < sizeof(raw)) {
    absl::Status s = ReadFull(fd, stop_fd, reinterpret_cast<char*>(raw) + got,
                              sizeof(raw) - got);
    if (!s.ok()) return s;
  }
  auto header = ParseHeader(absl::MakeConstSpan(raw, sizeof(raw)));
  if (!header.ok()) return header.status();
  msg.header = *header;
  msg.payload.resize(header->size);
  if (absl::Status s = ReadFull(fd, stop_fd, msg.payload.data(), header->size);
      !s.ok()) {
    return s;
  }
  return msg;
}

absl::Status WriteReply(int fd, RequestType request,
                        absl::Span<const uint8_t> payload) {
  Header h{static_cast<uint32_t>(request), kVersion | kFlagReply,
           static_cast<uint32_t>(payload.size())};
  std::string buf(reinterpret_cast<const char*>(&h), sizeof(h));
  buf.append(reinterpret_cast<const char*>(payload.data()), payload.size());
  size_t off = 0;
  while (off < buf.size()) {
    ssize_t n = ::send(fd, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus("send vhost-user reply");
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteReplyU64(int fd, RequestType request, uint64_t value) {
  return WriteReply(
      fd, request,
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value), sizeof(value)));
}

}  // namespace coherefs::agent::vhost_user
