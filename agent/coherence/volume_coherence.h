// VolumeCoherence: one volume's coherence state on this agent, shared by
// every guest session of the volume (DESIGN.md "The coherence contract").
//
// What it does.
//  - Slots: maps file keys (PassthroughFs::FileKey) to the coordinator's
//    slots, caching them; concurrent misses are resolved together in one
//    Resolve call (the first waiter sends the batch the others joined).
//  - Leases: a LeaseTable; Grant() hands out adaptive leases tied to the
//    version table (see lease_table.h), zero while the agent is fenced.
//  - Changes: BeforeChange() / AfterChange() bracket every metadata-changing
//    operation. `strict`: BeforeChange waits (bounded) for the agent to be
//    unfenced, so a change the agent cannot announce is refused rather than
//    applied; AfterChange bumps the affected slots with wait_for_leases and
//    then sleeps until every lease another guest may hold on them — this
//    agent's other guests (the LeaseTable) and other agents' guests (the
//    coordinator's lease_wait_ms) — has ended, plus a margin for guest
//    receipt delay and clock rate. `bounded`: AfterChange queues the bump
//    for a background thread and returns at once.
//  - Acks: LeasesFor() is the CoordinatorLink's lease_reporter: it notes the
//    change of each invalidated slot (leases adapt) and reports the
//    remaining leases of this agent's guests.
//  - Host changes: OnHostChanges() resolves keys reported by the host
//    watcher and bumps them like a bounded change (nobody waits for a host
//    process; its staleness is bounded by the lease).
//
// Failure. A strict bump that still fails after `change_timeout` (the
// coordinator unreachable) leaves the change applied on the backing file
// system: AfterChange queues the bump for background retry and returns
// Unavailable, which the caller turns into EIO. Background bumps retry with
// backoff until Stop().
//
// Ownership: borrows the VersionTable and the backend (both must outlive
// it); owns the LeaseTable, the slot cache and its bump thread.
// Thread-safety: all public methods are thread-safe.
#ifndef COHEREFS_AGENT_COHERENCE_VOLUME_COHERENCE_H_
#define COHEREFS_AGENT_COHERENCE_VOLUME_COHERENCE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "agent/coherence/coherence_backend.h"
#include "agent/coherence/lease_table.h"
#include "agent/coherence/version_table.h"
#include "agent/metrics/atomic_histogram.h"

namespace coherefs::agent::coherence {

enum class CoherenceMode { kStrict, kBounded };

const char* CoherenceModeName(CoherenceMode mode);

struct VolumeCoherenceOptions {
  std::string volume;
  CoherenceMode mode = CoherenceMode::kStrict;
  LeasePolicy lease;
  // Every lease counts as live this much past its end, for strict waits and
  // for the remaining leases reported to the coordinator: the guest's timer
  // starts when the reply reaches it, the kernel rounds timeouts up to timer
  // ticks, and guest clocks drift.
  std::chrono::milliseconds margin{100};
  // Strict mode: how long a change waits for the agent to be unfenced (and
  // its bump to go through) before the guest gets EIO.
  absl::Duration change_timeout = absl::Seconds(10);
  // Background bump retry backoff.
  absl::Duration min_backoff = absl::Milliseconds(20);
  absl::Duration max_backoff = absl::Seconds(1);
};

// Counters for the metrics endpoint.
struct VolumeCoherenceMetrics {
  std::atomic<uint64_t> leases_granted{0};
  std::atomic<uint64_t> lease_ms_granted{0};   // sum of granted lengths
  // Lengths of granted leases, seconds (coherefs_agent_lease_length_seconds).
  metrics::AtomicHistogram lease_length{metrics::LeaseLengthBuckets()};
  std::atomic<uint64_t> leases_refused{0};     // version moved or fenced
  std::atomic<uint64_t> bumps{0};              // slots bumped
  std::atomic<uint64_t> bump_failures{0};
  std::atomic<uint64_t> strict_waits{0};       // changes that had to wait
  std::atomic<uint64_t> strict_wait_ms{0};     // total time waited
  std::atomic<uint64_t> changes_refused{0};    // strict, fenced too long
  std::atomic<uint64_t> resolves{0};           // Resolve calls
  std::atomic<uint64_t> resolved_keys{0};
  std::atomic<uint64_t> host_changes{0};       // keys from the host watcher
  std::atomic<uint64_t> invalidations{0};      // slots reported by the link
};

class VolumeCoherence {
 public:
  VolumeCoherence(VolumeCoherenceOptions options, VersionTable* table,
                  CoherenceBackend* backend);
  ~VolumeCoherence();
  VolumeCoherence(const VolumeCoherence&) = delete;
  VolumeCoherence& operator=(const VolumeCoherence&) = delete;

