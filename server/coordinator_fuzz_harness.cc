#include "server/coordinator_fuzz_harness.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/coherence_core.h"
#include "server/memory_store.h"
#include "server/rocksdb_store.h"

namespace coherefs::server {
namespace {

using Code = absl::StatusCode;
using Kind = SubscriptionEvent::Kind;

constexpr uint64_t kCounterMask = (uint64_t{1} << kEpochShift) - 1;

enum Op : uint8_t {
  kRegister, kKeepAlive, kUnregister, kCreate, kResolve, kResolve2, kBump,
  kBump2, kSubscribe, kDrain, kCancel, kAck, kSnapshot, kDescribe, kSync,
  kRestart,
};
constexpr const char* kOpNames[16] = {
    "RegisterAgent", "KeepAlive",  "UnregisterAgent", "CreateVolume",
    "Resolve",       "Resolve",    "Bump",            "Bump",
    "Subscribe",     "Drain",      "Cancel",          "AckInvalidations",
    "Snapshot",      "Describe",   "Sync",            "Restart"};
constexpr uint8_t kWait = 0x10;

// The fuzzer's bytes; reads past the end give zeros, so every input is a
// complete program.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{U8()} << (8 * i);
    return v;
  }
  uint64_t U64() { return uint64_t{U32()} | uint64_t{U32()} << 32; }
  std::string Bytes(size_t n) {
    std::string out;
    while (out.size() < n && pos_ < size_) out.push_back(char(U8()));
    return out;
  }

 private:
  const uint8_t* const data_;
  const size_t size_;
  size_t pos_ = 0;
};

bool ValidVolumeName(const std::string& s) {
  if (s.empty() || s.size() > kMaxVolumeNameBytes) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}
bool ValidAgentId(const std::string& s) {
  return !s.empty() && s.size() <= kMaxAgentIdBytes;
}
bool ValidKey(const std::string& s) {
  return !s.empty() && s.size() <= kMaxKeyBytes;
}

// Every slot and seq of a volume is below this: volumes belong to one
// input (their names carry its prefix), which allocates at most kMaxBatch
// slots and bumps at most kMaxBatch of them per op. A reply beyond it is
// wrong; below it, the model indexes vectors by slot and seq (flat vectors:
// under ASan a node per slot made 4096-slot batches cost ~100 ms).
constexpr uint64_t kModelLimit = uint64_t{kMaxCoordinatorOps} * kMaxBatch;

// Highest version acknowledged per slot; 0: none yet.
using Floors = std::vector<uint64_t>;
uint64_t FloorOf(const Floors& floors, uint32_t slot) {
  return slot < floors.size() ? floors[slot] : 0;
}

// What the harness has learnt from replies. Everything in it was
// acknowledged by the core, so later replies must agree with it.
struct VolumeModel {
  uint32_t capacity = 0;  // 0: no CreateVolume reply seen yet
  absl::flat_hash_map<std::string, uint32_t> slot_of;
  std::vector<bool> slot_taken;  // by slot: a key was resolved to it
  uint32_t slot_end = 0;         // 1 + the highest slot taken
  Floors floor;
  std::vector<LogEntry> log;  // by seq; seq 0: not seen
  uint64_t last_seq = 0;      // highest seq seen
  // By slot: (seq, version) of every log entry seen, by seq.
  std::vector<absl::InlinedVector<std::pair<uint64_t, uint64_t>, 1>> by_slot;
  uint64_t committed_floor = 0;
  uint64_t retained_floor = 1;
};

struct SubscriptionModel {
  std::shared_ptr<Subscription> sub;
  std::string volume;
  std::string agent;
  uint64_t expect = 0;  // next seq; 0 until the hello when from_seq was 0
  uint64_t committed_at_issue = 0;
  uint64_t epoch = 0;
  bool hello = false;
  bool resynced = false;
  bool ended = false;
};

// State the decoder needs to pick meaningful operands.
struct Snap {
  // Known to exist when the request was issued (an async CreateVolume may
  // complete while a request is answered NOT_FOUND).
  bool exists = false;
  uint32_t known_slots = 0;
  uint64_t committed = 0;
  uint64_t last_seq = 0;
  Floors floor;  // only when asked for (a copy of every slot's)
};

// A store and a core that serve many inputs, each in its own namespace of
// volume and agent names: starting a core per input (two threads) cost
// more than the input itself under ASan. One world per store kind and
// core options; replaced after a broken invariant, and once it holds
// kWorldVolumes volumes or kWorldSlots slots (or served kWorldInputs
// inputs): a restart reloads every volume and the committer scans them all
// after each commit, so big worlds made every input slow (worlds of 2048
// inputs ran ~20 executions per second).
struct World {
  FuzzStoreKind kind = FuzzStoreKind::kMemory;
  CoreOptions options;
  std::string db_dir;  // kRocksDb
  std::unique_ptr<Store> store;
  std::unique_ptr<CoherenceCore> core;
  int inputs = 0;
  uint64_t volumes = 0;  // created by its inputs
  uint64_t slots = 0;    // allocated by its inputs

  // Opens the store if it is closed and starts a core on it.
  absl::Status Start() {
    if (store == nullptr) {
      if (kind == FuzzStoreKind::kMemory) {
        store = std::make_unique<MemoryStore>();
      } else {
        auto db = RocksDbStore::Open(db_dir);
        if (!db.ok()) return db.status();
        store = std::move(*db);
      }
    }
    auto started = CoherenceCore::Start(store.get(), options, nullptr);
    if (!started.ok()) return started.status();
    core = std::move(*started);
    return absl::OkStatus();
  }
  ~World() {
    core.reset();
    store.reset();
    if (!db_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(db_dir, ec);
    }
  }
};

constexpr int kWorldInputs = 2048;
constexpr uint64_t kWorldVolumes = 32;
constexpr uint64_t kWorldSlots = 4096;

// Worlds by (store kind, config byte); see DecodeConfig.
std::map<std::pair<int, uint8_t>, std::unique_ptr<World>>& Worlds() {
  static auto* worlds =
      new std::map<std::pair<int, uint8_t>, std::unique_ptr<World>>();
  return *worlds;
}

// Config byte: bits 0-1 subscriber queue limit, bit 2 delivery batch,
// bit 3 log retention; the other bits are ignored.
uint8_t WorldKey(uint8_t config) { return config & 0x0F; }
CoreOptions DecodeConfig(uint8_t config) {
  static constexpr size_t kQueue[] = {65536, 1, 3, 16};
  CoreOptions o;
  o.subscriber_queue_limit = kQueue[config & 3];
  o.max_delivery_batch = config & 4 ? 2 : 1024;
  o.log_retention_entries = config & 8 ? 3 : 1000000;
  // Progress marks often enough to show up within an input.
  o.progress_interval = absl::Milliseconds(100);
  return o;
}

class Harness {
 public:
  Harness(const CoordinatorFuzzOptions& options, World* world,
          std::string prefix)
      : options_(options),
        trace_(getenv("FUZZ_TRACE") != nullptr),
        world_(world),
        prefix_(std::move(prefix)) {}

  // Runs the ops after the config byte; "" or what broke. If something
  // broke, the world must be dropped (its core may still hold callbacks
  // into this harness until it is destroyed).
  std::string Run(Reader& in);
  // Volumes this input created and the slots allocated in them.
  void Footprint(uint64_t* volumes, uint64_t* slots);

