#include "agent/fuse/op_stats.h"

#include <linux/fuse.h>

namespace coherefs::agent::fuse {

size_t OpStats::Slot(uint32_t opcode) {
  return opcode < kMaxOpcode && KnownName(opcode) != nullptr ? opcode : 0;
}

void OpStats::Record(uint32_t opcode, int error, uint64_t latency_ns) {
  Counters& c = counters_[Slot(opcode)];
  // Relaxed: the counters are independent statistics; nothing is published
  // through them.
  c.count.fetch_add(1, std::memory_order_relaxed);
  if (error != 0) c.errors.fetch_add(1, std::memory_order_relaxed);
  c.latency_ns_sum.fetch_add(latency_ns, std::memory_order_relaxed);
  size_t bucket = 0;
  while (bucket < kBucketBoundsUs.size() && latency_ns > kBucketBoundsUs[bucket] * 1000) {
    ++bucket;
  }
  c.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
}

OpStats::Snapshot OpStats::Get(uint32_t opcode) const {
  const Counters& c = counters_[Slot(opcode)];
  Snapshot s;
  s.count = c.count.load(std::memory_order_relaxed);
  s.errors = c.errors.load(std::memory_order_relaxed);
  s.latency_ns_sum = c.latency_ns_sum.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kNumBuckets; ++i) {
    s.buckets[i] = c.buckets[i].load(std::memory_order_relaxed);
  }
  return s;
}

void OpStats::ForEach(const std::function<void(const char*, const Snapshot&)>& fn) const {
  for (uint32_t op = 1; op < kMaxOpcode; ++op) {
    if (Slot(op) == 0) continue;
    Snapshot s = Get(op);
    if (s.count != 0) fn(OpcodeName(op), s);
  }
  Snapshot other = Get(0);
  if (other.count != 0) fn("other", other);
}

const char* OpStats::OpcodeName(uint32_t opcode) {
  const char* name = KnownName(opcode);
  return name != nullptr ? name : "other";
}

const char* OpStats::KnownName(uint32_t opcode) {
  switch (opcode) {
    case FUSE_LOOKUP: return "lookup";
    case FUSE_FORGET: return "forget";
    case FUSE_GETATTR: return "getattr";
    case FUSE_SETATTR: return "setattr";
    case FUSE_READLINK: return "readlink";
    case FUSE_SYMLINK: return "symlink";
    case FUSE_MKNOD: return "mknod";
    case FUSE_MKDIR: return "mkdir";
    case FUSE_UNLINK: return "unlink";
    case FUSE_RMDIR: return "rmdir";
    case FUSE_RENAME: return "rename";
    case FUSE_LINK: return "link";
    case FUSE_OPEN: return "open";
    case FUSE_READ: return "read";
    case FUSE_WRITE: return "write";
    case FUSE_STATFS: return "statfs";
    case FUSE_RELEASE: return "release";
    case FUSE_FSYNC: return "fsync";
    case FUSE_SETXATTR: return "setxattr";
    case FUSE_GETXATTR: return "getxattr";
    case FUSE_LISTXATTR: return "listxattr";
    case FUSE_REMOVEXATTR: return "removexattr";
    case FUSE_FLUSH: return "flush";
    case FUSE_INIT: return "init";
    case FUSE_OPENDIR: return "opendir";
    case FUSE_READDIR: return "readdir";
    case FUSE_RELEASEDIR: return "releasedir";
    case FUSE_FSYNCDIR: return "fsyncdir";
    case FUSE_GETLK: return "getlk";
    case FUSE_SETLK: return "setlk";
    case FUSE_SETLKW: return "setlkw";
    case FUSE_ACCESS: return "access";
    case FUSE_CREATE: return "create";
    case FUSE_INTERRUPT: return "interrupt";
    case FUSE_BMAP: return "bmap";
    case FUSE_DESTROY: return "destroy";
    case FUSE_IOCTL: return "ioctl";
    case FUSE_POLL: return "poll";
    case FUSE_NOTIFY_REPLY: return "notify_reply";
    case FUSE_BATCH_FORGET: return "batch_forget";
    case FUSE_FALLOCATE: return "fallocate";
    case FUSE_READDIRPLUS: return "readdirplus";
    case FUSE_RENAME2: return "rename2";
    case FUSE_LSEEK: return "lseek";
    case FUSE_COPY_FILE_RANGE: return "copy_file_range";
    case FUSE_SETUPMAPPING: return "setupmapping";
    case FUSE_REMOVEMAPPING: return "removemapping";
    case FUSE_SYNCFS: return "syncfs";
    case FUSE_TMPFILE: return "tmpfile";
    default: return nullptr;
  }
}

}  // namespace coherefs::agent::fuse
