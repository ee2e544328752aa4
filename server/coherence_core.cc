#include "server/coherence_core.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace coherefs::server {
namespace {

// tests/faults/README.md. Hit once per subscriber while a durable batch is
// published (the core lock is held): panic dies mid fan-out; error sends
// that subscriber to the stored log, as a queue overflow would.
COHEREFS_FAILPOINT_DEFINE(kFanout, "core.fanout");

absl::Status ValidateVolumeName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxVolumeNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "volume name must be 1..", kMaxVolumeNameBytes, " bytes"));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          "volume name may only contain [A-Za-z0-9._-]");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAgentId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxAgentIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent id must be 1..", kMaxAgentIdBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateBatchSize(size_t n, absl::string_view what) {
  if (n == 0) {
    return absl::InvalidArgumentError(absl::StrCat("no ", what, " given"));
  }
  if (n > kMaxBatch) {
    return absl::InvalidArgumentError(absl::StrCat(
        n, " ", what, " in one request; the maximum is ", kMaxBatch));
  }
  return absl::OkStatus();
}

absl::Status UnknownVolume(absl::string_view name) {
  return absl::NotFoundError(absl::StrCat("no volume named '", name, "'"));
}

}  // namespace

// ---------------------------------------------------------------------------
// Subscription

Subscription::Subscription(CoherenceCore* core, std::string volume,
                           std::string agent_id, uint64_t next_seq,
                           uint64_t offered_seq, uint64_t epoch,
                           size_t queue_limit, size_t max_batch)
    : core_(core),
      volume_(std::move(volume)),
      agent_id_(std::move(agent_id)),
      epoch_(epoch),
      queue_limit_(std::max<size_t>(1, queue_limit)),
      max_batch_(std::max<size_t>(1, max_batch)),
      next_seq_(next_seq),
      offered_seq_(offered_seq),
      catching_up_(next_seq <= offered_seq) {}

void Subscription::SetWakeup(std::function<void()> wake) {
  absl::MutexLock lock(&mu_);
  wake_ = std::move(wake);
}

void Subscription::Wake() {
  std::function<void()> wake;
  {
    absl::MutexLock lock(&mu_);
    wake = wake_;
  }
  if (wake) wake();
}

bool Subscription::Publish(const std::vector<LogEntry>& entries,
                           absl::Time now, bool* overflowed, bool spill) {
  absl::MutexLock lock(&mu_);
  *overflowed = false;
  if (ended_ || entries.empty()) return false;
  offered_seq_ = entries.back().seq;
  if (!catching_up_) {
    if (spill || queue_.size() + entries.size() > queue_limit_) {
      // Never block the committer: drop the live queue and let the consumer
      // read the stored log from the first entry it has not been given.
      queue_.clear();
      catching_up_ = true;
      *overflowed = true;
    } else {
      for (const LogEntry& e : entries) queue_.push_back({e, now});
    }
  }
  return std::exchange(waiting_, false);
}

bool Subscription::MarkProgressDue() {
  absl::MutexLock lock(&mu_);
  if (ended_) return false;
  progress_due_ = true;
  return std::exchange(waiting_, false);
}

bool Subscription::End(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (ended_) return false;
  ended_ = true;
  end_status_ = std::move(status);
  queue_.clear();
  return std::exchange(waiting_, false);
}

bool Subscription::ended() {
  absl::MutexLock lock(&mu_);
  return ended_;
}

uint64_t Subscription::delivered_seq() {
  absl::MutexLock lock(&mu_);
  return next_seq_ - 1;
}