 private:
  CoherenceCore* core() { return world_->core.get(); }
  // Model access; all under mu_.
  void Fail(std::string what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failure_.empty()) failure_ = std::move(what);
  }
  bool failed() {
    absl::MutexLock lock(&mu_);
    return !failure_.empty();
  }
  void Trace(const std::string& what, const absl::Status& status) {
    if (trace_) {
      std::fprintf(stderr, "fuzz: %s -> %s\n", what.c_str(),
                   status.ToString().c_str());
    }
  }
  // `code` must be one of `allowed` (OK is always allowed unless `invalid`).
  bool CheckCode(const char* op, const absl::Status& s, bool invalid,
                 std::initializer_list<Code> allowed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddLog(const std::string& volume, const LogEntry& e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Raises the floor of a slot a reply showed at `version`; false (and
  // failed) for a slot no input can have.
  bool RaiseFloor(VolumeModel& vm, uint32_t slot, uint64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Snap SnapOf(const std::string& volume, bool with_floor = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool KnownVolume(const std::string& volume)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = volumes_.find(volume);
    return it != volumes_.end() && it->second.capacity != 0;
  }

  // Operand decoders.
  std::string Volume(Reader& in);
  std::string Agent(Reader& in);
  std::string Key(Reader& in);
  size_t Count(Reader& in);
  uint32_t Slot(Reader& in, uint32_t known);

  // One op each; `async` ops are not waited for.
  void DoRegister(Reader& in);
  void DoKeepAlive(Reader& in);
  void DoUnregister(Reader& in);
  void DoCreate(Reader& in, bool async);
  void DoResolve(Reader& in, bool async);
  void DoBump(Reader& in, uint8_t flags, bool async);
  void DoSubscribe(Reader& in, uint8_t flags);
  void DoDrain(Reader& in);
  void DoCancel(Reader& in);
  void DoAck(Reader& in);
  void DoSnapshot(Reader& in);
  void DoDescribe(Reader& in);
  // Waits for every non-strict request, drains every stream and compares
  // each volume with the model.
  void Sync();
  void Restart();

  // Pulls up to `max_events` events; with `to_idle`, pulling until Next()
  // has nothing more is required.
  void Drain(SubscriptionModel& m, size_t max_events, bool to_idle);
  // Full table of a volume, by Snapshot pages; nullopt on error (reported).
  bool ReadTable(const std::string& volume, VolumeInfo* info,
                 std::vector<uint64_t>* versions);
  void WaitFor(const std::shared_ptr<bool>& done);
  void WaitOutstanding();
  absl::Status StartCore();
  void StopCore();
  // Ends what this input started in the shared core: streams, agents,
  // strict bumps. False if something would still call back.
  bool Cleanup();

  const CoordinatorFuzzOptions options_;
  const bool trace_;
  World* const world_;
  // Every valid volume name and agent id this input uses starts with it.
  const std::string prefix_;

  absl::Mutex mu_;
  std::string failure_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, VolumeModel> volumes_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> agents_ ABSL_GUARDED_BY(mu_);  // in the core's map
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;         // non-strict requests
  int strict_outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // strict bumps
  int resolves_outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t lease_bound_ms_ ABSL_GUARDED_BY(mu_) = 0;  // for lease_wait
  // The latest lease deadline granted to an agent of this input: one that
  // does not ack counts until then plus its guest lease (the proto's
  // lease_wait_ms rule), so lease_wait may reach a 10-minute lease TTL.
  absl::Time deadline_bound_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  std::vector<SubscriptionModel> subs_;  // harness thread only
  int restarts_ = 0;
  int big_batches_ = 0;  // Count() above 8
};

void Harness::Footprint(uint64_t* volumes, uint64_t* slots) {
  absl::MutexLock lock(&mu_);
  for (const auto& [name, vm] : volumes_) {
    if (vm.capacity == 0) continue;
    *volumes += 1;
    *slots += vm.slot_of.size();
  }
}

bool Harness::CheckCode(const char* op, const absl::Status& s, bool invalid,
                        std::initializer_list<Code> allowed) {
  if (invalid) {
    if (s.code() != Code::kInvalidArgument) {
      Fail(absl::StrCat(op, ": invalid request answered ", s.ToString()));
      return false;
    }
    return true;
  }
  if (s.ok()) return true;
  for (Code c : allowed) {
    if (s.code() == c) return true;
  }
  Fail(absl::StrCat(op, ": status not allowed for a valid request: ",
                    s.ToString()));
  return false;
}

void Harness::AddLog(const std::string& volume, const LogEntry& e) {
  VolumeModel& vm = volumes_[volume];
  if (e.seq == 0 || e.seq >= kModelLimit || e.slot >= kModelLimit ||
      EpochOf(e.version) > epoch_ || (e.version & kCounterMask) == 0) {
    Fail(absl::StrCat("bad log entry seq=", e.seq, " slot=", e.slot,
                      " version=", e.version, " (epoch ", epoch_, ")"));
    return;
  }
  if (vm.log.size() <= e.seq) vm.log.resize(e.seq + 1);
  LogEntry& seen = vm.log[e.seq];
  if (seen.seq != 0) {
    if (!(seen == e)) {
      Fail(absl::StrCat(volume, ": seq ", e.seq, " seen as slot ", seen.slot,
                        " v", seen.version, " and as slot ", e.slot, " v",
                        e.version));
    }
    return;
  }
  seen = e;
  vm.last_seq = std::max(vm.last_seq, e.seq);
  if (vm.by_slot.size() <= e.slot) vm.by_slot.resize(e.slot + 1);
  auto& per_slot = vm.by_slot[e.slot];
  auto next = std::upper_bound(
      per_slot.begin(), per_slot.end(), e.seq,
      [](uint64_t seq, const std::pair<uint64_t, uint64_t>& p) {
        return seq < p.first;
      });
  if (next != per_slot.end() && next->second <= e.version) {
    Fail(absl::StrCat(volume, ": slot ", e.slot, " v", e.version, " at seq ",
                      e.seq, " but v", next->second, " at later seq ",
                      next->first));
  }
  if (next != per_slot.begin() && std::prev(next)->second >= e.version) {
    Fail(absl::StrCat(volume, ": slot ", e.slot, " v", e.version, " at seq ",
                      e.seq, " but v", std::prev(next)->second,
                      " at earlier seq ", std::prev(next)->first));
  }
  per_slot.insert(next, {e.seq, e.version});
  RaiseFloor(vm, e.slot, e.version);
  vm.committed_floor = std::max(vm.committed_floor, e.seq);
}

bool Harness::RaiseFloor(VolumeModel& vm, uint32_t slot, uint64_t version) {
  if (slot >= kModelLimit) {
    Fail(absl::StrCat("slot ", slot, " in a reply: no input allocates that"));
    return false;
  }
  if (vm.floor.size() <= slot) vm.floor.resize(slot + 1);
  vm.floor[slot] = std::max(vm.floor[slot], version);
  return true;
}

Snap Harness::SnapOf(const std::string& volume, bool with_floor) {
  Snap s;
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) return s;
  s.exists = it->second.capacity != 0;
  s.known_slots = it->second.slot_of.size();
  s.committed = it->second.committed_floor;
  s.last_seq = it->second.last_seq;
  if (with_floor) s.floor = it->second.floor;
  return s;
}

// ---------------------------------------------------------------------------
// Operands

// Valid names always start with prefix_, so inputs sharing a world never
// meet; the invalid ones stay invalid with or without it.
std::string Harness::Volume(Reader& in) {
  const std::string& p = prefix_;
  uint8_t b = in.U8();
  if (b < 192) return absl::StrCat(p, "v", b % 3);
  switch (b % 8) {
    case 0: return "";
    case 1: return std::string(kMaxVolumeNameBytes + 1, 'v');
    case 2: return p + std::string(kMaxVolumeNameBytes - p.size(), 'v');
    case 3: return p + "v/0";
    case 4: return p + in.Bytes(in.U8() % 72);
    case 5: return p + std::string("v0\0", 3);
    case 6: return p + "V0";
    default: return p + "v3";
  }
}

std::string Harness::Agent(Reader& in) {
  const std::string& p = prefix_;
  uint8_t b = in.U8();
  if (b < 192) return absl::StrCat(p, "a", b % 3);
  switch (b % 4) {
    case 0: return "";
    case 1: return std::string(kMaxAgentIdBytes + 1, 'a');
    case 2: return p + std::string(kMaxAgentIdBytes - p.size(), 'a');
    default: return p + in.Bytes(in.U8() % 140);
  }
}

std::string Harness::Key(Reader& in) {
  uint8_t b = in.U8();
  if (b < 224) return std::string{'k', char('A' + b % 24)};
  switch (b % 4) {
    case 0: return in.Bytes(in.U8() % 140);
    case 1: return std::string(kMaxKeyBytes - 1, 'K') + char(in.U8());
    case 2: return std::string(kMaxKeyBytes + 1, 'K');
    default: return "";
  }
}

size_t Harness::Count(Reader& in) {
  uint8_t b = in.U8();
  if (b < 250) return 1 + b % 8;
  if (b < 253) return 0;
  // A kMaxBatch batch costs ~30 ms under ASan (a hundred small inputs),
  // and mutants of corpus inputs that have one often have several: one per
  // input, as with restarts; later ones read as small batches.
  if (big_batches_++ > 0) return 1 + b % 8;
  if (b == 253) return kMaxBatch;
  return kMaxBatch + 1;
}

uint32_t Harness::Slot(Reader& in, uint32_t known) {
  uint8_t b = in.U8();
  if (b < 224) return b % (known + 2);
  return in.U32();
}

// ---------------------------------------------------------------------------
// Agents

void Harness::DoRegister(Reader& in) {
  std::string agent = Agent(in);
  static constexpr uint32_t kTtls[] = {0, 1, 100, 1000, 10000, 600000, 600001};
  uint8_t t = in.U8();
  uint32_t ttl_ms = t % 8 < 7 ? kTtls[t % 8] : in.U32();
  static constexpr uint32_t kGuest[] = {0, 5, 5000};
  uint8_t g = in.U8();
  uint32_t guest_ms = g % 4 < 3 ? kGuest[g % 4] : in.U32();
  auto r = core()->RegisterAgent(agent, absl::Milliseconds(ttl_ms), guest_ms);
  Trace(absl::StrCat("RegisterAgent ", agent.size(), "B ttl=", ttl_ms),
        r.status());
  absl::MutexLock lock(&mu_);
  bool known = agents_.count(agent) > 0;
  if (!CheckCode("RegisterAgent", r.status(), !ValidAgentId(agent),
                 {Code::kAlreadyExists})) {
    return;
  }
  if (r.status().code() == Code::kAlreadyExists && !known) {
    Fail("RegisterAgent: ALREADY_EXISTS for an agent never registered");
  }
  if (!r.ok()) return;
  absl::Duration want =
      ttl_ms == 0 ? world_->options.default_lease_ttl
                  : std::clamp(absl::Milliseconds(ttl_ms),
                               world_->options.min_lease_ttl,
                               world_->options.max_lease_ttl);
  if (r->lease_ttl != want || r->epoch != epoch_) {
    Fail(absl::StrCat("RegisterAgent: granted ",
                      absl::FormatDuration(r->lease_ttl), " epoch ", r->epoch,
                      ", expected ", absl::FormatDuration(want), " epoch ",
                      epoch_));
  }
  agents_.insert(agent);
  lease_bound_ms_ = std::max<uint64_t>(lease_bound_ms_, guest_ms);
  deadline_bound_ = std::max(deadline_bound_, absl::Now() + r->lease_ttl);
}

void Harness::DoKeepAlive(Reader& in) {
  std::string agent = Agent(in);
  auto r = core()->KeepAlive(agent);
  Trace(absl::StrCat("KeepAlive ", agent.size(), "B"), r.status());
  absl::MutexLock lock(&mu_);
  bool known = agents_.count(agent) > 0;
  if (!CheckCode("KeepAlive", r.status(), !ValidAgentId(agent),
                 {Code::kNotFound, Code::kFailedPrecondition})) {
    return;
  }
  if (!ValidAgentId(agent)) return;
  if (r.status().code() == Code::kNotFound && known) {
    Fail("KeepAlive: NOT_FOUND for a registered agent");
  }
  if ((r.ok() || r.status().code() == Code::kFailedPrecondition) && !known) {
    Fail(absl::StrCat("KeepAlive: ", r.status().ToString(),
                      " for an agent that is not registered"));
  }
  if (r.ok() && r->epoch != epoch_) Fail("KeepAlive: wrong epoch");
  if (r.ok()) {
    deadline_bound_ = std::max(deadline_bound_, absl::Now() + r->lease_ttl);
  }
}

void Harness::DoUnregister(Reader& in) {
  std::string agent = Agent(in);
  absl::Status s = core()->UnregisterAgent(agent);
  Trace(absl::StrCat("UnregisterAgent ", agent.size(), "B"), s);
  absl::MutexLock lock(&mu_);
  bool known = agents_.count(agent) > 0;
  if (!CheckCode("UnregisterAgent", s, !ValidAgentId(agent),
                 {Code::kNotFound})) {
    return;
  }
  if (!ValidAgentId(agent)) return;
  if (s.ok() != known) {
    Fail(absl::StrCat("UnregisterAgent: ", s.ToString(), " but the agent ",
                      known ? "is" : "is not", " registered"));
  }
  agents_.erase(agent);
}

// ---------------------------------------------------------------------------
// Volumes, slots, versions

void Harness::WaitFor(const std::shared_ptr<bool>& done) {
  absl::MutexLock lock(&mu_);
  // A hang is a bug too; libFuzzer's -timeout reports it with a stack.
  mu_.Await(absl::Condition(done.get()));
}

void Harness::WaitOutstanding() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_ == 0;
  };
  mu_.Await(absl::Condition(&idle));
}

