// The wire format between the agent supervisor and its worker on their
// SOCK_SEQPACKET socketpair (state_store.h, supervisor.h). One message per
// packet, so a message is never split or merged with another:
//
//   Header (16 bytes, host byte order: both ends are the same binary on the
//   same host), then `name_len` bytes of name, then `blob_len` bytes of blob;
//   at most one descriptor rides along as SCM_RIGHTS.
//
//   worker -> supervisor   kPut    name, blob, optional fd
//                          kRemove name
//   supervisor -> worker   kAck    blob = error message, arg = absl code
//                          kEntry  name, blob, arg = 1 when an fd is attached
//                          kEnd    arg = number of kEntry messages before it
//
// At start the supervisor sends kEntry for each held entry, then kEnd; each
// kPut/kRemove is answered by exactly one kAck, in order.
// Thread-safety: pure functions; Send/Receive are as safe as the socket calls.
#ifndef COHEREFS_AGENT_SUPERVISOR_PROTOCOL_H_
#define COHEREFS_AGENT_SUPERVISOR_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/supervisor/state_store.h"
#include "common/unique_fd.h"

namespace coherefs::agent::supervisor::wire {

enum Op : uint32_t { kPut = 1, kRemove = 2, kAck = 3, kEntry = 4, kEnd = 5 };

struct Header {
  uint32_t op;
  uint32_t name_len;
  uint32_t blob_len;
  uint32_t arg;
};
static_assert(sizeof(Header) == 16);

inline constexpr size_t kMaxMessageBytes = sizeof(Header) + kMaxNameBytes + kMaxBlobBytes;
// More than a valid message carries, so a sender of several descriptors is
// seen (and all of them closed) rather than silently cut to one.
inline constexpr int kMaxFdsPerMessage = 8;

struct Message {
  Header header{};
  std::string name;
  std::string blob;
  std::vector<UniqueFd> fds;
};

// Sends one message. `fd` < 0 sends no descriptor. `flags` adds to
// MSG_NOSIGNAL (e.g. MSG_DONTWAIT). Errors: the errno as a Status;
// ErrnoFromStatus recovers it (EAGAIN, EPIPE).
absl::Status Send(int socket, Op op, absl::string_view name, absl::string_view blob,
                  uint32_t arg, int fd, int flags = 0);

// What one recvmsg read.
struct Received {
  bool eof = false;         // the peer closed its end
  bool would_block = false; // MSG_DONTWAIT and nothing queued
  // The parsed message; an error status when the packet was malformed
  // (kInvalidArgument, saying what was wrong). Descriptors that came with
  // a malformed packet are in message.fds and are closed with it.
  absl::Status parse = absl::OkStatus();
  Message message;
};

// Receives one packet (descriptors arrive close-on-exec). The returned
// status is for the socket itself (errno); a malformed packet is reported
// in Received::parse.
absl::StatusOr<Received> Receive(int socket, int flags = 0);

// Checks a packet's bytes and splits them (exposed for tests).
absl::Status Parse(absl::string_view packet, Message* out);

}  // namespace coherefs::agent::supervisor::wire

#endif  // COHEREFS_AGENT_SUPERVISOR_PROTOCOL_H_