size_t Subscription::QueueDepth() {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

SubscriptionEvent Subscription::Next() {
  using Kind = SubscriptionEvent::Kind;
  SubscriptionEvent ev;
  absl::MutexLock lock(&mu_);
  for (;;) {
    if (ended_) {
      if (!end_reported_) {
        end_reported_ = true;
        ev.kind = Kind::kEnd;
        ev.end_status = end_status_;
      }
      return ev;
    }
    if (!hello_sent_) {
      // The first message tells the subscriber the epoch.
      hello_sent_ = true;
      ev.kind = Kind::kProgress;
      ev.committed_seq = next_seq_ - 1;
      ev.epoch = epoch_;
      return ev;
    }
    if (!catching_up_) break;
    if (next_seq_ > offered_seq_) {
      // Read everything the committer offered while we were away; the
      // queue is empty, so live delivery resumes exactly at next_seq_.
      catching_up_ = false;
      break;
    }
    const uint64_t from = next_seq_;
    const uint64_t offered = offered_seq_;
    size_t want = std::min<uint64_t>(max_batch_, offered - from + 1);
    mu_.Unlock();
    absl::StatusOr<std::vector<LogEntry>> read =
        core_->store_->ReadLog(volume_, from, want);
    absl::StatusOr<uint64_t> first_retained = uint64_t{0};
    bool gap = read.ok() && (read->empty() || read->front().seq != from);
    if (gap) first_retained = core_->FirstRetainedSeq(volume_);
    mu_.Lock();
    if (ended_ || next_seq_ != from) continue;  // ended, or raced: re-check
    if (!read.ok()) {
      LOG_ERROR("subscriber catch-up read failed")
          .Kv("volume", volume_)
          .Kv("from_seq", from)
          .Kv("status", read.status());
      ended_ = true;
      end_status_ = absl::UnavailableError(
          absl::StrCat("reading the change log: ", read.status().message()));
      continue;
    }
    if (gap) {
      // The sequence we need is gone: say so, never skip it silently.
      ended_ = true;
      end_status_ = absl::OkStatus();
      queue_.clear();
      ev.kind = Kind::kResync;
      ev.needed_seq = from;
      ev.first_retained_seq = first_retained.ok() ? *first_retained : 0;
      ev.committed_seq = offered;
      core_->observer_->OnResync();
      return ev;
    }
    ev.kind = Kind::kInvalidations;
    for (const LogEntry& e : *read) {
      if (e.seq != next_seq_) break;  // defensive: deliver the dense prefix
      ev.entries.push_back(e);
      ++next_seq_;
    }
    return ev;
  }
  if (!queue_.empty()) {
    ev.kind = Kind::kInvalidations;
    ev.oldest_publish_time = queue_.front().published;
    while (!queue_.empty() && ev.entries.size() < max_batch_) {
      ev.entries.push_back(queue_.front().entry);
      ev.publish_times.push_back(queue_.front().published);
      queue_.pop_front();
    }
    next_seq_ = ev.entries.back().seq + 1;
    return ev;
  }
  if (progress_due_) {
    progress_due_ = false;
    ev.kind = Kind::kProgress;
    ev.committed_seq = next_seq_ - 1;
    ev.epoch = epoch_;
    return ev;
  }
  waiting_ = true;
  return ev;
}

void Subscription::Cancel() {
  bool wake = End(absl::CancelledError("subscriber went away"));
  (void)wake;  // the consumer is the one cancelling; nothing to wake
  core_->RemoveSubscription(this);
}

// ---------------------------------------------------------------------------
// CoherenceCore: start, stop

absl::StatusOr<std::unique_ptr<CoherenceCore>> CoherenceCore::Start(
    Store* store, CoreOptions options, CoreObserver* observer) {
  ASSIGN_OR_RETURN(uint64_t old_epoch, store->LoadEpoch());
  if (old_epoch >= kMaxEpoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("epoch ", old_epoch, " exhausted the 24 epoch bits"));
  }
  const uint64_t epoch = old_epoch + 1;
  RETURN_IF_ERROR(store->SaveEpoch(epoch));
  ASSIGN_OR_RETURN(std::vector<StoredVolume> stored, store->LoadVolumes());

  std::unique_ptr<CoherenceCore> core(
      new CoherenceCore(store, options, observer, epoch));
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&core->mu_);
    for (StoredVolume& sv : stored) {
      Volume& v = core->volumes_[sv.name];
      v.capacity = sv.capacity;
      v.committed_seq = sv.committed_seq;
      v.first_retained_seq = sv.first_retained_seq;
      v.versions = std::move(sv.versions);
      v.slot_of.reserve(sv.keys.size());
      for (uint32_t slot = 0; slot < sv.keys.size(); ++slot) {
        v.slot_of.emplace(std::move(sv.keys[slot]), slot);
      }
      v.commit_times.emplace_back(v.first_retained_seq, now);
    }
  }
  LOG_INFO("coherence core started")
      .Kv("epoch", epoch)
      .Kv("volumes", stored.size());
  core->committer_ = std::thread([c = core.get()] { c->CommitterLoop(); });
  core->maintenance_ = std::thread([c = core.get()] { c->MaintenanceLoop(); });
  return core;
}

CoherenceCore::CoherenceCore(Store* store, CoreOptions options,
                             CoreObserver* observer, uint64_t epoch)
    : store_(store),
      options_(options),
      observer_(observer != nullptr ? observer : &null_observer_),
      epoch_(epoch),
      // The first run of a store has no previous leases to wait for.
      grace_until_(epoch > 1 ? absl::Now() + options.strict_grace : absl::InfinitePast()) {}

CoherenceCore::~CoherenceCore() {
  Stop();
  if (committer_.joinable()) committer_.join();
  if (maintenance_.joinable()) maintenance_.join();
}

void CoherenceCore::Stop() {
  std::vector<std::shared_ptr<Subscription>> subs;
  std::vector<std::unique_ptr<LeaseWaiter>> waiters;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    // Let the committer finish what was accepted before ending streams, so
    // subscribers still get those changes.
    mu_.Await(absl::Condition(&committer_done_));
    for (auto& [name, v] : volumes_) {
      for (auto& s : v.subscribers) subs.push_back(s);
    }
    waiters.swap(lease_waiters_);
  }
  for (auto& w : waiters) {
    w->done(absl::UnavailableError(
        "coordinator shut down before the bump's guest leases were "
        "gathered; the bump itself is durable"));
  }
  for (auto& s : subs) {
    if (s->End(absl::UnavailableError("coordinator is shutting down"))) {
      s->Wake();
    }
  }
  LOG_INFO("coherence core stopped").Kv("epoch", epoch_);
}

absl::Status CoherenceCore::CheckWritable() const {
  if (stopping_) return absl::UnavailableError("coordinator is shutting down");
  return StoreFailureLocked();
}

absl::Status CoherenceCore::StoreFailureLocked() const {
  if (store_failure_.ok()) return absl::OkStatus();
  if (store_failure_.code() == absl::StatusCode::kResourceExhausted) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "coordinator store is full; writes resume once space is freed: ",
        store_failure_.message()));
  }
  return absl::UnavailableError(absl::StrCat(
      "store failed earlier; restart the coordinator: ",
      store_failure_.message()));
}

void CoherenceCore::MaybeResumeStore(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (store_failure_.code() != absl::StatusCode::kResourceExhausted ||
        now < next_resume_attempt_) {
      return;
    }
    next_resume_attempt_ = now + absl::Milliseconds(500);
  }
  // Only the committer writes, and it writes nothing while store_failure_
  // is set, so the store is idle here.
  absl::Status s = store_->Resume();
  absl::MutexLock lock(&mu_);
  if (s.code() == absl::StatusCode::kResourceExhausted) return;  // still full
  if (!s.ok()) {
    // It cannot resume (RocksDB itself failed a write): restart needed.
    LOG_ERROR("store cannot resume; refusing writes until restart")
        .Kv("status", s);
    store_failure_ = s;
    return;
  }
  LOG_WARN("store writable again; accepting writes")
      .Kv("after", store_failure_);
  store_failure_ = absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Agents