void Harness::DoCreate(Reader& in, bool async) {
  std::string name = Volume(in);
  static constexpr uint32_t kCaps[] = {0, 1, 2, 3, 16, kMaxCapacity,
                                       kMaxCapacity + 1};
  uint8_t c = in.U8();
  uint32_t capacity = c % 8 < 7 ? kCaps[c % 8] : in.U32();
  const bool invalid = !ValidVolumeName(name) || capacity > kMaxCapacity;
  auto done = std::make_shared<bool>(false);
  {
    absl::MutexLock lock(&mu_);
    ++outstanding_;
  }
  core()->CreateVolume(name, capacity, [=](absl::StatusOr<VolumeInfo> r) {
    Trace(absl::StrCat("CreateVolume ", name.size(), "B cap=", capacity),
          r.status());
    absl::MutexLock lock(&mu_);
    --outstanding_;
    *done = true;
    if (!CheckCode("CreateVolume", r.status(), invalid,
                   {Code::kAlreadyExists}) ||
        !r.ok()) {
      return;
    }
    const uint32_t want = capacity == 0 ? kDefaultCapacity : capacity;
    if (r->name != name || r->capacity != want) {
      Fail(absl::StrCat("CreateVolume: reply ", r->name, "/", r->capacity));
    }
    VolumeModel& vm = volumes_[name];
    if (vm.capacity != 0) Fail("CreateVolume: created twice");
    vm.capacity = want;
  });
  if (!async) WaitFor(done);
}

