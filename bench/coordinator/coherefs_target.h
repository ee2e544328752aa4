// coherefs-coordinator as a benchmark Target: the coordinator binary on
// loopback (--listen=127.0.0.1:0, port read from --port-file; metrics on a
// free port too) with a fresh data dir (RocksDB, every acknowledged Bump durable
// with fsync, group commit), one volume "bench".
//
// A file is a key "bench-file-<file>" resolved to a slot once in Prepare();
// a bump is Bump{volume, slots=[slot]} (one slot per RPC, as etcd gets one
// key per Put); a subscriber is one anonymous Subscribe stream from "now"
// on its own connection, confirmed by the stream's first Progress mark.
//
// Thread-safety and ownership: see target.h. The destructor stops the
// coordinator (SIGTERM, then SIGKILL) by PID.
#ifndef COHEREFS_BENCH_COORDINATOR_COHEREFS_TARGET_H_
#define COHEREFS_BENCH_COORDINATOR_COHEREFS_TARGET_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/coordinator/child_process.h"
#include "bench/coordinator/target.h"
#include "bench/proto/grpc_health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "proto/coherefs/v1/coordinator.grpc.pb.h"

namespace coherefs::bench {

struct CoherefsOptions {
  // The coherefs-coordinator binary (bazel-bin/server/coherefs-coordinator).
  std::string binary;
  // An existing directory for the data dir ("data") and log
  // ("coordinator.log"); the caller removes it.
  std::string work_dir;
  // Extra flags for the coordinator, e.g. {"--log-level=warn"}.
  std::vector<std::string> extra_flags;
  absl::Duration start_timeout = absl::Seconds(30);
};

inline constexpr char kBenchVolume[] = "bench";

class CoherefsTarget final : public Target {
 public:
  // Starts the coordinator, creates the volume and returns once it has
  // answered. On error the coordinator is stopped and the status names
  // the log file.
  static absl::StatusOr<std::unique_ptr<CoherefsTarget>> Launch(
      const CoherefsOptions& options);
  ~CoherefsTarget() override;

  std::string name() const override { return "coherefs"; }
  absl::Status Prepare(int files) override;
  // A file that Prepare() did not resolve fails at once with OUT_OF_RANGE.
  void BumpAsync(int file, BumpDoneFn done) override;
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(
      EventFn on_event) override;
  // grpc.health.v1 Check; if the coordinator does not serve the health
  // service, DescribeVolume (see ping_method()).
  absl::Status Ping() override;

  const std::string& endpoint() const { return endpoint_; }
  // "health" or "describe": which trivial RPC Ping() makes.
  std::string ping_method() const { return ping_describe_ ? "describe" : "health"; }

 private:
  CoherefsTarget() = default;
  absl::Status WaitReady(const CoherefsOptions& options);

  ChildProcess process_;
  std::string endpoint_;
  std::string log_path_;
  std::shared_ptr<grpc::Channel> writer_channel_;
  std::unique_ptr<coherefs::v1::Coordinator::Stub> coordinator_;
  std::shared_ptr<grpc::Channel> ping_channel_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::unique_ptr<coherefs::v1::Coordinator::Stub> ping_coordinator_;
  bool ping_describe_ = false;
  // Written by Prepare() only; read-only while bumps and streams run.
  std::vector<uint32_t> slot_of_file_;
  std::vector<int> file_of_slot_;  // -1: not a benchmark file
};

}  // namespace coherefs::bench

#endif  // COHEREFS_BENCH_COORDINATOR_COHEREFS_TARGET_H_