absl::StatusOr<AgentGrant> CoherenceCore::RegisterAgent(
    const std::string& agent_id, absl::Duration requested_ttl,
    uint32_t max_guest_lease_ms) {
  RETURN_IF_ERROR(ValidateAgentId(agent_id));
  absl::Duration ttl = requested_ttl == absl::ZeroDuration()
                           ? options_.default_lease_ttl
                           : std::clamp(requested_ttl, options_.min_lease_ttl,
                                        options_.max_lease_ttl);
  const absl::Time now = absl::Now();
  // Streams of an expired registration the reaper has not ended yet: they
  // belong to the old lease, so they end here as ExpireAgents would end
  // them (the agent subscribes again), instead of living on unaccounted for
  // in strict-mode lease gathering. Found by //server:coordinator_fuzzer.
  std::vector<std::shared_ptr<Subscription>> stale_streams;
  AgentGrant grant;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("coordinator is shutting down");
    auto it = agents_.find(agent_id);
    if (it != agents_.end() && it->second.live && it->second.deadline > now) {
      return absl::AlreadyExistsError(absl::StrCat(
          "agent '", agent_id, "' is registered and its lease is live"));
    }
    Agent& agent = agents_[agent_id];
    for (auto& w : agent.subscriptions) {
      if (auto sub = w.lock()) stale_streams.push_back(std::move(sub));
    }
    agent = Agent();
    agent.ttl = ttl;
    agent.deadline = now + ttl;
    agent.last_contact = now;
    agent.last_keepalive = now;
    agent.max_guest_lease_ms = max_guest_lease_ms;
    grant = AgentGrant{ttl, epoch_};
  }
  LOG_INFO("agent registered")
      .Kv("agent", agent_id)
      .Kv("lease_ttl_ms", absl::ToInt64Milliseconds(ttl));
  for (auto& sub : stale_streams) {
    if (sub->End(absl::FailedPreconditionError(absl::StrCat(
            "lease of agent '", agent_id, "' expired; it registered again")))) {
      sub->Wake();
    }
  }
  return grant;
}

absl::StatusOr<AgentGrant> CoherenceCore::KeepAlive(
    const std::string& agent_id) {
  RETURN_IF_ERROR(ValidateAgentId(agent_id));
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) {
    return absl::NotFoundError(
        absl::StrCat("agent '", agent_id, "' is not registered"));
  }
  Agent& agent = it->second;
  if (!agent.live || agent.deadline <= now) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease of agent '", agent_id, "' expired; register again"));
  }
  agent.deadline = now + agent.ttl;
  agent.last_contact = now;
  agent.last_keepalive = now;
  return AgentGrant{agent.ttl, epoch_};
}

absl::Status CoherenceCore::UnregisterAgent(const std::string& agent_id) {
  RETURN_IF_ERROR(ValidateAgentId(agent_id));
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    absl::MutexLock lock(&mu_);
    auto it = agents_.find(agent_id);
    if (it == agents_.end()) {
      return absl::NotFoundError(
          absl::StrCat("agent '", agent_id, "' is not registered"));
    }
    for (auto& w : it->second.subscriptions) {
      if (auto s = w.lock()) subs.push_back(std::move(s));
    }
    agents_.erase(it);
  }
  for (auto& s : subs) {
    if (s->End(absl::CancelledError("agent unregistered"))) s->Wake();
  }
  LOG_INFO("agent unregistered").Kv("agent", agent_id);
  CheckLeaseWaiters(absl::Now());
  return absl::OkStatus();
}

void CoherenceCore::ExpireAgents(absl::Time now) {
  std::vector<std::string> expired;
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, agent] : agents_) {
      if (!agent.live || agent.deadline > now) continue;
      agent.live = false;
      expired.push_back(id);
      for (auto& w : agent.subscriptions) {
        if (auto s = w.lock()) subs.push_back(std::move(s));
      }
      agent.subscriptions.clear();
    }
  }
  // Log first, so the event is on record by the time its streams end.
  for (const std::string& id : expired) {
    LOG_WARN("agent lease expired").Kv("agent", id);
    observer_->OnAgentExpired(id);
  }
  for (auto& s : subs) {
    if (s->End(absl::FailedPreconditionError(
            absl::StrCat("lease of agent '", s->agent_id(), "' expired")))) {
      s->Wake();
    }
  }
}

std::vector<AgentInfo> CoherenceCore::ListAgents() {
  struct Open {  // an open stream, read after the core lock is released
    size_t agent;
    size_t volume;
    std::shared_ptr<Subscription> sub;
  };
  std::vector<AgentInfo> out;
  std::vector<Open> open;
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, agent] : agents_) {
      AgentInfo info;
      info.agent_id = id;
      // The maintenance thread notices expiry up to one check interval
      // late; the deadline is the truth.
      info.live = agent.live && agent.deadline > now;
      info.lease_ttl = agent.ttl;
      if (info.live) {
        info.lease_remaining = agent.deadline - now;
      } else {
        // UnregisterAgent forgets an agent, so a dead one expired.
        info.expired_for = now - agent.deadline;
      }
      info.since_keepalive = now - agent.last_keepalive;
      info.max_guest_lease_ms = agent.max_guest_lease_ms;
      std::set<std::string, std::less<>> names = agent.followed;
      for (const auto& [volume, acks] : agent.acks) names.insert(volume);
      for (const std::string& name : names) {
        AgentVolumeState state;
        state.volume = name;
        auto v = volumes_.find(name);
        if (v != volumes_.end()) state.committed_seq = v->second.committed_seq;
        auto acks = agent.acks.find(name);
        if (acks != agent.acks.end()) state.acked_seq = acks->second.acked_seq;
        for (const auto& weak : agent.subscriptions) {
          auto sub = weak.lock();
          if (sub != nullptr && sub->volume() == name) {
            open.push_back({out.size(), info.volumes.size(), std::move(sub)});
          }
        }
        info.volumes.push_back(std::move(state));
      }
      out.push_back(std::move(info));
    }
  }
  // Subscription locks are taken without the core's (as everywhere else).
  for (const Open& o : open) {
    if (o.sub->ended()) continue;
    AgentVolumeState& state = out[o.agent].volumes[o.volume];
    state.streaming = true;
    state.delivered_seq = std::max(state.delivered_seq, o.sub->delivered_seq());
  }
  return out;
}

