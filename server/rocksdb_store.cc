#include "server/rocksdb_store.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace coherefs::server {
namespace {

absl::Status ToAbsl(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) {
    return absl::UnavailableError(msg);
  }
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

// Debian's Abseil has its own string_view, distinct from std::string_view.
absl::string_view View(const rocksdb::Slice& s) {
  return absl::string_view(s.data(), s.size());
}

void PutBe(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(char(v >> (8 * i)));
}

uint64_t GetBe(absl::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | uint8_t(in[i]);
  return v;
}

std::string Be(uint64_t v, int bytes) {
  std::string s;
  PutBe(&s, v, bytes);
  return s;
}

std::string MetaKey(char tag, absl::string_view volume) {
  return absl::StrCat(absl::string_view(&tag, 1), volume);
}

// tag name '\0' — the prefix of every per-slot or per-seq key of a volume.
std::string Prefix(char tag, absl::string_view volume) {
  std::string s = MetaKey(tag, volume);
  s.push_back('\0');
  return s;
}

std::string SlotKey(char tag, absl::string_view volume, uint32_t slot) {
  return Prefix(tag, volume) + Be(slot, 4);
}

std::string LogKey(absl::string_view volume, uint64_t seq) {
  return Prefix('L', volume) + Be(seq, 8);
}

// The smallest key greater than every key starting with `prefix`.
std::string PrefixEnd(std::string prefix) {
  prefix.back() = char(prefix.back() + 1);
  return prefix;
}

const rocksdb::WriteOptions& SyncWrite() {
  static const rocksdb::WriteOptions* options = [] {
    auto* o = new rocksdb::WriteOptions;
    o->sync = true;
    return o;
  }();
  return *options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(
    const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("create ", dir, ": ", ec.message()));
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  // The coordinator's working set is small; keep RocksDB's own thread and
  // log footprint small too.
  options.max_background_jobs = 2;
  options.keep_log_file_num = 3;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return ToAbsl(s, absl::StrCat("open rocksdb ", dir));
  return std::unique_ptr<RocksDbStore>(
      new RocksDbStore(dir, std::unique_ptr<rocksdb::DB>(raw)));
}

RocksDbStore::RocksDbStore(std::string dir, std::unique_ptr<rocksdb::DB> db)
    : dir_(std::move(dir)), db_(std::move(db)) {}

RocksDbStore::~RocksDbStore() {
  // Close explicitly so background work stops before the DB is deleted.
  db_->Close().PermitUncheckedError();
}

absl::StatusOr<uint64_t> RocksDbStore::LoadEpoch() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), "E", &value);
  if (s.IsNotFound()) return 0;
  RETURN_IF_ERROR(ToAbsl(s, "read epoch"));
  if (value.size() != 8) return absl::DataLossError("epoch record size");
  return GetBe(value, 8);
}

absl::Status RocksDbStore::SaveEpoch(uint64_t epoch) {
  return ToAbsl(db_->Put(SyncWrite(), "E", Be(epoch, 8)), "write epoch");
}

absl::StatusOr<std::vector<StoredVolume>> RocksDbStore::LoadVolumes() {
  std::vector<StoredVolume> out;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("M"); it->Valid() && it->key().starts_with("M"); it->Next()) {
    StoredVolume v;
    v.name = it->key().ToString().substr(1);
    if (it->value().size() != 4) {
      return absl::DataLossError(absl::StrCat("volume record ", v.name));
    }
    v.capacity = GetBe(View(it->value()), 4);
    out.push_back(std::move(v));
  }
  RETURN_IF_ERROR(ToAbsl(it->status(), "scan volumes"));
  for (StoredVolume& v : out) {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), MetaKey('C', v.name), &value);
    if (s.ok() && value.size() == 8) v.committed_seq = GetBe(value, 8);
    else if (!s.IsNotFound()) return ToAbsl(s, "read committed_seq");
    s = db_->Get(rocksdb::ReadOptions(), MetaKey('F', v.name), &value);
    if (s.ok() && value.size() == 8) v.first_retained_seq = GetBe(value, 8);
    else if (!s.IsNotFound()) return ToAbsl(s, "read first_retained_seq");

    // Slots are dense from 0, so scanning in key order fills them in order.
    for (char tag : {'K', 'V'}) {
      std::string prefix = Prefix(tag, v.name);
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
           it->Next()) {
        absl::string_view key = View(it->key());
        if (key.size() != prefix.size() + 4) {
          return absl::DataLossError(absl::StrCat("slot key of ", v.name));
        }
        uint32_t slot = GetBe(key.substr(prefix.size()), 4);
        if (tag == 'K') {
          if (slot != v.keys.size()) {
            return absl::DataLossError(
                absl::StrCat("slot ", slot, " of ", v.name, " out of order"));
          }
          v.keys.push_back(it->value().ToString());
        } else {
          if (slot >= v.keys.size() || it->value().size() != 8) {
            return absl::DataLossError(
                absl::StrCat("version of slot ", slot, " of ", v.name));
          }
          if (v.versions.size() <= slot) v.versions.resize(slot + 1, 0);
          v.versions[slot] = GetBe(View(it->value()), 8);
        }
      }
      RETURN_IF_ERROR(ToAbsl(it->status(), "scan slots"));
    }
    if (v.versions.size() != v.keys.size()) {
      return absl::DataLossError(
          absl::StrCat("volume ", v.name, ": slots without versions"));
    }
  }
  return out;
}

