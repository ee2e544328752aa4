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

void InodeTable::SetJournal(NodeJournal* journal) {
  absl::MutexLock lock(&mu_);
  journal_ = journal;
}

NodeJournal::Slot InodeTable::Journal(const InodeData& data, uint64_t nlookup,
                                      const std::string& file_key) {
  if (journal_ == nullptr) return NodeJournal::kNoSlot;
  NodeJournal::NodeRecord rec;
  rec.id = data.id;
  rec.generation = data.generation;
  rec.nlookup = nlookup;
  rec.dev = data.key.dev;
  rec.ino = data.key.ino;
  rec.mnt_id = data.key.mnt_id;
  rec.type = data.type;
  rec.file_key = file_key;
  return journal_->AddNode(rec);
}

bool InodeTable::Restore(fuse::InodeId id, uint64_t generation, uint64_t nlookup, UniqueFd fd,
                         const InodeKey& key, mode_t type, const std::string& file_key) {
  const bool stale = !fd.valid();
  absl::MutexLock lock(&mu_);
  if (id == 0 || nlookup == 0 || by_id_.contains(id)) return false;
  if (!stale && by_key_.contains(key)) return false;
  auto data = std::make_shared<InodeData>();
  data->id = id;
  data->generation = generation;
  data->key = key;
  data->type = type;
  data->fd = std::move(fd);
  data->stale = stale;
  // A stale inode keeps its record as it was, so a second restart restores
  // it (stale again) with the count the guest still holds.
  const NodeJournal::Slot jslot = Journal(*data, nlookup, file_key);
  if (!stale) by_key_[key] = id;
  by_id_[id] = Slot{std::move(data), nlookup, jslot};
  next_id_ = std::max(next_id_, id + 1);
  return true;
}

void InodeTable::ReserveIdsThrough(fuse::InodeId id) {
  absl::MutexLock lock(&mu_);
  next_id_ = std::max(next_id_, id + 1);
}

InodeRef InodeTable::AddLookupIfKnown(const InodeKey& key) {
  absl::MutexLock lock(&mu_);
  auto found = by_key_.find(key);
  if (found == by_key_.end()) return nullptr;
  Slot& slot = by_id_[found->second];
  if (found->second != fuse::kRootInode) {
    ++slot.nlookup;
    if (journal_ != nullptr) journal_->SetLookups(slot.jslot, slot.nlookup);
  }
  return slot.data;
}

InodeRef InodeTable::AddLookup(UniqueFd fd, const InodeKey& key, mode_t type,
                               const std::string& file_key) {
  absl::MutexLock lock(&mu_);
  auto found = by_key_.find(key);
  if (found != by_key_.end()) {
    Slot& slot = by_id_[found->second];
    if (found->second != fuse::kRootInode) {
      ++slot.nlookup;
      if (journal_ != nullptr) journal_->SetLookups(slot.jslot, slot.nlookup);
    }
    return slot.data;  // `fd` closes on return
  }
  auto data = std::make_shared<InodeData>();
  data->id = next_id_++;
  data->key = key;
  data->type = type;
  data->fd = std::move(fd);
  by_key_[key] = data->id;
  by_id_[data->id] = Slot{data, 1, Journal(*data, 1, file_key)};
  return data;
}

InodeRef InodeTable::AddLookup(fuse::InodeId id) {
  absl::MutexLock lock(&mu_);
  auto found = by_id_.find(id);
  if (found == by_id_.end()) return nullptr;
  if (id != fuse::kRootInode) {
    ++found->second.nlookup;
    if (journal_ != nullptr) journal_->SetLookups(found->second.jslot, found->second.nlookup);
  }
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
  if (slot.nlookup > 0) {
    if (journal_ != nullptr) journal_->SetLookups(slot.jslot, slot.nlookup);
    return;
  }
  if (journal_ != nullptr) journal_->Remove(slot.jslot);
  dropped = std::move(slot.data);
  if (!dropped->stale) by_key_.erase(dropped->key);
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
    if (!it->second.data->stale) by_key_.erase(it->second.data->key);
    dropped.insert(std::move(*it));
    by_id_.erase(it++);
  }
  if (journal_ != nullptr) {
    auto root = by_id_.find(fuse::kRootInode);
    journal_->Reset(root == by_id_.end() ? 0 : root->second.data->key.mnt_id);
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
