#include "agent/coherence/lease_table.h"

#include <algorithm>
#include <utility>

namespace coherefs::agent::coherence {
namespace {

std::chrono::milliseconds CeilMs(LeaseClock::duration d) {
  return std::chrono::ceil<std::chrono::milliseconds>(d);
}

}  // namespace

namespace {
LeasePolicy Sanitised(LeasePolicy p) {
  if (p.age_divisor < 1) p.age_divisor = 1;
  return p;
}
}  // namespace

LeaseTable::LeaseTable(LeasePolicy policy) : policy_(Sanitised(std::move(policy))) {}

LeaseClock::duration LeaseTable::ForgetChangeAfter() const {
  return policy_.max_lease * policy_.age_divisor;
}

LeaseClock::duration LeaseTable::LeaseFor(uint32_t slot, LeaseClock::time_point now) const {
  LeaseClock::duration lease = policy_.max_lease;
  Shard& shard = ShardFor(slot);
  {
    absl::MutexLock lock(&shard.mu);
    auto it = shard.slots.find(slot);
    if (it != shard.slots.end() && it->second.changed) {
      LeaseClock::duration age = now - it->second.last_change;
      if (age < LeaseClock::duration::zero()) age = LeaseClock::duration::zero();
      lease = std::min<LeaseClock::duration>(lease, age / policy_.age_divisor);
    }
  }
  if (lease < policy_.min_lease) return LeaseClock::duration::zero();
  return lease;
}

void LeaseTable::NoteChanged(uint32_t slot, LeaseClock::time_point when) {
  Shard& shard = ShardFor(slot);
  absl::MutexLock lock(&shard.mu);
  SlotState& state = shard.slots[slot];
  if (!state.changed || state.last_change < when) {
    state.changed = true;
    state.last_change = when;
  }
}

bool LeaseTable::Grant(GuestId guest, uint32_t slot, LeaseClock::time_point expiry,
                       uint64_t seen_version,
                       const std::function<uint64_t()>& current_version) {
  Shard& shard = ShardFor(slot);
  absl::MutexLock lock(&shard.mu);
  // Under the lock: a version raise followed by Remaining() for this slot
  // either sees this lease or made us see the new version here.
  if (current_version() != seen_version) return false;
  SlotState& state = shard.slots[slot];
  for (GuestLease& l : state.leases) {
    if (l.guest == guest) {
      l.expiry = std::max(l.expiry, expiry);
      return true;
    }
  }
  state.leases.push_back(GuestLease{guest, expiry});
  return true;
}

LeaseClock::duration LeaseTable::LongestLocked(SlotState& state, bool all, GuestId except,
                                               LeaseClock::time_point now) {
  LeaseClock::duration longest = LeaseClock::duration::zero();
  auto& leases = state.leases;
  leases.erase(std::remove_if(leases.begin(), leases.end(),
                              [now](const GuestLease& l) { return l.expiry <= now; }),
               leases.end());
  for (const GuestLease& l : leases) {
    if (!all && l.guest == except) continue;
    longest = std::max(longest, l.expiry - now);
  }
  return longest;
}

void LeaseTable::AssumeLeasedUntil(LeaseClock::time_point until) {
  floor_ns_.store(
      std::chrono::duration_cast<std::chrono::nanoseconds>(until.time_since_epoch()).count(),
      std::memory_order_release);
}

LeaseClock::duration LeaseTable::FloorRemaining(LeaseClock::time_point now) const {
  const int64_t ns = floor_ns_.load(std::memory_order_acquire);
  if (ns == 0) return LeaseClock::duration::zero();
  const LeaseClock::time_point until{
      std::chrono::duration_cast<LeaseClock::duration>(std::chrono::nanoseconds(ns))};
  return until > now ? until - now : LeaseClock::duration::zero();
}

LeaseClock::duration LeaseTable::RemainingExcept(absl::Span<const uint32_t> slots,
                                                 GuestId except, LeaseClock::time_point now) {
  LeaseClock::duration longest =
      slots.empty() ? LeaseClock::duration::zero() : FloorRemaining(now);
  for (uint32_t slot : slots) {
    Shard& shard = ShardFor(slot);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.slots.find(slot);
    if (it == shard.slots.end()) continue;
    longest = std::max(longest, LongestLocked(it->second, false, except, now));
  }
  return longest;
}

std::vector<SlotRemaining> LeaseTable::Remaining(absl::Span<const uint32_t> slots,
                                                 LeaseClock::time_point now) {
  std::vector<SlotRemaining> out;
  const LeaseClock::duration floor = FloorRemaining(now);
  for (uint32_t slot : slots) {
    Shard& shard = ShardFor(slot);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.slots.find(slot);
    LeaseClock::duration d = floor;
    if (it != shard.slots.end()) d = std::max(d, LongestLocked(it->second, true, 0, now));
    if (d > LeaseClock::duration::zero()) out.push_back({slot, CeilMs(d)});
  }
  // A slot listed twice is reported once, with its (same) longest lease.
  std::sort(out.begin(), out.end(),
            [](const SlotRemaining& a, const SlotRemaining& b) { return a.slot < b.slot; });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const SlotRemaining& a, const SlotRemaining& b) {
                          return a.slot == b.slot;
                        }),
            out.end());
  return out;
}

std::vector<SlotRemaining> LeaseTable::AllRemaining(LeaseClock::time_point now) {
  std::vector<SlotRemaining> out;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto& [slot, state] : shard.slots) {
      LeaseClock::duration d = LongestLocked(state, true, 0, now);
      if (d > LeaseClock::duration::zero()) out.push_back({slot, CeilMs(d)});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const SlotRemaining& a, const SlotRemaining& b) { return a.slot < b.slot; });
  return out;
}

size_t LeaseTable::Sweep(LeaseClock::time_point now) {
  const LeaseClock::duration forget = ForgetChangeAfter();
  size_t tracked = 0;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto it = shard.slots.begin(); it != shard.slots.end();) {
      SlotState& state = it->second;
      LongestLocked(state, true, 0, now);
      if (state.changed && now - state.last_change >= forget) state.changed = false;
      if (state.leases.empty() && !state.changed) {
        shard.slots.erase(it++);
      } else {
        ++it;
        ++tracked;
      }
    }
  }
  return tracked;
}

size_t LeaseTable::LiveLeases(LeaseClock::time_point now) {
  size_t live = 0;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [slot, state] : shard.slots) {
      for (const GuestLease& l : state.leases) live += l.expiry > now ? 1 : 0;
    }
  }
  return live;
}

}  // namespace coherefs::agent::coherence
