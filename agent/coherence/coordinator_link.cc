#include "agent/coherence/coordinator_link.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"

namespace coherefs::agent::coherence {
namespace {

// tests/faults/README.md: before a Bump is sent (error: the call fails with
// the injected code, as an unreachable coordinator would; sleep: delays it).
COHEREFS_FAILPOINT_DEFINE(kLinkBump, "agent.link.bump");

absl::Duration ToDuration(std::chrono::steady_clock::duration d) {
  return absl::FromChrono(d);
}

void RaiseMax(std::atomic<uint32_t>* value, uint32_t candidate) {
  uint32_t cur = value->load(std::memory_order_relaxed);
  while (candidate > cur && !value->compare_exchange_weak(
                                cur, candidate, std::memory_order_relaxed)) {
  }
}

// Its own TCP connection (each link is one "host"), and a short reconnect
// backoff: gRPC's default grows to minutes, which would keep a restarted
// coordinator unreachable long after it is back.
std::shared_ptr<client::CoordinatorClient> MakeClient(
    const CoordinatorLinkOptions& options) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  client::CoordinatorClientOptions client_options;
  client_options.deadline = options.rpc_deadline;
  return std::make_shared<client::CoordinatorClient>(
      grpc::CreateCustomChannel(options.target,
                                options.credentials != nullptr
                                    ? options.credentials
                                    : grpc::InsecureChannelCredentials(),
                                args),
      client_options);
}

}  // namespace

CoordinatorLink::CoordinatorLink(CoordinatorLinkOptions options)
    : options_(std::move(options)), client_(MakeClient(options_)) {
  for (const LinkVolume& v : options_.volumes) {
    auto vol = std::make_unique<VolumeState>();
    vol->name = v.name;
    vol->table = v.table;
    volumes_.push_back(std::move(vol));
  }
}

CoordinatorLink::~CoordinatorLink() { Stop(); }

std::shared_ptr<client::CoordinatorClient> CoordinatorLink::Client() const {
  absl::MutexLock lock(&client_mu_);
  return client_;
}

void CoordinatorLink::MaybeReconnectClient(const absl::Status& status) {
  if (!absl::IsUnavailable(status)) return;
  std::shared_ptr<client::CoordinatorClient> fresh;
  {
    absl::MutexLock lock(&client_mu_);
    // At most every 500 ms: the lease thread and every volume thread call
    // this on the same outage.
    if (Clock::now() - last_new_channel_ < std::chrono::milliseconds(500)) return;
    last_new_channel_ = Clock::now();
  }
  fresh = MakeClient(options_);
  absl::MutexLock lock(&client_mu_);
  client_.swap(fresh);
}

absl::Status CoordinatorLink::Start() {
  if (options_.agent_id.empty()) {
    return absl::InvalidArgumentError("coordinator link: empty agent id");
  }
  if (volumes_.empty()) {
    return absl::InvalidArgumentError("coordinator link: no volumes");
  }
  std::set<std::string> names;
  for (const auto& vol : volumes_) {
    if (vol->table == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "coordinator link: volume ", vol->name, " has no table"));
    }
    if (!names.insert(vol->name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("coordinator link: volume ", vol->name, " twice"));
    }
  }
  absl::MutexLock lock(&mu_);
  if (started_) {
    return absl::FailedPreconditionError("coordinator link already started");
  }
  started_ = true;
  for (const auto& vol : volumes_) {
    vol->table->SetFenced(true);
    vol->fence_published = true;
    // A table that already holds a synced state (kept across a link
    // restart) resumes from its next sequence; a fresh one starts with a
    // snapshot (VolumeLoop).
    const TableHeader header = vol->table->ReadHeader();
    vol->epoch = header.epoch;
    vol->next_seq = header.committed_seq + 1;
    vol->slots_used.store(header.slots_used, std::memory_order_relaxed);
  }
  lease_thread_ = std::thread([this] { LeaseLoop(); });
  for (const auto& vol : volumes_) {
    VolumeState* v = vol.get();
    v->thread = std::thread([this, v] { VolumeLoop(v); });
  }
  LOG_INFO("coordinator link started")
      .Kv("target", options_.target)
      .Kv("agent", options_.agent_id)
      .Kv("volumes", volumes_.size());
  return absl::OkStatus();
}

