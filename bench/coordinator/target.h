// The system under test, as the benchmark's workloads see it: a running
// server (etcd or coherefs-coordinator) on loopback that can durably bump a
// per-file version and deliver each bump to subscribers.
//
// Files are small integers 0..files-1; each target maps them to its own
// notion (an etcd key, a coherefs slot).
//
// Ownership: a Target owns its server process and data directory; the
// destructor ends the process by PID. A Subscription must be destroyed
// before its Target.
//
// Thread-safety: BumpAsync, Subscribe and Ping may be called from any thread
// concurrently after Prepare() has returned; Prepare() is called once, alone.
#ifndef COHEREFS_BENCH_COORDINATOR_TARGET_H_
#define COHEREFS_BENCH_COORDINATOR_TARGET_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace coherefs::bench {

// Called once per delivered change, with the file that changed and the
// monotonic receive time in ns (steady_clock). Called on a gRPC thread,
// never concurrently for one Subscription; must not block.
using EventFn = std::function<void(int file, int64_t recv_ns)>;

// Called once when a bump is acknowledged (durable) or failed, on a gRPC
// thread; must not block.
using BumpDoneFn = std::function<void(const absl::Status& status)>;

class Subscription {
 public:
  virtual ~Subscription() = default;  // cancels the stream, waits for its end
  // OK while the stream is healthy (or was cancelled by the destructor);
  // otherwise why it ended early. Events that named no benchmark file are
  // reported here as INTERNAL.
  virtual absl::Status status() const = 0;
};

class Target {
 public:
  virtual ~Target() = default;

  // "coherefs" or "etcd".
  virtual std::string name() const = 0;

  // Makes files [0, files) exist (untimed setup): an etcd key each, a
  // coherefs slot each.
  virtual absl::Status Prepare(int files) = 0;

  // Starts one durable bump of `file` (0 <= file < files); `done` runs when
  // the server has acknowledged it.
  virtual void BumpAsync(int file, BumpDoneFn done) = 0;

  // Opens a subscriber on its own connection, as a separate agent would,
  // watching every file from "now"; returns once the server has confirmed
  // the subscription, so every later bump is delivered to it.
  virtual absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(
      EventFn on_event) = 0;

  // One trivial round trip (grpc.health.v1 Check) on a dedicated
  // connection: the loopback gRPC floor for this server.
  virtual absl::Status Ping() = 0;
};

// Monotonic clock in ns, the one every timestamp in the benchmark uses.
int64_t NowNanos();

}  // namespace coherefs::bench

#endif  // COHEREFS_BENCH_COORDINATOR_TARGET_H_
