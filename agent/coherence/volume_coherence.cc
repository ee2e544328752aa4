#include "agent/coherence/volume_coherence.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/log.h"

namespace coherefs::agent::coherence {
namespace {

// The coordinator takes at most this many slots per Bump or keys per
// Resolve.
constexpr size_t kMaxBatch = 4096;

// CANCELLED: a coordinator shutting down cancels the calls in flight.
bool Retryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsFailedPrecondition(s) ||
         absl::IsDeadlineExceeded(s) || absl::IsAborted(s) || absl::IsCancelled(s) ||
         absl::IsNotFound(s);
}

void SortUnique(std::vector<uint32_t>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

}  // namespace

const char* CoherenceModeName(CoherenceMode mode) {
  return mode == CoherenceMode::kStrict ? "strict" : "bounded";
}

VolumeCoherence::VolumeCoherence(VolumeCoherenceOptions options, VersionTable* table,
                                 CoherenceBackend* backend)
    : options_(std::move(options)), table_(table), backend_(backend), leases_(options_.lease) {}

VolumeCoherence::~VolumeCoherence() { Stop(); }

void VolumeCoherence::Start() {
  absl::MutexLock lock(&bump_mu_);
  if (started_ || stopping_) return;
  started_ = true;
  bump_thread_ = std::thread([this] { BumpLoop(); });
}

void VolumeCoherence::Stop() {
  {
    absl::MutexLock lock(&bump_mu_);
    if (stopping_) return;
    stopping_ = true;
    if (!queued_.empty()) {
      LOG_WARN("stopping with bumps not sent")
          .Kv("volume", options_.volume)
          .Kv("slots", queued_.size());
    }
  }
  if (bump_thread_.joinable()) bump_thread_.join();
}

void VolumeCoherence::SetDraining(bool draining) {
  if (draining_.exchange(draining, std::memory_order_acq_rel) == draining) return;
  LOG_INFO(draining ? "volume draining: no new leases" : "volume undrained")
      .Kv("volume", options_.volume);
}

GuestId VolumeCoherence::NewGuest() { return next_guest_.fetch_add(1); }

uint64_t VolumeCoherence::Version(uint32_t slot) const {
  absl::StatusOr<uint64_t> v = table_->Load(slot);
  return v.ok() ? *v : 0;
}

std::optional<uint32_t> VolumeCoherence::CachedSlot(const std::string& key) const {
  absl::MutexLock lock(&slots_mu_);
  auto it = slot_of_.find(key);
  if (it == slot_of_.end()) return std::nullopt;
  return it->second;
}

absl::Status VolumeCoherence::Prefetch(const std::vector<std::string>& keys) {
  std::vector<std::string> missing;
  {
    absl::MutexLock lock(&slots_mu_);
    for (const std::string& k : keys) {
      if (slot_of_.find(k) == slot_of_.end()) missing.push_back(k);
    }
  }
  for (size_t at = 0; at < missing.size(); at += kMaxBatch) {
    std::vector<std::string> chunk(missing.begin() + at,
                                   missing.begin() + std::min(missing.size(), at + kMaxBatch));
    absl::StatusOr<std::vector<ResolvedSlot>> result = backend_->Resolve(chunk);
    metrics_.resolves.fetch_add(1, std::memory_order_relaxed);
    if (!result.ok()) return result.status();
    metrics_.resolved_keys.fetch_add(result->size(), std::memory_order_relaxed);
    absl::MutexLock lock(&slots_mu_);
    for (size_t i = 0; i < result->size() && i < chunk.size(); ++i) {
      slot_of_[std::move(chunk[i])] = (*result)[i].slot;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> VolumeCoherence::SlotForKey(const std::string& key) {
  absl::MutexLock lock(&slots_mu_);
  std::shared_ptr<ResolveBatch> mine;
  for (;;) {
    auto it = slot_of_.find(key);
    if (it != slot_of_.end()) return it->second;
    if (mine != nullptr && mine->done) {
      // Our batch came back without this key: it failed.
      return mine->status.ok() ? absl::InternalError("key missing from resolve reply")
                               : mine->status;
    }
    if (mine == nullptr) {
      if (pending_ == nullptr) pending_ = std::make_shared<ResolveBatch>();
      pending_->keys.push_back(key);
      mine = pending_;
    }
    if (!resolving_ && pending_ == mine) {
      // Lead the batch everyone queued so far (group commit, as the
      // coordinator does for bumps): one round trip for many misses.
      resolving_ = true;
      std::shared_ptr<ResolveBatch> batch = std::move(pending_);
      pending_ = nullptr;
      slots_mu_.Unlock();
      std::vector<std::pair<std::string, uint32_t>> found;
      absl::Status status;
      for (size_t at = 0; at < batch->keys.size() && status.ok(); at += kMaxBatch) {
        std::vector<std::string> chunk(
            batch->keys.begin() + at,
            batch->keys.begin() + std::min(batch->keys.size(), at + kMaxBatch));
        absl::StatusOr<std::vector<ResolvedSlot>> result = backend_->Resolve(chunk);
        metrics_.resolves.fetch_add(1, std::memory_order_relaxed);
        if (!result.ok()) {
          status = result.status();
          break;
        }
        metrics_.resolved_keys.fetch_add(result->size(), std::memory_order_relaxed);
        for (size_t i = 0; i < result->size() && i < chunk.size(); ++i) {
          found.emplace_back(std::move(chunk[i]), (*result)[i].slot);
        }
      }
      slots_mu_.Lock();
      for (auto& [k, slot] : found) slot_of_[std::move(k)] = slot;
      batch->status = status;
      batch->done = true;
      resolving_ = false;
      continue;
    }
    // Someone else is resolving: wait for it to finish, then look again.
    slots_mu_.Await(absl::Condition(
        +[](bool* resolving) { return !*resolving; }, &resolving_));
  }
}

std::chrono::milliseconds VolumeCoherence::Grant(GuestId guest, uint32_t slot,
                                                 uint64_t seen_version,
                                                 std::chrono::milliseconds cap) {
  using std::chrono::milliseconds;
  if (cap <= milliseconds::zero()) return milliseconds::zero();
  if (backend_->fenced() || draining()) {
    metrics_.leases_refused.fetch_add(1, std::memory_order_relaxed);
    return milliseconds::zero();
  }
  const LeaseClock::time_point now = LeaseClock::now();
  milliseconds lease =
      std::min(cap, std::chrono::duration_cast<milliseconds>(leases_.LeaseFor(slot, now)));
  if (lease <= milliseconds::zero()) return milliseconds::zero();
  // Recorded as live until its end plus the margin: the guest's timer
  // starts when the reply arrives, and Linux rounds a timeout up to whole
  // timer ticks and honours its last tick (a 10 ms lease can serve ~8 ms
  // longer at HZ=250). Waits and acks then need no margin of their own.
  const bool granted = leases_.Grant(guest, slot, now + lease + options_.margin, seen_version,
                                     [this, slot] { return Version(slot); });
  // Fenced in the meantime: the lease is recorded (harmless: it only makes
  // a local writer wait) but not handed out.
  if (!granted || backend_->fenced()) {
    metrics_.leases_refused.fetch_add(1, std::memory_order_relaxed);
    return milliseconds::zero();
  }
  metrics_.leases_granted.fetch_add(1, std::memory_order_relaxed);
  metrics_.lease_ms_granted.fetch_add(static_cast<uint64_t>(lease.count()),
                                      std::memory_order_relaxed);
  metrics_.lease_length.Observe(static_cast<double>(lease.count()) / 1000.0);
  return lease;
}

bool VolumeCoherence::WaitUnfenced(absl::Time deadline) const {
  // Fencing ends on the link's threads; a short poll keeps this free of any
  // coupling to them and costs nothing while unfenced.
  while (backend_->fenced()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

absl::Status VolumeCoherence::BeforeChange() {
  if (options_.mode != CoherenceMode::kStrict) return absl::OkStatus();
  if (WaitUnfenced(absl::Now() + options_.change_timeout)) return absl::OkStatus();
  metrics_.changes_refused.fetch_add(1, std::memory_order_relaxed);
  LOG_WARN("change refused: volume fenced (coordinator unreachable)")
      .Kv("volume", options_.volume)
      .Kv("waited", absl::FormatDuration(options_.change_timeout));
  return ErrnoStatus(EIO, absl::StrCat("volume ", options_.volume,
                                       " is fenced: coordinator unreachable"));
}

absl::Status VolumeCoherence::BumpStrict(const std::vector<uint32_t>& slots,
                                         BumpOutcome* outcome) {
  const absl::Time deadline = absl::Now() + options_.change_timeout;
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    absl::StatusOr<BumpOutcome> r = backend_->Bump(slots, /*wait_for_leases=*/true);
    if (r.ok()) {
      *outcome = *r;
      return absl::OkStatus();
    }
    if (!Retryable(r.status()) || absl::Now() + backoff >= deadline) return r.status();
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status VolumeCoherence::AfterChange(GuestId guest, std::vector<uint32_t> slots) {
  SortUnique(&slots);
  if (slots.empty()) return absl::OkStatus();
  const LeaseClock::time_point changed = LeaseClock::now();
  if (options_.mode == CoherenceMode::kBounded) {
    AnnounceInBackground(slots);
    return absl::OkStatus();
  }
  for (uint32_t slot : slots) leases_.NoteChanged(slot, changed);
  BumpOutcome outcome;
  absl::Status status = BumpStrict(slots, &outcome);
  if (!status.ok()) {
    metrics_.bump_failures.fetch_add(1, std::memory_order_relaxed);
    LOG_ERROR("strict bump failed after the change was applied; retrying in the background")
        .Kv("volume", options_.volume)
        .Kv("slots", slots.size())
        .Kv("status", status);
    QueueBump(slots);
    return ErrnoStatus(EIO, absl::StrCat("change applied but not announced: ",
                                         status.message()));
  }
  metrics_.bumps.fetch_add(slots.size(), std::memory_order_relaxed);
  // The bump raised the local table: from here on no guest of this agent
  // is granted a lease on the old state, and every lease granted before is
  // in the table.
  const LeaseClock::time_point now = LeaseClock::now();
  LeaseClock::duration wait = leases_.RemainingExcept(slots, guest, now);
  wait = std::max<LeaseClock::duration>(wait,
                                        std::chrono::milliseconds(outcome.lease_wait_ms));
  // Both sides already include the holders' margins (see Grant).
  if (wait <= LeaseClock::duration::zero()) return absl::OkStatus();
  metrics_.strict_waits.fetch_add(1, std::memory_order_relaxed);
  metrics_.strict_wait_ms.fetch_add(
      static_cast<uint64_t>(std::chrono::ceil<std::chrono::milliseconds>(wait).count()),
      std::memory_order_relaxed);
  absl::SleepFor(absl::FromChrono(wait));
  return absl::OkStatus();
}

void VolumeCoherence::QueueBump(absl::Span<const uint32_t> slots) {
  absl::MutexLock lock(&bump_mu_);
  queued_.insert(slots.begin(), slots.end());
}

void VolumeCoherence::BumpLoop() {
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    std::vector<uint32_t> slots;
    {
      absl::MutexLock lock(&bump_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(bump_mu_) {
        return stopping_ || !queued_.empty();
      };
      bump_mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      for (auto it = queued_.begin(); it != queued_.end() && slots.size() < kMaxBatch;) {
        slots.push_back(*it);
        queued_.erase(it++);
      }
    }
    absl::StatusOr<BumpOutcome> r = backend_->Bump(slots, /*wait_for_leases=*/false);
    if (r.ok()) {
      metrics_.bumps.fetch_add(slots.size(), std::memory_order_relaxed);
      backoff = options_.min_backoff;
      continue;
    }
    metrics_.bump_failures.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("background bump failed; will retry")
        .Kv("volume", options_.volume)
        .Kv("slots", slots.size())
        .Kv("status", r.status())
        .Kv("backoff", absl::FormatDuration(backoff));
    QueueBump(slots);
    {
      absl::MutexLock lock(&bump_mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(bump_mu_) { return stopping_; };
      if (bump_mu_.AwaitWithTimeout(absl::Condition(&stopping), backoff)) return;
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

std::vector<SlotRemaining> VolumeCoherence::LeasesFor(const std::vector<uint32_t>* slots) {
  const LeaseClock::time_point now = LeaseClock::now();
  if (slots == nullptr) {
    std::vector<SlotRemaining> all = leases_.AllRemaining(now);
    const LeaseClock::duration floor = leases_.FloorRemaining(now);
    if (floor > LeaseClock::duration::zero()) {
      // Restarted: any slot may be leased (LeaseTable::AssumeLeasedUntil).
      const uint32_t used = table_->ReadHeader().slots_used;
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(floor);
      std::vector<SlotRemaining> floored;
      floored.reserve(used);
      size_t j = 0;
      for (uint32_t slot = 0; slot < used; ++slot) {
        while (j < all.size() && all[j].slot < slot) ++j;
        const bool listed = j < all.size() && all[j].slot == slot;
        floored.push_back({slot, listed ? std::max(all[j].remaining, ms) : ms});
      }
      return floored;
    }
    return all;
  }
  metrics_.invalidations.fetch_add(slots->size(), std::memory_order_relaxed);
  for (uint32_t slot : *slots) leases_.NoteChanged(slot, now);
  return leases_.Remaining(*slots, now);
}

void VolumeCoherence::OnHostChanges(const std::vector<std::string>& keys) {
  metrics_.host_changes.fetch_add(keys.size(), std::memory_order_relaxed);
  // Unknown keys are resolved too (one batch): a guest of another agent may
  // hold the file, and only the coordinator knows its slot.
  absl::Status resolved = Prefetch(keys);
  if (!resolved.ok()) {
    LOG_WARN("host changes not announced: cannot resolve their slots")
        .Kv("volume", options_.volume)
        .Kv("keys", keys.size())
        .Kv("status", resolved);
  }
  std::vector<uint32_t> slots;
  for (const std::string& key : keys) {
    if (std::optional<uint32_t> slot = CachedSlot(key)) slots.push_back(*slot);
  }
  AnnounceInBackground(slots);
}

void VolumeCoherence::OnHostOverflow() {
  std::vector<uint32_t> slots;
  {
    absl::MutexLock lock(&slots_mu_);
    for (const auto& [key, slot] : slot_of_) slots.push_back(slot);
  }
  LOG_WARN("host change events lost; bumping every known slot")
      .Kv("volume", options_.volume)
      .Kv("slots", slots.size());
  AnnounceInBackground(slots);
}

void VolumeCoherence::AnnounceInBackground(const std::vector<uint32_t>& slots) {
  const LeaseClock::time_point now = LeaseClock::now();
  for (uint32_t slot : slots) leases_.NoteChanged(slot, now);
  QueueBump(slots);
}

}  // namespace coherefs::agent::coherence
