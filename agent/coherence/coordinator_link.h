// CoordinatorLink: the agent's connection to the coordinator
// (proto/coherefs/v1/coordinator.proto; DESIGN.md "The coherence contract").
//
// What it does. It holds the agent's coordinator lease (RegisterAgent, then
// KeepAlive every TTL/3) and keeps one VersionTable per followed volume in
// step with the coordinator's change log: per volume a thread subscribes from
// the table's next sequence, raises the table with every invalidation, and
// resynchronises from a Snapshot when the stream says ResyncRequired, when a
// sequence is missing, or when the coordinator's epoch changes. Resolve and
// Bump go to the coordinator and raise the local table with the versions it
// returns, so this agent's own readers see a bump before Bump() returns.
//
// Fencing (exact). A volume is fenced
//   - from Start() until its first full sync (snapshot applied, and the
//     first Progress of the following stream confirmed the epoch);
//   - whenever the coordinator lease may have lapsed: the last successful
//     RegisterAgent/KeepAlive was sent at T and granted TTL, and T + TTL has
//     passed on the monotonic clock (measured from when the request was sent,
//     so the agent's view errs on the early side);
//   - during a resync;
//   - after Stop().
// The table's `fenced` header flag mirrors the state (the lease thread wakes
// at the lease deadline to set it; a renewal in flight is given only the
// time left on the lease, so a coordinator that stops answering cannot
// hold the thread past it). lease_lapsed() reads the deadline by the clock,
// lock-free, for callers that must not trust the published flag alone. fenced() is the OR over all volumes.
// WaitUnfenced/WaitFenced block on the state; `on_fence_change` is called on
// every transition.
//
// Ownership. The link borrows the VersionTables (they must outlive it) and
// owns its client, threads and streams.
//
// Thread-safety. All public methods are thread-safe. Start() and Stop() may
// race; Stop() is idempotent and also runs in the destructor.
//
// Errors.
//   Start():  InvalidArgument (no volumes, a null table, a duplicate volume,
//             empty agent id); FailedPrecondition (started twice).
//             It never waits for the coordinator: registration is retried in
//             the background with bounded backoff.
//   Resolve/Bump: FailedPrecondition while the coordinator lease is lapsed
//             (or before the first registration, or after Stop()); otherwise
//             the coordinator's code exactly (NOT_FOUND unknown volume,
//             UNAVAILABLE unreachable, OUT_OF_RANGE unallocated slot, ...).
//             OutOfRange also if a returned slot is past the local table.
#ifndef COHEREFS_AGENT_COHERENCE_COORDINATOR_LINK_H_
#define COHEREFS_AGENT_COHERENCE_COORDINATOR_LINK_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/coherence/version_table.h"
#include "agent/metrics/atomic_histogram.h"
#include "client/coordinator_client.h"