// ---------------------------------------------------------------------------
// Volumes, reads

VolumeInfo CoherenceCore::InfoLocked(const std::string& name,
                                     const Volume& v) const {
  VolumeInfo info;
  info.name = name;
  info.capacity = v.capacity;
  info.slots_used = v.versions.size();
  info.committed_seq = v.committed_seq;
  info.first_retained_seq = v.first_retained_seq;
  return info;
}

std::vector<VolumeInfo> CoherenceCore::ListVolumes() {
  absl::MutexLock lock(&mu_);
  std::vector<VolumeInfo> out;
  for (const auto& [name, v] : volumes_) out.push_back(InfoLocked(name, v));
  return out;
}

absl::StatusOr<VolumeInfo> CoherenceCore::DescribeVolume(
    const std::string& name) {
  RETURN_IF_ERROR(ValidateVolumeName(name));
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return UnknownVolume(name);
  return InfoLocked(name, it->second);
}

absl::StatusOr<uint64_t> CoherenceCore::FirstRetainedSeq(
    const std::string& volume) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) return UnknownVolume(volume);
  return it->second.first_retained_seq;
}

absl::StatusOr<SnapshotPage> CoherenceCore::Snapshot(const std::string& volume,
                                                     uint32_t start_slot,
                                                     uint32_t max_slots) {
  RETURN_IF_ERROR(ValidateVolumeName(volume));
  if (max_slots == 0 || max_slots > kMaxSnapshotSlots) {
    max_slots = kMaxSnapshotSlots;
  }
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) return UnknownVolume(volume);
  const Volume& v = it->second;
  if (start_slot > v.versions.size()) {
    return absl::OutOfRangeError(
        absl::StrCat("start_slot ", start_slot, " is past slots_used ",
                     v.versions.size()));
  }
  SnapshotPage page;
  page.committed_seq = v.committed_seq;
  page.epoch = epoch_;
  page.start_slot = start_slot;
  page.slots_used = v.versions.size();
  size_t end = std::min<size_t>(v.versions.size(),
                                size_t{start_slot} + max_slots);
  page.versions.assign(v.versions.begin() + start_slot,
                       v.versions.begin() + end);
  return page;
}

// ---------------------------------------------------------------------------
// Writes: validation and the queue

absl::Status CoherenceCore::Enqueue(Op op) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(CheckWritable());
  pending_.push_back(std::move(op));
  return absl::OkStatus();
}

void CoherenceCore::CreateVolume(
    std::string name, uint32_t capacity,
    std::function<void(absl::StatusOr<VolumeInfo>)> done) {
  absl::Status valid = ValidateVolumeName(name);
  if (valid.ok() && capacity > kMaxCapacity) {
    valid = absl::InvalidArgumentError(absl::StrCat(
        "capacity ", capacity, " is above the maximum ", kMaxCapacity));
  }
  if (!valid.ok()) return done(valid);
  Op op;
  op.kind = Op::Kind::kCreate;
  op.volume = std::move(name);
  op.capacity = capacity == 0 ? kDefaultCapacity : capacity;
  op.create_done = std::move(done);
  auto callback = op.create_done;
  absl::Status queued = Enqueue(std::move(op));
  if (!queued.ok()) callback(queued);
}

void CoherenceCore::Resolve(
    std::string volume, std::vector<std::string> keys,
    std::function<void(absl::StatusOr<ResolveResult>)> done) {
  absl::Status valid = ValidateVolumeName(volume);
  if (valid.ok()) valid = ValidateBatchSize(keys.size(), "keys");
  for (size_t i = 0; valid.ok() && i < keys.size(); ++i) {
    if (keys[i].empty() || keys[i].size() > kMaxKeyBytes) {
      valid = absl::InvalidArgumentError(
          absl::StrCat("key ", i, " has ", keys[i].size(),
                       " bytes; keys must be 1..", kMaxKeyBytes));
    }
  }
  if (!valid.ok()) return done(valid);
  // Fast path: every key already has a slot, so nothing needs to be made
  // durable and the answer comes from memory.
  absl::StatusOr<ResolveResult> fast = absl::UnknownError("");
  {
    absl::MutexLock lock(&mu_);
    auto it = volumes_.find(volume);
    if (it == volumes_.end()) {
      fast = UnknownVolume(volume);
    } else {
      const Volume& v = it->second;
      ResolveResult result;
      result.committed_seq = v.committed_seq;
      for (const std::string& key : keys) {
        auto found = v.slot_of.find(key);
        if (found == v.slot_of.end()) break;
        result.slots.push_back({found->second, v.versions[found->second]});
      }
      if (result.slots.size() == keys.size()) fast = std::move(result);
    }
  }
  if (fast.ok() || fast.status().code() != absl::StatusCode::kUnknown) {
    return done(std::move(fast));
  }
  Op op;
  op.kind = Op::Kind::kResolve;
  op.volume = std::move(volume);
  op.keys = std::move(keys);
  op.resolve_done = std::move(done);
  auto callback = op.resolve_done;
  absl::Status queued = Enqueue(std::move(op));
  if (!queued.ok()) callback(queued);
}

