#include "agent/fuse/server.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/log.h"

namespace coherefs::agent::fuse {
namespace {

// Op handlers return this when the request gets no reply at all.
constexpr int kNoReply = -1;

constexpr size_t kNameMax = 255;          // NAME_MAX
constexpr size_t kSymlinkMax = 4095;      // PATH_MAX without its NUL
constexpr size_t kXattrNameMax = 255;     // XATTR_NAME_MAX
constexpr size_t kXattrSizeMax = 65536;   // XATTR_SIZE_MAX
constexpr uint32_t kMinMaxWrite = 4096;
constexpr uint32_t kMaxMaxWrite = 16u << 20;
constexpr uint32_t kPageSize = 4096;

bool IsNoReplyOpcode(uint32_t opcode) {
  return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
         opcode == FUSE_NOTIFY_REPLY;
}

// The errno a FileSystem status stands for, always a valid positive errno.
int ToErrno(const absl::Status& status) {
  int err = ErrnoFromStatus(status);
  return err > 0 && err < 4096 ? err : EIO;
}

int ToErrnoOrZero(const absl::Status& status) {
  return status.ok() ? 0 : ToErrno(status);
}

// Reads an argument struct; false if the request is shorter than it.
template <typename T>
bool ReadArg(IovReader& in, T* out) {
  *out = T{};
  return in.ReadObj(out);
}

enum class NameKind {
  kEntry,          // a directory entry to create or remove: no ".", ".."
  kLookup,         // LOOKUP: "." and ".." allowed (NFS export lookups)
  kSymlinkTarget,  // any bytes but NUL, up to PATH_MAX - 1
  kXattr,          // xattr names: 1..255 bytes, anything but NUL
};

// Reads a NUL-terminated string from the request. Returns 0 or the errno
// the request gets (see server.h). Reads at most limit + 1 bytes, so a huge
// request without a NUL costs no more than a long name.
int ReadName(IovReader& in, NameKind kind, std::string* out) {
  const size_t limit = kind == NameKind::kSymlinkTarget ? kSymlinkMax
                       : kind == NameKind::kXattr       ? kXattrNameMax
                                                        : kNameMax;
  const int too_long = kind == NameKind::kXattr ? ERANGE : ENAMETOOLONG;
  out->clear();
  char c;
  while (true) {
    if (!in.Read(&c, 1)) return EINVAL;  // no NUL within the request
    if (c == '\0') break;
    if (out->size() == limit) return too_long;
    out->push_back(c);
  }
  if (out->empty()) return kind == NameKind::kXattr ? ERANGE : EINVAL;
  if (kind == NameKind::kEntry || kind == NameKind::kLookup) {
    if (out->find('/') != std::string::npos) return EINVAL;
    if (kind == NameKind::kEntry && (*out == "." || *out == "..")) return EINVAL;
  }
  return 0;
}

void EncodeTimeout(double seconds, uint64_t* sec, uint32_t* nsec) {
  *sec = 0;
  *nsec = 0;
  if (!(seconds > 0)) return;  // also NaN
  if (seconds >= 9.0e18) {     // beyond int64 seconds: "forever"
    *sec = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    return;
  }
  *sec = static_cast<uint64_t>(seconds);
  double frac = (seconds - static_cast<double>(*sec)) * 1e9;
  *nsec = std::min<uint32_t>(static_cast<uint32_t>(frac), 999999999u);
}

void EncodeAttr(const struct stat& st, fuse_attr* a) {
  *a = fuse_attr{};
  a->ino = st.st_ino;
  a->size = static_cast<uint64_t>(st.st_size);
  a->blocks = static_cast<uint64_t>(st.st_blocks);
  a->atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a->mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a->ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a->atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a->mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a->ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a->mode = st.st_mode;
  a->nlink = static_cast<uint32_t>(st.st_nlink);
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  // glibc's dev_t and the kernel's 32-bit new_encode_dev() agree for every
  // device number that fits 32 bits (major < 4096).
  a->rdev = static_cast<uint32_t>(st.st_rdev);
  a->blksize = static_cast<uint32_t>(st.st_blksize);
}

fuse_entry_out EncodeEntry(const Entry& e) {
  fuse_entry_out o{};
  o.nodeid = e.inode;
  o.generation = e.generation;
  EncodeTimeout(e.entry_timeout_s, &o.entry_valid, &o.entry_valid_nsec);
  EncodeTimeout(e.attr_timeout_s, &o.attr_valid, &o.attr_valid_nsec);
  EncodeAttr(e.st, &o.attr);
  return o;
}

// Writes a fixed reply body; ERANGE when the reply buffer is too small.
template <typename T>
int WriteBody(IovWriter& out, const T& body) {
  return out.WriteObj(body) ? 0 : ERANGE;
}

int WriteEntry(IovWriter& out, const absl::StatusOr<Entry>& entry) {
  if (!entry.ok()) return ToErrno(entry.status());
  return WriteBody(out, EncodeEntry(*entry));
}

// Encodes READDIR / READDIRPLUS records into the reply, up to `budget`
// bytes (the guest's size, bounded by the reply buffer).
class DirentEncoder final : public DirSink {
 public:
  DirentEncoder(IovWriter& out, size_t budget, bool plus)
      : out_(out), budget_(budget), plus_(plus) {}

