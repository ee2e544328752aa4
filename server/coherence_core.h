// The coordinator's logic: volumes, slots, versions, agents and their
// leases, subscribers, the change log. It knows nothing of gRPC or RocksDB:
// it talks to a Store (server/store.h) and reports to a CoreObserver.
//
// Versions: bits 63..40 are the epoch, bits 39..0 a counter. Start()
// increments the persisted epoch (durably) before serving; a bump sets
// max(version + 1, epoch << 40 | 1), so versions only grow across restarts.
//
// Group commit: CreateVolume, allocating Resolves and Bumps are queued; one
// committer thread drains the whole queue, computes the effects, writes them
// to the store in one atomic durable Commit with no lock held, then applies
// them to memory, publishes the new log entries to subscribers in sequence
// order and completes the callers. Callbacks run on the committer thread
// (or inline, for requests answered or rejected at once) with no lock held.
//
// Fan-out: each Subscription has its own bounded queue. Publishing never
// blocks: a subscriber whose queue would overflow switches to reading the
// stored change log from its next sequence ("catch-up"); if that sequence
// was compacted away it gets a ResyncRequired event and its stream ends.
//
// Thread-safety: all methods are thread-safe. The Store must outlive the
// core. Subscriptions hold a pointer to the core: consumers must drop them
// before the core is destroyed (the gRPC server is shut down first).
//
// Errors (absl codes; the proto documents the same set):
//   kInvalidArgument    bad name/key/agent id, empty or > kMaxBatch request
//   kNotFound           unknown volume or agent
//   kFailedPrecondition expired agent lease
//   kAlreadyExists      existing volume, live agent id
//   kOutOfRange         slot not allocated; subscribe from the future
//   kResourceExhausted  volume table full; the store's disk is full (writes
//                       resume by themselves once space is freed)
//   kUnavailable        stopping, or the store failed (the core then refuses
//                       every write until restarted: memory and disk may
//                       disagree after a failed fsync); a full disk is
//                       kResourceExhausted instead, and recovers
//
// Strict mode (Bump with wait_for_leases): after the bump is durable and
// published, the caller's callback waits until every other agent that may
// hold guest leases on the volume has acknowledged the bump's sequence
// numbers (AckInvalidations) or timed out (its lease TTL after the publish).
// Agents considered: live agents with an open subscription to the volume,
// and agents whose lease expired less than their max_guest_lease_ms ago
// (counted from their last contact). BumpResult::lease_wait is the longest
// remaining guest lease reported for the bumped slots, less the time since
// the report; an agent that did not ack, or whose lease expired, counts as
// max_guest_lease_ms from its last contact. The caller waits that out.
#ifndef COHEREFS_SERVER_COHERENCE_CORE_H_
#define COHEREFS_SERVER_COHERENCE_CORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store.h"

