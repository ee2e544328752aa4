// The coordinator's Store on RocksDB: one database directory, default
// column family, every write with WriteOptions::sync (the WAL is fsync'd
// before a write returns). rocksdb::Status is converted to absl::Status here
// and nowhere else.
//
// Key layout (all integers big-endian so keys sort numerically; volume names
// never contain '\0'):
//   "E"                          -> epoch u64
//   "M" name                     -> capacity u32
//   "C" name                     -> committed_seq u64
//   "F" name                     -> first_retained_seq u64
//   "K" name '\0' slot u32       -> key bytes
//   "V" name '\0' slot u32       -> version u64
//   "L" name '\0' seq u64        -> slot u32, version u64
//
// Damage (README "Corruption"): Open refuses a directory RocksDB reports
// corrupt (paranoid checks, WAL kTolerateCorruptedTailRecords: only an
// incomplete last WAL record -- never acknowledged -- is dropped) and
// verifies every SST block checksum. LoadEpoch refuses a store older than
// its last start (the epoch is also kept in the file COHEREFS_EPOCH, written
// after the store); LoadVolumes refuses records of a volume that does not
// exist and a change log that does not end at committed_seq. A full disk
// (less than kMinFreeBytes free) fails writes with kResourceExhausted
// before RocksDB sees them; Resume() succeeds once space is back.
//
// Thread-safe (RocksDB is). Errors: Open fails with kUnavailable if the
// directory is locked by another process, kDataLoss on corruption.
#ifndef COHEREFS_SERVER_ROCKSDB_STORE_H_
#define COHEREFS_SERVER_ROCKSDB_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "server/store.h"

namespace rocksdb {
class DB;
class WriteBatch;
}

namespace coherefs::server {

class RocksDbStore final : public Store {
 public:
  // Opens (creating if missing) the database in `dir`.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(
      const std::string& dir);
  ~RocksDbStore() override;

  absl::StatusOr<uint64_t> LoadEpoch() override;
  absl::Status SaveEpoch(uint64_t epoch) override;
  absl::StatusOr<std::vector<StoredVolume>> LoadVolumes() override;
  absl::Status Commit(const StoreBatch& batch) override;
  absl::StatusOr<std::vector<LogEntry>> ReadLog(absl::string_view volume,
                                                uint64_t from_seq,
                                                size_t max_entries) override;
  absl::Status CompactLog(absl::string_view volume,
                          uint64_t before_seq) override;
  uint64_t ApproximateSizeBytes() override;
  // OK once kMinFreeBytes are free again, if the disk-full refusal came
  // from the reserve check; kUnavailable (restart) if RocksDB itself failed
  // a write.
  absl::Status Resume() override;

  // Writes are refused (kResourceExhausted) while less than this is free in
  // the directory's file system, so RocksDB itself never runs out of space
  // mid-write (its flushes and compactions need some too).
  static constexpr uint64_t kMinFreeBytes = uint64_t{8} << 20;

 private:
  RocksDbStore(std::string dir, std::unique_ptr<rocksdb::DB> db);
  // The epoch of the last start, kept beside RocksDB (see LoadEpoch).
  static constexpr char kEpochWitness[] = "COHEREFS_EPOCH";
  absl::StatusOr<uint64_t> ReadEpochWitness();
  absl::Status WriteEpochWitness(uint64_t epoch);
  // Every record belongs to an existing volume; logs end at committed_seq.
  absl::Status CheckConsistency();
  // kResourceExhausted below kMinFreeBytes free.
  absl::Status CheckSpace();
  // CheckSpace, then a synced write; remembers a failed write.
  absl::Status Write(rocksdb::WriteBatch* batch, absl::string_view what);

  const std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;  // released, not closed, after a failure
  std::atomic<bool> write_failed_{false};
};

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_ROCKSDB_STORE_H_
