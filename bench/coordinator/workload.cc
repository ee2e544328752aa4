#include "bench/coordinator/workload.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/errno_status.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace coherefs::bench {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(1);

absl::Duration Since(int64_t start_ns) {
  return absl::Nanoseconds(NowNanos() - start_ns);
}

// The closed-loop bump chains of RunThroughput. Each chain has one bump in
// flight; its completion issues the next until `stop_` is set or a bump
// fails (an erroring server should not be hammered in a tight loop).
class BumpChains {
 public:
  BumpChains(Target& target, int clients) : target_(target), active_(clients) {
    for (int c = 0; c < clients; ++c) Issue(c, 0);
  }

  // Blocks until every chain has seen its last completion.
  ~BumpChains() {
    stop_.store(true, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &active_));
  }

  void Stop() { stop_.store(true, std::memory_order_relaxed); }
  void WaitAllStopped() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(+[](int* n) { return *n == 0; }, &active_));
  }
  int64_t acked() const { return acked_.load(std::memory_order_relaxed); }
  int64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  std::string first_error() const {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }

 private:
  void Issue(int client, uint64_t n) {
    const int file = client * kFilesPerClient + static_cast<int>(n % kFilesPerClient);
    target_.BumpAsync(file, [this, client, n](const absl::Status& s) {
      if (s.ok()) {
        acked_.fetch_add(1, std::memory_order_relaxed);
        if (!stop_.load(std::memory_order_relaxed)) {
          Issue(client, n + 1);
          return;
        }
      } else {
        failed_.fetch_add(1, std::memory_order_relaxed);
      }
      absl::MutexLock lock(&mu_);
      if (!s.ok() && first_error_.empty()) first_error_ = s.ToString();
      --active_;
    });
  }

  Target& target_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> acked_{0};
  std::atomic<int64_t> failed_{0};

  mutable absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_);
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

// What one latency subscriber received, in arrival order.
struct Receipts {
  absl::Mutex mu;
  std::vector<std::pair<int, int64_t>> got ABSL_GUARDED_BY(mu);  // file, recv_ns

  size_t size() {
    absl::MutexLock lock(&mu);
    return got.size();
  }
};

// Polls until done() or timeout; returns whether done() became true.
template <typename Fn>
bool PollUntil(Fn done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(kPollInterval);
  }
  return true;
}

