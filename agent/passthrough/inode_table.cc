#include "agent/passthrough/inode_table.h"

#include <algorithm>

namespace coherefs::agent::passthrough {

void InodeTable::SetRoot(UniqueFd fd, const InodeKey& key, mode_t type) {
  auto data = std::make_shared<InodeData>();
  data->id = fuse::kRootInode;
  data->key = key;
  data->type = type;
  data->fd = std::move(fd);
  absl::MutexLock lock(&mu_);
  by_id_[fuse::kRootInode] = Slot{std::move(data), 1};
  by_key_[key] = fuse::kRootInode;
}

InodeRef InodeTable::AddLookup(UniqueFd fd, const InodeKey& key, mode_t type) {
  absl::MutexLock lock(&mu_);
  auto found = by_key_.find(key);
  if (found != by_key_.end()) {
    Slot& slot = by_id_[found->second];
    if (found->second != fuse::kRootInode) ++slot.nlookup;
    return slot.data;  // `fd` closes on return
  }
  auto data = std::make_shared<InodeData>();
  data->id = next_id_++;
  data->key = key;
  data->type = type;
  data->fd = std::move(fd);
  by_key_[key] = data->id;
  by_id_[data->id] = Slot{data, 1};
  return data;
}

InodeRef InodeTable::AddLookup(fuse::InodeId id) {
  absl::MutexLock lock(&mu_);
  auto found = by_id_.find(id);
  if (found == by_id_.end()) return nullptr;
  if (id != fuse::kRootInode) ++found->second.nlookup;
  return found->second.data;
}

InodeRef InodeTable::Get(fuse::InodeId id) const {
  absl::MutexLock lock(&mu_);
  auto found = by_id_.find(id);
  if (found == by_id_.end()) return nullptr;
  return found->second.data;
}

void InodeTable::Forget(fuse::InodeId id, uint64_t n) {
  if (id == fuse::kRootInode) return;
  std::shared_ptr<InodeData> dropped;  // closed outside the lock
  absl::MutexLock lock(&mu_);
  auto found = by_id_.find(id);
  if (found == by_id_.end()) return;
  Slot& slot = found->second;
  slot.nlookup -= std::min(n, slot.nlookup);
  if (slot.nlookup > 0) return;
  dropped = std::move(slot.data);
  by_key_.erase(dropped->key);
  by_id_.erase(found);
}

void InodeTable::Clear() {
  absl::flat_hash_map<fuse::InodeId, Slot> dropped;
  absl::MutexLock lock(&mu_);
  for (auto it = by_id_.begin(); it != by_id_.end();) {
    if (it->first == fuse::kRootInode) {
      ++it;
      continue;
    }
    by_key_.erase(it->second.data->key);
    dropped.insert(std::move(*it));
    by_id_.erase(it++);
  }
}

uint64_t InodeTable::LookupCount(fuse::InodeId id) const {
  absl::MutexLock lock(&mu_);
  auto found = by_id_.find(id);
  return found == by_id_.end() ? 0 : found->second.nlookup;
}

size_t InodeTable::size() const {
  absl::MutexLock lock(&mu_);
  return by_id_.size();
}

}  // namespace coherefs::agent::passthrough
