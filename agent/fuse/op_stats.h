// OpStats counts FUSE requests per opcode: how many, how many failed, and a
// fixed-bucket latency histogram. The FUSE server records into it; the
// daemon reads it (e.g. to export coherefs_agent_fuse_requests_total and
// coherefs_agent_fuse_request_duration_seconds) without this package
// depending on any metrics library.
//
// Thread-safety: Record and Get may run concurrently from any threads. Each
// counter is an independent relaxed atomic, so a Get racing with Record may
// see a count that does not yet include the latency of the same request;
// every value only grows and is exact once recording stops.
#ifndef COHEREFS_AGENT_FUSE_OP_STATS_H_
#define COHEREFS_AGENT_FUSE_OP_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>

namespace coherefs::agent::fuse {

class OpStats {
 public:
  // Opcodes 1..kMaxOpcode-1 have their own counters (fuse.h 7.38 ends at
  // FUSE_TMPFILE = 51); anything else is counted under "other".
  static constexpr uint32_t kMaxOpcode = 64;
  // Upper bounds of the latency buckets, in microseconds; a last bucket
  // holds everything slower (+Inf).
  static constexpr std::array<uint64_t, 11> kBucketBoundsUs = {
      1, 4, 16, 64, 256, 1000, 4000, 16000, 64000, 256000, 1000000};
  static constexpr size_t kNumBuckets = kBucketBoundsUs.size() + 1;

  struct Snapshot {
    uint64_t count = 0;
    uint64_t errors = 0;  // replies with error != 0
    uint64_t latency_ns_sum = 0;
    // Per bucket, not cumulative: buckets[i] counts requests with latency
    // <= kBucketBoundsUs[i] and > the previous bound.
    std::array<uint64_t, kNumBuckets> buckets{};
  };

  OpStats() = default;
  OpStats(const OpStats&) = delete;
  OpStats& operator=(const OpStats&) = delete;

  // error: the reply's errno (0 for success or no reply).
  void Record(uint32_t opcode, int error, uint64_t latency_ns);
  Snapshot Get(uint32_t opcode) const;
  // Calls fn for every opcode slot that has seen a request, "other" last.
  void ForEach(const std::function<void(const char* name, const Snapshot&)>& fn) const;

  // Lower-case opcode name ("lookup", "readdirplus", ...); "other" for
  // opcodes fuse.h 7.38 does not define.
  static const char* OpcodeName(uint32_t opcode);

 private:
  struct Counters {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> latency_ns_sum{0};
    std::array<std::atomic<uint64_t>, kNumBuckets> buckets{};
  };
  static size_t Slot(uint32_t opcode);
  static const char* KnownName(uint32_t opcode);  // nullptr if unknown

  // Slot 0 is "other" (opcode 0 is never valid).
  std::array<Counters, kMaxOpcode> counters_;
};

}  // namespace coherefs::agent::fuse

#endif  // COHEREFS_AGENT_FUSE_OP_STATS_H_