namespace coherefs::server {

inline constexpr int kEpochShift = 40;
inline constexpr uint64_t kMaxEpoch = (uint64_t{1} << 24) - 1;
inline constexpr size_t kMaxBatch = 4096;            // keys or slots
inline constexpr size_t kMaxKeyBytes = 136;          // file_handle + 128
inline constexpr size_t kMaxVolumeNameBytes = 64;
inline constexpr size_t kMaxAgentIdBytes = 128;
inline constexpr uint32_t kDefaultCapacity = uint32_t{1} << 20;
inline constexpr uint32_t kMaxCapacity = uint32_t{1} << 24;
inline constexpr uint32_t kMaxSnapshotSlots = 65536;

inline uint64_t EpochOf(uint64_t version) { return version >> kEpochShift; }

struct CoreOptions {
  // Lease TTL granted when an agent asks for 0. Requests are clamped to
  // [min_lease_ttl, max_lease_ttl].
  absl::Duration default_lease_ttl = absl::Seconds(10);
  absl::Duration min_lease_ttl = absl::Milliseconds(100);
  absl::Duration max_lease_ttl = absl::Minutes(10);
  // Change-log retention per volume: keep at most this many newest entries
  // (0: no count limit) ...
  uint64_t log_retention_entries = 1000000;
  // ... and drop entries older than this (zero: no age limit). Entries from
  // before a restart count as committed at the restart.
  absl::Duration log_retention_age = absl::ZeroDuration();
  // How often the committer looks for log entries to compact.
  absl::Duration compaction_interval = absl::Seconds(1);
  // Live-queue bound per subscriber, in log entries; past it the subscriber
  // reads from the stored log instead.
  size_t subscriber_queue_limit = 65536;
  // Most entries in one delivered batch.
  size_t max_delivery_batch = 1024;
  // Idle subscribers get a Progress mark this often.
  absl::Duration progress_interval = absl::Seconds(1);
  // How often agent leases are checked.
  absl::Duration lease_check_interval = absl::Milliseconds(50);
  // After a restart (an epoch > 1), strict bumps report a lease wait of at
  // least the rest of this period from the start: the registrations and
  // lease reports of the previous run are gone, and guests may still hold
  // leases granted under it (agents stop granting when their stream breaks,
  // so nothing granted later is missed). It must be at least the agents'
  // longest guest lease plus margin (their max_guest_lease_ms).
  absl::Duration strict_grace = absl::Seconds(10);
};

// Hooks for metrics; called with no core lock held. Default: no-ops.
class CoreObserver {
 public:
  virtual ~CoreObserver() = default;
  // One group commit: `requests` callers shared one store commit holding
  // `bumps` log appends, which took `store_latency` (write + fsync).
  virtual void OnGroupCommit(size_t requests, size_t bumps,
                             absl::Duration store_latency) {}
  virtual void OnAgentExpired(const std::string& agent_id) {}
  virtual void OnResync() {}
  virtual void OnSubscriberOverflow() {}
};

struct VolumeInfo {
  std::string name;
  uint32_t capacity = 0;
  uint32_t slots_used = 0;
  uint64_t committed_seq = 0;
  uint64_t first_retained_seq = 1;
};

struct AgentGrant {
  absl::Duration lease_ttl;
  uint64_t epoch = 0;
};

struct SlotVersion {
  uint32_t slot = 0;
  uint64_t version = 0;
};

struct ResolveResult {
  std::vector<SlotVersion> slots;  // in request order
  uint64_t committed_seq = 0;
};

struct BumpOptions {
  std::string agent_id;
  bool wait_for_leases = false;
};

struct BumpResult {
  std::vector<uint64_t> versions;  // in request order
  std::vector<uint64_t> seqs;
  absl::Duration lease_wait = absl::ZeroDuration();
};

struct SnapshotPage {
  uint64_t committed_seq = 0;
  uint64_t epoch = 0;
  uint32_t start_slot = 0;
  std::vector<uint64_t> versions;
  uint32_t slots_used = 0;
};

// One volume an agent follows (ListAgents).
struct AgentVolumeState {
  std::string volume;
  bool streaming = false;      // a subscription of the agent is open
  uint64_t committed_seq = 0;  // the volume's
  uint64_t delivered_seq = 0;  // on the open stream; 0 when not streaming
  uint64_t acked_seq = 0;
};

// An agent as the coordinator sees it (ListAgents).
struct AgentInfo {
  std::string agent_id;
  bool live = false;
  absl::Duration lease_remaining;  // zero when expired
  absl::Duration lease_ttl;
  absl::Duration expired_for;      // zero while live
  absl::Duration since_keepalive;  // since RegisterAgent or KeepAlive
  uint32_t max_guest_lease_ms = 0;
  std::vector<AgentVolumeState> volumes;  // by name
};

struct CoreStats {
  uint64_t epoch = 0;
  size_t volumes = 0;
  size_t live_agents = 0;
  size_t subscribers = 0;
  size_t queue_depth_sum = 0;
  size_t queue_depth_max = 0;
};

// One event of a subscription, as returned by Subscription::Next().
struct SubscriptionEvent {
  enum class Kind { kNone, kInvalidations, kProgress, kResync, kEnd };
  Kind kind = Kind::kNone;
  // kInvalidations: dense, increasing seq.
  std::vector<LogEntry> entries;
  // kInvalidations: when the oldest entry was published (committed), or
  // InfinitePast() for entries read back from the store.
  absl::Time oldest_publish_time = absl::InfinitePast();
  // kInvalidations: when each entry was published, parallel to `entries`;
  // empty for entries read back from the store (their time is not kept).
  std::vector<absl::Time> publish_times;
  // kProgress: everything up to this seq was delivered. kResync: latest.
  uint64_t committed_seq = 0;
  uint64_t epoch = 0;  // kProgress
  // kResync.
  uint64_t needed_seq = 0;
  uint64_t first_retained_seq = 0;
  // kEnd: how the stream ends.
  absl::Status end_status;
};

class CoherenceCore;

// A subscriber's view of one volume's change log. Shared by the core and the
// consumer (the gRPC stream). The consumer pulls with Next(); when Next()
// returns kNone, the wake-up callback runs once more data may be there.
class Subscription {
 public:
  Subscription(CoherenceCore* core, std::string volume, std::string agent_id,
               uint64_t next_seq, uint64_t offered_seq, uint64_t epoch,
               size_t queue_limit, size_t max_batch);

  // `wake` runs on a core thread, without core locks, at most once per
  // kNone returned by Next(). It may call Next().
  void SetWakeup(std::function<void()> wake);
  // The next event; kNone if nothing is ready. After kEnd, always kNone.
  // May read the store (catch-up), so it can take a few milliseconds.
  SubscriptionEvent Next();
  // The consumer is gone: forget this subscription.
  void Cancel();