void CoherenceCore::Bump(std::string volume, std::vector<uint32_t> slots,
                         BumpOptions options,
                         std::function<void(absl::StatusOr<BumpResult>)> done) {
  absl::Status valid = ValidateVolumeName(volume);
  if (valid.ok()) valid = ValidateBatchSize(slots.size(), "slots");
  if (valid.ok() && options.wait_for_leases) {
    valid = ValidateAgentId(options.agent_id);
  }
  if (!valid.ok()) return done(valid);
  {
    absl::MutexLock lock(&mu_);
    auto it = volumes_.find(volume);
    if (it == volumes_.end()) {
      valid = UnknownVolume(volume);
    } else {
      // slots_used only grows, so a slot valid now stays valid.
      const size_t used = it->second.versions.size();
      for (uint32_t slot : slots) {
        if (slot >= used) {
          valid = absl::OutOfRangeError(absl::StrCat(
              "slot ", slot, " is not allocated in volume '", volume,
              "' (slots_used ", used, ")"));
          break;
        }
      }
    }
  }
  if (!valid.ok()) return done(valid);
  Op op;
  op.kind = Op::Kind::kBump;
  op.volume = std::move(volume);
  op.slots = std::move(slots);
  op.bump_options = std::move(options);
  op.bump_done = std::move(done);
  auto callback = op.bump_done;
  absl::Status queued = Enqueue(std::move(op));
  if (!queued.ok()) callback(queued);
}

// ---------------------------------------------------------------------------
// The committer

// The effects of one group commit, computed against committed state plus
// the batch's own earlier effects, before anything is written.
class CoherenceCore::Batch {
 public:
  struct Staged {  // per volume touched by the batch
    bool is_new = false;
    uint32_t capacity = 0;
    uint32_t slots_used = 0;
    uint64_t seq = 0;  // last seq assigned so far
    absl::flat_hash_map<std::string, uint32_t> new_slots;
    absl::flat_hash_map<uint32_t, uint64_t> versions;
    std::vector<LogEntry> appended;
  };
  struct Outcome {  // per op
    absl::Status status;
    ResolveResult resolve;
    BumpResult bump;
  };

  std::map<std::string, Staged> staged;
  std::vector<Outcome> outcomes;
  StoreBatch store;
};

void CoherenceCore::CommitterLoop() {
  for (;;) {
    std::vector<Op> ops;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !pending_.empty() || stopping_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready),
                           options_.compaction_interval);
      if (pending_.empty() && stopping_) {
        committer_done_ = true;
        return;
      }
      ops.swap(pending_);
    }
    if (!ops.empty()) CommitBatch(std::move(ops));
    MaybeCompact();
  }
}

