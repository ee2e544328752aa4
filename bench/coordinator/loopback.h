// Loopback plumbing shared by the targets: free ports, channels that get a
// connection of their own, waiting for a child server to come up, and the
// health-check round trip.
//
// Thread-safe (free functions without shared state).
#ifndef COHEREFS_BENCH_COORDINATOR_LOOPBACK_H_
#define COHEREFS_BENCH_COORDINATOR_LOOPBACK_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/proto/grpc_health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace coherefs::bench {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
// closed). Another process may take it before the server binds it; a
// target that fails to start reports that.
absl::StatusOr<int> PickFreeLoopbackPort();

// An insecure channel to `target` that does not share its TCP connection
// with any other channel in the process (a local subchannel pool), so N
// subscribers are N connections, as N agents would be.
std::shared_ptr<grpc::Channel> OwnConnectionChannel(const std::string& target);

// One grpc.health.v1 Check("") with `timeout`. UNAVAILABLE (retry) if the
// server answers but is not SERVING; otherwise the call's own status.
absl::Status HealthCheck(grpc::health::v1::Health::Stub& stub,
                         absl::Duration timeout);

}  // namespace coherefs::bench

#endif  // COHEREFS_BENCH_COORDINATOR_LOOPBACK_H_