  const std::string& volume() const { return volume_; }
  const std::string& agent_id() const { return agent_id_; }
  bool ended();
  // The last sequence handed to the consumer (or that predates from_seq).
  uint64_t delivered_seq();

 private:
  friend class CoherenceCore;
  struct Queued {
    LogEntry entry;
    absl::Time published;
  };

  // Core side; each returns whether the consumer must be woken.
  // `spill`: drop to the stored log as if the queue had overflowed.
  bool Publish(const std::vector<LogEntry>& entries, absl::Time now,
               bool* overflowed, bool spill = false);
  bool MarkProgressDue();
  bool End(absl::Status status);
  size_t QueueDepth();
  void Wake();

  CoherenceCore* const core_;
  const std::string volume_;
  const std::string agent_id_;
  const uint64_t epoch_;
  const size_t queue_limit_;
  const size_t max_batch_;

  absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_);     // next seq to deliver
  uint64_t offered_seq_ ABSL_GUARDED_BY(mu_);  // last seq published to us
  bool catching_up_ ABSL_GUARDED_BY(mu_);
  bool hello_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool progress_due_ ABSL_GUARDED_BY(mu_) = false;
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool end_reported_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
  std::function<void()> wake_ ABSL_GUARDED_BY(mu_);
};

class CoherenceCore {
 public:
  // Increments and persists the epoch, loads every volume, starts the
  // committer and maintenance threads. `observer` may be null; it and
  // `store` must outlive the core.
  static absl::StatusOr<std::unique_ptr<CoherenceCore>> Start(
      Store* store, CoreOptions options, CoreObserver* observer);
  // Stops (see Stop) and joins the threads.
  ~CoherenceCore();

  // Refuses new requests (kUnavailable), commits what is queued, ends every
  // subscription with kUnavailable. Idempotent.
  void Stop();

  uint64_t epoch() const { return epoch_; }

  // Agents.
  absl::StatusOr<AgentGrant> RegisterAgent(const std::string& agent_id,
                                           absl::Duration requested_ttl,
                                           uint32_t max_guest_lease_ms);
  absl::StatusOr<AgentGrant> KeepAlive(const std::string& agent_id);
  absl::Status UnregisterAgent(const std::string& agent_id);
  // Every agent known (live or expired; unregistered ones are forgotten),
  // ordered by id. Never fails.
  std::vector<AgentInfo> ListAgents();

  // Volumes. `capacity` 0 means kDefaultCapacity.
  void CreateVolume(std::string name, uint32_t capacity,
                    std::function<void(absl::StatusOr<VolumeInfo>)> done);
  std::vector<VolumeInfo> ListVolumes();
  absl::StatusOr<VolumeInfo> DescribeVolume(const std::string& name);

  // Slots and versions. `done` may run inline.
  void Resolve(std::string volume, std::vector<std::string> keys,
               std::function<void(absl::StatusOr<ResolveResult>)> done);
  void Bump(std::string volume, std::vector<uint32_t> slots,
            BumpOptions options,
            std::function<void(absl::StatusOr<BumpResult>)> done);
  // `max_slots` 0 means kMaxSnapshotSlots.
  absl::StatusOr<SnapshotPage> Snapshot(const std::string& volume,
                                        uint32_t start_slot,
                                        uint32_t max_slots);

  // `from_seq` 0 means the next change to be committed.
  absl::StatusOr<std::shared_ptr<Subscription>> Subscribe(
      const std::string& volume, uint64_t from_seq,
      const std::string& agent_id);

  // Strict mode: `agent_id` has applied every invalidation of `volume` up
  // to `seq`; `leases` are (slot, remaining guest lease ms) at that moment.
  // Errors: kNotFound (agent, volume), kFailedPrecondition (expired lease),
  // kOutOfRange (seq > committed_seq, slot not allocated),
  // kInvalidArgument (> kMaxBatch leases).
  absl::Status AckInvalidations(
      const std::string& agent_id, const std::string& volume, uint64_t seq,
      const std::vector<std::pair<uint32_t, uint32_t>>& leases);

  CoreStats GetStats();
  uint64_t StoreSizeBytes() { return store_->ApproximateSizeBytes(); }

  // Blocking wrappers, for tests and tools.
  absl::StatusOr<VolumeInfo> CreateVolumeSync(std::string name,
                                              uint32_t capacity);
  absl::StatusOr<ResolveResult> ResolveSync(std::string volume,
                                            std::vector<std::string> keys);
  absl::StatusOr<BumpResult> BumpSync(std::string volume,
                                      std::vector<uint32_t> slots,
                                      BumpOptions options = {});

