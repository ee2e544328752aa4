// An in-memory Store for unit tests of the coherence core. Nothing survives
// the object, but one MemoryStore can outlive several cores to model a
// restart. Thread-safe.
//
// Test hooks: a delay added to every Commit (to make concurrent callers
// share a group commit), a failure injected into the next Commit, and a
// count of commits.
#ifndef COHEREFS_SERVER_MEMORY_STORE_H_
#define COHEREFS_SERVER_MEMORY_STORE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store.h"

namespace coherefs::server {

class MemoryStore final : public Store {
 public:
  MemoryStore() = default;

  absl::StatusOr<uint64_t> LoadEpoch() override;
  absl::Status SaveEpoch(uint64_t epoch) override;
  absl::StatusOr<std::vector<StoredVolume>> LoadVolumes() override;
  absl::Status Commit(const StoreBatch& batch) override;
  absl::StatusOr<std::vector<LogEntry>> ReadLog(absl::string_view volume,
                                                uint64_t from_seq,
                                                size_t max_entries) override;
  absl::Status CompactLog(absl::string_view volume,
                          uint64_t before_seq) override;
  uint64_t ApproximateSizeBytes() override { return 0; }

  // Every Commit sleeps this long (outside the lock) before applying.
  void SetCommitDelay(absl::Duration delay);
  // The next Commit fails with `status` and writes nothing.
  void FailNextCommit(absl::Status status);
  int commit_count();

 private:
  struct Volume {
    StoredVolume state;                 // keys/versions/bounds
    std::map<uint64_t, LogEntry> log;   // seq -> entry
  };

  absl::Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Volume, std::less<>> volumes_ ABSL_GUARDED_BY(mu_);
  absl::Duration commit_delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  absl::Status next_commit_error_ ABSL_GUARDED_BY(mu_);
  int commit_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_MEMORY_STORE_H_
