// LeaseTable: the leases this agent has granted its guests on one volume's
// slots, and when each slot last changed (DESIGN.md "The coherence
// contract", "Traps a correct lease design must handle").
//
// A lease is the entry or attribute timeout the agent put in a reply: until
// it ends, that guest may answer from its cache without asking. The agent
// records each one as (guest, slot, expiry on this host's monotonic clock)
// before the reply leaves, so the expiry it knows is never later than the
// guest's (the guest's timer starts when the reply arrives; the strict-mode
// margin covers the rest).
//
// Granting is tied to the version table so that a lease never covers state
// older than a change the agent already knows about: the caller loads the
// slot's version BEFORE it reads the state it is about to hand out, and
// Grant() re-loads it under the slot's lock: if it moved, the lease is not
// recorded and the caller must hand out a zero timeout. Whoever raises a
// version and then asks Remaining() for the slot (the ack of an
// invalidation, a strict-mode writer) therefore sees every lease that might
// cover older state: a Grant either ran before, and is counted, or after,
// and saw the new version.
//
// Lease lengths adapt (LeaseFor): a slot nobody changed since the agent
// started gets the maximum; one that changed `age` ago gets age/10 (as NFS
// scales attribute cache times with a file's age), and zero below
// `min_lease`. Files under concurrent change are thus nearly uncached, and a
// strict-mode writer waits at most a tenth of the time since the previous
// change.
//
// Memory: one small entry per slot with a live lease or a recent change;
// expired leases are dropped when their slot is touched and by Sweep().
//
// Thread-safety: all methods are thread-safe (sharded locks by slot).
#ifndef COHEREFS_AGENT_COHERENCE_LEASE_TABLE_H_
#define COHEREFS_AGENT_COHERENCE_LEASE_TABLE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace coherefs::agent::coherence {

using LeaseClock = std::chrono::steady_clock;
using GuestId = uint32_t;

struct LeasePolicy {
  // The longest lease granted.
  std::chrono::milliseconds max_lease{5000};
  // Leases shorter than this are not worth a cache entry: zero instead.
  std::chrono::milliseconds min_lease{10};
  // Lease = age since the slot's last change / age_divisor.
  int age_divisor = 10;
};

struct SlotRemaining {
  uint32_t slot = 0;
  std::chrono::milliseconds remaining{0};  // rounded up
};

class LeaseTable {
 public:
  explicit LeaseTable(LeasePolicy policy);
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;

  const LeasePolicy& policy() const { return policy_; }

  // How long a lease on `slot` may be, now.
  LeaseClock::duration LeaseFor(uint32_t slot, LeaseClock::time_point now) const;

  // The slot's metadata changed at `when` (a bump, an invalidation).
  void NoteChanged(uint32_t slot, LeaseClock::time_point when);

  // Records `guest`'s lease on `slot` until `expiry`, if `current_version()`
  // (called under the slot's lock) still equals `seen_version`. Returns
  // whether it was recorded; false means the caller must grant nothing.
  bool Grant(GuestId guest, uint32_t slot, LeaseClock::time_point expiry,
             uint64_t seen_version, const std::function<uint64_t()>& current_version);

  // The longest time any guest other than `except` may still hold a lease on
  // any of `slots`, from `now` (zero if none).
  LeaseClock::duration RemainingExcept(absl::Span<const uint32_t> slots, GuestId except,
                                       LeaseClock::time_point now);
  // Per slot, the longest remaining lease over all guests; slots without a
  // live lease are left out.
  std::vector<SlotRemaining> Remaining(absl::Span<const uint32_t> slots,
                                       LeaseClock::time_point now);
  // The same over every slot with a live lease (after a resync, when the
  // agent cannot tell which slots changed).
  std::vector<SlotRemaining> AllRemaining(LeaseClock::time_point now);

  // A restarted agent cannot know which leases its previous process
  // granted: until `until`, every slot counts as leased (by a guest other
  // than any writer) in RemainingExcept and Remaining; AllRemaining cannot
  // list every slot, so callers add FloorRemaining themselves.
  void AssumeLeasedUntil(LeaseClock::time_point until);
  LeaseClock::duration FloorRemaining(LeaseClock::time_point now) const;

  // Drops expired leases and change marks older than the age at which they
  // no longer shorten a lease. Returns the number of slots still tracked.
  size_t Sweep(LeaseClock::time_point now);

  // Live leases (for metrics; walks every shard).
  size_t LiveLeases(LeaseClock::time_point now);

 private:
  struct GuestLease {
    GuestId guest;
    LeaseClock::time_point expiry;
  };
  struct SlotState {
    bool changed = false;
    LeaseClock::time_point last_change{};
    absl::InlinedVector<GuestLease, 2> leases;
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<uint32_t, SlotState> slots ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 64;

  Shard& ShardFor(uint32_t slot) const { return shards_[slot % kShards]; }
  // Longest remaining lease in `state` (other than `except` unless
  // `all`), dropping expired ones.
  static LeaseClock::duration LongestLocked(SlotState& state, bool all, GuestId except,
                                            LeaseClock::time_point now);
  // The age beyond which a change no longer shortens a lease.
  LeaseClock::duration ForgetChangeAfter() const;

  const LeasePolicy policy_;
  // AssumeLeasedUntil's time since the clock's epoch, ns (0: none).
  std::atomic<int64_t> floor_ns_{0};
  // Mutable: LeaseFor() is logically const but locks a shard.
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace coherefs::agent::coherence

#endif  // COHEREFS_AGENT_COHERENCE_LEASE_TABLE_H_
