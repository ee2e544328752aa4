// etcd (Debian's etcd-server, 3.4) as a benchmark Target: a single-member
// cluster on loopback with a fresh data dir and etcd's default, durable
// write path (every acknowledged Put is in its WAL with fdatasync).
//
// A file's version key is `/coherefs/bench/f/<file>`; a bump is a KV.Put
// of that key, and a subscriber is one Watch stream (on its own
// connection) with one watcher over the prefix `/coherefs/bench/f/`.
//
// Thread-safety and ownership: see target.h. The destructor stops etcd
// (SIGTERM, then SIGKILL) by PID.
#ifndef COHEREFS_BENCH_COORDINATOR_ETCD_TARGET_H_
#define COHEREFS_BENCH_COORDINATOR_ETCD_TARGET_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/coordinator/child_process.h"
#include "bench/coordinator/target.h"
#include "bench/proto/etcd_rpc.grpc.pb.h"
#include "bench/proto/grpc_health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace coherefs::bench {

struct EtcdOptions {
  // The etcd server binary. Default: Debian's.
  std::string binary = "/usr/bin/etcd";
  // An existing directory for etcd's data dir ("data") and log
  // ("etcd.log"); the caller removes it.
  std::string work_dir;
  // How long etcd may take to elect itself and accept a Put.
  absl::Duration start_timeout = absl::Seconds(30);
};

class EtcdTarget final : public Target {
 public:
  // Starts etcd and returns once it has acknowledged a Put. On error etcd
  // is stopped and the status names the log file.
  static absl::StatusOr<std::unique_ptr<EtcdTarget>> Launch(
      const EtcdOptions& options);
  ~EtcdTarget() override;

  std::string name() const override { return "etcd"; }
  absl::Status Prepare(int files) override;
  void BumpAsync(int file, BumpDoneFn done) override;
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(
      EventFn on_event) override;
  absl::Status Ping() override;

  // "127.0.0.1:<port>" of etcd's client listener.
  const std::string& endpoint() const { return endpoint_; }

 private:
  EtcdTarget() = default;
  absl::Status WaitReady(const EtcdOptions& options);

  ChildProcess process_;
  std::string endpoint_;
  std::string log_path_;
  std::shared_ptr<grpc::Channel> writer_channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::shared_ptr<grpc::Channel> ping_channel_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  // The value written by each Put: a process-wide counter, so every Put
  // really changes the key, as a version bump would.
  std::atomic<uint64_t> next_value_{1};
};

// The key of `file` and the prefix all file keys share.
std::string EtcdFileKey(int file);
inline constexpr char kEtcdKeyPrefix[] = "/coherefs/bench/f/";

}  // namespace coherefs::bench

#endif  // COHEREFS_BENCH_COORDINATOR_ETCD_TARGET_H_
