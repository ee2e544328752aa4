// Wire constants and payload layouts of the vhost-user protocol (QEMU
// docs/interop/vhost-user.rst, "Message types" and "Protocol features"), and
// the split-virtqueue constants of virtio 1.2 §2.7. Everything is
// little-endian on the wire; coherefs runs on little-endian hosts only
// (static_assert below), so the structs are read as they are.
//
// Header-only constants and plain structs: thread-safe by construction.
#ifndef COHEREFS_AGENT_VHOST_USER_PROTOCOL_H_
#define COHEREFS_AGENT_VHOST_USER_PROTOCOL_H_

#include <cstddef>
#include <cstdint>

namespace coherefs::agent::vhost_user {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "vhost-user and virtio 1.x rings are little-endian");

// Front-end -> back-end request codes (vhost-user spec, "Front-end message
// types"). Only the ones this backend understands or refuses by name.
enum class RequestType : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kGetConfig = 24,
  kSetConfig = 25,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
};

// Header flags: bits 0-1 are the protocol version (always 1).
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;

// virtio feature bits (virtio 1.2 §6) and the vhost-user one.
inline constexpr int kVirtioRingFIndirectDesc = 28;
inline constexpr int kVirtioRingFEventIdx = 29;
inline constexpr int kVhostUserFProtocolFeatures = 30;
inline constexpr int kVirtioFVersion1 = 32;
inline constexpr int kVhostFLogAll = 26;

// Protocol feature bits (vhost-user spec, "Protocol features").
inline constexpr int kProtocolFMq = 0;
inline constexpr int kProtocolFLogShmfd = 1;
inline constexpr int kProtocolFReplyAck = 3;
inline constexpr int kProtocolFConfig = 9;
inline constexpr int kProtocolFResetDevice = 13;
inline constexpr int kProtocolFConfigureMemSlots = 15;

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }

// SET_VRING_KICK/CALL/ERR payload: bits 0-7 index, bit 8 "no fd".
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFdMask = 1u << 8;
// SET_VRING_ADDR flags: bit 0 asks for used-ring dirty logging.
inline constexpr uint32_t kVringAddrFLog = 1u << 0;

struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // payload bytes after the header
};
static_assert(sizeof(Header) == 12);

struct VringState {
  uint32_t index;
  uint32_t num;
};

struct VringAddr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc_user_addr;   // front-end virtual addresses, not guest-physical
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

struct MemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};
static_assert(sizeof(MemoryRegion) == 32);

// SET_MEM_TABLE: u32 nregions, u32 padding, then nregions regions; QEMU
// sends exactly 8 + 32 * nregions bytes and one fd per region.
inline constexpr size_t kMemTableHeaderSize = 8;
inline constexpr uint32_t kMaxMemRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS

// GET_CONFIG/SET_CONFIG: u32 offset, u32 size, u32 flags, then `size` bytes.
struct ConfigHeader {
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
};
static_assert(sizeof(ConfigHeader) == 12);
inline constexpr uint32_t kMaxConfigSize = 256;  // VHOST_USER_MAX_CONFIG_SIZE

// Largest payload any request we accept can carry (the memory table is the
// largest at 264 bytes); anything bigger is a framing error.
inline constexpr uint32_t kMaxPayloadSize = 4096;
// Most fds one message may carry (one per memory region).
inline constexpr size_t kMaxFds = kMaxMemRegions;

// Split virtqueue (virtio 1.2 §2.7).
inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;
inline constexpr uint16_t kAvailFNoInterrupt = 1;
inline constexpr uint16_t kUsedFNoNotify = 1;
inline constexpr uint32_t kMaxQueueSize = 32768;

struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);

struct VirtqUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VirtqUsedElem) == 8);

// Ring sizes in bytes for a queue of `num` entries, event fields included
// (the driver always lays them out, negotiated or not).
constexpr uint64_t DescTableBytes(uint32_t num) { return 16ull * num; }
constexpr uint64_t AvailRingBytes(uint32_t num) { return 6ull + 2ull * num; }
constexpr uint64_t UsedRingBytes(uint32_t num) { return 6ull + 8ull * num; }

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_PROTOCOL_H_
