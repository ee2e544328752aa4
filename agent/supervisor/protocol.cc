#include "agent/supervisor/protocol.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/scm_rights.h"

namespace coherefs::agent::supervisor::wire {

absl::Status Send(int socket, Op op, absl::string_view name, absl::string_view blob,
                  uint32_t arg, int fd, int flags) {
  Header header{op, static_cast<uint32_t>(name.size()), static_cast<uint32_t>(blob.size()), arg};
  iovec iov[3] = {
      {&header, sizeof(header)},
      {const_cast<char*>(name.data()), name.size()},
      {const_cast<char*>(blob.data()), blob.size()},
  };
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 3;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  while (true) {
    if (sendmsg(socket, &msg, MSG_NOSIGNAL | flags) >= 0) return absl::OkStatus();
    if (errno != EINTR) return LastErrnoStatus("state socket sendmsg");
  }
}

absl::Status Parse(absl::string_view packet, Message* out) {
  if (packet.size() < sizeof(Header)) {
    return absl::InvalidArgumentError(
        absl::StrCat("short header: ", packet.size(), " bytes, want ", sizeof(Header)));
  }
  std::memcpy(&out->header, packet.data(), sizeof(Header));
  const Header& h = out->header;
  if (h.name_len > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("name of ", h.name_len, " bytes; at most ", kMaxNameBytes));
  }
  if (h.blob_len > kMaxBlobBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("blob of ", h.blob_len, " bytes; at most ", kMaxBlobBytes));
  }
  const size_t body = packet.size() - sizeof(Header);
  if (size_t{h.name_len} + h.blob_len != body) {
    return absl::InvalidArgumentError(absl::StrCat("lengths ", h.name_len, "+", h.blob_len,
                                                   " do not match the ", body,
                                                   " bytes after the header"));
  }
  out->name.assign(packet.data() + sizeof(Header), h.name_len);
  out->blob.assign(packet.data() + sizeof(Header) + h.name_len, h.blob_len);
  return absl::OkStatus();
}

absl::StatusOr<Received> Receive(int socket, int flags) {
  // One byte more than the largest valid message: MSG_TRUNC then flags a
  // longer one.
  std::string buf(kMaxMessageBytes + 1, '\0');
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  Received r;
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.would_block = true;
      return r;
    }
    return LastErrnoStatus("state socket recvmsg");
  }
  // Take ownership of every descriptor first, so each is closed whatever
  // else is wrong with the packet.
  TakeScmRights(msg, &r.message.fds);
  if (n == 0 && r.message.fds.empty()) {
    // A zero-length packet and EOF look alike on SEQPACKET; both end the
    // session for our peers (neither sends empty packets).
    r.eof = true;
    return r;
  }
  if (msg.msg_flags & MSG_TRUNC) {
    r.parse = absl::InvalidArgumentError(
        absl::StrCat("message longer than ", kMaxMessageBytes, " bytes"));
    return r;
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    r.parse = absl::ResourceExhaustedError(
        absl::StrCat("descriptors dropped: more than ", kMaxFdsPerMessage,
                     " in one message, or out of descriptors"));
    return r;
  }
  r.parse = Parse(absl::string_view(buf.data(), static_cast<size_t>(n)), &r.message);
  return r;
}

}  // namespace coherefs::agent::supervisor::wire
