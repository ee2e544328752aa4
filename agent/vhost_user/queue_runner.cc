#include "agent/vhost_user/queue_runner.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/errno_status.h"
#include "common/log.h"

namespace coherefs::agent::vhost_user {

QueueRunner::QueueRunner(uint32_t index, std::unique_ptr<Vring> ring,
                         int kick_fd, bool enabled, uint32_t workers,
                         Context ctx)
    : index_(index),
      ring_(std::move(ring)),
      kick_fd_(kick_fd),
      num_workers_(workers),
      ctx_(ctx),
      enabled_(enabled) {}

QueueRunner::~QueueRunner() { Stop(); }

void QueueRunner::ResumeWith(std::vector<std::pair<uint16_t, uint32_t>> done,
                             std::vector<uint16_t> heads) {
  finished_ = std::move(done);
  retake_.assign(heads.begin(), heads.end());
  resumed_ = true;
}

absl::Status QueueRunner::Start() {
  wake_fd_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_.valid()) return LastErrnoStatus("eventfd");
  for (uint32_t i = 0; i < num_workers_; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  for (const auto& [head, len] : finished_) ring_->Push(head, len);
  finished_.clear();
  queue_thread_ = std::thread([this] { Run(); });
  if (resumed_) ring_->Notify();
  return absl::OkStatus();
}

void QueueRunner::Wake() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
  (void)n;
}

void QueueRunner::SetEnabled(bool enabled) {
  enabled_.store(enabled);
  if (wake_fd_.valid()) Wake();
}

void QueueRunner::Stop() {
  if (stopping_.exchange(true)) return;
  // An unlock makes absl re-evaluate the queue thread's Await condition,
  // which reads stopping_.
  { absl::MutexLock lock(&mu_); }
  if (queue_thread_.joinable()) {
    Wake();
    queue_thread_.join();
  }
  {
    // Workers finish what the queue thread handed them, then leave.
    absl::MutexLock lock(&mu_);
    workers_exit_ = true;
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void QueueRunner::Run() {
  pollfd fds[2] = {{kick_fd_, POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
  // Buffers posted before the kick fd arrived (or before enable) are
  // served at once rather than waiting for the next kick.
  while (!stopping_.load()) {
    if (enabled_.load() && !broken_) Drain();
    if (stopping_.load()) break;
    int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("vring poll failed").Kv("queue", index_).Kv("errno", errno);
      break;
    }
    uint64_t value;
    if (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) {
      if (::read(kick_fd_, &value, sizeof(value)) < 0 && errno != EAGAIN) {
        // A kick fd that cannot be read would spin this loop: give up on
        // the ring until the front end sets a new one.
        LOG_WARN("kick fd unreadable").Kv("queue", index_).Kv("errno", errno);
        broken_ = true;
        fds[0].fd = -1;
      }
    }
    if (fds[1].revents & POLLIN) {
      ssize_t r = ::read(wake_fd_.get(), &value, sizeof(value));
      (void)r;
    }
  }
}

void QueueRunner::Drain() {
  do {
    for (;;) {
      if (stopping_.load() || !enabled_.load()) return;
      if (num_workers_ > 0) {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](QueueRunner* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
              return q->in_flight_ < q->ring_->num() || q->stopping_.load();
            },
            this));
        if (stopping_.load()) return;
      }
      Chain chain;
      std::string error;
      Vring::PopResult r;
      if (!retake_.empty()) {
        r = ring_->Retake(retake_.front(), &chain, &error);
        retake_.pop_front();
      } else {
        r = ring_->Pop(&chain, &error);
      }
      if (r == Vring::PopResult::kEmpty) break;
      if (r == Vring::PopResult::kChain) {
        taken_.fetch_add(1, std::memory_order_relaxed);
        if (num_workers_ == 0) {
          Serve(chain);
        } else {
          absl::MutexLock lock(&mu_);
          ++in_flight_;
          pending_.push_back(std::move(chain));
        }
        continue;
      }
      ctx_.metrics->AddBadChain();
      uint64_t suppressed = 0;
      if (ctx_.log_limiter->Allow(&suppressed)) {
        LOG_WARN(r == Vring::PopResult::kBroken ? "virtqueue broken"
                                                : "bad descriptor chain")
            .Kv("queue", index_)
            .Kv("head", chain.head)
            .Kv("error", error)
            .Kv("suppressed", suppressed);
      }
      if (r == Vring::PopResult::kBadChain) ring_->Push(chain.head, 0);
      if (r == Vring::PopResult::kBroken) {
        broken_ = true;
        return;
      }
    }
  } while (ring_->EnableNotifyAndCheck());
}

void QueueRunner::WorkerLoop() {
  for (;;) {
    Chain chain;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](QueueRunner* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
            return !q->pending_.empty() || q->workers_exit_;
          },
          this));
      if (pending_.empty()) return;  // workers_exit_ and nothing left
      chain = std::move(pending_.front());
      pending_.pop_front();
    }
    Serve(chain);
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }
}

void QueueRunner::Serve(const Chain& chain) {
  uint32_t len = ctx_.device->ProcessChain(index_, chain);
  if (len > chain.writable_bytes) {
    // A device bug, not the guest's: never claim bytes we did not own.
    LOG_ERROR("device wrote past the chain").Kv("queue", index_).Kv("len", len);
    len = static_cast<uint32_t>(chain.writable_bytes);
  }
  // Count before the push: once the driver sees the completion, the
  // metrics must already include it.
  ctx_.metrics->AddRequest(chain.readable_bytes, len);
  if (log_ != nullptr) log_->MarkDone(chain.head, len);
  ring_->Push(chain.head, len);
  taken_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace coherefs::agent::vhost_user