void Harness::DoResolve(Reader& in, bool async) {
  std::string volume = Volume(in);
  size_t n = Count(in);
  std::vector<std::string> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    keys.push_back(n <= 8 ? Key(in) : absl::StrCat("big", i % (n - 7)));
  }
  bool invalid = !ValidVolumeName(volume) || n == 0 || n > kMaxBatch;
  for (const std::string& k : keys) invalid |= !ValidKey(k);
  auto done = std::make_shared<bool>(false);
  Snap at_issue;
  bool quiet;  // no other Resolve can allocate meanwhile
  uint64_t need = 0;
  {
    absl::MutexLock lock(&mu_);
    at_issue = SnapOf(volume, /*with_floor=*/true);
    quiet = resolves_outstanding_ == 0;
    std::set<std::string> fresh;
    const VolumeModel& vm = volumes_[volume];
    for (const std::string& k : keys) {
      if (vm.slot_of.count(k) == 0) fresh.insert(k);
    }
    need = uint64_t{at_issue.known_slots} + fresh.size();
    ++outstanding_;
    ++resolves_outstanding_;
  }
  auto check = [=](absl::StatusOr<ResolveResult> r) {
    Trace(absl::StrCat("Resolve ", volume, " n=", n), r.status());
    absl::MutexLock lock(&mu_);
    --outstanding_;
    --resolves_outstanding_;
    *done = true;
    if (!CheckCode("Resolve", r.status(), invalid,
                   {Code::kNotFound, Code::kResourceExhausted})) {
      return;
    }
    if (invalid) return;
    VolumeModel& vm = volumes_[volume];
    if (r.status().code() == Code::kNotFound && at_issue.exists) {
      Fail("Resolve: NOT_FOUND for an existing volume");
    }
    if (r.status().code() == Code::kResourceExhausted && quiet &&
        vm.capacity != 0 && need <= vm.capacity) {
      Fail(absl::StrCat("Resolve: RESOURCE_EXHAUSTED with ", need,
                        " slots needed of ", vm.capacity));
    }
    if (!r.ok()) return;
    if (r->slots.size() != keys.size()) {
      Fail("Resolve: reply size differs from the request");
      return;
    }
    if (r->committed_seq < at_issue.committed) {
      Fail(absl::StrCat("Resolve: committed_seq ", r->committed_seq,
                        " went back from ", at_issue.committed));
    }
    vm.committed_floor = std::max(vm.committed_floor, r->committed_seq);
    for (size_t i = 0; i < keys.size(); ++i) {
      const SlotVersion& sv = r->slots[i];
      if (!RaiseFloor(vm, sv.slot, sv.version)) return;
      auto known = vm.slot_of.find(keys[i]);
      if (known != vm.slot_of.end()) {
        if (known->second != sv.slot) {
          Fail(absl::StrCat("Resolve: key moved from slot ", known->second,
                            " to ", sv.slot));
        }
      } else {
        if (vm.slot_taken.size() <= sv.slot) {
          vm.slot_taken.resize(sv.slot + 1);
        }
        if (vm.slot_taken[sv.slot]) {
          Fail(absl::StrCat("Resolve: slot ", sv.slot,
                            " given to two keys"));
        }
        vm.slot_taken[sv.slot] = true;
        vm.slot_end = std::max(vm.slot_end, sv.slot + 1);
        vm.slot_of.emplace(keys[i], sv.slot);
      }
      if (vm.capacity != 0 && sv.slot >= vm.capacity) {
        Fail(absl::StrCat("Resolve: slot ", sv.slot, " >= capacity ",
                          vm.capacity));
      }
      const uint64_t floor = FloorOf(at_issue.floor, sv.slot);
      if (sv.version < floor) {
        Fail(absl::StrCat("Resolve: slot ", sv.slot, " version ", sv.version,
                          " older than acknowledged ", floor));
      }
      if (EpochOf(sv.version) > epoch_ || EpochOf(sv.version) == 0) {
        Fail(absl::StrCat("Resolve: version ", sv.version, " epoch"));
      }
    }
  };
  core()->Resolve(volume, std::move(keys), std::move(check));
  if (!async) WaitFor(done);
}

