#include "agent/passthrough/node_journal.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace coherefs::agent::passthrough {

namespace {

// Header words (byte offsets). The first four are written once per Reset
// and covered by kHdrCheck; the next three change in place and check
// themselves (Pack); kHdrIncomplete is 0 or not.
constexpr size_t kHdrMagic = 0;
constexpr size_t kHdrVersion = 8;  // u32 version, u32 slot bytes
constexpr size_t kHdrRootMnt = 16;
constexpr size_t kHdrCheck = 24;
constexpr size_t kHdrMaxNode = 32;
constexpr size_t kHdrMaxHandle = 40;
constexpr size_t kHdrSession = 48;
constexpr size_t kHdrIncomplete = 56;

constexpr uint64_t kMagic = 0x314e524a534643ULL;  // "CFSJRN1"
constexpr uint32_t kVersion = 1;

// Slot words. kSlotCommit is the commit word: the record's kind once every
// other field is in place, 0 when free. kSlotLookups changes in place.
// [kSlotId, kSlotCheck) is immutable and checksummed into kSlotCheck.
constexpr size_t kSlotCommit = 0;
constexpr size_t kSlotLookups = 8;
constexpr size_t kSlotId = 16;
constexpr size_t kSlotGen = 24;     // handle: node id
constexpr size_t kSlotDev = 32;     // handle: u32 flags, u32 is_dir
constexpr size_t kSlotIno = 40;
constexpr size_t kSlotMnt = 48;
constexpr size_t kSlotType = 56;    // u32 type, u32 key length
constexpr size_t kSlotKey = 64;
constexpr size_t kSlotCheck = 120;
static_assert(kSlotKey + NodeJournal::kMaxFileKeyBytes == kSlotCheck, "slot layout");
static_assert(kSlotCheck + 8 == NodeJournal::kSlotBytes, "slot layout");

constexpr uint64_t kNodeCommit = 0x4e4f444531ULL;    // "NODE1"
constexpr uint64_t kHandleCommit = 0x48414e4431ULL;  // "HAND1"

constexpr size_t kInitialSlots = 64;
constexpr uint64_t kLow48 = (uint64_t{1} << 48) - 1;

// splitmix64's finalizer: cheap, and every input bit reaches every output
// bit, which is all a torn-write / bit-flip check needs.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t Checksum(const char* p, size_t len, uint64_t salt) {
  uint64_t h = Mix(salt ^ 0x9e3779b97f4a7c15ULL);
  for (size_t i = 0; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = Mix(h ^ w);
  }
  return h;
}

// A 48-bit value with a 16-bit check of (value, salt) on top, so that one
// aligned store updates both and a flipped bit is noticed.
uint64_t Pack(uint64_t value, uint64_t salt) {
  value = std::min(value, kLow48);
  return value | (Mix(value ^ (salt * 0x100000001b3ULL)) & ~kLow48);
}
bool Unpack(uint64_t word, uint64_t salt, uint64_t* value) {
  const uint64_t v = word & kLow48;
  if (Pack(v, salt) != word) return false;
  *value = v;
  return true;
}