  // Starts the background bump thread. Stop() drains nothing: queued bumps
  // are dropped (logged); idempotent, also run by the destructor.
  void Start();
  void Stop();

  const VolumeCoherenceOptions& options() const { return options_; }
  const VolumeCoherenceMetrics& metrics() const { return metrics_; }
  LeaseTable& leases() { return leases_; }

  // A new id for a guest session (never reused).
  GuestId NewGuest();

  bool fenced() const { return backend_->fenced(); }
  // An operator's drain (coherectl drain): no new leases, as if fenced, but
  // changes go on normally. Leases already granted run out by themselves.
  void SetDraining(bool draining);
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  // The slot's current version (0 past the table's capacity).
  uint64_t Version(uint32_t slot) const;

  // The slot of a key: from the cache, or resolved (batched).
  absl::StatusOr<uint32_t> SlotForKey(const std::string& key);
  std::optional<uint32_t> CachedSlot(const std::string& key) const;
  // Resolves every key not cached yet, in as few calls as possible (4096
  // keys each), and caches them. The first error stops it.
  absl::Status Prefetch(const std::vector<std::string>& keys);

  // Grants `guest` a lease on `slot` of at most `cap`, if the slot's version
  // is still `seen_version` and the agent is not fenced. Returns the lease
  // length to put in the reply (zero: none).
  std::chrono::milliseconds Grant(GuestId guest, uint32_t slot, uint64_t seen_version,
                                  std::chrono::milliseconds cap);

  // Brackets a metadata change (see the class comment). AfterChange's
  // `slots` may repeat; `guest` is the changing guest (not waited for).
  absl::Status BeforeChange();
  absl::Status AfterChange(GuestId guest, std::vector<uint32_t> slots);

  // CoordinatorLink::lease_reporter for this volume (nullptr: all slots).
  std::vector<SlotRemaining> LeasesFor(const std::vector<uint32_t>* slots);

  // HostWatcher callback: keys whose metadata changed outside any guest.
  void OnHostChanges(const std::vector<std::string>& keys);
  // HostWatcher overflow: events were lost; bump every slot this agent
  // knows a key for.
  void OnHostOverflow();

 private:
  struct ResolveBatch {
    std::vector<std::string> keys;
    bool done = false;
    absl::Status status;
  };

  void BumpLoop();
  void QueueBump(absl::Span<const uint32_t> slots);
  // Notes the change (leases shorten) and queues the bump.
  void AnnounceInBackground(const std::vector<uint32_t>& slots);
  absl::Status BumpStrict(const std::vector<uint32_t>& slots, BumpOutcome* outcome);
  bool WaitUnfenced(absl::Time deadline) const;

  const VolumeCoherenceOptions options_;
  VersionTable* const table_;
  CoherenceBackend* const backend_;
  LeaseTable leases_;
  VolumeCoherenceMetrics metrics_;
  std::atomic<GuestId> next_guest_{1};
  std::atomic<bool> draining_{false};

  mutable absl::Mutex slots_mu_;
  absl::flat_hash_map<std::string, uint32_t> slot_of_ ABSL_GUARDED_BY(slots_mu_);
  std::shared_ptr<ResolveBatch> pending_ ABSL_GUARDED_BY(slots_mu_);
  bool resolving_ ABSL_GUARDED_BY(slots_mu_) = false;

  absl::Mutex bump_mu_;
  absl::flat_hash_set<uint32_t> queued_ ABSL_GUARDED_BY(bump_mu_);
  bool stopping_ ABSL_GUARDED_BY(bump_mu_) = false;
  bool started_ ABSL_GUARDED_BY(bump_mu_) = false;
  std::thread bump_thread_;
};

}  // namespace coherefs::agent::coherence

#endif  // COHEREFS_AGENT_COHERENCE_VOLUME_COHERENCE_H_
