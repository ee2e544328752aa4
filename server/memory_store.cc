#include "server/memory_store.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace coherefs::server {

absl::StatusOr<uint64_t> MemoryStore::LoadEpoch() {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

absl::Status MemoryStore::SaveEpoch(uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  epoch_ = epoch;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredVolume>> MemoryStore::LoadVolumes() {
  absl::MutexLock lock(&mu_);
  std::vector<StoredVolume> out;
  for (const auto& [name, volume] : volumes_) out.push_back(volume.state);
  return out;
}

absl::Status MemoryStore::Commit(const StoreBatch& batch) {
  absl::Duration delay;
  {
    absl::MutexLock lock(&mu_);
    delay = commit_delay_;
    if (!next_commit_error_.ok()) {
      return std::exchange(next_commit_error_, absl::OkStatus());
    }
  }
  if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
  absl::MutexLock lock(&mu_);
  // Validate everything first so the batch is all-or-nothing.
  for (const auto& key : batch.new_keys) {
    bool new_volume = false;
    for (const auto& v : batch.new_volumes) new_volume |= v.name == key.volume;
    if (!new_volume && volumes_.find(key.volume) == volumes_.end()) {
      return absl::NotFoundError(absl::StrCat("no volume ", key.volume));
    }
  }
  for (const auto& v : batch.new_volumes) {
    Volume& volume = volumes_[v.name];
    volume.state.name = v.name;
    volume.state.capacity = v.capacity;
  }
  for (const auto& key : batch.new_keys) {
    StoredVolume& state = volumes_[key.volume].state;
    if (state.keys.size() <= key.slot) {
      state.keys.resize(key.slot + 1);
      state.versions.resize(key.slot + 1);
    }
    state.keys[key.slot] = key.key;
    state.versions[key.slot] = key.version;
  }
  for (const auto& append : batch.appends) {
    Volume& volume = volumes_[append.volume];
    volume.log[append.entry.seq] = append.entry;
    volume.state.committed_seq = append.entry.seq;
    if (append.entry.slot < volume.state.versions.size()) {
      volume.state.versions[append.entry.slot] = append.entry.version;
    }
  }
  ++commit_count_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LogEntry>> MemoryStore::ReadLog(
    absl::string_view volume, uint64_t from_seq, size_t max_entries) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) {
    return absl::NotFoundError(absl::StrCat("no volume ", volume));
  }
  std::vector<LogEntry> out;
  for (auto e = it->second.log.lower_bound(from_seq);
       e != it->second.log.end() && out.size() < max_entries; ++e) {
    out.push_back(e->second);
  }
  return out;
}

absl::Status MemoryStore::CompactLog(absl::string_view volume,
                                     uint64_t before_seq) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) {
    return absl::NotFoundError(absl::StrCat("no volume ", volume));
  }
  auto& log = it->second.log;
  log.erase(log.begin(), log.lower_bound(before_seq));
  it->second.state.first_retained_seq = before_seq;
  return absl::OkStatus();
}

void MemoryStore::SetCommitDelay(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  commit_delay_ = delay;
}

void MemoryStore::FailNextCommit(absl::Status status) {
  absl::MutexLock lock(&mu_);
  next_commit_error_ = std::move(status);
}

int MemoryStore::commit_count() {
  absl::MutexLock lock(&mu_);
  return commit_count_;
}

}  // namespace coherefs::server