void Harness::DoBump(Reader& in, uint8_t flags, bool async) {
  std::string volume = Volume(in);
  const bool strict = flags & 1;
  BumpOptions bo;
  bo.wait_for_leases = strict;
  if (strict || (flags & 2)) bo.agent_id = Agent(in);
  size_t n = Count(in);
  Snap at_issue;
  {
    absl::MutexLock lock(&mu_);
    at_issue = SnapOf(volume);
  }
  std::vector<uint32_t> slots;
  slots.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    slots.push_back(n <= 8 ? Slot(in, at_issue.known_slots)
                           : uint32_t(i % std::max(1u, at_issue.known_slots)));
  }
  const bool invalid = !ValidVolumeName(volume) || n == 0 || n > kMaxBatch ||
                       (strict && !ValidAgentId(bo.agent_id));
  bool surely_allocated = true;
  for (uint32_t s : slots) surely_allocated &= s < at_issue.known_slots;
  uint64_t epoch;
  // Versions acknowledged before the request is issued, per bumped slot.
  std::vector<uint64_t> floors(n);
  auto done = std::make_shared<bool>(false);
  {
    absl::MutexLock lock(&mu_);
    epoch = epoch_;
    auto it = volumes_.find(volume);
    if (it != volumes_.end()) {
      for (size_t i = 0; i < n; ++i) {
        floors[i] = FloorOf(it->second.floor, slots[i]);
      }
    }
    ++(strict ? strict_outstanding_ : outstanding_);
  }
  // Published no earlier than this.
  const absl::Time issued = absl::Now();
  auto check = [=](absl::StatusOr<BumpResult> r) {
    Trace(absl::StrCat("Bump ", volume, " n=", n, strict ? " strict" : ""),
          r.status());
    absl::MutexLock lock(&mu_);
    --(strict ? strict_outstanding_ : outstanding_);
    *done = true;
    const bool stopping = stopping_;
    std::initializer_list<Code> allowed = {Code::kNotFound, Code::kOutOfRange};
    std::initializer_list<Code> allowed_stopping = {
        Code::kNotFound, Code::kOutOfRange, Code::kUnavailable};
    if (!CheckCode("Bump", r.status(), invalid,
                   strict && stopping ? allowed_stopping : allowed)) {
      return;
    }
    if (invalid) return;
    if (r.status().code() == Code::kNotFound && at_issue.exists) {
      Fail("Bump: NOT_FOUND for an existing volume");
    }
    if (r.status().code() == Code::kOutOfRange && surely_allocated) {
      Fail("Bump: OUT_OF_RANGE for allocated slots");
    }
    if (!r.ok()) return;
    if (r->versions.size() != n || r->seqs.size() != n) {
      Fail("Bump: reply size differs from the request");
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      if (i > 0 && r->seqs[i] != r->seqs[i - 1] + 1) {
        Fail("Bump: seqs of one request are not consecutive");
      }
      if (r->seqs[i] <= at_issue.committed) {
        Fail(absl::StrCat("Bump: seq ", r->seqs[i], " not after committed ",
                          at_issue.committed));
      }
      if (floors[i] != 0 && r->versions[i] <= floors[i]) {
        Fail(absl::StrCat("Bump: slot ", slots[i], " got version ",
                          r->versions[i], ", not above acknowledged ",
                          floors[i]));
      }
      if (EpochOf(r->versions[i]) != epoch) {
        Fail(absl::StrCat("Bump: version ", r->versions[i],
                          " not in epoch ", epoch));
      }
      AddLog(volume, LogEntry{r->seqs[i], slots[i], r->versions[i]});
    }
    if (strict) {
      const absl::Duration bound =
          world_->options.strict_grace +
          std::max(absl::ZeroDuration(), deadline_bound_ - issued) +
          absl::Milliseconds(lease_bound_ms_) + absl::Seconds(1);
      if (r->lease_wait < absl::ZeroDuration() || r->lease_wait > bound) {
        Fail(absl::StrCat("Bump: lease_wait ",
                          absl::FormatDuration(r->lease_wait), " outside [0, ",
                          absl::FormatDuration(bound), "]"));
      }
    } else if (r->lease_wait != absl::ZeroDuration()) {
      Fail("Bump: lease_wait on a non-strict bump");
    }
  };
  core()->Bump(volume, std::move(slots), std::move(bo), std::move(check));
  // Strict bumps may wait out other agents' leases (up to minutes): never
  // block on them; shutdown completes them.
  if (!async && !strict) WaitFor(done);
}

void Harness::DoSnapshot(Reader& in) {
  std::string volume = Volume(in);
  Snap at_issue;
  {
    absl::MutexLock lock(&mu_);
    at_issue = SnapOf(volume, /*with_floor=*/true);
  }
  uint8_t a = in.U8();
  uint32_t start = a % 4 == 0   ? 0
                   : a % 4 == 1 ? 1
                   : a % 4 == 2 ? at_issue.known_slots
                                : in.U32();
  uint8_t b = in.U8();
  uint32_t max_slots = b % 4 == 3 ? in.U32() : b % 4;
  auto page = core()->Snapshot(volume, start, max_slots);
  Trace(absl::StrCat("Snapshot ", volume, " start=", start, " max=",
                     max_slots),
        page.status());
  absl::MutexLock lock(&mu_);
  if (!CheckCode("Snapshot", page.status(), !ValidVolumeName(volume),
                 {Code::kNotFound, Code::kOutOfRange})) {
    return;
  }
  if (!ValidVolumeName(volume)) return;
  VolumeModel& vm = volumes_[volume];
  if (page.status().code() == Code::kNotFound && at_issue.exists) {
    Fail("Snapshot: NOT_FOUND for an existing volume");
  }
  if (page.status().code() == Code::kOutOfRange &&
      start <= at_issue.known_slots) {
    Fail("Snapshot: OUT_OF_RANGE for an allocated start slot");
  }
  if (!page.ok()) return;
  const uint32_t want_max =
      max_slots == 0 || max_slots > kMaxSnapshotSlots ? kMaxSnapshotSlots
                                                      : max_slots;
  if (page->epoch != epoch_ || page->start_slot != start ||
      page->slots_used < at_issue.known_slots ||
      (vm.capacity != 0 && page->slots_used > vm.capacity) ||
      page->versions.size() !=
          std::min<uint64_t>(page->slots_used - start, want_max) ||
      page->committed_seq < at_issue.committed) {
    Fail(absl::StrCat("Snapshot: page epoch=", page->epoch, " start=",
                      page->start_slot, " used=", page->slots_used, " n=",
                      page->versions.size(), " committed=",
                      page->committed_seq));
    return;
  }
  vm.committed_floor = std::max(vm.committed_floor, page->committed_seq);
  for (size_t i = 0; i < page->versions.size(); ++i) {
    const uint32_t slot = start + i;
    const uint64_t v = page->versions[i];
    const uint64_t floor = FloorOf(at_issue.floor, slot);
    if (v < floor || EpochOf(v) == 0 || EpochOf(v) > epoch_) {
      Fail(absl::StrCat("Snapshot: slot ", slot, " version ", v,
                        " (acknowledged ", floor, ")"));
    }
    if (!RaiseFloor(vm, slot, v)) return;
  }
}

void Harness::DoDescribe(Reader& in) {
  std::string volume = Volume(in);
  Snap at_issue;
  std::vector<std::string> existing;
  {
    absl::MutexLock lock(&mu_);
    at_issue = SnapOf(volume);
    for (const auto& [name, vm] : volumes_) {
      if (vm.capacity != 0) existing.push_back(name);
    }
  }
  auto info = core()->DescribeVolume(volume);
  std::vector<VolumeInfo> all = core()->ListVolumes();
  Trace(absl::StrCat("DescribeVolume ", volume), info.status());
  absl::MutexLock lock(&mu_);
  for (const std::string& name : existing) {
    bool listed = false;
    for (const VolumeInfo& i : all) listed |= i.name == name;
    if (!listed) Fail(absl::StrCat("ListVolumes: '", name, "' missing"));
  }
  for (size_t i = 0; i < all.size(); ++i) {
    if (!ValidVolumeName(all[i].name) ||
        (i > 0 && !(all[i - 1].name < all[i].name))) {
      Fail("ListVolumes: bad name or not sorted");
    }
    if (absl::StartsWith(all[i].name, prefix_) &&
        volumes_[all[i].name].capacity == 0 && outstanding_ == 0) {
      Fail(absl::StrCat("ListVolumes: '", all[i].name, "' never created"));
    }
  }
  if (!CheckCode("DescribeVolume", info.status(), !ValidVolumeName(volume),
                 {Code::kNotFound})) {
    return;
  }
  if (!ValidVolumeName(volume)) return;
  VolumeModel& vm = volumes_[volume];
  if (info.status().code() == Code::kNotFound && at_issue.exists) {
    Fail("DescribeVolume: NOT_FOUND for an existing volume");
  }
  if (!info.ok()) return;
  if ((vm.capacity != 0 && info->capacity != vm.capacity) ||
      info->slots_used > info->capacity ||
      info->slots_used < at_issue.known_slots ||
      info->committed_seq < at_issue.committed ||
      info->first_retained_seq > info->committed_seq + 1 ||
      info->first_retained_seq < vm.retained_floor) {
    Fail(absl::StrCat("DescribeVolume: capacity=", info->capacity,
                      " used=", info->slots_used, " committed=",
                      info->committed_seq, " first_retained=",
                      info->first_retained_seq));
  }
  vm.committed_floor = std::max(vm.committed_floor, info->committed_seq);
  vm.retained_floor = std::max(vm.retained_floor, info->first_retained_seq);
}