absl::Status SubscriptionsHealthy(
    const std::vector<std::unique_ptr<Subscription>>& subs) {
  for (const auto& s : subs) {
    absl::Status st = s->status();
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace

int FilesNeeded(const ThroughputOptions& t, const LatencyOptions& l) {
  const int latency_files = static_cast<int>(
      std::ceil(l.rate_per_s * absl::ToDoubleSeconds(l.duration)));
  return std::max(t.clients * kFilesPerClient, latency_files);
}

absl::StatusOr<ThroughputResult> RunThroughput(Target& target,
                                               const ThroughputOptions& opts) {
  if (opts.clients < 1 || opts.subscribers < 0) {
    return absl::InvalidArgumentError("throughput: clients >= 1, subscribers >= 0");
  }
  std::vector<std::unique_ptr<std::atomic<int64_t>>> counts;
  std::vector<std::unique_ptr<Subscription>> subs;
  for (int i = 0; i < opts.subscribers; ++i) {
    counts.push_back(std::make_unique<std::atomic<int64_t>>(0));
    std::atomic<int64_t>* count = counts.back().get();
    ASSIGN_OR_RETURN(std::unique_ptr<Subscription> sub,
                     target.Subscribe([count](int, int64_t) {
                       count->fetch_add(1, std::memory_order_relaxed);
                     }));
    subs.push_back(std::move(sub));
  }

  ThroughputResult r;
  r.clients = opts.clients;
  r.subscribers = opts.subscribers;
  {
    BumpChains chains(target, opts.clients);
    absl::SleepFor(opts.warmup);
    const int64_t a0 = chains.acked();
    const int64_t t0 = NowNanos();
    absl::SleepFor(opts.duration);
    const int64_t a1 = chains.acked();
    const int64_t t1 = NowNanos();
    chains.Stop();
    chains.WaitAllStopped();
    r.seconds = (t1 - t0) / 1e9;
    r.acked_in_window = a1 - a0;
    r.bumps_per_s = r.acked_in_window / r.seconds;
    r.acked_total = chains.acked();
    r.failed = chains.failed();
    r.first_error = chains.first_error();
  }

  const int64_t end_ns = NowNanos();
  auto all_delivered = [&] {
    for (const auto& c : counts) {
      if (c->load(std::memory_order_relaxed) < r.acked_total) return false;
    }
    return true;
  };
  PollUntil(all_delivered, opts.drain_timeout);
  r.drain_ms = absl::ToDoubleMilliseconds(Since(end_ns));
  r.expected_deliveries = r.acked_total * opts.subscribers;
  for (const auto& c : counts) {
    const int64_t got = c->load(std::memory_order_relaxed);
    r.delivered += got;
    r.lost += std::max<int64_t>(0, r.acked_total - got);
  }
  RETURN_IF_ERROR(SubscriptionsHealthy(subs));
  return r;
}

absl::StatusOr<LatencyResult> RunLatency(Target& target,
                                         const LatencyOptions& opts) {
  if (opts.subscribers < 1 || opts.rate_per_s <= 0) {
    return absl::InvalidArgumentError("latency: subscribers >= 1, rate > 0");
  }
  const int events = static_cast<int>(
      std::ceil(opts.rate_per_s * absl::ToDoubleSeconds(opts.duration)));
  std::vector<std::unique_ptr<Receipts>> receipts;
  std::vector<std::unique_ptr<Subscription>> subs;
  for (int i = 0; i < opts.subscribers; ++i) {
    receipts.push_back(std::make_unique<Receipts>());
    Receipts* rec = receipts.back().get();
    {
      absl::MutexLock lock(&rec->mu);
      rec->got.reserve(events);
    }
    ASSIGN_OR_RETURN(std::unique_ptr<Subscription> sub,
                     target.Subscribe([rec](int file, int64_t recv_ns) {
                       absl::MutexLock lock(&rec->mu);
                       rec->got.emplace_back(file, recv_ns);
                     }));
    subs.push_back(std::move(sub));
  }

  std::vector<int64_t> send_ns(events, 0);
  absl::Mutex mu;
  std::vector<int64_t> ack_ns(events, 0);  // 0: failed
  int pending = 0;
  int64_t failed = 0;
  std::string first_error;

  const int64_t period_ns = static_cast<int64_t>(1e9 / opts.rate_per_s);
  const int64_t start_ns = NowNanos();
  for (int i = 0; i < events; ++i) {
    const int64_t due = start_ns + i * period_ns;
    const int64_t now = NowNanos();
    if (due > now) absl::SleepFor(absl::Nanoseconds(due - now));
    {
      absl::MutexLock lock(&mu);
      ++pending;
    }
    send_ns[i] = NowNanos();
    target.BumpAsync(i, [&, i](const absl::Status& s) {
      const int64_t t = NowNanos();
      absl::MutexLock lock(&mu);
      if (s.ok()) {
        ack_ns[i] = t;
      } else {
        ++failed;
        if (first_error.empty()) first_error = s.ToString();
      }
      --pending;
    });
  }
  const int64_t last_send_ns = NowNanos();
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* n) { return *n == 0; }, &pending));
  }

  LatencyResult r;
  r.subscribers = opts.subscribers;
  r.bumps = events;
  r.failed = failed;
  r.first_error = first_error;
  r.acked = events - failed;
  r.achieved_rate_per_s =
      events > 1 ? (events - 1) / ((last_send_ns - start_ns) / 1e9) : 0;
  PollUntil(
      [&] {
        for (const auto& rec : receipts) {
          if (static_cast<int64_t>(rec->size()) < r.acked) return false;
        }
        return true;
      },
      opts.drain_timeout);
  // Ending the streams first: no callback touches `receipts` after this.
  absl::Status healthy = SubscriptionsHealthy(subs);
  subs.clear();
  RETURN_IF_ERROR(healthy);

  std::vector<int64_t> delivery_ns;
  delivery_ns.reserve(static_cast<size_t>(events) * opts.subscribers);
  std::vector<int64_t> fanout_ns;
  fanout_ns.reserve(static_cast<size_t>(events) * opts.subscribers);
  std::vector<int64_t> acks;
  for (int i = 0; i < events; ++i) {
    if (ack_ns[i] != 0) acks.push_back(ack_ns[i] - send_ns[i]);
  }
  r.expected_deliveries = r.acked * opts.subscribers;
  for (const auto& rec : receipts) {
    std::vector<char> seen(events, 0);
    absl::MutexLock lock(&rec->mu);
    for (const auto& [file, recv] : rec->got) {
      if (file < 0 || file >= events) {
        ++r.duplicates;  // not a file of this run: counts as spurious
        continue;
      }
      if (seen[file]) {
        ++r.duplicates;
        continue;
      }
      seen[file] = 1;
      if (ack_ns[file] == 0) continue;  // failed bump that still happened
      ++r.delivered;
      delivery_ns.push_back(recv - send_ns[file]);
      fanout_ns.push_back(recv - ack_ns[file]);
    }
    for (int i = 0; i < events; ++i) {
      if (ack_ns[i] != 0 && !seen[i]) ++r.lost;
    }
  }
  r.delivery = SummarizeNanos(delivery_ns);
  r.ack = SummarizeNanos(acks);
  r.fanout = SummarizeNanos(fanout_ns);
  return r;
}