namespace coherefs::agent::coherence {

struct LinkVolume {
  std::string name;               // coordinator volume name
  VersionTable* table = nullptr;  // borrowed; must outlive the link
};

struct CoordinatorLinkOptions {
  // Coordinator address host:port. Required.
  std::string target;
  // Channel credentials (common/tls.h MakeChannelCredentials: mutual TLS,
  // or plaintext under --insecure). Default nullptr: plaintext (tests).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // This agent's id (1..128 bytes), e.g. the host name. Required.
  std::string agent_id;
  // Requested lease TTL; the coordinator clamps it to [100 ms, 10 min] and
  // the granted TTL is what the link uses. Default 10 s.
  absl::Duration lease_ttl = absl::Seconds(10);
  // The longest entry/attr timeout the agent grants guests (strict mode).
  // Default 0.
  uint32_t max_guest_lease_ms = 0;
    // This process replaces one of the same agent that died (restarted by
    // the agent's supervisor): a registration of our id that is still live
    // is that process's, so take it over with a keep-alive instead of
    // waiting out its lease fenced.
    bool adopt_live_registration = false;
  // The volumes to follow. Required, at least one.
  std::vector<LinkVolume> volumes;
  // Reconnect/register backoff: doubles from min to max. Defaults 50 ms,
  // 500 ms (a fenced agent refuses strict changes: come back quickly).
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Milliseconds(500);
  // Deadline of each unary call. Default 5 s.
  absl::Duration rpc_deadline = absl::Seconds(5);
  // Called on every fence transition of a volume, with the link's lock held:
  // it must be quick and must not call back into the link. Default none.
  std::function<void(const std::string& volume, bool fenced)> on_fence_change;
  // Strict-mode lease reporting. After each invalidation batch has been
  // applied to a volume's table, the link calls this with the batch's slots
  // and acknowledges the batch's last sequence to the coordinator
  // (AckInvalidations) with the remaining guest leases it returns; after a
  // resync it passes nullptr (any slot may have changed) and acks the
  // snapshot's sequence. Called on the volume's stream thread, after the
  // table was raised. Without it the link acks with no leases (it grants
  // none). An ack that fails is logged and not retried: the coordinator
  // then counts this agent as holding every slot for its lease TTL.
  std::function<std::vector<v1::SlotLease>(const std::string& volume,
                                           const std::vector<uint32_t>* slots)>
      lease_reporter;
};

// Counters for the daemon to export. Plain atomics, updated by the link.
struct VolumeLinkMetrics {
  std::atomic<uint64_t> invalidations_applied{0};
  std::atomic<uint64_t> resyncs{0};     // snapshots applied
  std::atomic<uint64_t> reconnects{0};  // streams reopened after an error
  std::atomic<uint64_t> last_applied_seq{0};
  std::atomic<uint64_t> acks_sent{0};
  std::atomic<uint64_t> ack_failures{0};
  std::atomic<bool> fenced{true};
  // Receipt time minus the coordinator's commit time of each invalidation
  // that carries one, seconds (coherefs_agent_invalidation_delivery_lag_seconds;
  // across hosts it includes the clock offset, clamped at 0).
  metrics::AtomicHistogram delivery_lag{metrics::DeliveryLagBuckets()};
};

struct LinkMetrics {
  std::atomic<uint64_t> registrations{0};
  std::atomic<uint64_t> keepalive_failures{0};
  std::atomic<uint64_t> lease_lapses{0};
  std::atomic<bool> fenced{true};
};

struct BumpResult {
  std::vector<uint64_t> versions;  // in request order
  uint32_t lease_wait_ms = 0;      // strict mode (wait_for_leases) only
};

class CoordinatorLink {
 public:
  explicit CoordinatorLink(CoordinatorLinkOptions options);
  ~CoordinatorLink();
  CoordinatorLink(const CoordinatorLink&) = delete;
  CoordinatorLink& operator=(const CoordinatorLink&) = delete;

  // Validates the options and starts the lease thread and one subscriber
  // thread per volume. Returns at once (see the error list above).
  absl::Status Start();
  // Unregisters (best effort), cancels the streams, joins the threads and
  // fences every table. Idempotent.
  void Stop();

  // True while any volume is fenced.
  bool fenced() const;
  // One volume's state; true for a volume the link does not follow.
  bool fenced(const std::string& volume) const;
  // True once the coordinator lease has lapsed (or before registration),
  // by the clock, even before the lease thread publishes the fence (it may
  // be inside a renewal). Lock-free: one atomic load and a clock read.
  bool lease_lapsed() const;
  // Block until every volume is unfenced / any volume is fenced, or the
  // timeout passes. Return the state reached (true on success).
  bool WaitUnfenced(absl::Duration timeout) const;
  bool WaitFenced(absl::Duration timeout) const;

  // Batched Resolve; raises the followed volume's table with the returned
  // versions. Volumes the link does not follow are passed through.
  absl::StatusOr<std::vector<v1::SlotVersion>> Resolve(
      const std::string& volume, const std::vector<std::string>& keys);
  // Bump with this agent's id; raises the local table with the new versions
  // before returning.
  absl::StatusOr<BumpResult> Bump(const std::string& volume,
                                  const std::vector<uint32_t>& slots,
                                  bool wait_for_leases = false);

  const LinkMetrics& metrics() const { return metrics_; }
  // nullptr for a volume the link does not follow.
  const VolumeLinkMetrics* volume_metrics(const std::string& volume) const;
  // The coordinator epoch of the current registration (0 before the first).
  uint64_t epoch() const;

 private:
  using Clock = std::chrono::steady_clock;