void CoherenceCore::CommitBatch(std::vector<Op> ops) {
  Batch batch;
  batch.outcomes.resize(ops.size());
  {
    absl::MutexLock lock(&mu_);
    absl::Status writable = StoreFailureLocked();
    // Looks up (creating on first touch) the staged view of a volume.
    auto stage = [&](const std::string& name)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> Batch::Staged* {
      auto found = batch.staged.find(name);
      if (found != batch.staged.end()) return &found->second;
      auto it = volumes_.find(name);
      if (it == volumes_.end()) return nullptr;
      Batch::Staged& s = batch.staged[name];
      s.capacity = it->second.capacity;
      s.slots_used = it->second.versions.size();
      s.seq = it->second.committed_seq;
      return &s;
    };
    auto version_of = [&](const std::string& name, Batch::Staged& s,
                          uint32_t slot)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> uint64_t {
      auto v = s.versions.find(slot);
      if (v != s.versions.end()) return v->second;
      auto it = volumes_.find(name);
      if (it == volumes_.end() || slot >= it->second.versions.size()) return 0;
      return it->second.versions[slot];
    };
    const uint64_t epoch_base = epoch_ << kEpochShift;

    for (size_t i = 0; i < ops.size(); ++i) {
      Op& op = ops[i];
      Batch::Outcome& out = batch.outcomes[i];
      if (!writable.ok()) {
        out.status = writable;
        continue;
      }
      switch (op.kind) {
        case Op::Kind::kCreate: {
          if (stage(op.volume) != nullptr) {
            out.status = absl::AlreadyExistsError(
                absl::StrCat("volume '", op.volume, "' already exists"));
            break;
          }
          Batch::Staged& s = batch.staged[op.volume];
          s.is_new = true;
          s.capacity = op.capacity;
          batch.store.new_volumes.push_back({op.volume, op.capacity});
          break;
        }
        case Op::Kind::kResolve: {
          Batch::Staged* s = stage(op.volume);
          if (s == nullptr) {
            out.status = UnknownVolume(op.volume);
            break;
          }
          auto committed = volumes_.find(op.volume);
          auto find = [&](const std::string& key)
              ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> const uint32_t* {
            if (committed != volumes_.end()) {
              auto f = committed->second.slot_of.find(key);
              if (f != committed->second.slot_of.end()) return &f->second;
            }
            auto f = s->new_slots.find(key);
            return f == s->new_slots.end() ? nullptr : &f->second;
          };
          // Count distinct new keys first so a full table fails the whole
          // request without allocating part of it.
          absl::flat_hash_set<absl::string_view> fresh;
          for (const std::string& key : op.keys) {
            if (find(key) == nullptr) fresh.insert(key);
          }
          if (uint64_t{s->slots_used} + fresh.size() > s->capacity) {
            out.status = absl::ResourceExhaustedError(absl::StrCat(
                "volume '", op.volume, "' is full (capacity ", s->capacity,
                ")"));
            break;
          }
          for (const std::string& key : op.keys) {
            const uint32_t* slot = find(key);
            if (slot == nullptr) {
              uint32_t new_slot = s->slots_used++;
              s->new_slots.emplace(key, new_slot);
              s->versions[new_slot] = epoch_base;
              batch.store.new_keys.push_back(
                  {op.volume, key, new_slot, epoch_base});
              slot = &s->new_slots.find(key)->second;
            }
            out.resolve.slots.push_back(
                {*slot, version_of(op.volume, *s, *slot)});
          }
          break;
        }
        case Op::Kind::kBump: {
          Batch::Staged* s = stage(op.volume);
          if (s == nullptr) {
            out.status = UnknownVolume(op.volume);
            break;
          }
          for (uint32_t slot : op.slots) {
            uint64_t version = std::max(
                version_of(op.volume, *s, slot) + 1, epoch_base | 1);
            s->versions[slot] = version;
            LogEntry e{++s->seq, slot, version};
            s->appended.push_back(e);
            batch.store.appends.push_back({op.volume, e});
            out.bump.versions.push_back(version);
            out.bump.seqs.push_back(e.seq);
          }
          break;
        }
      }
    }
  }

  // Durable before anyone hears about it; no lock held across the fsync.
  absl::Status stored = absl::OkStatus();
  absl::Duration store_latency;
  if (!batch.store.empty()) {
    const absl::Time start = absl::Now();
    stored = store_->Commit(batch.store);
    store_latency = absl::Now() - start;
  }

  std::vector<std::shared_ptr<Subscription>> to_wake;
  size_t overflows = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!stored.ok()) {
      store_failure_ = stored;
      // A full disk (kResourceExhausted) is retried by MaybeResumeStore;
      // anything else (a failed fsync may have lost pages) needs a restart.
      LOG_ERROR(stored.code() == absl::StatusCode::kResourceExhausted
                    ? "store full; refusing writes until space is freed"
                    : "store commit failed; refusing writes until restart")
          .Kv("status", stored);
    } else {
      const absl::Time now = absl::Now();
      for (auto& [name, s] : batch.staged) {
        if (s.is_new) {
          Volume& v = volumes_[name];
          v.capacity = s.capacity;
          v.commit_times.emplace_back(1, now);
          LOG_INFO("volume created")
              .Kv("volume", name)
              .Kv("capacity", s.capacity);
        }
        Volume& v = volumes_[name];
        for (auto& [key, slot] : s.new_slots) v.slot_of.emplace(key, slot);
        v.versions.resize(s.slots_used, 0);
        for (auto& [slot, version] : s.versions) v.versions[slot] = version;
        if (!s.appended.empty()) {
          if (options_.log_retention_age > absl::ZeroDuration()) {
            v.commit_times.emplace_back(s.appended.front().seq, now);
          }
          v.committed_seq = s.appended.back().seq;
          // Subscribers see changes in sequence order: this batch's entries
          // follow everything published before, and the next batch waits
          // for this loop.
          for (auto& sub : v.subscribers) {
            bool overflowed = false;
            const bool spill = !kFanout.Eval().ok();
            if (sub->Publish(s.appended, now, &overflowed, spill)) {
              to_wake.push_back(sub);
            }
            overflows += overflowed;
          }
        }
      }
    }
  }
  if (!stored.ok()) {
    absl::Status failed =
        stored.code() == absl::StatusCode::kResourceExhausted
            ? absl::ResourceExhaustedError(absl::StrCat(
                  "coordinator store is full: ", stored.message()))
            : absl::UnavailableError(
                  absl::StrCat("store commit failed: ", stored.message()));
    for (auto& out : batch.outcomes) {
      if (out.status.ok()) out.status = failed;
    }
  }
  if (!batch.store.empty() && stored.ok()) {
    observer_->OnGroupCommit(ops.size(), batch.store.appends.size(),
                             store_latency);
  }
  for (size_t i = 0; i < overflows; ++i) observer_->OnSubscriberOverflow();

  // Complete the callers first: they wait on the fsync; subscribers pull.
  for (size_t i = 0; i < ops.size(); ++i) {
    Op& op = ops[i];
    Batch::Outcome& out = batch.outcomes[i];
    switch (op.kind) {
      case Op::Kind::kCreate:
        if (!out.status.ok()) {
          op.create_done(out.status);
        } else {
          VolumeInfo info;
          info.name = op.volume;
          info.capacity = op.capacity;
          op.create_done(info);
        }
        break;
      case Op::Kind::kResolve:
        if (!out.status.ok()) {
          op.resolve_done(out.status);
        } else {
          out.resolve.committed_seq = 0;
          {
            absl::MutexLock lock(&mu_);
            auto it = volumes_.find(op.volume);
            if (it != volumes_.end()) {
              out.resolve.committed_seq = it->second.committed_seq;
            }
          }
          op.resolve_done(std::move(out.resolve));
        }
        break;
      case Op::Kind::kBump:
        if (!out.status.ok()) {
          op.bump_done(out.status);
        } else if (op.bump_options.wait_for_leases) {
          StartLeaseWait(op, std::move(out.bump));
        } else {
          op.bump_done(std::move(out.bump));
        }
        break;
    }
  }
  for (auto& sub : to_wake) sub->Wake();
}

void CoherenceCore::MaybeCompact() {
  struct Job {
    std::string volume;
    uint64_t before;
  };
  std::vector<Job> jobs;
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    if (!store_failure_.ok()) return;
    for (auto& [name, v] : volumes_) {
      uint64_t before = v.first_retained_seq;
      const uint64_t end = v.committed_seq + 1;
      if (options_.log_retention_entries > 0 &&
          end > options_.log_retention_entries) {
        before = std::max(before, end - options_.log_retention_entries);
      }
      if (options_.log_retention_age > absl::ZeroDuration()) {
        const absl::Time cutoff = now - options_.log_retention_age;
        // commit_times[i] covers seqs [its seq, next record's seq).
        while (!v.commit_times.empty() &&
               v.commit_times.front().second < cutoff) {
          v.commit_times.pop_front();
          uint64_t next =
              v.commit_times.empty() ? end : v.commit_times.front().first;
          before = std::max(before, next);
        }
      }
      before = std::min(before, end);
      if (before > v.first_retained_seq) jobs.push_back({name, before});
    }
  }
  for (const Job& job : jobs) {
    absl::Status s = store_->CompactLog(job.volume, job.before);
    absl::MutexLock lock(&mu_);
    if (!s.ok()) {
      store_failure_ = s;
      LOG_ERROR("change-log compaction failed; refusing writes until restart")
          .Kv("volume", job.volume)
          .Kv("status", s);
      return;
    }
    Volume& v = volumes_[job.volume];
    // Forget commit times of batches that are now entirely compacted.
    while (v.commit_times.size() > 1 &&
           v.commit_times[1].first <= job.before) {
      v.commit_times.pop_front();
    }
    LOG_DEBUG("change log compacted")
        .Kv("volume", job.volume)
        .Kv("first_retained_seq", job.before);
    v.first_retained_seq = job.before;
  }
}