// ---------------------------------------------------------------------------
// Subscriptions and acks

void Harness::DoSubscribe(Reader& in, uint8_t flags) {
  std::string volume = Volume(in);
  std::string agent = flags & 1 ? Agent(in) : "";
  Snap at_issue;
  {
    absl::MutexLock lock(&mu_);
    at_issue = SnapOf(volume);
  }
  uint8_t b = in.U8();
  uint64_t from = 0;
  switch (b % 6) {
    case 0: from = 0; break;
    case 1: from = 1; break;
    case 2: from = at_issue.committed; break;
    case 3: from = at_issue.committed + 1; break;
    case 4: from = at_issue.committed + 2; break;
    default: from = in.U64(); break;
  }
  const bool invalid =
      !ValidVolumeName(volume) || (!agent.empty() && !ValidAgentId(agent));
  auto sub = core()->Subscribe(volume, from, agent);
  Trace(absl::StrCat("Subscribe ", volume, " from=", from, " agent=", agent),
        sub.status());
  absl::MutexLock lock(&mu_);
  if (!CheckCode("Subscribe", sub.status(), invalid,
                 {Code::kNotFound, Code::kFailedPrecondition,
                  Code::kOutOfRange})) {
    return;
  }
  if (invalid) return;
  const bool known_agent = agent.empty() || agents_.count(agent) > 0;
  const bool known_volume = at_issue.exists;
  switch (sub.status().code()) {
    case Code::kNotFound:
      if (known_volume && known_agent) Fail("Subscribe: NOT_FOUND");
      return;
    case Code::kFailedPrecondition:
      if (agent.empty() || !known_agent) {
        Fail("Subscribe: FAILED_PRECONDITION without a registered agent");
      }
      return;
    case Code::kOutOfRange:
      if (from == 0 || from <= at_issue.committed + 1) {
        Fail(absl::StrCat("Subscribe: OUT_OF_RANGE for from_seq ", from,
                          " (committed >= ", at_issue.committed, ")"));
      }
      return;
    default:
      break;
  }
  SubscriptionModel m;
  m.sub = std::move(*sub);
  m.volume = volume;
  m.agent = agent;
  m.expect = from;
  m.committed_at_issue = at_issue.committed;
  m.epoch = epoch_;
  subs_.push_back(std::move(m));
}

void Harness::Drain(SubscriptionModel& m, size_t max_events, bool to_idle) {
  for (size_t i = 0; i < max_events; ++i) {
    SubscriptionEvent ev = m.sub->Next();
    if (ev.kind == Kind::kNone) return;
    absl::MutexLock lock(&mu_);
    auto fail = [&](absl::string_view what) {
      Fail(absl::StrCat("subscription ", m.volume, " (agent '", m.agent,
                        "', next seq ", m.expect, "): ", what));
    };
    if (m.ended) return fail("event after the end");
    if (ev.kind == Kind::kEnd) {
      m.ended = true;
      const Code c = ev.end_status.code();
      bool ok = (c == Code::kOk && m.resynced) ||
                (c == Code::kUnavailable && stopping_) ||
                (!m.agent.empty() &&
                 (c == Code::kCancelled || c == Code::kFailedPrecondition));
      if (!ok) fail(absl::StrCat("ended with ", ev.end_status.ToString()));
      continue;
    }
    if (m.resynced) return fail("event after ResyncRequired");
    if (!m.hello) {
      m.hello = true;
      if (ev.kind != Kind::kProgress || ev.epoch != m.epoch ||
          (m.expect != 0 && ev.committed_seq + 1 != m.expect) ||
          (m.expect == 0 && ev.committed_seq < m.committed_at_issue)) {
        return fail(absl::StrCat("bad hello: kind ", int(ev.kind), " seq ",
                                 ev.committed_seq, " epoch ", ev.epoch));
      }
      m.expect = ev.committed_seq + 1;
      continue;
    }
    switch (ev.kind) {
      case Kind::kProgress:
        if (ev.committed_seq + 1 != m.expect || ev.epoch != m.epoch) {
          fail(absl::StrCat("progress at ", ev.committed_seq));
        }
        break;
      case Kind::kInvalidations:
        if (ev.entries.empty() ||
            ev.entries.size() > world_->options.max_delivery_batch) {
          fail(absl::StrCat("batch of ", ev.entries.size()));
        }
        for (const LogEntry& e : ev.entries) {
          if (e.seq != m.expect) {
            return fail(absl::StrCat("got seq ", e.seq));
          }
          ++m.expect;
          AddLog(m.volume, e);
        }
        break;
      case Kind::kResync:
        m.resynced = true;
        // first_retained_seq is not checked against needed_seq: the core
        // reads it after the store compacted but possibly before it
        // recorded the new bound (MaybeCompact), so it may be stale.
        if (ev.needed_seq != m.expect ||
            world_->options.log_retention_entries > 1000) {
          fail(absl::StrCat("resync needed=", ev.needed_seq,
                            " first_retained=", ev.first_retained_seq));
        }
        break;
      default:
        fail("unknown event");
    }
  }
  if (to_idle) {
    absl::MutexLock lock(&mu_);
    Fail(absl::StrCat("subscription ", m.volume, ": more than ", max_events,
                      " events in a row"));
  }
}

void Harness::DoDrain(Reader& in) {
  uint8_t b = in.U8();
  if (subs_.empty()) return;
  Drain(subs_[b % subs_.size()], 1 + b % 4, false);
}

void Harness::DoCancel(Reader& in) {
  uint8_t b = in.U8();
  if (subs_.empty()) return;
  auto it = subs_.begin() + b % subs_.size();
  it->sub->Cancel();
  SubscriptionEvent ev = it->sub->Next();
  absl::MutexLock lock(&mu_);
  // A cancelled stream reports its end once (unless it had already).
  if (!it->ended && (ev.kind != Kind::kEnd)) {
    Fail("Cancel: no end event after Cancel");
  }
  subs_.erase(it);
}

