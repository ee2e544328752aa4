// The coordinator's persistent state, behind an interface so the coherence
// core can be unit-tested on memory and run on RocksDB.
//
// What is stored: the epoch; per volume its capacity, the key -> slot map,
// each slot's version, the change log {seq -> slot, version} and the bounds
// of the retained log (first_retained_seq, committed_seq).
//
// Durability contract: SaveEpoch, Commit and CompactLog return only after
// their writes are durable (fsync'd), and each call is atomic: after a crash
// either all of its writes are there or none.
//
// Thread-safety: implementations are safe for concurrent use. The core calls
// the write methods from one thread (its committer) and ReadLog from many.
//
// Errors: kNotFound for a volume the store does not know (ReadLog); kDataLoss
// for corrupt records; kResourceExhausted for a full disk (see Resume);
// kUnavailable / kInternal for other I/O failures.
#ifndef COHEREFS_SERVER_STORE_H_
#define COHEREFS_SERVER_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coherefs::server {

struct LogEntry {
  uint64_t seq = 0;
  uint32_t slot = 0;
  uint64_t version = 0;
};

inline bool operator==(const LogEntry& a, const LogEntry& b) {
  return a.seq == b.seq && a.slot == b.slot && a.version == b.version;
}

// Everything the core needs to rebuild a volume at start.
struct StoredVolume {
  std::string name;
  uint32_t capacity = 0;
  uint64_t committed_seq = 0;       // last seq appended (0: none yet)
  uint64_t first_retained_seq = 1;  // committed_seq + 1 when the log is empty
  // keys[slot] is the key of that slot; versions[slot] its version. Both
  // have the length slots_used.
  std::vector<std::string> keys;
  std::vector<uint64_t> versions;
};

// The writes of one group commit, applied atomically.
struct StoreBatch {
  struct NewVolume {
    std::string name;
    uint32_t capacity = 0;
  };
  struct NewKey {
    std::string volume;
    std::string key;
    uint32_t slot = 0;
    uint64_t version = 0;  // the slot's initial version
  };
  struct Append {
    std::string volume;
    LogEntry entry;  // also sets the slot's version
  };
  std::vector<NewVolume> new_volumes;
  std::vector<NewKey> new_keys;
  std::vector<Append> appends;  // per volume in increasing seq order

  bool empty() const {
    return new_volumes.empty() && new_keys.empty() && appends.empty();
  }
};

class Store {
 public:
  virtual ~Store() = default;

  // The persisted epoch; 0 if none was ever saved.
  virtual absl::StatusOr<uint64_t> LoadEpoch() = 0;
  virtual absl::Status SaveEpoch(uint64_t epoch) = 0;

  // Every volume, ordered by name.
  virtual absl::StatusOr<std::vector<StoredVolume>> LoadVolumes() = 0;

  // Applies `batch` atomically and durably. Appends also advance the
  // volume's committed_seq and set the slot's version.
  virtual absl::Status Commit(const StoreBatch& batch) = 0;

  // Up to `max_entries` log entries of `volume` with seq >= from_seq, in seq
  // order. Returns fewer (possibly none) at the end of the log; the first
  // entry's seq is greater than from_seq if from_seq was compacted away.
  virtual absl::StatusOr<std::vector<LogEntry>> ReadLog(
      absl::string_view volume, uint64_t from_seq, size_t max_entries) = 0;

  // Drops log entries with seq < before_seq and records before_seq as the
  // volume's first_retained_seq.
  virtual absl::Status CompactLog(absl::string_view volume,
                                  uint64_t before_seq) = 0;

  // Approximate bytes on disk (0 for memory).
  virtual uint64_t ApproximateSizeBytes() = 0;

  // After a write failed with kResourceExhausted (disk full): makes the
  // store writable again if space allows (the failed write is not in it).
  // Default kUnimplemented: such a store stays failed.
  virtual absl::Status Resume() {
    return absl::UnimplementedError("this store cannot resume");
  }
};

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_STORE_H_
