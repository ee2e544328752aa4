// LogLimiter lets at most `per_second` log lines through per second, so a
// guest that floods us with bad chains or messages cannot flood the log.
// Thread-safe.
#ifndef COHEREFS_AGENT_VHOST_USER_LOG_LIMITER_H_
#define COHEREFS_AGENT_VHOST_USER_LOG_LIMITER_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace coherefs::agent::vhost_user {

class LogLimiter {
 public:
  explicit LogLimiter(uint32_t per_second = 10) : per_second_(per_second) {}

  // True if a line may be logged now. *suppressed (if given) gets the count
  // of lines dropped since the last allowed one, to log alongside it.
  bool Allow(uint64_t* suppressed = nullptr) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    absl::Time now = absl::Now();
    if (now - window_start_ >= absl::Seconds(1)) {
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ >= per_second_) {
      ++dropped_;
      return false;
    }
    ++in_window_;
    if (suppressed != nullptr) *suppressed = dropped_;
    dropped_ = 0;
    return true;
  }

 private:
  const uint32_t per_second_;
  absl::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint32_t in_window_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_LOG_LIMITER_H_