void CoordinatorLink::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (stop_done_) return;
  stop_done_ = true;
  bool was_registered = false;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    started_ = true;  // a later Start() is refused
    was_registered = registered_;
    for (const auto& vol : volumes_) {
      if (vol->stream != nullptr) vol->stream->Cancel();
    }
    UpdateFencesLocked();
  }
  if (lease_thread_.joinable()) lease_thread_.join();
  for (const auto& vol : volumes_) {
    if (vol->thread.joinable()) vol->thread.join();
  }
  if (was_registered) {
    absl::Status s = Client()->UnregisterAgent(options_.agent_id);
    if (!s.ok()) {
      LOG_WARN("unregister failed (best effort)").Kv("status", s);
    }
  }
  absl::MutexLock lock(&mu_);
  registered_ = false;
  UpdateFencesLocked();
}

// ---------------------------------------------------------------- fencing

bool CoordinatorLink::LeaseLiveLocked() const {
  return registered_ && Clock::now() < lease_deadline_;
}

void CoordinatorLink::PublishLeaseDeadlineLocked() {
  lease_deadline_ns_.store(
      registered_ ? std::chrono::duration_cast<std::chrono::nanoseconds>(
                        lease_deadline_.time_since_epoch())
                        .count()
                  : 0,
      std::memory_order_release);
}

bool CoordinatorLink::lease_lapsed() const {
  const int64_t deadline = lease_deadline_ns_.load(std::memory_order_acquire);
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
             .count() >= deadline;
}

bool CoordinatorLink::VolumeFencedLocked(const VolumeState& vol) const {
  return stopping_ || !LeaseLiveLocked() || !vol.synced ||
         vol.synced_epoch != epoch_;
}

void CoordinatorLink::UpdateFencesLocked() {
  PublishLeaseDeadlineLocked();
  const bool live = LeaseLiveLocked();
  if (lease_live_published_ && !live && registered_) {
    metrics_.lease_lapses.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("coordinator lease lapsed; fencing")
        .Kv("agent", options_.agent_id);
  }
  lease_live_published_ = live;
  bool any = false;
  for (const auto& vol : volumes_) {
    const bool fenced =
        stopping_ || !live || !vol->synced || vol->synced_epoch != epoch_;
    any = any || fenced;
    if (fenced == vol->fence_published) continue;
    vol->fence_published = fenced;
    vol->table->SetFenced(fenced);
    vol->metrics.fenced.store(fenced, std::memory_order_release);
    LOG_INFO(fenced ? "volume fenced" : "volume unfenced")
        .Kv("volume", vol->name);
    if (options_.on_fence_change) options_.on_fence_change(vol->name, fenced);
  }
  metrics_.fenced.store(any, std::memory_order_relaxed);
}

void CoordinatorLink::SetSynced(VolumeState* vol, bool synced) {
  absl::MutexLock lock(&mu_);
  vol->synced = synced;
  vol->synced_epoch = vol->epoch;
  UpdateFencesLocked();
}

bool CoordinatorLink::fenced() const {
  absl::MutexLock lock(&mu_);
  for (const auto& vol : volumes_) {
    if (VolumeFencedLocked(*vol)) return true;
  }
  return false;
}

bool CoordinatorLink::fenced(const std::string& volume) const {
  const VolumeState* vol = Find(volume);
  if (vol == nullptr) return true;
  absl::MutexLock lock(&mu_);
  return VolumeFencedLocked(*vol);
}

bool CoordinatorLink::AllUnfencedLocked() const {
  for (const auto& vol : volumes_) {
    if (vol->fence_published) return false;
  }
  return true;
}

bool CoordinatorLink::AnyFencedLocked() const { return !AllUnfencedLocked(); }

