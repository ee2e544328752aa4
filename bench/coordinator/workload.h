// The benchmark's measurements, each run against one Target:
//
//  * RunThroughput: `clients` closed-loop bump chains (each with one bump in
//    flight, each cycling over its own files) for `seconds` after a warm-up,
//    with `subscribers` subscribers attached; counts acknowledged (durable)
//    bumps per second, then checks every subscriber received every
//    acknowledged bump (within `drain_timeout`).
//  * RunLatency: one open-loop writer bumps a distinct file every 1/rate s;
//    latency = subscriber receive time - writer send time (one monotonic
//    clock, one process), for every event and subscriber.
//  * MeasurePing: sequential trivial RPCs (the gRPC loopback floor).
//  * MeasureFsync: 64 bytes + fdatasync on a file in `dir`, appending or
//    overwriting in place (the disk floor under both systems' write-ahead
//    logs).
//
// Each call blocks until its measurement has ended. Not thread-safe with
// other measurements on the same Target (they would disturb each other).
#ifndef COHEREFS_BENCH_COORDINATOR_WORKLOAD_H_
#define COHEREFS_BENCH_COORDINATOR_WORKLOAD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/coordinator/stats.h"
#include "bench/coordinator/target.h"

namespace coherefs::bench {

// Each throughput client cycles over this many files of its own, so files
// of different clients never collide.
inline constexpr int kFilesPerClient = 16;

struct ThroughputOptions {
  int clients = 16;            // bumps in flight (closed loop)
  int subscribers = 1;         // attached during the run
  absl::Duration warmup = absl::Milliseconds(500);
  absl::Duration duration = absl::Seconds(3);
  absl::Duration drain_timeout = absl::Seconds(10);
};

struct ThroughputResult {
  int clients = 0;
  int subscribers = 0;
  double seconds = 0;          // measured window (after warm-up)
  int64_t acked_in_window = 0;
  double bumps_per_s = 0;      // acked_in_window / seconds
  int64_t acked_total = 0;     // including warm-up and the tail
  int64_t failed = 0;          // bumps that returned an error
  std::string first_error;     // of those, the first
  int64_t expected_deliveries = 0;  // acked_total * subscribers
  int64_t delivered = 0;       // events received, all subscribers
  int64_t lost = 0;            // sum over subscribers of missing events
  double drain_ms = 0;         // last ack -> last subscriber complete
};

absl::StatusOr<ThroughputResult> RunThroughput(Target& target,
                                               const ThroughputOptions& opts);

struct LatencyOptions {
  int subscribers = 1;
  double rate_per_s = 200;     // bumps per second, open loop
  absl::Duration duration = absl::Seconds(3);
  absl::Duration drain_timeout = absl::Seconds(10);
};

struct LatencyResult {
  int subscribers = 0;
  int64_t bumps = 0;           // issued
  int64_t acked = 0;
  int64_t failed = 0;
  std::string first_error;
  int64_t expected_deliveries = 0;  // acked * subscribers
  int64_t delivered = 0;       // distinct (file, subscriber) receipts
  int64_t lost = 0;            // acked bumps some subscriber never got
  int64_t duplicates = 0;      // receipts of a file already received
  double achieved_rate_per_s = 0;
  LatencySummary delivery;     // send -> each subscriber's receipt
  LatencySummary ack;          // send -> durable acknowledgement
  // receipt - the writer's ack, per event and subscriber: what fan-out adds
  // on top of the durable commit (negative when the event beat the ack).
  LatencySummary fanout;
};

// Needs files [0, rate * duration) prepared.
absl::StatusOr<LatencyResult> RunLatency(Target& target,
                                         const LatencyOptions& opts);

// Files a run with these options touches (for Target::Prepare).
int FilesNeeded(const ThroughputOptions& t, const LatencyOptions& l);

// `count` sequential Pings after `count / 10` unmeasured ones.
absl::StatusOr<LatencySummary> MeasurePing(Target& target, int count);

enum class FsyncMode {
  kAppend,     // each write extends the file: fdatasync also commits the size
  kOverwrite,  // each write rewrites the first 64 B of an allocated, written
               // block: the cheapest durable write the disk offers
};

// `count` writes of 64 bytes, each followed by fdatasync, on a new file in
// `dir` (removed afterwards). Each sample covers the write and the sync.
absl::StatusOr<LatencySummary> MeasureFsync(const std::string& dir, int count,
                                            FsyncMode mode = FsyncMode::kAppend);

}  // namespace coherefs::bench

#endif  // COHEREFS_BENCH_COORDINATOR_WORKLOAD_H_
