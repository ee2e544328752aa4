#include "server/rocksdb_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/failpoint.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace coherefs::server {
namespace {

// tests/faults/README.md: around the durable write of a group commit (the
// WAL append and fsync are one RocksDB Write), and of a log compaction.
COHEREFS_FAILPOINT_DEFINE(kCommitBeforeSync, "store.commit.before_sync");
COHEREFS_FAILPOINT_DEFINE(kCommitAfterSync, "store.commit.after_sync");
COHEREFS_FAILPOINT_DEFINE(kCompactBeforeSync, "store.compact.before_sync");

absl::Status ToAbsl(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  // A full disk: retrying will not help until space is freed.
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
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

// kResourceExhausted while less than kMinFreeBytes are free under `dir`.
absl::Status CheckFreeSpace(const std::string& dir, absl::string_view what) {
  struct statvfs st;
  if (statvfs(dir.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat(what, "statvfs ", dir));
  }
  const uint64_t free_bytes = uint64_t{st.f_bavail} * st.f_frsize;
  if (free_bytes < RocksDbStore::kMinFreeBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, dir, ": ", free_bytes, " bytes free, below the ",
        RocksDbStore::kMinFreeBytes,
        " the store keeps in reserve (disk full)"));
  }
  return absl::OkStatus();
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
  // Never serve a store that may have lost acknowledged writes (README
  // "Corruption"): every write is synced before it is acknowledged, so the
  // only damage a crash can leave is an incomplete last WAL record, which
  // was never acknowledged; kTolerateCorruptedTailRecords drops exactly
  // that and refuses to open on anything else (a checksum mismatch in any
  // record). kPointInTimeRecovery (the default) would instead stop replay
  // at a corrupt record and silently drop every acknowledged write after it.
  options.paranoid_checks = true;
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // A closed WAL that is missing or shorter than when it was synced fails
  // the open too.
  options.track_and_verify_wals_in_manifest = true;
  // Opening replays the WAL into a new SST: on a full disk RocksDB would
  // fail that write and then abort on an assertion (Debian's librocksdb
  // keeps them). Refuse first, with a clear error.
  RETURN_IF_ERROR(CheckFreeSpace(dir, "open rocksdb "));
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return ToAbsl(s, absl::StrCat("open rocksdb ", dir));
  std::unique_ptr<rocksdb::DB> db(raw);
  // Open reads only the MANIFEST and the WAL; a damaged SST would surface
  // later, on some read. Check every block now (the store is small: the
  // change log plus one record per slot), before anything is served.
  s = db->VerifyChecksum();
  if (!s.ok()) {
    db->Close().PermitUncheckedError();
    return ToAbsl(s, absl::StrCat("verify rocksdb ", dir));
  }
  return std::unique_ptr<RocksDbStore>(new RocksDbStore(dir, std::move(db)));
}

RocksDbStore::RocksDbStore(std::string dir, std::unique_ptr<rocksdb::DB> db)
    : dir_(std::move(dir)), db_(std::move(db)) {}

RocksDbStore::~RocksDbStore() {
  if (write_failed_.load()) {
    // Debian's librocksdb keeps its assertions, and closing a WAL writer
    // that saw an error trips one (abort). Everything acknowledged is
    // already synced, so leave the DB to the process exit instead.
    (void)db_.release();
    return;
  }
  // Close explicitly so background work stops before the DB is deleted.
  db_->Close().PermitUncheckedError();
}

absl::Status RocksDbStore::CheckSpace() { return CheckFreeSpace(dir_, ""); }

absl::Status RocksDbStore::Write(rocksdb::WriteBatch* batch,
                                 absl::string_view what) {
  // Refuse before RocksDB sees the write: a WAL append that fails on a
  // full disk leaves RocksDB unable to continue (see Resume).
  RETURN_IF_ERROR(CheckSpace());
  absl::Status s = ToAbsl(db_->Write(SyncWrite(), batch), what);
  if (!s.ok()) write_failed_.store(true);
  return s;
}

absl::StatusOr<uint64_t> RocksDbStore::LoadEpoch() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), "E", &value);
  uint64_t epoch = 0;
  if (!s.IsNotFound()) {
    RETURN_IF_ERROR(ToAbsl(s, "read epoch"));
    if (value.size() != 8) return absl::DataLossError("epoch record size");
    epoch = GetBe(value, 8);
  }
  // The witness file catches a store that silently went back in time (a
  // truncated MANIFEST drops whole SSTs, and the epoch with them, without
  // an error): refuse it, since it would hand out versions agents have
  // already seen for other changes. (A whole directory restored from an
  // old backup brings its old witness along: not detected.)
  ASSIGN_OR_RETURN(uint64_t witnessed, ReadEpochWitness());
  if (witnessed > epoch) {
    return absl::DataLossError(absl::StrCat(
        "store ", dir_, " is at epoch ", epoch, " but was started at epoch ",
        witnessed, " (", kEpochWitness,
        "): it lost acknowledged writes; restore it or start afresh"));
  }
  return epoch;
}