bool CoordinatorLink::StoppingOrUnregisteredLocked() const {
  return stopping_ || !registered_;
}

bool CoordinatorLink::StoppingOrLeaseLiveLocked() const {
  return stopping_ || LeaseLiveLocked();
}

bool CoordinatorLink::WaitUnfenced(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(
      absl::Condition(this, &CoordinatorLink::AllUnfencedLocked), timeout);
}

bool CoordinatorLink::WaitFenced(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(
      absl::Condition(this, &CoordinatorLink::AnyFencedLocked), timeout);
}

bool CoordinatorLink::SleepUnlessStopping(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

uint64_t CoordinatorLink::epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

const VolumeLinkMetrics* CoordinatorLink::volume_metrics(
    const std::string& volume) const {
  const VolumeState* vol = Find(volume);
  return vol == nullptr ? nullptr : &vol->metrics;
}

CoordinatorLink::VolumeState* CoordinatorLink::Find(
    const std::string& volume) const {
  for (const auto& vol : volumes_) {
    if (vol->name == volume) return vol.get();
  }
  return nullptr;
}

// ------------------------------------------------------------------ lease

void CoordinatorLink::LeaseLoop() {
  absl::Duration backoff = options_.min_backoff;
  const auto grow = [&] {
    backoff = std::min(backoff * 2, options_.max_backoff);
  };
  for (;;) {
    bool registered;
    Clock::time_point deadline;
    absl::Duration ttl;
    {
      absl::MutexLock lock(&mu_);
      UpdateFencesLocked();  // a lapse is observed here at the latest
      if (stopping_) return;
      registered = registered_;
      deadline = lease_deadline_;
      ttl = granted_ttl_;
    }
    if (!registered) {
      const Clock::time_point sent = Clock::now();
      // The coordinator lets this agent touch only the volumes named here.
      std::vector<std::string> volume_names;
      for (const auto& vol : volumes_) volume_names.push_back(vol->name);
      auto reply = Client()->RegisterAgent(options_.agent_id, options_.lease_ttl,
                                           options_.max_guest_lease_ms, volume_names);
      if (reply.ok()) {
        LOG_INFO("registered with coordinator")
            .Kv("agent", options_.agent_id)
            .Kv("ttl_ms", reply->lease_ttl_ms())
            .Kv("epoch", reply->epoch());
        Registered(sent, reply->lease_ttl_ms(), reply->epoch());
        backoff = options_.min_backoff;
        continue;
      }
      if (absl::IsAlreadyExists(reply.status()) && options_.adopt_live_registration) {
        auto adopted = Client()->KeepAlive(options_.agent_id, absl::ZeroDuration());
        if (adopted.ok()) {
          LOG_WARN("took over the live registration of this agent's previous process")
              .Kv("agent", options_.agent_id)
              .Kv("epoch", adopted->epoch());
          Registered(sent, adopted->lease_ttl_ms(), adopted->epoch());
          backoff = options_.min_backoff;
          continue;
        }
        LOG_WARN("cannot take over the previous process's registration")
            .Kv("status", adopted.status());
      }
      if (absl::IsAlreadyExists(reply.status())) {
        // A previous incarnation of this agent still holds a live lease:
        // it expires within its TTL, after which the id is free again.
        LOG_WARN(
            "agent id still registered (previous incarnation?); "
            "waiting out its lease before registering again")
            .Kv("agent", options_.agent_id)
            .Kv("wait", absl::FormatDuration(options_.lease_ttl));
        if (!SleepUnlessStopping(options_.lease_ttl)) return;
        continue;
      }
      LOG_WARN("register failed; retrying")
          .Kv("status", reply.status())
          .Kv("backoff", absl::FormatDuration(backoff));
      MaybeReconnectClient(reply.status());
      if (!SleepUnlessStopping(backoff)) return;
      grow();
      continue;
    }

    // Renew at a third of the TTL after the last successful renewal
    // (lease_deadline_ - 2/3 TTL), waking early on Stop or a lost lease.
    const Clock::time_point renew_at =
        deadline - absl::ToChronoMilliseconds(ttl * 2 / 3);
    const Clock::time_point now = Clock::now();
    if (renew_at > now) {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(
          absl::Condition(this, &CoordinatorLink::StoppingOrUnregisteredLocked),
          ToDuration(renew_at - now));
      continue;
    }
    const Clock::time_point sent = Clock::now();
    // Bounded by the lease: a call that hangs (a partition drops packets
    // rather than refusing them) must not keep this thread from fencing at
    // the deadline; the fence flag, the table header and on_fence_change
    // are published here. (The rpc deadline, 5 s, exceeds short TTLs.)
    // Once lapsed (already fenced) the client's own deadline applies.
    absl::Duration renew_budget = absl::ZeroDuration();
    if (deadline > sent) {
      renew_budget = std::max(absl::Milliseconds(1), ToDuration(deadline - sent));
    }
    auto reply = Client()->KeepAlive(options_.agent_id, renew_budget);
    if (reply.ok()) {
      absl::MutexLock lock(&mu_);
      granted_ttl_ = absl::Milliseconds(reply->lease_ttl_ms());
      lease_deadline_ = sent + absl::ToChronoMilliseconds(granted_ttl_);
      if (reply->epoch() != epoch_) {
        LOG_INFO("coordinator epoch changed")
            .Kv("old", epoch_)
            .Kv("new", reply->epoch());
        epoch_ = reply->epoch();
      }
      UpdateFencesLocked();
      backoff = options_.min_backoff;
      continue;
    }
    metrics_.keepalive_failures.fetch_add(1, std::memory_order_relaxed);
    if (absl::IsNotFound(reply.status()) ||
        absl::IsFailedPrecondition(reply.status())) {
      // The coordinator no longer holds our lease (expired, or a restarted
      // coordinator that does not know us): register again.
      LOG_WARN("keep-alive refused; registering again")
          .Kv("status", reply.status());
      absl::MutexLock lock(&mu_);
      registered_ = false;
      UpdateFencesLocked();
      continue;
    }
    // Unreachable: retry often enough to renew before the deadline, and
    // wake at the deadline itself so the fence goes up on time.
    absl::Duration wait = std::min(backoff, ttl / 10);
    const Clock::time_point after = Clock::now();
    if (deadline > after && ToDuration(deadline - after) < wait) {
      wait = ToDuration(deadline - after) + absl::Milliseconds(1);
    }
    if (backoff == options_.min_backoff) {  // first failure in a row
      LOG_WARN("keep-alive failed; retrying").Kv("status", reply.status());
    }
    MaybeReconnectClient(reply.status());
    if (!SleepUnlessStopping(wait)) return;
    grow();
  }
}

void CoordinatorLink::Registered(Clock::time_point sent, int64_t ttl_ms, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  registered_ = true;
  granted_ttl_ = absl::Milliseconds(ttl_ms);
  lease_deadline_ = sent + absl::ToChronoMilliseconds(granted_ttl_);
  epoch_ = epoch;
  ++registration_gen_;
  metrics_.registrations.fetch_add(1, std::memory_order_relaxed);
  UpdateFencesLocked();
}

void CoordinatorLink::LeaseLost(uint64_t gen, const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  if (gen != registration_gen_ || !registered_) return;
  LOG_WARN("coordinator says our lease is gone; registering again")
      .Kv("status", why);
  registered_ = false;
  UpdateFencesLocked();
}

bool CoordinatorLink::WaitForLease(uint64_t* gen) {
  absl::MutexLock lock(&mu_);
  while (!stopping_ && !LeaseLiveLocked()) {
    // The predicate reads the clock, so poll as well as wait for changes.
    mu_.AwaitWithTimeout(
        absl::Condition(this, &CoordinatorLink::StoppingOrLeaseLiveLocked),
        absl::Milliseconds(100));
  }
  *gen = registration_gen_;
  return !stopping_;
}

absl::Status CoordinatorLink::CheckLease() {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::FailedPreconditionError("coordinator link stopped");
  }
  if (!LeaseLiveLocked()) {
    return absl::FailedPreconditionError(
        "coordinator lease lapsed or not yet granted");
  }
  return absl::OkStatus();
}