uint64_t Load(const char* p) { return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE); }
// Release: the fields written before are in the mapping before this word,
// as a reader after a SIGKILL at any instruction expects.
void Store(char* p, uint64_t v) { __atomic_store_n(reinterpret_cast<uint64_t*>(p), v, __ATOMIC_RELEASE); }
void Put64(char* p, uint64_t v) { memcpy(p, &v, 8); }
void Put32(char* p, uint32_t v) { memcpy(p, &v, 4); }
uint64_t Get64(const char* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
uint32_t Get32(const char* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

uint64_t HeaderCheck(const char* map) { return Checksum(map, kHdrCheck, kMagic); }
uint64_t SlotSalt(NodeJournal::Slot slot, uint64_t kind) { return (uint64_t{slot} << 8) ^ kind; }

}  // namespace

absl::StatusOr<std::unique_ptr<NodeJournal>> NodeJournal::Open(UniqueFd memfd, size_t max_bytes) {
  if (!memfd) return absl::InvalidArgumentError("node journal: invalid fd");
  if (max_bytes < kHeaderBytes + kSlotBytes) {
    return absl::InvalidArgumentError(absl::StrCat("node journal: max_bytes ", max_bytes,
                                                   " is below one slot"));
  }
  struct stat st;
  if (fstat(memfd.get(), &st) != 0) return LastErrnoStatus("node journal: fstat");
  const bool fresh = st.st_size == 0;
  size_t size = static_cast<size_t>(st.st_size);
  if (fresh) {
    size = std::min(max_bytes, kHeaderBytes + kInitialSlots * kSlotBytes);
    if (ftruncate(memfd.get(), static_cast<off_t>(size)) != 0) {
      return LastErrnoStatus("node journal: ftruncate");
    }
  } else if (size < kHeaderBytes) {
    // Too short even for a header: mapped so Read() can say so.
    size = kHeaderBytes;
  }
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  if (map == MAP_FAILED) return LastErrnoStatus("node journal: mmap");
  std::unique_ptr<NodeJournal> j(new NodeJournal(std::move(memfd), max_bytes));
  absl::MutexLock lock(&j->mu_);
  j->map_ = static_cast<char*>(map);
  j->size_ = size;
  if (fresh) {
    j->WriteHeader(0);
    j->writable_ = true;
  }
  return j;
}

NodeJournal::NodeJournal(UniqueFd fd, size_t max_bytes) : fd_(std::move(fd)), max_bytes_(max_bytes) {}

NodeJournal::~NodeJournal() {
  absl::MutexLock lock(&mu_);
  if (map_ != nullptr) munmap(map_, size_);
}

void NodeJournal::WriteHeader(uint64_t root_mnt_id) {
  Store(map_ + kHdrMagic, 0);  // invalid while the header is rewritten
  Put32(map_ + kHdrVersion, kVersion);
  Put32(map_ + kHdrVersion + 4, kSlotBytes);
  Put64(map_ + kHdrRootMnt, root_mnt_id);
  Put64(map_ + kHdrMaxNode, Pack(0, kHdrMaxNode));
  Put64(map_ + kHdrMaxHandle, Pack(0, kHdrMaxHandle));
  Put64(map_ + kHdrSession, Pack(0, kHdrSession));
  Put64(map_ + kHdrIncomplete, 0);
  Put64(map_ + kHdrCheck, 0);
  Store(map_ + kHdrMagic, kMagic);
  Store(map_ + kHdrCheck, HeaderCheck(map_));
}

absl::StatusOr<NodeJournal::Snapshot> NodeJournal::Read() const {
  absl::MutexLock lock(&mu_);
  struct stat st;
  if (fstat(fd_.get(), &st) != 0) return LastErrnoStatus("node journal: fstat");
  // The file may be shorter than the mapping (truncated behind our back):
  // only bytes inside it are read (touching the rest would SIGBUS).
  const size_t size = std::min(size_, static_cast<size_t>(st.st_size));
  if (size < kHeaderBytes) {
    return absl::DataLossError(absl::StrCat("node journal: ", size, " bytes, shorter than a header"));
  }
  if (Get64(map_ + kHdrMagic) != kMagic) return absl::DataLossError("node journal: bad magic");
  if (Get32(map_ + kHdrVersion) != kVersion || Get32(map_ + kHdrVersion + 4) != kSlotBytes) {
    return absl::DataLossError(absl::StrCat("node journal: version ", Get32(map_ + kHdrVersion),
                                            " slot size ", Get32(map_ + kHdrVersion + 4),
                                            ", want ", kVersion, " and ", kSlotBytes));
  }
  if (Get64(map_ + kHdrCheck) != HeaderCheck(map_)) {
    return absl::DataLossError("node journal: header checksum mismatch");
  }
  Snapshot snap;
  snap.root_mnt_id = Get64(map_ + kHdrRootMnt);
  // A damaged high-water mark only costs the guarantee that ids above the
  // live ones are not reissued; the live records still restore.
  if (!Unpack(Get64(map_ + kHdrMaxNode), kHdrMaxNode, &snap.max_node_id) ||
      !Unpack(Get64(map_ + kHdrMaxHandle), kHdrMaxHandle, &snap.max_handle_id)) {
    ++snap.corrupt_slots;
  }
  if (!Unpack(Get64(map_ + kHdrSession), kHdrSession, &snap.session_flags)) {
    snap.session_flags = 0;
    ++snap.corrupt_slots;
  }
  snap.incomplete = Get64(map_ + kHdrIncomplete) != 0;

  const size_t slots = (size - kHeaderBytes) / kSlotBytes;
  for (size_t i = 0; i < slots; ++i) {
    const char* p = map_ + kHeaderBytes + i * kSlotBytes;
    const uint64_t kind = Load(p + kSlotCommit);
    if (kind == 0) continue;
    const Slot slot = static_cast<Slot>(i);
    if ((kind != kNodeCommit && kind != kHandleCommit) ||
        Get64(p + kSlotCheck) != Checksum(p + kSlotId, kSlotCheck - kSlotId, SlotSalt(slot, kind))) {
      ++snap.corrupt_slots;
      continue;
    }
    if (kind == kHandleCommit) {
      HandleRecord h;
      h.id = Get64(p + kSlotId);
      h.node = Get64(p + kSlotGen);
      h.flags = Get32(p + kSlotDev);
      h.is_dir = Get32(p + kSlotDev + 4) != 0;
      snap.handles.push_back(h);
      continue;
    }
    NodeRecord n;
    if (!Unpack(Load(p + kSlotLookups), SlotSalt(slot, kSlotLookups), &n.nlookup)) {
      ++snap.corrupt_slots;
      continue;
    }
    const uint32_t key_len = Get32(p + kSlotType + 4);
    if (key_len > kMaxFileKeyBytes) {  // checksummed, so only a bug gets here
      ++snap.corrupt_slots;
      continue;
    }
    n.id = Get64(p + kSlotId);
    n.generation = Get64(p + kSlotGen);
    n.dev = Get64(p + kSlotDev);
    n.ino = Get64(p + kSlotIno);
    n.mnt_id = Get64(p + kSlotMnt);
    n.type = Get32(p + kSlotType);
    n.file_key.assign(p + kSlotKey, key_len);
    snap.nodes.push_back(std::move(n));
  }
  return snap;
}

void NodeJournal::Reset(uint64_t root_mnt_id) {
  absl::MutexLock lock(&mu_);
  // Shrink back to the initial size: a long-lived big journal is not kept
  // past a DESTROY. Slots beyond are zeroed by the kernel on regrowth.
  const size_t initial = std::min(max_bytes_, kHeaderBytes + kInitialSlots * kSlotBytes);
  // Always truncate: the file may have been cut shorter than the mapping
  // (touching pages past its end would SIGBUS).
  if (ftruncate(fd_.get(), static_cast<off_t>(initial)) != 0) {
    writable_ = false;
    return;
  }
  if (size_ != initial) {
    void* m = mremap(map_, size_, initial, MREMAP_MAYMOVE);
    if (m == MAP_FAILED) {
      writable_ = false;
      return;
    }
    map_ = static_cast<char*>(m);
    size_ = initial;
  }
  memset(map_ + kHeaderBytes, 0, size_ - kHeaderBytes);
  WriteHeader(root_mnt_id);
  used_ = 0;
  free_.clear();
  nodes_ = handles_ = 0;
  dropped_ = 0;
  max_node_id_ = max_handle_id_ = 0;
  writable_ = true;
}

char* NodeJournal::SlotPtr(Slot slot) { return map_ + kHeaderBytes + size_t{slot} * kSlotBytes; }

void NodeJournal::MarkIncomplete() {
  ++dropped_;
  Store(map_ + kHdrIncomplete, 1);
}

NodeJournal::Slot NodeJournal::Allocate() {
  if (!writable_) return kNoSlot;
  if (!free_.empty()) {
    Slot s = free_.back();
    free_.pop_back();
    return s;
  }
  const size_t capacity = (size_ - kHeaderBytes) / kSlotBytes;
  if (used_ < capacity) return used_++;
  // Grow: double, capped. ftruncate zero-fills, so new slots read as free.
  const size_t max_slots = std::min<size_t>((max_bytes_ - kHeaderBytes) / kSlotBytes, kNoSlot - 1);
  const size_t want = std::min(max_slots, std::max<size_t>(capacity * 2, kInitialSlots));
  if (want <= capacity) return kNoSlot;
  const size_t new_size = kHeaderBytes + want * kSlotBytes;
  if (ftruncate(fd_.get(), static_cast<off_t>(new_size)) != 0) return kNoSlot;
  void* m = mremap(map_, size_, new_size, MREMAP_MAYMOVE);
  if (m == MAP_FAILED) return kNoSlot;
  map_ = static_cast<char*>(m);
  size_ = new_size;
  return used_++;
}

NodeJournal::Slot NodeJournal::AddNode(const NodeRecord& node) {
  absl::MutexLock lock(&mu_);
  if (node.file_key.empty() || node.file_key.size() > kMaxFileKeyBytes) {
    if (writable_) MarkIncomplete();
    return kNoSlot;
  }
  const Slot slot = Allocate();
  if (slot == kNoSlot) {
    if (writable_) MarkIncomplete();
    return kNoSlot;
  }
  char* p = SlotPtr(slot);
  Put64(p + kSlotLookups, Pack(node.nlookup, SlotSalt(slot, kSlotLookups)));
  Put64(p + kSlotId, node.id);
  Put64(p + kSlotGen, node.generation);
  Put64(p + kSlotDev, node.dev);
  Put64(p + kSlotIno, node.ino);
  Put64(p + kSlotMnt, node.mnt_id);
  Put32(p + kSlotType, node.type);
  Put32(p + kSlotType + 4, static_cast<uint32_t>(node.file_key.size()));
  memset(p + kSlotKey, 0, kMaxFileKeyBytes);
  memcpy(p + kSlotKey, node.file_key.data(), node.file_key.size());
  Put64(p + kSlotCheck, Checksum(p + kSlotId, kSlotCheck - kSlotId, SlotSalt(slot, kNodeCommit)));
  Store(p + kSlotCommit, kNodeCommit);
  ++nodes_;
  if (node.id > max_node_id_) {
    max_node_id_ = node.id;
    Store(map_ + kHdrMaxNode, Pack(max_node_id_, kHdrMaxNode));
  }
  return slot;
}

void NodeJournal::SetLookups(Slot slot, uint64_t nlookup) {
  if (slot == kNoSlot) return;
  absl::MutexLock lock(&mu_);
  Store(SlotPtr(slot) + kSlotLookups, Pack(nlookup, SlotSalt(slot, kSlotLookups)));
}

NodeJournal::Slot NodeJournal::AddHandle(const HandleRecord& handle) {
  absl::MutexLock lock(&mu_);
  const Slot slot = Allocate();
  if (slot == kNoSlot) {
    if (writable_) MarkIncomplete();
    return kNoSlot;
  }
  char* p = SlotPtr(slot);
  memset(p + kSlotLookups, 0, kSlotBytes - kSlotLookups);
  Put64(p + kSlotId, handle.id);
  Put64(p + kSlotGen, handle.node);
  Put32(p + kSlotDev, handle.flags);
  Put32(p + kSlotDev + 4, handle.is_dir ? 1 : 0);
  Put64(p + kSlotCheck,
        Checksum(p + kSlotId, kSlotCheck - kSlotId, SlotSalt(slot, kHandleCommit)));
  Store(p + kSlotCommit, kHandleCommit);
  ++handles_;
  if (handle.id > max_handle_id_) {
    max_handle_id_ = handle.id;
    Store(map_ + kHdrMaxHandle, Pack(max_handle_id_, kHdrMaxHandle));
  }
  return slot;
}

void NodeJournal::Remove(Slot slot) {
  if (slot == kNoSlot) return;
  absl::MutexLock lock(&mu_);
  char* p = SlotPtr(slot);
  const uint64_t kind = Load(p + kSlotCommit);
  if (kind == 0) return;
  Store(p + kSlotCommit, 0);
  if (kind == kNodeCommit) {
    --nodes_;
  } else {
    --handles_;
  }
  free_.push_back(slot);
}

void NodeJournal::NoteIds(uint64_t node_id, uint64_t handle_id) {
  absl::MutexLock lock(&mu_);
  if (!writable_) return;
  if (node_id > max_node_id_) {
    max_node_id_ = node_id;
    Store(map_ + kHdrMaxNode, Pack(max_node_id_, kHdrMaxNode));
  }
  if (handle_id > max_handle_id_) {
    max_handle_id_ = handle_id;
    Store(map_ + kHdrMaxHandle, Pack(max_handle_id_, kHdrMaxHandle));
  }
}

void NodeJournal::SetSessionFlags(uint64_t flags) {
  absl::MutexLock lock(&mu_);
  if (!writable_) return;
  Store(map_ + kHdrSession, Pack(flags, kHdrSession));
}

NodeJournal::Stats NodeJournal::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.nodes = nodes_;
  s.handles = handles_;
  s.bytes = size_;
  s.dropped = dropped_;
  return s;
}

}  // namespace coherefs::agent::passthrough