void Harness::DoAck(Reader& in) {
  std::string agent = Agent(in);
  std::string volume = Volume(in);
  Snap at_issue;
  {
    absl::MutexLock lock(&mu_);
    at_issue = SnapOf(volume);
  }
  uint8_t b = in.U8();
  uint64_t seq = 0;
  switch (b % 5) {
    case 0: seq = 0; break;
    case 1: seq = at_issue.committed; break;
    case 2: seq = at_issue.last_seq; break;
    case 3: seq = at_issue.committed + 1; break;
    default: seq = in.U64(); break;
  }
  uint8_t c = in.U8();
  size_t n = c % 8 < 4 ? c % 8 : c % 8 == 7 ? kMaxBatch + 1 : 1;
  std::vector<std::pair<uint32_t, uint32_t>> leases;
  bool slots_allocated = true;
  uint32_t max_ms = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t slot = n <= 8 ? Slot(in, at_issue.known_slots) : 0;
    uint8_t m = n <= 8 ? in.U8() : 0;
    uint32_t ms = m % 4 == 0 ? 0 : m % 4 == 1 ? 10 : m % 4 == 2 ? 1000
                                                                 : in.U32();
    slots_allocated &= slot < at_issue.known_slots;
    max_ms = std::max(max_ms, ms);
    leases.emplace_back(slot, ms);
  }
  const bool invalid =
      !ValidAgentId(agent) || !ValidVolumeName(volume) || n > kMaxBatch;
  {
    absl::MutexLock lock(&mu_);
    // Raised before the call: the ack may complete a strict bump inline.
    lease_bound_ms_ = std::max<uint64_t>(lease_bound_ms_, max_ms);
  }
  absl::Status s = core()->AckInvalidations(agent, volume, seq, leases);
  Trace(absl::StrCat("Ack ", agent, " ", volume, " seq=", seq, " n=", n), s);
  absl::MutexLock lock(&mu_);
  if (!CheckCode("AckInvalidations", s, invalid,
                 {Code::kNotFound, Code::kFailedPrecondition,
                  Code::kOutOfRange})) {
    return;
  }
  if (invalid) return;
  const bool known_agent = agents_.count(agent) > 0;
  const bool known_volume = at_issue.exists;
  if ((s.ok() || s.code() == Code::kFailedPrecondition) && !known_agent) {
    Fail(absl::StrCat("AckInvalidations: ", s.ToString(),
                      " from an unregistered agent"));
  }
  if (s.code() == Code::kNotFound && known_agent && known_volume) {
    Fail("AckInvalidations: NOT_FOUND");
  }
  if (s.code() == Code::kOutOfRange && seq <= at_issue.committed &&
      slots_allocated) {
    Fail("AckInvalidations: OUT_OF_RANGE for a committed seq and slots");
  }
}

// ---------------------------------------------------------------------------
// Quiet points and restarts

bool Harness::ReadTable(const std::string& volume, VolumeInfo* info,
                        std::vector<uint64_t>* versions) {
  // A strict bump is never awaited, so it may commit meanwhile: retry until
  // the table and committed_seq come from one moment (each Snapshot page
  // reads both under the core's lock).
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto d = core()->DescribeVolume(volume);
    if (!d.ok()) {
      absl::MutexLock lock(&mu_);
      Fail(absl::StrCat("DescribeVolume(", volume, "): ",
                        d.status().ToString()));
      return false;
    }
    *info = *d;
    versions->clear();
    bool stable = true;
    while (stable && versions->size() < info->slots_used) {
      auto page = core()->Snapshot(volume, versions->size(), 0);
      if (!page.ok() || page->versions.empty()) {
        absl::MutexLock lock(&mu_);
        Fail(absl::StrCat("Snapshot(", volume, "): ",
                          page.status().ToString()));
        return false;
      }
      stable = page->committed_seq == info->committed_seq &&
               page->slots_used == info->slots_used;
      versions->insert(versions->end(), page->versions.begin(),
                       page->versions.end());
    }
    if (stable) return true;
  }
  absl::MutexLock lock(&mu_);
  Fail(absl::StrCat("volume ", volume, " never stood still for a read"));
  return false;
}

void Harness::Sync() {
  WaitOutstanding();
  std::vector<std::string> names;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, vm] : volumes_) {
      if (vm.capacity != 0) names.push_back(name);
    }
  }
  // Tables first, then the streams: everything up to each table's
  // committed_seq was published before the drain, so every live stream
  // must deliver at least that far. Floors are taken before the reads.
  struct Read {
    std::string name;
    Floors floor;
    uint64_t committed_floor = 0;
    VolumeInfo info;
    std::vector<uint64_t> table;
  };
  std::vector<Read> reads;
  for (const std::string& name : names) {
    Read r;
    r.name = name;
    {
      absl::MutexLock lock(&mu_);
      r.floor = volumes_[name].floor;
      r.committed_floor = volumes_[name].committed_floor;
    }
    if (!ReadTable(name, &r.info, &r.table)) return;
    reads.push_back(std::move(r));
  }
  for (SubscriptionModel& m : subs_) Drain(m, 1 << 20, true);
  absl::MutexLock lock(&mu_);
  for (const Read& r : reads) {
    const VolumeInfo& info = r.info;
    VolumeModel& vm = volumes_[r.name];
    auto fail = [&](absl::string_view what) {
      Fail(absl::StrCat("at a quiet point, volume ", r.name, ": ", what));
    };
    // Keys are on distinct slots (checked as they came), so slot_end equal
    // to their count means the slots are dense.
    if (info.slots_used != vm.slot_of.size() ||
        vm.slot_end != vm.slot_of.size()) {
      fail(absl::StrCat("slots_used ", info.slots_used, " but ",
                        vm.slot_of.size(), " keys resolved"));
    }
    if (info.committed_seq < r.committed_floor) fail("committed_seq went back");
    // Every seq up to committed_seq known: the table must be the last
    // logged version of each slot (as of that seq).
    bool all_known = info.committed_seq < vm.log.size() ||
                     info.committed_seq == 0;
    for (uint64_t seq = 1; all_known && seq <= info.committed_seq; ++seq) {
      all_known = vm.log[seq].seq != 0;
    }
    for (uint32_t slot = 0; slot < r.table.size(); ++slot) {
      const uint64_t v = r.table[slot];
      const uint64_t floor = FloorOf(r.floor, slot);
      if (v < floor) {
        fail(absl::StrCat("slot ", slot, " at ", v, " below acknowledged ",
                          floor));
      }
      if (!all_known) continue;
      uint64_t last = 0;
      if (slot < vm.by_slot.size()) {
        const auto& logged = vm.by_slot[slot];
        auto it = std::upper_bound(
            logged.begin(), logged.end(), info.committed_seq,
            [](uint64_t seq, const std::pair<uint64_t, uint64_t>& p) {
              return seq < p.first;
            });
        if (it != logged.begin()) last = std::prev(it)->second;
      }
      if (last != 0 ? v != last : (v & kCounterMask) != 0) {
        fail(absl::StrCat("slot ", slot, " at ", v, ", last logged ", last));
      }
    }
    for (SubscriptionModel& m : subs_) {
      if (m.volume == r.name && !m.ended &&
          m.expect < info.committed_seq + 1) {
        fail(absl::StrCat("a live stream delivered up to ", m.expect - 1,
                          " of ", info.committed_seq));
      }
    }
  }
}

absl::Status Harness::StartCore() {
  RETURN_IF_ERROR(world_->Start());
  absl::MutexLock lock(&mu_);
  if (core()->epoch() != epoch_ + 1) {
    Fail(absl::StrCat("epoch ", core()->epoch(), " after ", epoch_));
  }
  epoch_ = core()->epoch();
  stopping_ = false;
  agents_.clear();
  return absl::OkStatus();
}

void Harness::StopCore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // Completes queued requests and strict waiters (UNAVAILABLE), ends streams.
  core()->Stop();
  for (SubscriptionModel& m : subs_) Drain(m, 4, true);
  absl::MutexLock lock(&mu_);
  if (outstanding_ != 0 || strict_outstanding_ != 0) {
    Fail("requests left unanswered by Stop()");
  }
  for (SubscriptionModel& m : subs_) {
    if (!m.ended) Fail("a stream did not end at Stop()");
  }
}