 private:
  friend class Subscription;
  // One AckInvalidations, kept for strict-mode bumps waiting on it.
  struct AckRecord {
    uint64_t seq = 0;
    absl::Time received;
    absl::flat_hash_map<uint32_t, uint32_t> remaining_ms;  // slot -> ms
  };
  struct AgentAcks {  // per volume
    uint64_t acked_seq = 0;
    std::deque<AckRecord> records;  // newest last, bounded
  };
  struct Agent {
    absl::Duration ttl;
    absl::Time deadline;
    absl::Time last_contact;  // register, keep-alive, ack
    absl::Time last_keepalive;  // register, keep-alive
    uint32_t max_guest_lease_ms = 0;
    // Volumes it subscribed to since registering (for ListAgents).
    std::set<std::string, std::less<>> followed;
    bool live = true;
    std::vector<std::weak_ptr<Subscription>> subscriptions;
    std::map<std::string, AgentAcks, std::less<>> acks;
  };
  // A strict-mode bump that is durable and published, waiting for the
  // other agents' lease reports.
  struct LeaseWaiter {
    std::string volume;
    std::vector<uint32_t> slots;
    uint64_t min_seq = 0;
    uint64_t max_seq = 0;
    absl::Time published;
    // Agents still to hear from -> when to give up on their ack.
    std::map<std::string, absl::Time> pending;
    absl::Duration lease_wait = absl::ZeroDuration();
    BumpResult result;
    std::function<void(absl::StatusOr<BumpResult>)> done;
  };
  struct Volume {
    uint32_t capacity = 0;
    uint64_t committed_seq = 0;
    uint64_t first_retained_seq = 1;
    absl::flat_hash_map<std::string, uint32_t> slot_of;
    std::vector<uint64_t> versions;  // committed; size == slots_used
    // (first seq of a commit, its time), oldest first: for age retention.
    std::deque<std::pair<uint64_t, absl::Time>> commit_times;
    std::vector<std::shared_ptr<Subscription>> subscribers;
  };
  struct Op {
    enum class Kind { kCreate, kResolve, kBump };
    Kind kind;
    std::string volume;
    uint32_t capacity = 0;
    std::vector<std::string> keys;
    std::vector<uint32_t> slots;
    BumpOptions bump_options;
    std::function<void(absl::StatusOr<VolumeInfo>)> create_done;
    std::function<void(absl::StatusOr<ResolveResult>)> resolve_done;
    std::function<void(absl::StatusOr<BumpResult>)> bump_done;
  };
  class Batch;  // one group commit being computed (coherence_core.cc)

  CoherenceCore(Store* store, CoreOptions options, CoreObserver* observer,
                uint64_t epoch);

  absl::Status Enqueue(Op op);
  void CommitterLoop();
  void CommitBatch(std::vector<Op> ops);
  void MaybeCompact();
  void MaintenanceLoop();
  void ExpireAgents(absl::Time now);
  void RemoveSubscription(Subscription* sub);
  // Strict mode: starts waiting for the agents that may hold guest leases
  // on the bumped slots; completes at once if there are none.
  void StartLeaseWait(Op& op, BumpResult result);
  // Completes the waiters that have heard from every agent they need (or
  // given up on them). Runs callbacks with no lock held.
  void CheckLeaseWaiters(absl::Time now);
  // Until when `agent` may have granted guest leases: max(last contact,
  // its lease deadline). Its guests may hold them max_guest_lease_ms longer.
  static absl::Time LastGrantBound(const Agent& agent);
  // Resolves one agent of one waiter; true if it no longer blocks it.
  bool ResolveAgentLocked(LeaseWaiter& w, const std::string& agent_id,
                          absl::Time give_up, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> FirstRetainedSeq(const std::string& volume);
  VolumeInfo InfoLocked(const std::string& name, const Volume& v) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckWritable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK, or why writes are refused: kResourceExhausted while the store is
  // full, kUnavailable after any other store failure.
  absl::Status StoreFailureLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Store full: asks the store to resume (every 500 ms) and accepts writes
  // again once it does.
  void MaybeResumeStore(absl::Time now);

  // Constant after construction.
  Store* const store_;
  const CoreOptions options_;
  CoreObserver* const observer_;
  const uint64_t epoch_;
  // Strict bumps wait at least until then (see CoreOptions::strict_grace).
  const absl::Time grace_until_;
  CoreObserver null_observer_;

  absl::Mutex mu_;
  std::map<std::string, Volume, std::less<>> volumes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Agent, std::less<>> agents_ ABSL_GUARDED_BY(mu_);
  std::vector<Op> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<LeaseWaiter>> lease_waiters_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool committer_done_ ABSL_GUARDED_BY(mu_) = false;
  // Set when a store write failed: memory and disk may disagree. Cleared
  // only for a full store that resumed (the failed write is not in it).
  absl::Status store_failure_ ABSL_GUARDED_BY(mu_);
  absl::Time next_resume_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  std::thread committer_;
  std::thread maintenance_;
};

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_COHERENCE_CORE_H_