  struct VolumeState {
    std::string name;
    VersionTable* table = nullptr;
    VolumeLinkMetrics metrics;
    // Owned by the volume's thread; read by others under mu_.
    bool synced = false;  // guarded by mu_
    // The epoch `synced` holds for: a registration under another epoch
    // fences the volume until it has resynchronised. Guarded by mu_.
    uint64_t synced_epoch = 0;
    bool fence_published = true;  // guarded by mu_: last flag written
    client::SubscribeStream* stream = nullptr;  // guarded by mu_
    // Used only by the volume's thread.
    uint64_t epoch = 0;
    uint64_t next_seq = 0;
    // Raised by Resolve too (it may allocate slots).
    std::atomic<uint32_t> slots_used{0};
    std::thread thread;
  };

  void LeaseLoop();
  void VolumeLoop(VolumeState* vol);
  // Reads every Snapshot page into the table; sets vol->epoch/next_seq.
  absl::Status Resync(VolumeState* vol);
  // One Subscribe stream until it ends. Returns the status that ended it;
  // sets *need_resync when the stream cannot continue without a snapshot
  // (then returns OK), *progressed once it delivered anything.
  // `just_resynced`: the table equals a snapshot taken right before, so the
  // stream's first Progress (which only echoes from_seq - 1) may confirm it;
  // otherwise only a later Progress (sent once the stream has caught up)
  // does.
  absl::Status RunStream(VolumeState* vol, bool just_resynced,
                         bool* need_resync, bool* progressed);
  void PublishSyncState(VolumeState* vol);
  // AckInvalidations up to vol->next_seq - 1 with the reporter's leases for
  // `slots` (nullptr: every slot).
  void Ack(VolumeState* vol, const std::vector<uint32_t>* slots);

  bool LeaseLiveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool VolumeFencedLocked(const VolumeState& vol) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Recomputes every volume's fence and mirrors it into the tables.
  void PublishLeaseDeadlineLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateFencesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A registration (new, or taken over) granted `ttl_ms` from `sent`.
  void Registered(Clock::time_point sent, int64_t ttl_ms, uint64_t epoch)
      ABSL_LOCKS_EXCLUDED(mu_);
  void SetSynced(VolumeState* vol, bool synced);
  // The coordinator said the lease is gone (NOT_FOUND / FAILED_PRECONDITION).
  void LeaseLost(uint64_t gen, const absl::Status& why);
  // Waits for a live lease; false if stopping. *gen: its registration.
  bool WaitForLease(uint64_t* gen);
  // absl::Condition predicates (called with mu_ held).
  bool AllUnfencedLocked() const;
  bool AnyFencedLocked() const;
  bool StoppingOrUnregisteredLocked() const;
  bool StoppingOrLeaseLiveLocked() const;
  // Sleeps `d` unless Stop() comes first; false if stopping.
  bool SleepUnlessStopping(absl::Duration d);
  absl::Status CheckLease();
  VolumeState* Find(const std::string& volume) const;

  const CoordinatorLinkOptions options_;
  // The current client. Replaced (MaybeReconnectClient) after a call or
  // stream failed with UNAVAILABLE: a gRPC channel whose connection attempts
  // failed was seen to keep failing for seconds after the coordinator was
  // back on the same port, keeping the agent fenced (strict changes held).
  std::shared_ptr<client::CoordinatorClient> Client() const;
  void MaybeReconnectClient(const absl::Status& status);
  mutable absl::Mutex client_mu_;
  std::shared_ptr<client::CoordinatorClient> client_
      ABSL_GUARDED_BY(client_mu_);
  Clock::time_point last_new_channel_ ABSL_GUARDED_BY(client_mu_);
  std::vector<std::unique_ptr<VolumeState>> volumes_;
  LinkMetrics metrics_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  Clock::time_point lease_deadline_ ABSL_GUARDED_BY(mu_);
  absl::Duration granted_ttl_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  // Bumped at every successful registration, so a stream that fails with
  // FAILED_PRECONDITION only drops the registration it was opened under.
  uint64_t registration_gen_ ABSL_GUARDED_BY(mu_) = 0;
  bool lease_live_published_ ABSL_GUARDED_BY(mu_) = false;
  // lease_deadline_ (steady clock, ns) while registered, else 0: read
  // without mu_ by lease_lapsed() on every reply.
  std::atomic<int64_t> lease_deadline_ns_{0};
  bool stop_done_ = false;  // guarded by stop_mu_
  std::thread lease_thread_;
  absl::Mutex stop_mu_;  // serialises Stop()
};

}  // namespace coherefs::agent::coherence

#endif  // COHEREFS_AGENT_COHERENCE_COORDINATOR_LINK_H_