void Harness::Restart() {
  Sync();
  if (failed()) return;
  StopCore();
  std::map<std::string, std::pair<VolumeInfo, std::vector<uint64_t>>> before;
  std::vector<std::string> keys;
  std::string key_volume;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, vm] : volumes_) {
      if (vm.capacity != 0) before[name];
      if (keys.empty() && !vm.slot_of.empty()) {
        key_volume = name;
        for (const auto& [k, slot] : vm.slot_of) {
          if (keys.size() < kMaxBatch) keys.push_back(k);
        }
      }
    }
  }
  for (auto& [name, t] : before) {
    if (!ReadTable(name, &t.first, &t.second)) return;
  }
  subs_.clear();
  world_->core.reset();
  // RocksDB: reopen from disk, as a restarted coordinator does.
  if (world_->kind == FuzzStoreKind::kRocksDb) world_->store.reset();
  absl::Status started = StartCore();
  if (!started.ok()) {
    absl::MutexLock lock(&mu_);
    Fail(absl::StrCat("restart: ", started.ToString()));
    return;
  }
  for (auto& [name, t] : before) {
    VolumeInfo info;
    std::vector<uint64_t> table;
    if (!ReadTable(name, &info, &table)) return;
    if (info.capacity != t.first.capacity ||
        info.committed_seq != t.first.committed_seq ||
        info.first_retained_seq < t.first.first_retained_seq ||
        table != t.second) {
      absl::MutexLock lock(&mu_);
      Fail(absl::StrCat("restart changed volume ", name, ": committed ",
                        t.first.committed_seq, " -> ", info.committed_seq,
                        ", slots ", t.second.size(), " -> ", table.size()));
      return;
    }
  }
  if (!keys.empty()) {
    // Every key must come back on its slot.
    auto r = core()->ResolveSync(key_volume, keys);
    absl::MutexLock lock(&mu_);
    if (!r.ok()) {
      Fail(absl::StrCat("restart: Resolve of known keys: ",
                        r.status().ToString()));
      return;
    }
    const VolumeModel& vm = volumes_[key_volume];
    for (size_t i = 0; i < keys.size(); ++i) {
      if (vm.slot_of.at(keys[i]) != r->slots[i].slot) {
        Fail("restart: a key moved to another slot");
      }
    }
  }
}

bool Harness::Cleanup() {
  for (SubscriptionModel& m : subs_) m.sub->Cancel();
  subs_.clear();
  std::set<std::string> agents;
  {
    absl::MutexLock lock(&mu_);
    agents = agents_;
  }
  // Unregistering also releases strict bumps waiting for these agents.
  for (const std::string& a : agents) (void)core()->UnregisterAgent(a);
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_ == 0 && strict_outstanding_ == 0;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(10))) {
    Fail("requests still unanswered 10 s after the input ended");
    return false;
  }
  return true;
}

std::string Harness::Run(Reader& in) {
  {
    absl::MutexLock lock(&mu_);
    epoch_ = core()->epoch();
  }
  for (size_t ops = 0; ops < kMaxCoordinatorOps && !in.empty() && !failed() &&
                       core() != nullptr;
       ++ops) {
    const uint8_t op = in.U8();
    // Waiting for every reply would make each request a thread hand-off;
    // replies are awaited only where asked (and at Sync).
    const bool async = !(op & kWait);
    const uint8_t flags = op >> 5;
    switch (op & 0xF) {
      case kRegister: DoRegister(in); break;
      case kKeepAlive: DoKeepAlive(in); break;
      case kUnregister: DoUnregister(in); break;
      case kCreate: DoCreate(in, async); break;
      case kResolve:
      case kResolve2: DoResolve(in, async); break;
      case kBump:
      case kBump2: DoBump(in, flags, async); break;
      case kSubscribe: DoSubscribe(in, flags); break;
      case kDrain: DoDrain(in); break;
      case kCancel: DoCancel(in); break;
      case kAck: DoAck(in); break;
      case kSnapshot: DoSnapshot(in); break;
      case kDescribe: DoDescribe(in); break;
      case kSync: Sync(); break;
      case kRestart:
        // A restart costs two threads (milliseconds under ASan): only the
        // exact byte 0x0F asks for one, and only two per input.
        if (op == kRestart && ++restarts_ <= 2) {
          Restart();
        } else {
          Sync();
        }
        break;
    }
    if (trace_ && (op & 0xF) >= kSync) {
      std::fprintf(stderr, "fuzz: %s done\n", kOpNames[op & 0xF]);
    }
  }
  if (core() != nullptr && !failed()) Sync();
  if (core() == nullptr || !Cleanup()) {
    absl::MutexLock lock(&mu_);
    Fail("the core did not survive the input");
  }
  absl::MutexLock lock(&mu_);
  return failure_;
}

}  // namespace

std::string FuzzCoordinatorOne(const uint8_t* data, size_t size,
                               const CoordinatorFuzzOptions& options) {
  // The core logs every registration and volume; keep errors only.
  static const bool quiet = [] {
    SetLogLevel(LogLevel::kError);
    return true;
  }();
  (void)quiet;
  static uint64_t serial = 0;
  Reader in(data, size);
  const uint8_t config = in.U8();
  auto& slot = Worlds()[{int(options.store), WorldKey(config)}];
  if (slot != nullptr &&
      (slot->inputs >= kWorldInputs || slot->volumes >= kWorldVolumes ||
       slot->slots >= kWorldSlots)) {
    slot.reset();
  }
  if (slot == nullptr) {
    auto world = std::make_unique<World>();
    world->kind = options.store;
    world->options = DecodeConfig(config);
    if (options.store == FuzzStoreKind::kRocksDb) {
      std::string parent = options.scratch_dir;
      if (parent.empty()) {
        const char* tmp = getenv("TMPDIR");
        parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
      }
      std::string templ = parent + "/coordinator_fuzz.XXXXXX";
      if (mkdtemp(templ.data()) == nullptr) return "mkdtemp failed";
      world->db_dir = templ;
    }
    absl::Status started = world->Start();
    if (!started.ok()) return absl::StrCat("start: ", started.ToString());
    // Worlds live until the process exits (their RocksDB directories stay:
    // the fuzz scripts point COHEREFS_FUZZ_DB_DIR at a directory they
    // remove; the corpus test uses TEST_TMPDIR).
    slot = std::move(world);
  }
  ++slot->inputs;
  std::string failure;
  {
    // Base-36 serial: a short prefix leaves room in 64-byte names.
    std::string prefix;
    for (uint64_t n = ++serial; n > 0; n /= 36) {
      prefix.push_back("0123456789abcdefghijklmnopqrstuvwxyz"[n % 36]);
    }
    prefix += ".";
    Harness harness(options, slot.get(), prefix);
    failure = harness.Run(in);
    harness.Footprint(&slot->volumes, &slot->slots);
    // After a failure the core may still owe the harness callbacks: stop
    // it (which completes them) while the harness is alive.
    if (!failure.empty()) slot.reset();
  }
  return failure;
}

}  // namespace coherefs::server
