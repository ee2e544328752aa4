// StreamState is the lifecycle both benchmark subscriptions (a coherefs
// Subscribe stream, an etcd Watch stream) share: "established" once the
// server's first reply arrives, the first error that ended or spoiled the
// stream, and the end of the call. The gRPC reactor owns one and calls
// MarkEstablished / SetError / End from its callbacks.
//
// Thread-safe: callbacks run on gRPC threads while the benchmark thread
// waits and reads status().
#ifndef COHEREFS_BENCH_COORDINATOR_STREAM_STATE_H_
#define COHEREFS_BENCH_COORDINATOR_STREAM_STATE_H_

#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "grpcpp/support/status.h"

namespace coherefs::bench {

class StreamState {
 public:
  // `what` names the stream in errors, e.g. "etcd watch".
  explicit StreamState(std::string what) : what_(std::move(what)) {}

  // Waits up to `timeout` for the first reply. DeadlineExceeded when none
  // came; the stream's error when it ended first.
  absl::Status WaitEstablished(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return established_ || ended_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
      return absl::DeadlineExceededError(what_ + ": no first reply");
    }
    return established_ ? absl::OkStatus() : status_;
  }

  void MarkEstablished() {
    absl::MutexLock lock(&mu_);
    established_ = true;
  }

  // Keeps the first error only.
  void SetError(absl::Status s) {
    absl::MutexLock lock(&mu_);
    if (status_.ok()) status_ = std::move(s);
  }

  // From the reactor's OnDone. Our own TryCancel ends the stream with
  // CANCELLED, which is not an error; a stream that ended before its first
  // reply is.
  void End(const grpc::Status& s) {
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      if (status_.ok() && !s.ok() && s.error_code() != grpc::CANCELLED) {
        status_ = FromGrpcStatus(s);
      }
      if (status_.ok() && !established_) {
        status_ = absl::UnavailableError(what_ + " ended before its first reply");
      }
    }
    done_.Notify();
  }

  // Blocks until End ran (the reactor may then be destroyed).
  void WaitEnded() { done_.WaitForNotification(); }

  absl::Status status() const {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  const std::string what_;
  mutable absl::Mutex mu_;
  bool established_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  absl::Notification done_;
};

}  // namespace coherefs::bench

#endif  // COHEREFS_BENCH_COORDINATOR_STREAM_STATE_H_