  bool Add(const DirEntry& entry, const Entry* plus) override {
    if (error_ != 0) return false;
    const size_t namelen = entry.name.size();
    if (namelen == 0 || namelen > kNameMax) {
      // A file system bug; refusing keeps the guest from seeing a bad record.
      error_ = EIO;
      return false;
    }
    const size_t head = (plus_ ? sizeof(fuse_entry_out) : 0) + FUSE_NAME_OFFSET;
    const size_t record = FUSE_DIRENT_ALIGN(head + namelen);
    if (used_ + record > budget_) return false;
    if (plus_) {
      // No Entry (".", ".." or an entry the file system did not look up):
      // nodeid 0 tells Linux not to instantiate it.
      fuse_entry_out eo = plus != nullptr ? EncodeEntry(*plus) : fuse_entry_out{};
      out_.WriteObj(eo);
    }
    fuse_dirent d{};
    d.ino = entry.ino;
    d.off = entry.offset;
    d.namelen = static_cast<uint32_t>(namelen);
    d.type = entry.type;
    out_.Write(&d, FUSE_NAME_OFFSET);
    out_.Write(entry.name.data(), namelen);
    static constexpr char kZeros[8] = {};
    out_.Write(kZeros, record - head - namelen);
    used_ += record;
    ++count_;
    return true;
  }

  int error() const { return error_; }
  size_t count() const { return count_; }

 private:
  IovWriter& out_;
  const size_t budget_;
  const bool plus_;
  size_t used_ = 0;
  size_t count_ = 0;
  int error_ = 0;
};

}  // namespace

struct Server::Request {
  fuse_in_header h{};
  Context ctx;
  IovReader args;  // the argument bytes: len minus header and extensions
  Session session;
};

Server::Server(FileSystem* fs, Options options)
    : fs_(fs),
      options_(options),
      stats_(options.stats != nullptr ? options.stats : &own_stats_) {}

InitInfo Server::session() const {
  absl::ReaderMutexLock lock(&mu_);
  return session_.initialized ? session_.info : InitInfo{};
}

void Server::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (!session_.initialized) return;
  fs_->Destroy();
  session_ = Session{};
  if (options_.on_session_change) options_.on_session_change(nullptr);
}

absl::Status Server::Resume(const InitInfo& info) {
  if (info.major != kMajor || info.minor < kMinMinor || info.minor > kMaxMinor ||
      info.max_write < kMinMaxWrite || info.max_write > kMaxMaxWrite ||
      (info.flags & kUnsupportedFlags)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resume FUSE ", info.major, ".",
                                                   info.minor, " max_write ", info.max_write));
  }
  absl::MutexLock lock(&mu_);
  if (session_.initialized) return absl::FailedPreconditionError("session already initialized");
  if (absl::Status s = fs_->Init(info); !s.ok()) return s;
  session_.initialized = true;
  session_.resumed = true;
  session_.info = info;
  return absl::OkStatus();
}