absl::Status RocksDbStore::Commit(const StoreBatch& batch) {
  rocksdb::WriteBatch wb;
  for (const auto& v : batch.new_volumes) {
    RETURN_IF_ERROR(ToAbsl(wb.Put(MetaKey('M', v.name), Be(v.capacity, 4)),
                           "batch"));
  }
  for (const auto& k : batch.new_keys) {
    RETURN_IF_ERROR(
        ToAbsl(wb.Put(SlotKey('K', k.volume, k.slot), k.key), "batch"));
    RETURN_IF_ERROR(ToAbsl(
        wb.Put(SlotKey('V', k.volume, k.slot), Be(k.version, 8)), "batch"));
  }
  for (size_t i = 0; i < batch.appends.size(); ++i) {
    const auto& a = batch.appends[i];
    std::string value = Be(a.entry.slot, 4) + Be(a.entry.version, 8);
    RETURN_IF_ERROR(
        ToAbsl(wb.Put(LogKey(a.volume, a.entry.seq), value), "batch"));
    RETURN_IF_ERROR(ToAbsl(
        wb.Put(SlotKey('V', a.volume, a.entry.slot), Be(a.entry.version, 8)),
        "batch"));
    // Only the last append of each volume needs to record committed_seq;
    // a Put per append is simpler and RocksDB keeps only the last.
    RETURN_IF_ERROR(ToAbsl(
        wb.Put(MetaKey('C', a.volume), Be(a.entry.seq, 8)), "batch"));
  }
  return ToAbsl(db_->Write(SyncWrite(), &wb), "commit");
}

absl::StatusOr<std::vector<LogEntry>> RocksDbStore::ReadLog(
    absl::string_view volume, uint64_t from_seq, size_t max_entries) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), MetaKey('M', volume), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("no volume ", volume));
  }
  RETURN_IF_ERROR(ToAbsl(s, "read volume"));
  std::string prefix = Prefix('L', volume);
  std::string end = PrefixEnd(prefix);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions options;
  options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
  std::vector<LogEntry> out;
  for (it->Seek(LogKey(volume, from_seq));
       it->Valid() && out.size() < max_entries; it->Next()) {
    absl::string_view key = View(it->key());
    absl::string_view val = View(it->value());
    if (key.size() != prefix.size() + 8 || val.size() != 12) {
      return absl::DataLossError(absl::StrCat("log record of ", volume));
    }
    LogEntry e;
    e.seq = GetBe(key.substr(prefix.size()), 8);
    e.slot = GetBe(val, 4);
    e.version = GetBe(val.substr(4), 8);
    out.push_back(e);
  }
  RETURN_IF_ERROR(ToAbsl(it->status(), "read log"));
  return out;
}

absl::Status RocksDbStore::CompactLog(absl::string_view volume,
                                      uint64_t before_seq) {
  rocksdb::WriteBatch wb;
  RETURN_IF_ERROR(ToAbsl(
      wb.DeleteRange(LogKey(volume, 0), LogKey(volume, before_seq)), "batch"));
  RETURN_IF_ERROR(
      ToAbsl(wb.Put(MetaKey('F', volume), Be(before_seq, 8)), "batch"));
  return ToAbsl(db_->Write(SyncWrite(), &wb), "compact log");
}

uint64_t RocksDbStore::ApproximateSizeBytes() {
  // Everything in the directory: SSTs, the WAL, the manifest.
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    std::error_code size_ec;
    if (entry.is_regular_file(size_ec)) {
      uint64_t size = entry.file_size(size_ec);
      if (!size_ec) total += size;
    }
  }
  return total;
}

}  // namespace coherefs::server