absl::StatusOr<LatencySummary> MeasurePing(Target& target, int count) {
  for (int i = 0; i < count / 10; ++i) RETURN_IF_ERROR(target.Ping());
  std::vector<int64_t> ns;
  ns.reserve(count);
  for (int i = 0; i < count; ++i) {
    const int64_t t = NowNanos();
    RETURN_IF_ERROR(target.Ping());
    ns.push_back(NowNanos() - t);
  }
  return SummarizeNanos(ns);
}

absl::StatusOr<LatencySummary> MeasureFsync(const std::string& dir, int count,
                                            FsyncMode mode) {
  const std::string path = absl::StrCat(dir, "/fsync-probe");
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return LastErrnoStatus(absl::StrCat("open ", path));
  char buf[4096];
  std::fill(std::begin(buf), std::end(buf), 'v');
  absl::Status status;
  if (mode == FsyncMode::kOverwrite) {
    // One real, synced block first, so the probes change no metadata.
    if (write(fd.get(), buf, sizeof(buf)) != static_cast<ssize_t>(sizeof(buf))) {
      status = LastErrnoStatus("write fsync-probe");
    } else if (fsync(fd.get()) != 0) {
      status = LastErrnoStatus("fsync fsync-probe");
    }
  }
  std::vector<int64_t> ns;
  ns.reserve(count);
  for (int i = 0; i < count && status.ok(); ++i) {
    const int64_t t = NowNanos();
    const ssize_t n = mode == FsyncMode::kAppend ? write(fd.get(), buf, 64)
                                                 : pwrite(fd.get(), buf, 64, 0);
    if (n != 64) {
      status = LastErrnoStatus("write fsync-probe");
    } else if (fdatasync(fd.get()) != 0) {
      status = LastErrnoStatus("fdatasync fsync-probe");
    }
    ns.push_back(NowNanos() - t);
  }
  unlink(path.c_str());
  RETURN_IF_ERROR(status);
  return SummarizeNanos(ns);
}

}  // namespace coherefs::bench