absl::Status RocksDbStore::SaveEpoch(uint64_t epoch) {
  rocksdb::WriteBatch wb;
  RETURN_IF_ERROR(ToAbsl(wb.Put("E", Be(epoch, 8)), "batch"));
  RETURN_IF_ERROR(Write(&wb, "write epoch"));
  // After the store: a crash in between leaves the witness one behind,
  // which LoadEpoch accepts.
  return WriteEpochWitness(epoch);
}

absl::StatusOr<uint64_t> RocksDbStore::ReadEpochWitness() {
  const std::string path = absl::StrCat(dir_, "/", kEpochWitness);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return 0;  // a store from before the witness
    return ErrnoStatus(errno, absl::StrCat("open ", path));
  }
  char buf[32];
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
  uint64_t epoch = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(
                            absl::string_view(buf, size_t(n))),
                        &epoch)) {
    return absl::DataLossError(absl::StrCat(path, ": not an epoch"));
  }
  return epoch;
}

absl::Status RocksDbStore::WriteEpochWitness(uint64_t epoch) {
  const std::string path = absl::StrCat(dir_, "/", kEpochWitness);
  const std::string tmp = path + ".tmp";
  const std::string text = absl::StrCat(epoch, "\n");
  {
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     0644));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", tmp));
    if (write(fd.get(), text.data(), text.size()) != ssize_t(text.size()) ||
        fsync(fd.get()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("write ", tmp));
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", tmp));
  }
  UniqueFd dir(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid() || fsync(dir.get()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("fsync ", dir_));
  }
  return absl::OkStatus();
}

absl::Status RocksDbStore::CheckConsistency() {
  // One pass over every key: each must belong to a volume that exists, and
  // each volume's log must end at its committed_seq. A store missing part
  // of its files (see LoadEpoch) fails here if the rest disagrees.
  std::set<std::string, std::less<>> volumes;
  std::map<std::string, uint64_t, std::less<>> last_log_seq, committed;
  std::set<std::string, std::less<>> referenced;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    absl::string_view key = View(it->key());
    if (key.empty()) return absl::DataLossError("empty key in store");
    const char tag = key[0];
    absl::string_view rest = key.substr(1);
    switch (tag) {
      case 'E':
        break;
      case 'M':
        volumes.emplace(rest);
        break;
      case 'C':
        if (it->value().size() != 8) {
          return absl::DataLossError(absl::StrCat("committed_seq of ", rest));
        }
        committed[std::string(rest)] = GetBe(View(it->value()), 8);
        referenced.emplace(rest);
        break;
      case 'F':
        referenced.emplace(rest);
        break;
      case 'K':
      case 'V':
      case 'L': {
        size_t nul = rest.find('\0');
        if (nul == absl::string_view::npos) {
          return absl::DataLossError("malformed key in store");
        }
        absl::string_view name = rest.substr(0, nul);
        referenced.emplace(name);
        if (tag == 'L') {
          if (rest.size() != nul + 9) {
            return absl::DataLossError(absl::StrCat("log key of ", name));
          }
          last_log_seq[std::string(name)] = GetBe(rest.substr(nul + 1), 8);
        }
        break;
      }
      default:
        return absl::DataLossError(
            absl::StrCat("unknown record tag '", std::string(1, tag),
                         "' in store"));
    }
  }
  RETURN_IF_ERROR(ToAbsl(it->status(), "scan store"));
  for (const std::string& name : referenced) {
    if (volumes.count(name) == 0) {
      return absl::DataLossError(absl::StrCat(
          "store ", dir_, " has records of volume '", name,
          "' but not the volume itself: it lost acknowledged writes"));
    }
  }
  for (const auto& [name, seq] : last_log_seq) {
    auto c = committed.find(name);
    if (c == committed.end() || c->second != seq) {
      return absl::DataLossError(absl::StrCat(
          "store ", dir_, ": the change log of volume '", name,
          "' ends at seq ", seq, " but committed_seq is ",
          c == committed.end() ? 0 : c->second));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredVolume>> RocksDbStore::LoadVolumes() {
  RETURN_IF_ERROR(CheckConsistency());
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
  RETURN_IF_ERROR(kCommitBeforeSync.Eval());
  RETURN_IF_ERROR(Write(&wb, "commit"));
  // Durable now; a failure here is "written but not acknowledged".
  return kCommitAfterSync.Eval();
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
  RETURN_IF_ERROR(kCompactBeforeSync.Eval());
  return Write(&wb, "compact log");
}

absl::Status RocksDbStore::Resume() {
  if (write_failed_.load()) {
    // RocksDB itself failed a write: with Debian's assertion-enabled
    // librocksdb, DB::Resume() then aborts on the failed WAL writer.
    return absl::UnavailableError(absl::StrCat(
        "rocksdb ", dir_, " failed a write; restart the coordinator"));
  }
  return CheckSpace();
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