// ---------------------------------------------------------------------------
// Subscriptions

absl::StatusOr<std::shared_ptr<Subscription>> CoherenceCore::Subscribe(
    const std::string& volume, uint64_t from_seq, const std::string& agent_id) {
  RETURN_IF_ERROR(ValidateVolumeName(volume));
  if (!agent_id.empty()) RETURN_IF_ERROR(ValidateAgentId(agent_id));
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("coordinator is shutting down");
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) return UnknownVolume(volume);
  Volume& v = it->second;
  Agent* agent = nullptr;
  if (!agent_id.empty()) {
    auto a = agents_.find(agent_id);
    if (a == agents_.end()) {
      return absl::NotFoundError(
          absl::StrCat("agent '", agent_id, "' is not registered"));
    }
    if (!a->second.live || a->second.deadline <= now) {
      return absl::FailedPreconditionError(absl::StrCat(
          "lease of agent '", agent_id, "' expired; register again"));
    }
    agent = &a->second;
  }
  const uint64_t next = from_seq == 0 ? v.committed_seq + 1 : from_seq;
  if (next > v.committed_seq + 1) {
    return absl::OutOfRangeError(absl::StrCat(
        "from_seq ", from_seq, " is in the future: volume '", volume,
        "' has committed up to seq ", v.committed_seq));
  }
  auto sub = std::make_shared<Subscription>(
      this, volume, agent_id, next, v.committed_seq, epoch_,
      options_.subscriber_queue_limit, options_.max_delivery_batch);
  v.subscribers.push_back(sub);
  if (agent != nullptr) {
    // Drop references to finished subscriptions while we are here.
    auto& subs = agent->subscriptions;
    subs.erase(std::remove_if(subs.begin(), subs.end(),
                              [](auto& w) { return w.expired(); }),
               subs.end());
    subs.push_back(sub);
    agent->followed.insert(volume);
  }
  return sub;
}

void CoherenceCore::RemoveSubscription(Subscription* sub) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(sub->volume());
  if (it == volumes_.end()) return;
  auto& subs = it->second.subscribers;
  subs.erase(std::remove_if(subs.begin(), subs.end(),
                            [sub](auto& s) { return s.get() == sub; }),
             subs.end());
}

absl::Status CoherenceCore::AckInvalidations(
    const std::string& agent_id, const std::string& volume, uint64_t seq,
    const std::vector<std::pair<uint32_t, uint32_t>>& leases) {
  RETURN_IF_ERROR(ValidateAgentId(agent_id));
  RETURN_IF_ERROR(ValidateVolumeName(volume));
  if (leases.size() > kMaxBatch) {
    return absl::InvalidArgumentError(absl::StrCat(
        leases.size(), " leases in one ack; the maximum is ", kMaxBatch));
  }
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto a = agents_.find(agent_id);
    if (a == agents_.end()) {
      return absl::NotFoundError(
          absl::StrCat("agent '", agent_id, "' is not registered"));
    }
    Agent& agent = a->second;
    if (!agent.live || agent.deadline <= now) {
      return absl::FailedPreconditionError(absl::StrCat(
          "lease of agent '", agent_id, "' expired; register again"));
    }
    auto v = volumes_.find(volume);
    if (v == volumes_.end()) return UnknownVolume(volume);
    if (seq > v->second.committed_seq) {
      return absl::OutOfRangeError(absl::StrCat(
          "ack of seq ", seq, " but volume '", volume,
          "' has committed up to seq ", v->second.committed_seq));
    }
    AckRecord record;
    record.seq = seq;
    record.received = now;
    for (const auto& [slot, ms] : leases) {
      if (slot >= v->second.versions.size()) {
        return absl::OutOfRangeError(
            absl::StrCat("slot ", slot, " is not allocated"));
      }
      uint32_t& kept = record.remaining_ms[slot];
      kept = std::max(kept, ms);
    }
    AgentAcks& acks = agent.acks[volume];
    acks.acked_seq = std::max(acks.acked_seq, seq);
    acks.records.push_back(std::move(record));
    // Strict bumps wait at most one lease TTL, so old reports are useless.
    while (acks.records.size() > 1024 ||
           (!acks.records.empty() &&
            acks.records.front().received < now - agent.ttl -
                                                  absl::Milliseconds(
                                                      agent.max_guest_lease_ms))) {
      acks.records.pop_front();
    }
    agent.last_contact = now;
  }
  CheckLeaseWaiters(now);
  return absl::OkStatus();
}

void CoherenceCore::StartLeaseWait(Op& op, BumpResult result) {
  const absl::Time now = absl::Now();
  auto w = std::make_unique<LeaseWaiter>();
  w->volume = op.volume;
  w->slots = op.slots;
  w->min_seq = result.seqs.front();
  w->max_seq = result.seqs.back();
  w->published = now;
  w->result = std::move(result);
  w->done = std::move(op.bump_done);
  absl::Time lease_until = std::max(now, grace_until_);
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, agent] : agents_) {
      if (id == op.bump_options.agent_id) continue;
      const bool live = agent.live && agent.deadline > now;
      if (!live) {
        // It cannot hear about the bump; its guests may keep leases for
        // up to max_guest_lease_ms after it last granted one: until its
        // lease deadline, which it may have kept granting up to.
        lease_until = std::max(lease_until, LastGrantBound(agent) +
                                                absl::Milliseconds(agent.max_guest_lease_ms));
        continue;
      }
      bool subscribed = false;
      for (auto& weak : agent.subscriptions) {
        auto sub = weak.lock();
        subscribed |= sub != nullptr && sub->volume() == op.volume &&
                      !sub->ended();
      }
      if (subscribed) {
        w->pending.emplace(id, now + agent.ttl);
      } else if (agent.acks.count(op.volume) > 0) {
        // It followed this volume and its stream is down (reconnecting):
        // it grants nothing new meanwhile, but its guests may keep what it
        // granted before, for up to max_guest_lease_ms.
        lease_until = std::max(lease_until,
                               now + absl::Milliseconds(agent.max_guest_lease_ms));
      }
      // A live agent that never followed the volume gets no invalidations,
      // so it must not be granting leases on it.
    }
    w->lease_wait = lease_until - now;  // carried as a floor; see below
    lease_waiters_.push_back(std::move(w));
  }
  CheckLeaseWaiters(now);
}