size_t Server::HandleRequest(IovReader& in, IovWriter& out) {
  const auto began = std::chrono::steady_clock::now();
  const size_t arrived = in.remaining();
  Request req;
  if (!in.ReadObj(&req.h)) {
    // Not even a header: there is no unique id to answer.
    stats_->Record(0, EINVAL, 0);
    return 0;
  }
  const fuse_in_header& h = req.h;
  const bool replies = !IsNoReplyOpcode(h.opcode);
  const size_t start = out.written();
  if (replies && !out.WriteObj(fuse_out_header{})) {
    LOG_WARN("fuse reply buffer smaller than fuse_out_header")
        .Kv("unique", h.unique)
        .Kv("room", out.room());
    stats_->Record(h.opcode, ERANGE, 0);
    return 0;
  }

  int err;
  const size_t ext_bytes = static_cast<size_t>(h.total_extlen) * 8;
  if (h.len < sizeof(fuse_in_header) || h.len != arrived ||
      ext_bytes > h.len - sizeof(fuse_in_header)) {
    err = EINVAL;
  } else {
    std::vector<iovec> iov;
    in.Take(h.len - sizeof(fuse_in_header) - ext_bytes, &iov);
    in.Skip(ext_bytes);  // never negotiated (kUnsupportedFlags); ignored
    req.args = IovReader(std::move(iov));
    req.ctx = Context{h.uid, h.gid, h.pid, h.unique};
    {
      absl::ReaderMutexLock lock(&mu_);
      req.session = session_;
    }
    err = Dispatch(req, out);
  }

  size_t reply_len = 0;
  if (replies && err != kNoReply) {
    fuse_out_header oh{};
    oh.unique = h.unique;
    if (err != 0) {
      oh.len = sizeof(fuse_out_header);
      oh.error = -err;
    } else {
      oh.len = static_cast<uint32_t>(out.written() - start);
    }
    out.Overwrite(start, &oh, sizeof(oh));
    reply_len = oh.len;
  }
  const auto elapsed = std::chrono::steady_clock::now() - began;
  stats_->Record(h.opcode, err > 0 ? err : 0,
                std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
  return reply_len;
}

int Server::Dispatch(Request& req, IovWriter& out) {
  const uint32_t opcode = req.h.opcode;
  if (opcode == FUSE_INIT) return DoInit(req, out);
  if (IsNoReplyOpcode(opcode) && !req.session.initialized) return kNoReply;
  if (!req.session.initialized) return EIO;
  switch (opcode) {
    case FUSE_DESTROY: return DoDestroy(req);
    case FUSE_FORGET: return DoForget(req);
    case FUSE_BATCH_FORGET: return DoBatchForget(req);
    case FUSE_INTERRUPT: return kNoReply;  // requests are not interruptible
    case FUSE_NOTIFY_REPLY: return kNoReply;  // we never send NOTIFY_RETRIEVE
    case FUSE_LOOKUP: return DoLookup(req, out);
    case FUSE_GETATTR: return DoGetAttr(req, out);
    case FUSE_SETATTR: return DoSetAttr(req, out);
    case FUSE_READLINK: return DoReadLink(req, out);
    case FUSE_SYMLINK: return DoSymlink(req, out);
    case FUSE_MKNOD: return DoMknod(req, out);
    case FUSE_MKDIR: return DoMkdir(req, out);
    case FUSE_UNLINK: return DoUnlink(req, /*dir=*/false);
    case FUSE_RMDIR: return DoUnlink(req, /*dir=*/true);
    case FUSE_RENAME: return DoRename(req, /*rename2=*/false);
    case FUSE_RENAME2: return DoRename(req, /*rename2=*/true);
    case FUSE_LINK: return DoLink(req, out);
    case FUSE_OPEN: return DoOpen(req, out, /*dir=*/false);
    case FUSE_OPENDIR: return DoOpen(req, out, /*dir=*/true);
    case FUSE_CREATE: return DoCreate(req, out);
    case FUSE_READ: return DoRead(req, out);
    case FUSE_WRITE: return DoWrite(req, out);
    case FUSE_FLUSH: return DoFlush(req);
    case FUSE_RELEASE: return DoRelease(req, /*dir=*/false);
    case FUSE_RELEASEDIR: return DoRelease(req, /*dir=*/true);
    case FUSE_FSYNC: return DoFsync(req, /*dir=*/false);
    case FUSE_FSYNCDIR: return DoFsync(req, /*dir=*/true);
    case FUSE_READDIR: return DoReadDir(req, out, /*plus=*/false);
    case FUSE_READDIRPLUS: return DoReadDir(req, out, /*plus=*/true);
    case FUSE_STATFS: return DoStatFs(req, out);
    case FUSE_ACCESS: return DoAccess(req);
    case FUSE_SETXATTR: return DoSetXattr(req);
    case FUSE_GETXATTR: return DoGetXattr(req, out, /*list=*/false);
    case FUSE_LISTXATTR: return DoGetXattr(req, out, /*list=*/true);
    case FUSE_REMOVEXATTR: return DoRemoveXattr(req);
    case FUSE_FALLOCATE: return DoFallocate(req);
    case FUSE_LSEEK: return DoLseek(req, out);
    case FUSE_COPY_FILE_RANGE: return DoCopyFileRange(req, out);
    case FUSE_GETLK: return DoGetLk(req, out);
    case FUSE_SETLK: return DoSetLk(req, /*wait=*/false);
    case FUSE_SETLKW: return DoSetLk(req, /*wait=*/true);
    default:
      // IOCTL, POLL, BMAP, SETUPMAPPING, REMOVEMAPPING, SYNCFS, TMPFILE,
      // CUSE_INIT and unknown opcodes. ENOSYS tells Linux not to ask again
      // (or to fall back, e.g. for SYNCFS).
      return ENOSYS;
  }
}

int Server::DoInit(Request& req, IovWriter& out) {
  // Peers before 7.36 send 16 bytes (no flags2); major and minor are enough
  // to answer a version mismatch.
  fuse_init_in in{};
  const size_t n = std::min(req.args.remaining(), sizeof(in));
  if (n < offsetof(fuse_init_in, max_readahead)) return EINVAL;
  req.args.Read(&in, n);

  absl::MutexLock lock(&mu_);
  if (session_.initialized && session_.resumed) {
    fs_->Destroy();
    session_ = Session{};
  }
  if (session_.initialized) return EPROTO;
  if (in.major < kMajor) return EPROTO;
  fuse_init_out o{};
  o.major = kMajor;
  o.minor = kMaxMinor;
  if (in.major > kMajor) {
    // Tell the peer our major and wait for a new INIT speaking it.
    return out.Write(&o, FUSE_COMPAT_INIT_OUT_SIZE) ? 0 : ERANGE;
  }
  const uint32_t minor = std::min(in.minor, kMaxMinor);
  if (minor < kMinMinor) return EPROTO;

  uint64_t peer_flags = in.flags;
  if ((in.flags & FUSE_INIT_EXT) && n >= offsetof(fuse_init_in, flags2) + sizeof(in.flags2)) {
    peer_flags |= static_cast<uint64_t>(in.flags2) << 32;
  }
  uint64_t agreed = peer_flags & (fs_->WantedInitFlags() | kServerFlags) & ~kUnsupportedFlags;
  // flags2 (the high 32 bits) exists only with FUSE_INIT_EXT, from 7.36.
  if (minor < 36) agreed &= ~static_cast<uint64_t>(FUSE_INIT_EXT);
  if (!(agreed & FUSE_INIT_EXT)) agreed &= 0xffffffffull;

  const uint32_t max_write = std::clamp(options_.max_write, kMinMaxWrite, kMaxMaxWrite);
  o.minor = minor;
  o.max_readahead = in.max_readahead;
  o.flags = static_cast<uint32_t>(agreed);
  o.flags2 = static_cast<uint32_t>(agreed >> 32);
  o.max_background = options_.max_background;
  o.congestion_threshold = options_.congestion_threshold;
  o.max_write = max_write;
  o.time_gran = 1;  // nanosecond timestamps
  if (agreed & FUSE_MAX_PAGES) o.max_pages = static_cast<uint16_t>(max_write / kPageSize);
  // fuse_init_out grew at 7.5 and 7.23; answer with the size the peer reads.
  const size_t size = minor < 23 ? FUSE_COMPAT_22_INIT_OUT_SIZE : sizeof(o);
  if (out.room() < size) return ERANGE;

  InitInfo info{kMajor, minor, agreed, max_write};
  absl::Status status = fs_->Init(info);
  if (!status.ok()) return ToErrno(status);
  out.Write(&o, size);
  session_.initialized = true;
  session_.info = info;
  if (options_.on_session_change) options_.on_session_change(&info);
  return 0;
}

int Server::DoDestroy(Request& req) {
  absl::MutexLock lock(&mu_);
  const bool was = session_.initialized;
  if (was) fs_->Destroy();
  session_ = Session{};
  if (was && options_.on_session_change) options_.on_session_change(nullptr);
  return 0;
}

int Server::DoForget(Request& req) {
  fuse_forget_in in;
  if (ReadArg(req.args, &in)) fs_->Forget(req.h.nodeid, in.nlookup);
  return kNoReply;
}

int Server::DoBatchForget(Request& req) {
  fuse_batch_forget_in in;
  if (!ReadArg(req.args, &in)) return kNoReply;
  // Forget what arrived whole, never more than `count`: the loop is bounded
  // by the request's size, not by the peer's count.
  for (uint32_t i = 0; i < in.count; ++i) {
    fuse_forget_one one;
    if (!ReadArg(req.args, &one)) break;
    fs_->Forget(one.nodeid, one.nlookup);
  }
  return kNoReply;
}

int Server::DoLookup(Request& req, IovWriter& out) {
  std::string name;
  if (int err = ReadName(req.args, NameKind::kLookup, &name)) return err;
  return WriteEntry(out, fs_->Lookup(req.ctx, req.h.nodeid, name));
}

int Server::DoGetAttr(Request& req, IovWriter& out) {
  fuse_getattr_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  const HandleId fh = in.fh;
  absl::StatusOr<Attr> attr = fs_->GetAttr(
      req.ctx, req.h.nodeid, (in.getattr_flags & FUSE_GETATTR_FH) ? &fh : nullptr);
  if (!attr.ok()) return ToErrno(attr.status());
  fuse_attr_out o{};
  EncodeTimeout(attr->timeout_s, &o.attr_valid, &o.attr_valid_nsec);
  EncodeAttr(attr->st, &o.attr);
  return WriteBody(out, o);
}

int Server::DoSetAttr(Request& req, IovWriter& out) {
  fuse_setattr_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  SetAttrIn s;
  s.valid = in.valid;
  s.handle = in.fh;
  s.size = in.size;
  s.mode = in.mode;
  s.uid = in.uid;
  s.gid = in.gid;
  s.atime = {static_cast<time_t>(in.atime), static_cast<long>(in.atimensec)};
  s.mtime = {static_cast<time_t>(in.mtime), static_cast<long>(in.mtimensec)};
  s.ctime = {static_cast<time_t>(in.ctime), static_cast<long>(in.ctimensec)};
  absl::StatusOr<Attr> attr = fs_->SetAttr(req.ctx, req.h.nodeid, s);
  if (!attr.ok()) return ToErrno(attr.status());
  fuse_attr_out o{};
  EncodeTimeout(attr->timeout_s, &o.attr_valid, &o.attr_valid_nsec);
  EncodeAttr(attr->st, &o.attr);
  return WriteBody(out, o);
}

int Server::DoReadLink(Request& req, IovWriter& out) {
  absl::StatusOr<std::string> target = fs_->ReadLink(req.ctx, req.h.nodeid);
  if (!target.ok()) return ToErrno(target.status());
  return out.Write(target->data(), target->size()) ? 0 : ERANGE;
}

int Server::DoSymlink(Request& req, IovWriter& out) {
  std::string name, target;
  if (int err = ReadName(req.args, NameKind::kEntry, &name)) return err;
  if (int err = ReadName(req.args, NameKind::kSymlinkTarget, &target)) return err;
  return WriteEntry(out, fs_->Symlink(req.ctx, req.h.nodeid, name, target));
}

int Server::DoMknod(Request& req, IovWriter& out) {
  fuse_mknod_in in;
  std::string name;
  if (!ReadArg(req.args, &in)) return EINVAL;
  if (int err = ReadName(req.args, NameKind::kEntry, &name)) return err;
  return WriteEntry(out,
                    fs_->Mknod(req.ctx, req.h.nodeid, name, in.mode, in.rdev, in.umask));
}

int Server::DoMkdir(Request& req, IovWriter& out) {
  fuse_mkdir_in in;
  std::string name;
  if (!ReadArg(req.args, &in)) return EINVAL;
  if (int err = ReadName(req.args, NameKind::kEntry, &name)) return err;
  return WriteEntry(out, fs_->Mkdir(req.ctx, req.h.nodeid, name, in.mode, in.umask));
}

int Server::DoUnlink(Request& req, bool dir) {
  std::string name;
  if (int err = ReadName(req.args, NameKind::kEntry, &name)) return err;
  return ToErrnoOrZero(dir ? fs_->Rmdir(req.ctx, req.h.nodeid, name)
                           : fs_->Unlink(req.ctx, req.h.nodeid, name));
}

int Server::DoRename(Request& req, bool rename2) {
  uint64_t new_dir;
  uint32_t flags = 0;
  if (rename2) {
    fuse_rename2_in in;
    if (!ReadArg(req.args, &in)) return EINVAL;
    new_dir = in.newdir;
    flags = in.flags;
  } else {
    fuse_rename_in in;
    if (!ReadArg(req.args, &in)) return EINVAL;
    new_dir = in.newdir;
  }
  std::string name, new_name;
  if (int err = ReadName(req.args, NameKind::kEntry, &name)) return err;
  if (int err = ReadName(req.args, NameKind::kEntry, &new_name)) return err;
  return ToErrnoOrZero(fs_->Rename(req.ctx, req.h.nodeid, name, new_dir, new_name, flags));
}

int Server::DoLink(Request& req, IovWriter& out) {
  fuse_link_in in;
  std::string name;
  if (!ReadArg(req.args, &in)) return EINVAL;
  if (int err = ReadName(req.args, NameKind::kEntry, &name)) return err;
  // nodeid is the new parent; oldnodeid the inode that gets another name.
  return WriteEntry(out, fs_->Link(req.ctx, in.oldnodeid, req.h.nodeid, name));
}

int Server::DoOpen(Request& req, IovWriter& out, bool dir) {
  fuse_open_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  absl::StatusOr<OpenResult> r = dir ? fs_->OpenDir(req.ctx, req.h.nodeid, in.flags)
                                     : fs_->Open(req.ctx, req.h.nodeid, in.flags);
  if (!r.ok()) return ToErrno(r.status());
  fuse_open_out o{};
  o.fh = r->handle;
  o.open_flags = r->open_flags;
  return WriteBody(out, o);
}

int Server::DoCreate(Request& req, IovWriter& out) {
  fuse_create_in in;
  std::string name;
  if (!ReadArg(req.args, &in)) return EINVAL;
  if (int err = ReadName(req.args, NameKind::kEntry, &name)) return err;
  if (out.room() < sizeof(fuse_entry_out) + sizeof(fuse_open_out)) return ERANGE;
  auto r = fs_->Create(req.ctx, req.h.nodeid, name, in.mode, in.flags, in.umask);
  if (!r.ok()) return ToErrno(r.status());
  fuse_open_out o{};
  o.fh = r->second.handle;
  o.open_flags = r->second.open_flags;
  out.WriteObj(EncodeEntry(r->first));
  out.WriteObj(o);
  return 0;
}

int Server::DoRead(Request& req, IovWriter& out) {
  fuse_read_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  if (in.size > out.room()) return ERANGE;  // see server.h: never truncate
  const size_t before = out.written();
  absl::StatusOr<size_t> n =
      fs_->Read(req.ctx, req.h.nodeid, in.fh, in.offset, in.size, out);
  if (!n.ok()) return ToErrno(n.status());
  // The reply length is derived from the bytes actually committed, so a file
  // system that claims more than it wrote cannot leak stale buffer bytes.
  if (*n > in.size || out.written() - before != *n) {
    LOG_ERROR("fuse read: file system count disagrees with bytes written")
        .Kv("unique", req.h.unique)
        .Kv("count", *n)
        .Kv("written", out.written() - before);
    return EIO;
  }
  return 0;
}

int Server::DoWrite(Request& req, IovWriter& out) {
  fuse_write_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  if (req.args.remaining() != in.size) return EINVAL;
  absl::StatusOr<size_t> n = fs_->Write(req.ctx, req.h.nodeid, in.fh, in.offset, in.size,
                                        in.write_flags, req.args);
  if (!n.ok()) return ToErrno(n.status());
  if (*n > in.size) return EIO;
  fuse_write_out o{};
  o.size = static_cast<uint32_t>(*n);
  return WriteBody(out, o);
}

int Server::DoFlush(Request& req) {
  fuse_flush_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  return ToErrnoOrZero(fs_->Flush(req.ctx, req.h.nodeid, in.fh, in.lock_owner));
}

int Server::DoRelease(Request& req, bool dir) {
  fuse_release_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  if (dir) return ToErrnoOrZero(fs_->ReleaseDir(req.ctx, req.h.nodeid, in.fh));
  return ToErrnoOrZero(fs_->Release(req.ctx, req.h.nodeid, in.fh, in.flags, in.lock_owner,
                                    (in.release_flags & FUSE_RELEASE_FLUSH) != 0));
}

int Server::DoFsync(Request& req, bool dir) {
  fuse_fsync_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  const bool datasync = (in.fsync_flags & 1) != 0;  // FUSE_FSYNC_FDATASYNC
  return ToErrnoOrZero(dir ? fs_->FsyncDir(req.ctx, req.h.nodeid, in.fh, datasync)
                           : fs_->Fsync(req.ctx, req.h.nodeid, in.fh, datasync));
}

int Server::DoReadDir(Request& req, IovWriter& out, bool plus) {
  fuse_read_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  DirentEncoder encoder(out, std::min<size_t>(in.size, out.room()), plus);
  absl::Status status = fs_->ReadDir(req.ctx, req.h.nodeid, in.fh, in.offset, plus, encoder);
  // Records already encoded are sent even if the file system failed later:
  // for READDIRPLUS each carries a lookup the guest must learn about.
  if (encoder.count() > 0) return 0;
  if (!status.ok()) return ToErrno(status);
  return encoder.error();
}

int Server::DoStatFs(Request& req, IovWriter& out) {
  absl::StatusOr<struct statvfs> st = fs_->StatFs(req.ctx, req.h.nodeid);
  if (!st.ok()) return ToErrno(st.status());
  fuse_statfs_out o{};
  o.st.blocks = st->f_blocks;
  o.st.bfree = st->f_bfree;
  o.st.bavail = st->f_bavail;
  o.st.files = st->f_files;
  o.st.ffree = st->f_ffree;
  o.st.bsize = static_cast<uint32_t>(st->f_bsize);
  o.st.namelen = static_cast<uint32_t>(st->f_namemax);
  o.st.frsize = static_cast<uint32_t>(st->f_frsize);
  return WriteBody(out, o);
}

int Server::DoAccess(Request& req) {
  fuse_access_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  return ToErrnoOrZero(fs_->Access(req.ctx, req.h.nodeid, in.mask));
}

int Server::DoSetXattr(Request& req) {
  // fuse_setxattr_in is 8 bytes unless FUSE_SETXATTR_EXT was agreed.
  fuse_setxattr_in in{};
  const size_t in_size = (req.session.info.flags & FUSE_SETXATTR_EXT)
                             ? sizeof(in)
                             : FUSE_COMPAT_SETXATTR_IN_SIZE;
  if (!req.args.Read(&in, in_size)) return EINVAL;
  std::string name;
  if (int err = ReadName(req.args, NameKind::kXattr, &name)) return err;
  if (in.size > kXattrSizeMax) return E2BIG;
  std::string value(in.size, '\0');
  if (!req.args.Read(value.data(), value.size())) return EINVAL;
  // setxattr_flags (FUSE_SETXATTR_ACL_KILL_SGID) has no FileSystem
  // parameter yet; only FileSystems that want FUSE_SETXATTR_EXT see it set.
  return ToErrnoOrZero(fs_->SetXattr(req.ctx, req.h.nodeid, name, value, in.flags));
}

int Server::DoGetXattr(Request& req, IovWriter& out, bool list) {
  fuse_getxattr_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  absl::StatusOr<std::string> value;
  if (list) {
    value = fs_->ListXattr(req.ctx, req.h.nodeid);
  } else {
    std::string name;
    if (int err = ReadName(req.args, NameKind::kXattr, &name)) return err;
    value = fs_->GetXattr(req.ctx, req.h.nodeid, name);
  }
  if (!value.ok()) return ToErrno(value.status());
  if (value->size() > kXattrSizeMax) return E2BIG;
  if (in.size == 0) {  // a size query
    fuse_getxattr_out o{};
    o.size = static_cast<uint32_t>(value->size());
    return WriteBody(out, o);
  }
  if (value->size() > in.size) return ERANGE;
  return out.Write(value->data(), value->size()) ? 0 : ERANGE;
}

int Server::DoRemoveXattr(Request& req) {
  std::string name;
  if (int err = ReadName(req.args, NameKind::kXattr, &name)) return err;
  return ToErrnoOrZero(fs_->RemoveXattr(req.ctx, req.h.nodeid, name));
}

int Server::DoFallocate(Request& req) {
  fuse_fallocate_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  return ToErrnoOrZero(
      fs_->Fallocate(req.ctx, req.h.nodeid, in.fh, in.offset, in.length, in.mode));
}

int Server::DoLseek(Request& req, IovWriter& out) {
  fuse_lseek_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  // Linux resolves SEEK_SET/CUR/END itself and sends only these two.
  if (in.whence != SEEK_DATA && in.whence != SEEK_HOLE) return EINVAL;
  absl::StatusOr<uint64_t> off = fs_->Lseek(req.ctx, req.h.nodeid, in.fh, in.offset, in.whence);
  if (!off.ok()) return ToErrno(off.status());
  fuse_lseek_out o{};
  o.offset = *off;
  return WriteBody(out, o);
}

int Server::DoCopyFileRange(Request& req, IovWriter& out) {
  fuse_copy_file_range_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  // The reply carries a 32-bit count (fuse_write_out); Linux already caps
  // len the same way, this keeps any peer's count honest.
  const uint64_t len = std::min<uint64_t>(in.len, std::numeric_limits<uint32_t>::max() & ~4095u);
  absl::StatusOr<size_t> n = fs_->CopyFileRange(req.ctx, req.h.nodeid, in.fh_in, in.off_in,
                                                in.nodeid_out, in.fh_out, in.off_out, len,
                                                in.flags);
  if (!n.ok()) return ToErrno(n.status());
  if (*n > len) return EIO;
  fuse_write_out o{};
  o.size = static_cast<uint32_t>(*n);
  return WriteBody(out, o);
}

int Server::DoGetLk(Request& req, IovWriter& out) {
  fuse_lk_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  FileLock lock{in.lk.start, in.lk.end, in.lk.type, in.lk.pid};
  absl::StatusOr<FileLock> r = fs_->GetLk(req.ctx, req.h.nodeid, in.fh, in.owner, lock);
  if (!r.ok()) return ToErrno(r.status());
  fuse_lk_out o{};
  o.lk.start = r->start;
  o.lk.end = r->end;
  o.lk.type = r->type;
  o.lk.pid = r->pid;
  return WriteBody(out, o);
}

int Server::DoSetLk(Request& req, bool wait) {
  fuse_lk_in in;
  if (!ReadArg(req.args, &in)) return EINVAL;
  FileLock lock{in.lk.start, in.lk.end, in.lk.type, in.lk.pid};
  return ToErrnoOrZero(fs_->SetLk(req.ctx, req.h.nodeid, in.fh, in.owner, lock, wait));
}

}  // namespace coherefs::agent::fuse
