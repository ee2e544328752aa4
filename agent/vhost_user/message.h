// Framing and decoding of vhost-user messages (QEMU docs/interop/vhost-user.rst,
// "Message specification"): a 12-byte header, a payload of header.size
// bytes, and up to kMaxFds file descriptors passed with SCM_RIGHTS.
//
// Two layers, both pure except ReadMessage/WriteReply:
//   * ParseHeader / DecodeRequest check everything that depends on the
//     message alone: version bits, payload size for the request, fd count,
//     region counts and overflow. They never trust a length before checking
//     it (the fuzz target message_fuzzer.cc drives them).
//   * ReadMessage / WriteReply move bytes and fds over the socket.
// Error codes: kInvalidArgument for a malformed message (the connection may
// go on if the framing was intact), kDataLoss for broken framing (the stream
// can no longer be trusted: close it), kUnimplemented for an unknown or
// refused request, kUnavailable for a peer that closed the socket.
// Thread-safety: functions are re-entrant; a Message is a value.
#ifndef COHEREFS_AGENT_VHOST_USER_MESSAGE_H_
#define COHEREFS_AGENT_VHOST_USER_MESSAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/vhost_user/protocol.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user {

// One message as it came off the socket.
struct Message {
  Header header{};
  std::string payload;
  std::vector<UniqueFd> fds;
};

// A request whose payload has been checked against its type. Only the field
// that belongs to `type` is meaningful.
struct Request {
  RequestType type{};
  bool need_reply = false;
  uint64_t u64 = 0;          // features, kick/call/err index+flags, GET_VRING_BASE
  VringState state{};        // SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE
  VringAddr addr{};          // SET_VRING_ADDR
  std::vector<MemoryRegion> regions;  // SET_MEM_TABLE (n), ADD/REM_MEM_REG (1)
  ConfigHeader config{};     // GET_CONFIG
  std::vector<UniqueFd> fds;
};

// Checks the version bits, the reply flag (a front end never sends replies)
// and the size limit. kDataLoss on any failure: nothing after this header
// can be framed.
absl::StatusOr<Header> ParseHeader(absl::Span<const uint8_t> bytes);

// Checks `msg` against its request type and decodes it; takes the fds.
// kUnimplemented for a request this backend does not know; kInvalidArgument
// for a wrong payload size, missing or extra fds, more than kMaxMemRegions
// regions, a region of size 0 or whose address + size overflows.
absl::StatusOr<Request> DecodeRequest(Message msg);

// Reads one message from the socket `fd`, waiting for it. kUnavailable when
// the peer closed the socket cleanly before a header; kDataLoss for a short
// header or payload, a truncated fd list (more than kMaxFds fds) or a
// payload over kMaxPayloadSize. While waiting for the rest of a message it
// also watches `stop_fd` (if >= 0): readable means kCancelled, so a front
// end that stalls mid-message cannot hold up a shutdown.
absl::StatusOr<Message> ReadMessage(int fd, int stop_fd = -1);

// Sends a reply to `request` (REPLY flag set, version 1) with `payload`.
absl::Status WriteReply(int fd, RequestType request,
                        absl::Span<const uint8_t> payload);
absl::Status WriteReplyU64(int fd, RequestType request, uint64_t value);

// Name of a request code for logs ("SET_MEM_TABLE", or the number).
std::string RequestName(uint32_t request);

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_MESSAGE_H_