absl::Time CoherenceCore::LastGrantBound(const Agent& agent) {
  // An agent fences itself when its lease runs out (measured from when it
  // sent the renewal, so never later than our deadline): it grants no
  // lease after max(last contact, deadline).
  return std::max(agent.last_contact, agent.deadline);
}

bool CoherenceCore::ResolveAgentLocked(LeaseWaiter& w,
                                       const std::string& agent_id,
                                       absl::Time give_up, absl::Time now) {
  auto a = agents_.find(agent_id);
  if (a == agents_.end()) return true;  // unregistered: its guests are gone
  Agent& agent = a->second;
  absl::Time until = w.published + w.lease_wait;
  auto acks = agent.acks.find(w.volume);
  if (acks != agent.acks.end() && acks->second.acked_seq >= w.max_seq) {
    for (const AckRecord& r : acks->second.records) {
      if (r.seq < w.min_seq) continue;
      for (uint32_t slot : w.slots) {
        auto found = r.remaining_ms.find(slot);
        if (found != r.remaining_ms.end()) {
          until = std::max(until, r.received + absl::Milliseconds(found->second));
        }
      }
    }
  } else if (now >= give_up || !agent.live || agent.deadline <= now) {
    // Unanswered: it may have granted leases (on the state before this
    // bump) up to its lease deadline, not only until it last talked to us
    // (tests/faults/agent/partition_fault_test.py found reads that stale).
    until = std::max(until, LastGrantBound(agent) +
                                absl::Milliseconds(agent.max_guest_lease_ms));
  } else {
    return false;
  }
  w.lease_wait = std::max(w.lease_wait, until - w.published);
  return true;
}

void CoherenceCore::CheckLeaseWaiters(absl::Time now) {
  std::vector<std::unique_ptr<LeaseWaiter>> finished;
  {
    absl::MutexLock lock(&mu_);
    for (auto& w : lease_waiters_) {
      for (auto it = w->pending.begin(); it != w->pending.end();) {
        if (ResolveAgentLocked(*w, it->first, it->second, now)) {
          it = w->pending.erase(it);
        } else {
          ++it;
        }
      }
      if (w->pending.empty()) finished.push_back(std::move(w));
    }
    lease_waiters_.erase(
        std::remove(lease_waiters_.begin(), lease_waiters_.end(), nullptr),
        lease_waiters_.end());
  }
  for (auto& w : finished) {
    // lease_wait is measured from the publish; the caller waits from now.
    absl::Duration left = w->published + w->lease_wait - now;
    w->result.lease_wait = std::max(absl::ZeroDuration(), left);
    w->done(std::move(w->result));
  }
}

// ---------------------------------------------------------------------------
// Maintenance: leases and progress marks

void CoherenceCore::MaintenanceLoop() {
  absl::Time next_progress = absl::Now() + options_.progress_interval;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                               options_.lease_check_interval)) {
        return;
      }
    }
    const absl::Time now = absl::Now();
    ExpireAgents(now);
    CheckLeaseWaiters(now);
    MaybeResumeStore(now);
    if (now < next_progress) continue;
    next_progress = now + options_.progress_interval;
    std::vector<std::shared_ptr<Subscription>> subs;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [name, v] : volumes_) {
        for (auto& s : v.subscribers) subs.push_back(s);
      }
    }
    for (auto& s : subs) {
      if (s->MarkProgressDue()) s->Wake();
    }
  }
}

CoreStats CoherenceCore::GetStats() {
  CoreStats stats;
  stats.epoch = epoch_;
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    absl::MutexLock lock(&mu_);
    stats.volumes = volumes_.size();
    const absl::Time now = absl::Now();
    for (auto& [id, a] : agents_) stats.live_agents += a.live && a.deadline > now;
    for (auto& [name, v] : volumes_) {
      for (auto& s : v.subscribers) subs.push_back(s);
    }
  }
  stats.subscribers = subs.size();
  for (auto& s : subs) {
    size_t depth = s->QueueDepth();
    stats.queue_depth_sum += depth;
    stats.queue_depth_max = std::max(stats.queue_depth_max, depth);
  }
  return stats;
}

// ---------------------------------------------------------------------------
// Blocking wrappers

absl::StatusOr<VolumeInfo> CoherenceCore::CreateVolumeSync(std::string name,
                                                           uint32_t capacity) {
  absl::Notification done;
  absl::StatusOr<VolumeInfo> result;
  CreateVolume(std::move(name), capacity, [&](absl::StatusOr<VolumeInfo> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

absl::StatusOr<ResolveResult> CoherenceCore::ResolveSync(
    std::string volume, std::vector<std::string> keys) {
  absl::Notification done;
  absl::StatusOr<ResolveResult> result;
  Resolve(std::move(volume), std::move(keys),
          [&](absl::StatusOr<ResolveResult> r) {
            result = std::move(r);
            done.Notify();
          });
  done.WaitForNotification();
  return result;
}

absl::StatusOr<BumpResult> CoherenceCore::BumpSync(std::string volume,
                                                   std::vector<uint32_t> slots,
                                                   BumpOptions options) {
  absl::Notification done;
  absl::StatusOr<BumpResult> result;
  Bump(std::move(volume), std::move(slots), std::move(options),
       [&](absl::StatusOr<BumpResult> r) {
         result = std::move(r);
         done.Notify();
       });
  done.WaitForNotification();
  return result;
}

}  // namespace coherefs::server