// ----------------------------------------------------------- subscription

void CoordinatorLink::VolumeLoop(VolumeState* vol) {
  // A fresh table (never synced) needs a snapshot before subscribing.
  bool need_resync = vol->epoch == 0;
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    uint64_t gen = 0;
    if (!WaitForLease(&gen)) return;
    absl::Status status;
    bool progressed = false;
    const bool resyncing = need_resync;
    if (resyncing) {
      SetSynced(vol, false);
      status = Resync(vol);
      if (status.ok()) {
        need_resync = false;
        Ack(vol, nullptr);
      }
    }
    if (status.ok()) {
      status = RunStream(vol, resyncing, &need_resync, &progressed);
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    // Without a stream the agent hears of no change: stop granting leases
    // until the next stream has caught up (the coordinator counts a
    // follower whose stream is down as holding its old leases).
    SetSynced(vol, false);
    if (progressed) backoff = options_.min_backoff;
    if (status.ok()) continue;  // ResyncRequired, or a gap we detected
    vol->metrics.reconnects.fetch_add(1, std::memory_order_relaxed);
    MaybeReconnectClient(status);
    // FAILED_PRECONDITION: our lease expired; NOT_FOUND: a restarted
    // coordinator does not know us. Either way register again now rather
    // than at the next keep-alive.
    if (absl::IsFailedPrecondition(status) || absl::IsNotFound(status)) {
      LeaseLost(gen, status);
    }
    LOG_WARN("subscription ended; reconnecting")
        .Kv("volume", vol->name)
        .Kv("status", status)
        .Kv("next_seq", vol->next_seq)
        .Kv("backoff", absl::FormatDuration(backoff));
    if (!SleepUnlessStopping(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status CoordinatorLink::Resync(VolumeState* vol) {
  uint32_t start = 0;
  uint32_t slots_used = 0;
  uint64_t resume = 0;
  uint64_t epoch = 0;
  bool first = true;
  do {
    ASSIGN_OR_RETURN(v1::SnapshotResponse page,
                     Client()->Snapshot(vol->name, start, 0));
    if (first) {
      // Resume after the FIRST page's sequence: later pages may be newer,
      // which is harmless (versions only grow; the stream replays them).
      resume = page.committed_seq() + 1;
      epoch = page.epoch();
      first = false;
    }
    slots_used = std::max(slots_used, page.slots_used());
    ASSIGN_OR_RETURN(SnapshotResult result,
                     vol->table->ApplySnapshot(
                         start, absl::MakeConstSpan(page.versions().data(),
                                                    page.versions_size())));
    if (result.ahead > 0) {
      // The coordinator lost acknowledged state (DESIGN.md). The table is
      // not lowered; the volume stays fenced until the stream confirms.
      LOG_ERROR("snapshot behind the local table: coordinator lost state")
          .Kv("volume", vol->name)
          .Kv("slots_ahead", result.ahead);
    }
    if (page.versions_size() == 0) break;
    start += static_cast<uint32_t>(page.versions_size());
  } while (start < slots_used);
  vol->epoch = epoch;
  vol->next_seq = resume;
  RaiseMax(&vol->slots_used, slots_used);
  vol->metrics.resyncs.fetch_add(1, std::memory_order_relaxed);
  vol->metrics.last_applied_seq.store(resume - 1, std::memory_order_relaxed);
  PublishSyncState(vol);
  LOG_INFO("volume resynchronised from snapshot")
      .Kv("volume", vol->name)
      .Kv("epoch", epoch)
      .Kv("committed_seq", resume - 1)
      .Kv("slots_used", slots_used);
  return absl::OkStatus();
}

void CoordinatorLink::PublishSyncState(VolumeState* vol) {
  absl::Status s = vol->table->SetSyncState(
      vol->epoch, vol->next_seq - 1,
      std::min(vol->slots_used.load(std::memory_order_relaxed),
               vol->table->capacity()));
  if (!s.ok()) {
    LOG_ERROR("cannot publish sync state")
        .Kv("volume", vol->name)
        .Kv("status", s);
  }
}

absl::Status CoordinatorLink::RunStream(VolumeState* vol, bool just_resynced,
                                        bool* need_resync, bool* progressed) {
  // Holds the channel for the stream's lifetime.
  const std::shared_ptr<client::CoordinatorClient> client = Client();
  std::unique_ptr<client::SubscribeStream> stream =
      client->Subscribe(vol->name, vol->next_seq, options_.agent_id);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) stream->Cancel();
    vol->stream = stream.get();
  }
  bool confirmed = false;
  bool first_progress = true;
  bool cancel = false;
  v1::SubscribeResponse message;
  while (!cancel && stream->Read(&message)) {
    switch (message.event_case()) {
      case v1::SubscribeResponse::kProgress: {
        const v1::Progress& p = message.progress();
        if (p.epoch() != vol->epoch) {
          // A restarted coordinator: strict-mode state on it was lost and
          // changes may have been made under another epoch: revalidate.
          LOG_INFO("new coordinator epoch; resynchronising")
              .Kv("volume", vol->name)
              .Kv("table_epoch", vol->epoch)
              .Kv("epoch", p.epoch());
          *need_resync = true;
          cancel = true;
          break;
        }
        if (p.committed_seq() + 1 > vol->next_seq) {
          LOG_ERROR("progress past our next sequence; resynchronising")
              .Kv("volume", vol->name)
              .Kv("progress", p.committed_seq())
              .Kv("next_seq", vol->next_seq);
          *need_resync = true;
          cancel = true;
          break;
        }
        *progressed = true;
        const bool current = just_resynced || !first_progress;
        first_progress = false;
        if (!confirmed && current) {
          confirmed = true;
          SetSynced(vol, true);
        }
        break;
      }
      case v1::SubscribeResponse::kInvalidations: {
        const int64_t received_ns = absl::ToUnixNanos(absl::Now());
        std::vector<uint32_t> applied;
        applied.reserve(message.invalidations().invalidations_size());
        for (const v1::Invalidation& inv :
             message.invalidations().invalidations()) {
          if (inv.commit_time_unix_ns() != 0) {
            const int64_t lag_ns =
                received_ns - static_cast<int64_t>(inv.commit_time_unix_ns());
            vol->metrics.delivery_lag.Observe(
                static_cast<double>(std::max<int64_t>(0, lag_ns)) / 1e9);
          }
          if (inv.seq() != vol->next_seq) {
            LOG_ERROR("sequence gap on the stream; resynchronising")
                .Kv("volume", vol->name)
                .Kv("expected", vol->next_seq)
                .Kv("got", inv.seq());
            *need_resync = true;
            cancel = true;
            break;
          }
          absl::StatusOr<bool> raised =
              vol->table->Raise(inv.slot(), inv.version());
          if (!raised.ok()) {
            LOG_ERROR("invalidation does not fit the table")
                .Kv("volume", vol->name)
                .Kv("slot", inv.slot())
                .Kv("status", raised.status());
            *need_resync = true;
            cancel = true;
            break;
          }
          RaiseMax(&vol->slots_used, inv.slot() + 1);
          applied.push_back(inv.slot());
          ++vol->next_seq;
          vol->metrics.invalidations_applied.fetch_add(
              1, std::memory_order_relaxed);
        }
        vol->metrics.last_applied_seq.store(vol->next_seq - 1,
                                            std::memory_order_relaxed);
        PublishSyncState(vol);
        if (!applied.empty()) Ack(vol, &applied);
        *progressed = true;
        break;
      }
      case v1::SubscribeResponse::kResyncRequired: {
        const v1::ResyncRequired& r = message.resync_required();
        LOG_INFO("coordinator requires a resync")
            .Kv("volume", vol->name)
            .Kv("needed_seq", r.needed_seq())
            .Kv("first_retained_seq", r.first_retained_seq())
            .Kv("committed_seq", r.committed_seq());
        *need_resync = true;
        break;
      }
      default:
        break;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    vol->stream = nullptr;
  }
  if (cancel) {
    stream->Cancel();
    while (stream->Read(&message)) {
    }
  }
  absl::Status status = stream->Finish();
  if (*need_resync) return absl::OkStatus();
  if (status.ok()) {
    // The proto ends a stream with OK only after ResyncRequired.
    return absl::UnavailableError("subscription ended without a reason");
  }
  return status;
}

void CoordinatorLink::Ack(VolumeState* vol, const std::vector<uint32_t>* slots) {
  if (vol->next_seq == 0) return;
  std::vector<v1::SlotLease> leases;
  if (options_.lease_reporter) leases = options_.lease_reporter(vol->name, slots);
  // The coordinator takes at most 4096 leases per ack and keeps every ack,
  // so a long report goes out in pieces with the same sequence.
  constexpr size_t kMaxLeasesPerAck = 4096;
  size_t sent = 0;
  do {
    v1::AckInvalidationsRequest request;
    request.set_agent_id(options_.agent_id);
    request.set_volume(vol->name);
    request.set_seq(vol->next_seq - 1);
    const size_t end = std::min(leases.size(), sent + kMaxLeasesPerAck);
    for (; sent < end; ++sent) *request.add_leases() = leases[sent];
    absl::Status status = Client()->AckInvalidations(request);
    if (!status.ok()) {
      vol->metrics.ack_failures.fetch_add(1, std::memory_order_relaxed);
      LOG_WARN("invalidation ack failed")
          .Kv("volume", vol->name)
          .Kv("seq", request.seq())
          .Kv("status", status);
      return;
    }
    vol->metrics.acks_sent.fetch_add(1, std::memory_order_relaxed);
  } while (sent < leases.size());
}

// ---------------------------------------------------------- pass-through

absl::StatusOr<std::vector<v1::SlotVersion>> CoordinatorLink::Resolve(
    const std::string& volume, const std::vector<std::string>& keys) {
  RETURN_IF_ERROR(CheckLease());
  ASSIGN_OR_RETURN(v1::ResolveResponse reply, Client()->Resolve(volume, keys, options_.agent_id));
  std::vector<v1::SlotVersion> out(reply.slots().begin(), reply.slots().end());
  VolumeState* vol = Find(volume);
  if (vol != nullptr) {
    for (const v1::SlotVersion& sv : out) {
      RETURN_IF_ERROR(vol->table->Raise(sv.slot(), sv.version()).status());
      RaiseMax(&vol->slots_used, sv.slot() + 1);
    }
  }
  return out;
}

absl::StatusOr<BumpResult> CoordinatorLink::Bump(
    const std::string& volume, const std::vector<uint32_t>& slots,
    bool wait_for_leases) {
  RETURN_IF_ERROR(CheckLease());
  RETURN_IF_ERROR(kLinkBump.Eval());
  ASSIGN_OR_RETURN(
      v1::BumpResponse reply,
      Client()->Bump(volume, slots, options_.agent_id, wait_for_leases));
  BumpResult result;
  result.versions.assign(reply.versions().begin(), reply.versions().end());
  result.lease_wait_ms = reply.lease_wait_ms();
  VolumeState* vol = Find(volume);
  if (vol != nullptr) {
    if (result.versions.size() != slots.size()) {
      return absl::InternalError("bump reply does not match the request");
    }
    for (size_t i = 0; i < slots.size(); ++i) {
      RETURN_IF_ERROR(vol->table->Raise(slots[i], result.versions[i]).status());
    }
  }
  return result;
}

}  // namespace coherefs::agent::coherence
