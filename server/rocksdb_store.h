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
// Thread-safe (RocksDB is). Errors: Open fails with kUnavailable if the
// directory is locked by another process, kDataLoss on corruption.
#ifndef COHEREFS_SERVER_ROCKSDB_STORE_H_
#define COHEREFS_SERVER_ROCKSDB_STORE_H_

#include <memory>
#include <string>

#include "server/store.h"

namespace rocksdb {
class DB;
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

 private:
  RocksDbStore(std::string dir, std::unique_ptr<rocksdb::DB> db);

  const std::string dir_;
  const std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_ROCKSDB_STORE_H_
