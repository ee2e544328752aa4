// Tests of the FUSE server over FakeFileSystem: raw requests built byte by
// byte, fed through scatter-gather buffers split at awkward offsets, and the
// exact reply bytes checked.
#include "agent/fuse/server.h"

#include <dirent.h>
#include <errno.h>
#include <linux/fuse.h>
#include <sys/xattr.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "agent/fuse/fake_file_system.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace coherefs::agent::fuse {
namespace {

constexpr uint32_t kUid = 1000;
constexpr uint32_t kGid = 1001;
constexpr uint32_t kPid = 42;

template <typename T>
std::string Bytes(const T& obj) {
  return std::string(reinterpret_cast<const char*>(&obj), sizeof(obj));
}

// A FUSE request assembled byte by byte.
class Req {
 public:
  Req(uint32_t opcode, uint64_t nodeid, uint64_t unique = 77)
      : opcode_(opcode), nodeid_(nodeid), unique_(unique) {}
  template <typename T>
  Req& Add(const T& obj) {
    body_ += Bytes(obj);
    return *this;
  }
  Req& Name(const std::string& name) {
    body_ += name;
    body_.push_back('\0');
    return *this;
  }
  Req& Raw(const std::string& bytes) {
    body_ += bytes;
    return *this;
  }
  // The wire bytes; `len_delta` skews the header's len field.
  std::string Build(int64_t len_delta = 0) const {
    fuse_in_header h{};
    h.len = static_cast<uint32_t>(sizeof(h) + body_.size() + len_delta);
    h.opcode = opcode_;
    h.unique = unique_;
    h.nodeid = nodeid_;
    h.uid = kUid;
    h.gid = kGid;
    h.pid = kPid;
    return Bytes(h) + body_;
  }

 private:
  uint32_t opcode_;
  uint64_t nodeid_;
  uint64_t unique_;
  std::string body_;
};

std::string Header(uint64_t unique, int error, size_t body_len) {
  fuse_out_header h{};
  h.len = static_cast<uint32_t>(sizeof(h) + body_len);
  h.error = error;
  h.unique = unique;
  return Bytes(h);
}
std::string Ok(const std::string& body, uint64_t unique = 77) {
  return Header(unique, 0, body.size()) + body;
}
std::string Err(int err, uint64_t unique = 77) { return Header(unique, -err, 0); }

struct Result {
  size_t returned = 0;
  std::string reply;  // the first `returned` bytes written
};

// The expected fuse_attr for a struct stat, written independently of the
// server's encoder.
fuse_attr AttrOf(const struct stat& st) {
  fuse_attr a{};
  a.ino = st.st_ino;
  a.size = st.st_size;
  a.blocks = st.st_blocks;
  a.atime = st.st_atim.tv_sec;
  a.mtime = st.st_mtim.tv_sec;
  a.ctime = st.st_ctim.tv_sec;
  a.atimensec = st.st_atim.tv_nsec;
  a.mtimensec = st.st_mtim.tv_nsec;
  a.ctimensec = st.st_ctim.tv_nsec;
  a.mode = st.st_mode;
  a.nlink = st.st_nlink;
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = st.st_rdev;
  a.blksize = st.st_blksize;
  return a;
}

fuse_entry_out EntryOf(uint64_t nodeid, const struct stat& st) {
  fuse_entry_out e{};
  e.nodeid = nodeid;
  e.generation = 7;
  e.entry_valid = 1;  // FakeFileSystem::kEntryTimeout = 1.5 s
  e.entry_valid_nsec = 500000000;
  e.attr_valid = 2;  // kAttrTimeout = 2.25 s
  e.attr_valid_nsec = 250000000;
  e.attr = AttrOf(st);
  return e;
}

fuse_attr_out AttrOutOf(const struct stat& st) {
  fuse_attr_out o{};
  o.attr_valid = 2;
  o.attr_valid_nsec = 250000000;
  o.attr = AttrOf(st);
  return o;
}

fuse_init_in InitIn(uint32_t major, uint32_t minor, uint64_t flags) {
  fuse_init_in in{};
  in.major = major;
  in.minor = minor;
  in.max_readahead = 131072;
  in.flags = static_cast<uint32_t>(flags);
  in.flags2 = static_cast<uint32_t>(flags >> 32);
  return in;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hello_ = fs_.AddFile(kRootInode, "hello", "hello world");
    sub_ = fs_.AddDir(kRootInode, "sub");
    a_ = fs_.AddFile(sub_, "a", "A");
    link_ = fs_.AddSymlink(kRootInode, "link", "hello");
    fs_.AddXattr(hello_, "user.color", "blue");
    fs_.AddXattr(hello_, "user.size", "L");
  }

  // Runs one request: the input split into three buffers at uneven
  // offsets, the reply buffer (out_size bytes) into 7, 20 and the rest.
  Result Run(const std::string& request, size_t out_size = 8192) {
    std::vector<std::string> in_parts;
    size_t a = std::min(request.size(), request.size() / 3 + 1);
    size_t b = std::min(request.size(), a + request.size() / 3 + 3);
    in_parts = {request.substr(0, a), request.substr(a, b - a), request.substr(b)};
    std::vector<iovec> in_iov;
    for (std::string& p : in_parts) in_iov.push_back({p.data(), p.size()});
    std::vector<std::string> out_parts;
    size_t first = std::min<size_t>(7, out_size);
    size_t second = std::min<size_t>(20, out_size - first);
    out_parts = {std::string(first, '\xee'), std::string(second, '\xee'),
                 std::string(out_size - first - second, '\xee')};
    std::vector<iovec> out_iov;
    for (std::string& p : out_parts) out_iov.push_back({p.data(), p.size()});
    IovReader in(in_iov);
    IovWriter out(out_iov);
    Result r;
    r.returned = server_.HandleRequest(in, out);
    std::string all = out_parts[0] + out_parts[1] + out_parts[2];
    r.reply = all.substr(0, std::min(r.returned, all.size()));
    EXPECT_LE(r.returned, out.written());
    return r;
  }

  std::string Reply(const Req& req, size_t out_size = 8192) {
    Result r = Run(req.Build(), out_size);
    EXPECT_EQ(r.returned, r.reply.size());
    return r.reply;
  }

  void Init(uint64_t flags = FUSE_INIT_EXT | FUSE_MAX_PAGES) {
    ASSERT_EQ(Run(Req(FUSE_INIT, 0, 1).Add(InitIn(7, 38, flags)).Build()).reply.size(),
              sizeof(fuse_out_header) + sizeof(fuse_init_out));
  }

  uint64_t Open(InodeId inode) {
    fuse_open_in in{};
    in.flags = O_RDWR;
    std::string r = Reply(Req(FUSE_OPEN, inode).Add(in));
    fuse_open_out o;
    EXPECT_EQ(r.size(), sizeof(fuse_out_header) + sizeof(o));
    std::memcpy(&o, r.data() + sizeof(fuse_out_header), sizeof(o));
    return o.fh;
  }

  uint64_t OpenDir(InodeId inode) {
    std::string r = Reply(Req(FUSE_OPENDIR, inode).Add(fuse_open_in{}));
    fuse_open_out o;
    EXPECT_EQ(r.size(), sizeof(fuse_out_header) + sizeof(o));
    std::memcpy(&o, r.data() + sizeof(fuse_out_header), sizeof(o));
    EXPECT_EQ(o.open_flags, static_cast<uint32_t>(FOPEN_CACHE_DIR));
    return o.fh;
  }

  FakeFileSystem fs_;
  Server server_{&fs_};
  InodeId hello_ = 0, sub_ = 0, a_ = 0, link_ = 0;
};

// --- INIT negotiation -------------------------------------------------------

TEST_F(ServerTest, InitSameMinorNegotiatesIntersectionOfFlags) {
  fs_.set_wanted_flags(FUSE_DO_READDIRPLUS | FUSE_WRITEBACK_CACHE | FUSE_SECURITY_CTX |
                       FUSE_HAS_INODE_DAX);
  const uint64_t guest = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES |
                         FUSE_INIT_EXT | FUSE_SECURITY_CTX | FUSE_HAS_INODE_DAX;
  std::string r = Reply(Req(FUSE_INIT, 0, 5).Add(InitIn(7, 38, guest)));
  fuse_init_out o{};
  o.major = 7;
  o.minor = 38;
  o.max_readahead = 131072;
  // WRITEBACK_CACHE: the guest did not offer it. SECURITY_CTX, DAX: never.
  o.flags = FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES | FUSE_INIT_EXT;
  o.flags2 = 0;
  o.max_background = 64;
  o.congestion_threshold = 48;
  o.max_write = 1 << 20;
  o.time_gran = 1;
  o.max_pages = 256;
  EXPECT_EQ(r, Ok(Bytes(o), 5));
  EXPECT_EQ(fs_.init_calls(), 1);
  EXPECT_EQ(fs_.init_info().minor, 38u);
  EXPECT_EQ(fs_.init_info().flags,
            static_cast<uint64_t>(FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES | FUSE_INIT_EXT));
  EXPECT_EQ(server_.session().max_write, 1u << 20);
}

TEST_F(ServerTest, InitHighFlagsTravelInFlags2) {
  fs_.set_wanted_flags(FUSE_HAS_EXPIRE_ONLY);
  std::string r = Reply(Req(FUSE_INIT, 0).Add(
      InitIn(7, 38, FUSE_INIT_EXT | FUSE_HAS_EXPIRE_ONLY)));
  fuse_init_out o;
  ASSERT_EQ(r.size(), sizeof(fuse_out_header) + sizeof(o));
  std::memcpy(&o, r.data() + sizeof(fuse_out_header), sizeof(o));
  EXPECT_EQ(o.flags, static_cast<uint32_t>(FUSE_INIT_EXT));
  EXPECT_EQ(o.flags2, static_cast<uint32_t>(FUSE_HAS_EXPIRE_ONLY >> 32));
}

TEST_F(ServerTest, InitNewerGuestMinorGetsOurs) {
  std::string r = Reply(Req(FUSE_INIT, 0).Add(InitIn(7, 44, FUSE_MAX_PAGES)));
  fuse_init_out o;
  ASSERT_EQ(r.size(), sizeof(fuse_out_header) + sizeof(o));
  std::memcpy(&o, r.data() + sizeof(fuse_out_header), sizeof(o));
  EXPECT_EQ(o.major, 7u);
  EXPECT_EQ(o.minor, 38u);
  EXPECT_EQ(o.flags, static_cast<uint32_t>(FUSE_MAX_PAGES));
  EXPECT_EQ(o.max_pages, 256);
}

TEST_F(ServerTest, InitOlderGuestMinorGetsTheirsAndNoFlags2) {
  // A 7.31 kernel (Linux 5.4..5.9) sends the 16-byte fuse_init_in.
  fuse_init_in in = InitIn(7, 31, FUSE_MAX_PAGES | FUSE_ASYNC_READ);
  fs_.set_wanted_flags(FUSE_ASYNC_READ | FUSE_HAS_EXPIRE_ONLY);
  std::string r = Reply(Req(FUSE_INIT, 0).Raw(Bytes(in).substr(0, 16)));
  fuse_init_out o;
  ASSERT_EQ(r.size(), sizeof(fuse_out_header) + sizeof(o));
  std::memcpy(&o, r.data() + sizeof(fuse_out_header), sizeof(o));
  EXPECT_EQ(o.minor, 31u);
  EXPECT_EQ(o.flags, static_cast<uint32_t>(FUSE_MAX_PAGES | FUSE_ASYNC_READ));
  EXPECT_EQ(o.flags2, 0u);
  EXPECT_EQ(fs_.init_info().minor, 31u);
}

TEST_F(ServerTest, InitBefore723GetsThe24ByteReply) {
  std::string r = Reply(Req(FUSE_INIT, 0).Raw(Bytes(InitIn(7, 20, 0)).substr(0, 16)));
  ASSERT_EQ(r.size(), sizeof(fuse_out_header) + FUSE_COMPAT_22_INIT_OUT_SIZE);
  fuse_init_out o{};
  std::memcpy(&o, r.data() + sizeof(fuse_out_header), FUSE_COMPAT_22_INIT_OUT_SIZE);
  EXPECT_EQ(o.minor, 20u);
  EXPECT_EQ(o.max_write, 1u << 20);
  EXPECT_EQ(Header(77, 0, FUSE_COMPAT_22_INIT_OUT_SIZE), r.substr(0, 16));
}

TEST_F(ServerTest, InitTooOldMinorIsRefused) {
  EXPECT_EQ(Reply(Req(FUSE_INIT, 0).Add(InitIn(7, 11, 0))), Err(EPROTO));
  EXPECT_EQ(fs_.init_calls(), 0);
  EXPECT_EQ(Reply(Req(FUSE_GETATTR, 1).Add(fuse_getattr_in{})), Err(EIO));
}

TEST_F(ServerTest, InitMajor8GetsOurVersionAndMayRetry) {
  std::string r = Reply(Req(FUSE_INIT, 0).Add(InitIn(8, 2, 0)));
  uint32_t version[2] = {7, 38};
  EXPECT_EQ(r, Ok(std::string(reinterpret_cast<char*>(version), 8)));
  EXPECT_EQ(fs_.init_calls(), 0);
  // Still before INIT: the retry with major 7 is accepted.
  EXPECT_EQ(Reply(Req(FUSE_GETATTR, 1).Add(fuse_getattr_in{})), Err(EIO));
  EXPECT_EQ(Reply(Req(FUSE_INIT, 0).Add(InitIn(7, 38, 0))).size(),
            sizeof(fuse_out_header) + sizeof(fuse_init_out));
  EXPECT_EQ(fs_.init_calls(), 1);
}

TEST_F(ServerTest, InitMajor6IsRefused) {
  EXPECT_EQ(Reply(Req(FUSE_INIT, 0).Add(InitIn(6, 40, 0))), Err(EPROTO));
  EXPECT_EQ(fs_.init_calls(), 0);
}

TEST_F(ServerTest, SecondInitIsRefused) {
  Init();
  EXPECT_EQ(Reply(Req(FUSE_INIT, 0).Add(InitIn(7, 38, 0))), Err(EPROTO));
  EXPECT_EQ(fs_.init_calls(), 1);
}

TEST_F(ServerTest, InitFailureInFileSystemLeavesSessionUninitialised) {
  fs_.set_init_errno(ENOMEM);
  EXPECT_EQ(Reply(Req(FUSE_INIT, 0).Add(InitIn(7, 38, 0))), Err(ENOMEM));
  EXPECT_EQ(Reply(Req(FUSE_STATFS, 1)), Err(EIO));
  fs_.set_init_errno(0);
  Init();
  EXPECT_EQ(server_.session().minor, 38u);
}

TEST_F(ServerTest, InitShorterThanMajorMinorIsInvalid) {
  EXPECT_EQ(Reply(Req(FUSE_INIT, 0).Raw(std::string(4, '\x07'))), Err(EINVAL));
}

TEST_F(ServerTest, MaxWriteOptionIsClampedAndSetsMaxPages) {
  Server::Options options;
  options.max_write = 100;  // below the 4096 floor
  Server small(&fs_, options);
  std::string req = Req(FUSE_INIT, 0).Add(InitIn(7, 38, FUSE_MAX_PAGES)).Build();
  std::string buf(512, '\0');
  IovReader in({{req.data(), req.size()}});
  IovWriter out({{buf.data(), buf.size()}});
  ASSERT_EQ(small.HandleRequest(in, out), sizeof(fuse_out_header) + sizeof(fuse_init_out));
  fuse_init_out o;
  std::memcpy(&o, buf.data() + sizeof(fuse_out_header), sizeof(o));
  EXPECT_EQ(o.max_write, 4096u);
  EXPECT_EQ(o.max_pages, 1);
}

// --- Session state -----------------------------------------------------------

TEST_F(ServerTest, RequestsBeforeInitGetEio) {
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name("hello")), Err(EIO));
  EXPECT_EQ(Reply(Req(FUSE_IOCTL, 1)), Err(EIO));
  fuse_forget_in forget{1};
  EXPECT_EQ(Run(Req(FUSE_FORGET, hello_).Add(forget).Build()).returned, 0u);
  fuse_interrupt_in intr{5};
  EXPECT_EQ(Run(Req(FUSE_INTERRUPT, 0).Add(intr).Build()).returned, 0u);
}

TEST_F(ServerTest, DestroyEndsTheSessionAndAllowsANewInit) {
  Init();
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name("hello")).size(),
            sizeof(fuse_out_header) + sizeof(fuse_entry_out));
  EXPECT_EQ(fs_.lookups(hello_), 1u);
  EXPECT_EQ(Reply(Req(FUSE_DESTROY, 0)), Ok(""));
  EXPECT_EQ(fs_.destroy_calls(), 1);
  EXPECT_EQ(fs_.lookups(hello_), 0u);
  EXPECT_EQ(Reply(Req(FUSE_STATFS, 1)), Err(EIO));
  Init();
  EXPECT_EQ(fs_.init_calls(), 2);
}

TEST_F(ServerTest, ShutdownDestroysOnlyAnInitialisedSession) {
  server_.Shutdown();
  EXPECT_EQ(fs_.destroy_calls(), 0);
  Init();
  server_.Shutdown();
  EXPECT_EQ(fs_.destroy_calls(), 1);
  EXPECT_EQ(server_.session().major, 0u);
  EXPECT_EQ(Reply(Req(FUSE_STATFS, 1)), Err(EIO));
}

TEST_F(ServerTest, ContextComesFromTheHeader) {
  Init();
  Reply(Req(FUSE_LOOKUP, 1, 991).Name("hello"));
  Context ctx = fs_.last_context();
  EXPECT_EQ(ctx.uid, kUid);
  EXPECT_EQ(ctx.gid, kGid);
  EXPECT_EQ(ctx.pid, kPid);
  EXPECT_EQ(ctx.unique, 991u);
}

// --- Names and entries ----------------------------------------------------------

TEST_F(ServerTest, LookupReplyBytes) {
  Init();
  std::string r = Reply(Req(FUSE_LOOKUP, 1).Name("hello"));
  EXPECT_EQ(r, Ok(Bytes(EntryOf(hello_, fs_.Stat(hello_)))));
  // And the fields, spelled out once.
  fuse_entry_out e;
  std::memcpy(&e, r.data() + 16, sizeof(e));
  EXPECT_EQ(e.nodeid, hello_);
  EXPECT_EQ(e.attr.ino, hello_);
  EXPECT_EQ(e.attr.size, 11u);
  EXPECT_EQ(e.attr.blocks, 1u);
  EXPECT_EQ(e.attr.mode, static_cast<uint32_t>(S_IFREG | 0644));
  EXPECT_EQ(e.attr.nlink, 1u);
  EXPECT_EQ(e.attr.mtime, 1700000000u);
  EXPECT_EQ(e.attr.blksize, 4096u);
  EXPECT_EQ(e.entry_valid, 1u);
  EXPECT_EQ(e.entry_valid_nsec, 500000000u);
  EXPECT_EQ(fs_.lookups(hello_), 1u);
}

TEST_F(ServerTest, LookupMissAndNegativeEntry) {
  Init();
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name("nope")), Err(ENOENT));
  fs_.set_negative_timeout(3.0);
  fuse_entry_out neg{};
  neg.entry_valid = 3;
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name("nope")), Ok(Bytes(neg)));
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 999).Name("x")), Err(ESTALE));
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, hello_).Name("x")), Err(ENOTDIR));
}

TEST_F(ServerTest, NameRules) {
  Init();
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name(std::string(255, 'n'))), Err(ENOENT));
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name(std::string(256, 'n'))), Err(ENAMETOOLONG));
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name("a/b")), Err(EINVAL));
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name("")), Err(EINVAL));
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Raw("hello")), Err(EINVAL));  // no NUL
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Raw(std::string(4000, 'x'))), Err(ENAMETOOLONG));
  // ".." reaches the file system for LOOKUP (NFS export), never for creates.
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name("..")), Err(ENOENT));
  EXPECT_EQ(Reply(Req(FUSE_MKDIR, 1).Add(fuse_mkdir_in{0755, 0}).Name("..")), Err(EINVAL));
  EXPECT_EQ(Reply(Req(FUSE_UNLINK, 1).Name(".")), Err(EINVAL));
  // Trailing bytes after the NUL are ignored.
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name("hello").Raw("junk")).size(),
            sizeof(fuse_out_header) + sizeof(fuse_entry_out));
}

TEST_F(ServerTest, ForgetAndBatchForgetGetNoReply) {
  Init();
  Reply(Req(FUSE_LOOKUP, 1).Name("hello"));
  Reply(Req(FUSE_LOOKUP, 1).Name("hello"));
  Reply(Req(FUSE_LOOKUP, 1).Name("sub"));
  Reply(Req(FUSE_LOOKUP, sub_).Name("a"));
  ASSERT_EQ(fs_.lookups(hello_), 2u);
  Result r = Run(Req(FUSE_FORGET, hello_).Add(fuse_forget_in{1}).Build());
  EXPECT_EQ(r.returned, 0u);
  EXPECT_EQ(fs_.lookups(hello_), 1u);

  fuse_batch_forget_in batch{3, 0};
  fuse_forget_one one{hello_, 1}, two{sub_, 1};
  // The third record is cut short: only the two whole ones count.
  r = Run(Req(FUSE_BATCH_FORGET, 0).Add(batch).Add(one).Add(two).Raw("12345").Build());
  EXPECT_EQ(r.returned, 0u);
  EXPECT_EQ(fs_.lookups(hello_), 0u);
  EXPECT_EQ(fs_.lookups(sub_), 0u);
  EXPECT_EQ(fs_.lookups(a_), 1u);
}

TEST_F(ServerTest, GetAttrWithAndWithoutHandle) {
  Init();
  EXPECT_EQ(Reply(Req(FUSE_GETATTR, hello_).Add(fuse_getattr_in{})),
            Ok(Bytes(AttrOutOf(fs_.Stat(hello_)))));
  uint64_t fh = Open(hello_);
  fuse_getattr_in in{FUSE_GETATTR_FH, 0, fh};
  EXPECT_EQ(Reply(Req(FUSE_GETATTR, hello_).Add(in)), Ok(Bytes(AttrOutOf(fs_.Stat(hello_)))));
  in.fh = fh + 1000;
  EXPECT_EQ(Reply(Req(FUSE_GETATTR, hello_).Add(in)), Err(EBADF));
  // Without FUSE_GETATTR_FH the handle is not looked at.
  in.getattr_flags = 0;
  EXPECT_EQ(Reply(Req(FUSE_GETATTR, hello_).Add(in)).size(), 16 + sizeof(fuse_attr_out));
}

TEST_F(ServerTest, SetAttrTruncatesAndChmods) {
  Init();
  fuse_setattr_in in{};
  in.valid = FATTR_SIZE | FATTR_MODE | FATTR_MTIME;
  in.size = 5;
  in.mode = S_IFREG | 0600;
  in.mtime = 1234;
  in.mtimensec = 5678;
  std::string r = Reply(Req(FUSE_SETATTR, hello_).Add(in));
  struct stat st = fs_.Stat(hello_);
  EXPECT_EQ(st.st_size, 5);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFREG | 0600));
  EXPECT_EQ(st.st_mtim.tv_sec, 1234);
  EXPECT_EQ(st.st_mtim.tv_nsec, 5678);
  EXPECT_EQ(r, Ok(Bytes(AttrOutOf(st))));
  EXPECT_EQ(fs_.data(hello_), "hello");
  EXPECT_EQ(Reply(Req(FUSE_SETATTR, hello_).Raw(std::string(80, '\0'))), Err(EINVAL));
}

TEST_F(ServerTest, ReadLink) {
  Init();
  EXPECT_EQ(Reply(Req(FUSE_READLINK, link_)), Ok("hello"));
  EXPECT_EQ(Reply(Req(FUSE_READLINK, hello_)), Err(EINVAL));
  EXPECT_EQ(Reply(Req(FUSE_READLINK, link_), 20), Err(ERANGE));
}

TEST_F(ServerTest, SymlinkCreatesWithTarget) {
  Init();
  std::string r = Reply(Req(FUSE_SYMLINK, 1).Name("ln2").Name("sub/a"));
  InodeId id = fs_.Child(1, "ln2");
  ASSERT_NE(id, 0u);
  EXPECT_EQ(r, Ok(Bytes(EntryOf(id, fs_.Stat(id)))));
  EXPECT_EQ(fs_.data(id), "sub/a");
  EXPECT_EQ(fs_.Stat(id).st_uid, kUid);
  EXPECT_EQ(Reply(Req(FUSE_SYMLINK, 1).Name("ln3").Name(std::string(4096, 't'))),
            Err(ENAMETOOLONG));
  EXPECT_EQ(Reply(Req(FUSE_SYMLINK, 1).Name("ln3").Raw("target")), Err(EINVAL));
  EXPECT_EQ(Reply(Req(FUSE_SYMLINK, 1).Name("ln2").Name("x")), Err(EEXIST));
}

TEST_F(ServerTest, MknodAppliesUmask) {
  Init();
  fuse_mknod_in in{S_IFREG | 0666, 0, 022, 0};
  std::string r = Reply(Req(FUSE_MKNOD, 1).Add(in).Name("node"));
  InodeId id = fs_.Child(1, "node");
  ASSERT_NE(id, 0u);
  EXPECT_EQ(fs_.Stat(id).st_mode, static_cast<mode_t>(S_IFREG | 0644));
  EXPECT_EQ(r, Ok(Bytes(EntryOf(id, fs_.Stat(id)))));
  in.mode = S_IFCHR | 0600;
  EXPECT_EQ(Reply(Req(FUSE_MKNOD, 1).Add(in).Name("chr")), Err(EPERM));
  // The 8-byte pre-7.12 fuse_mknod_in is too short.
  EXPECT_EQ(Reply(Req(FUSE_MKNOD, 1).Raw(Bytes(in).substr(0, 8)).Name("x")), Err(EINVAL));
}

TEST_F(ServerTest, MkdirAndRmdir) {
  Init();
  std::string r = Reply(Req(FUSE_MKDIR, 1).Add(fuse_mkdir_in{0777, 077}).Name("d"));
  InodeId id = fs_.Child(1, "d");
  ASSERT_NE(id, 0u);
  EXPECT_EQ(fs_.Stat(id).st_mode, static_cast<mode_t>(S_IFDIR | 0700));
  EXPECT_EQ(r, Ok(Bytes(EntryOf(id, fs_.Stat(id)))));
  EXPECT_EQ(Reply(Req(FUSE_RMDIR, 1).Name("sub")), Err(ENOTEMPTY));
  EXPECT_EQ(Reply(Req(FUSE_RMDIR, 1).Name("hello")), Err(ENOTDIR));
  EXPECT_EQ(Reply(Req(FUSE_RMDIR, 1).Name("d")), Ok(""));
  EXPECT_EQ(fs_.Child(1, "d"), 0u);
  EXPECT_EQ(Reply(Req(FUSE_MKDIR, 1).Raw("\1\2\3")), Err(EINVAL));
}

TEST_F(ServerTest, Unlink) {
  Init();
  EXPECT_EQ(Reply(Req(FUSE_UNLINK, 1).Name("sub")), Err(EISDIR));
  EXPECT_EQ(Reply(Req(FUSE_UNLINK, 1).Name("hello")), Ok(""));
  EXPECT_EQ(fs_.Child(1, "hello"), 0u);
  EXPECT_EQ(Reply(Req(FUSE_UNLINK, 1).Name("hello")), Err(ENOENT));
}

TEST_F(ServerTest, RenameAndRename2) {
  Init();
  EXPECT_EQ(Reply(Req(FUSE_RENAME, 1).Add(fuse_rename_in{sub_}).Name("hello").Name("moved")),
            Ok(""));
  EXPECT_EQ(fs_.Child(sub_, "moved"), hello_);
  fuse_rename2_in r2{1, RENAME_NOREPLACE, 0};
  EXPECT_EQ(Reply(Req(FUSE_RENAME2, sub_).Add(r2).Name("moved").Name("link")), Err(EEXIST));
  r2.flags = RENAME_EXCHANGE;
  EXPECT_EQ(Reply(Req(FUSE_RENAME2, sub_).Add(r2).Name("moved").Name("link")), Ok(""));
  EXPECT_EQ(fs_.Child(1, "link"), hello_);
  EXPECT_EQ(fs_.Child(sub_, "moved"), link_);
  // Missing new name.
  EXPECT_EQ(Reply(Req(FUSE_RENAME, 1).Add(fuse_rename_in{1}).Name("link")), Err(EINVAL));
  EXPECT_EQ(Reply(Req(FUSE_RENAME2, 1).Add(fuse_rename_in{1}).Name("a").Name("b")),
            Err(EINVAL));  // fuse_rename2_in is 16 bytes: "a\0b\0" is eaten, no names left
}

TEST_F(ServerTest, LinkAddsAName) {
  Init();
  std::string r = Reply(Req(FUSE_LINK, sub_).Add(fuse_link_in{hello_}).Name("hard"));
  EXPECT_EQ(fs_.Child(sub_, "hard"), hello_);
  EXPECT_EQ(fs_.Stat(hello_).st_nlink, 2u);
  EXPECT_EQ(r, Ok(Bytes(EntryOf(hello_, fs_.Stat(hello_)))));
  EXPECT_EQ(Reply(Req(FUSE_LINK, 1).Add(fuse_link_in{sub_}).Name("dirlink")), Err(EPERM));
}

// --- Files -----------------------------------------------------------------

TEST_F(ServerTest, OpenReadWriteFlushFsyncRelease) {
  Init();
  fuse_open_in oin{O_RDWR, 0};
  std::string r = Reply(Req(FUSE_OPEN, hello_).Add(oin));
  fuse_open_out oo;
  ASSERT_EQ(r.size(), 16 + sizeof(oo));
  std::memcpy(&oo, r.data() + 16, sizeof(oo));
  EXPECT_EQ(r, Ok(Bytes(fuse_open_out{oo.fh, FOPEN_KEEP_CACHE, 0})));
  const uint64_t fh = oo.fh;

  fuse_read_in rin{};
  rin.fh = fh;
  rin.offset = 6;
  rin.size = 100;
  EXPECT_EQ(Reply(Req(FUSE_READ, hello_).Add(rin)), Ok("world"));
  rin.offset = 50;
  EXPECT_EQ(Reply(Req(FUSE_READ, hello_).Add(rin)), Ok(""));
  // The whole reply must fit: 100 bytes do not fit 16 + 64.
  rin.offset = 0;
  EXPECT_EQ(Reply(Req(FUSE_READ, hello_).Add(rin), 80), Err(ERANGE));
  rin.fh = 12345;
  EXPECT_EQ(Reply(Req(FUSE_READ, hello_).Add(rin)), Err(EBADF));

  fuse_write_in win{};
  win.fh = fh;
  win.offset = 6;
  win.size = 6;
  EXPECT_EQ(Reply(Req(FUSE_WRITE, hello_).Add(win).Raw("there!")),
            Ok(Bytes(fuse_write_out{6, 0})));
  EXPECT_EQ(fs_.data(hello_), "hello there!");
  // Payload shorter or longer than size.
  EXPECT_EQ(Reply(Req(FUSE_WRITE, hello_).Add(win).Raw("abc")), Err(EINVAL));
  EXPECT_EQ(Reply(Req(FUSE_WRITE, hello_).Add(win).Raw("abcdefgh")), Err(EINVAL));
  EXPECT_EQ(fs_.data(hello_), "hello there!");

  fuse_flush_in fin{fh, 0, 0, 9};
  EXPECT_EQ(Reply(Req(FUSE_FLUSH, hello_).Add(fin)), Ok(""));
  fuse_fsync_in sin{fh, 1, 0};
  EXPECT_EQ(Reply(Req(FUSE_FSYNC, hello_).Add(sin)), Ok(""));
  fuse_release_in rel{fh, O_RDWR, FUSE_RELEASE_FLUSH, 9};
  EXPECT_EQ(Reply(Req(FUSE_RELEASE, hello_).Add(rel)), Ok(""));
  EXPECT_EQ(fs_.open_handles(), 0u);
  EXPECT_EQ(Reply(Req(FUSE_RELEASE, hello_).Add(rel)), Err(EBADF));
  EXPECT_EQ(Reply(Req(FUSE_FSYNC, hello_).Add(sin)), Err(EBADF));
  EXPECT_EQ(Reply(Req(FUSE_FLUSH, hello_).Add(fin)), Err(EBADF));
  EXPECT_EQ(Reply(Req(FUSE_OPEN, sub_).Add(oin)), Err(EISDIR));
}

TEST_F(ServerTest, ReadSpanningScatteredReplyBuffers) {
  Init();
  std::string big(3000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  InodeId id = fs_.AddFile(1, "big", big);
  uint64_t fh = Open(id);
  fuse_read_in rin{};
  rin.fh = fh;
  rin.offset = 1;
  rin.size = 2999;
  // Reply buffer splits at 7 and 27: the data starts in the second piece.
  EXPECT_EQ(Reply(Req(FUSE_READ, id).Add(rin), 16 + 2999), Ok(big.substr(1)));
}

TEST_F(ServerTest, CreateRepliesEntryAndOpen) {
  Init();
  fuse_create_in cin{O_CREAT | O_RDWR, 0666, 002, 0};
  std::string r = Reply(Req(FUSE_CREATE, sub_).Add(cin).Name("new"));
  InodeId id = fs_.Child(sub_, "new");
  ASSERT_NE(id, 0u);
  EXPECT_EQ(fs_.Stat(id).st_mode, static_cast<mode_t>(S_IFREG | 0664));
  ASSERT_EQ(r.size(), 16 + sizeof(fuse_entry_out) + sizeof(fuse_open_out));
  fuse_open_out oo;
  std::memcpy(&oo, r.data() + 16 + sizeof(fuse_entry_out), sizeof(oo));
  EXPECT_EQ(r, Ok(Bytes(EntryOf(id, fs_.Stat(id))) + Bytes(fuse_open_out{oo.fh, 0, 0})));
  EXPECT_EQ(fs_.open_handles(), 1u);
  EXPECT_EQ(Reply(Req(FUSE_CREATE, sub_).Add(cin).Name("new")), Err(EEXIST));
  // Reply room is checked before the file is created.
  EXPECT_EQ(Reply(Req(FUSE_CREATE, sub_).Add(cin).Name("new2"), 100), Err(ERANGE));
  EXPECT_EQ(fs_.Child(sub_, "new2"), 0u);
}

TEST_F(ServerTest, FallocateLseekCopyFileRange) {
  Init();
  uint64_t fh = Open(hello_);
  fuse_fallocate_in fa{fh, 0, 20, 0, 0};
  EXPECT_EQ(Reply(Req(FUSE_FALLOCATE, hello_).Add(fa)), Ok(""));
  EXPECT_EQ(fs_.Stat(hello_).st_size, 20);
  fa.mode = 3;
  EXPECT_EQ(Reply(Req(FUSE_FALLOCATE, hello_).Add(fa)), Err(EOPNOTSUPP));

  fuse_lseek_in ls{fh, 4, SEEK_DATA, 0};
  EXPECT_EQ(Reply(Req(FUSE_LSEEK, hello_).Add(ls)), Ok(Bytes(fuse_lseek_out{4})));
  ls.whence = SEEK_HOLE;
  EXPECT_EQ(Reply(Req(FUSE_LSEEK, hello_).Add(ls)), Ok(Bytes(fuse_lseek_out{20})));
  ls.offset = 20;
  EXPECT_EQ(Reply(Req(FUSE_LSEEK, hello_).Add(ls)), Err(ENXIO));
  ls.whence = SEEK_END;
  EXPECT_EQ(Reply(Req(FUSE_LSEEK, hello_).Add(ls)), Err(EINVAL));

  uint64_t afh = Open(a_);
  fuse_copy_file_range_in cp{};
  cp.fh_in = fh;
  cp.off_in = 0;
  cp.nodeid_out = a_;
  cp.fh_out = afh;
  cp.off_out = 1;
  cp.len = 5;
  EXPECT_EQ(Reply(Req(FUSE_COPY_FILE_RANGE, hello_).Add(cp)), Ok(Bytes(fuse_write_out{5, 0})));
  EXPECT_EQ(fs_.data(a_), "Ahello");
  cp.fh_out = 999;
  EXPECT_EQ(Reply(Req(FUSE_COPY_FILE_RANGE, hello_).Add(cp)), Err(EBADF));
}

TEST_F(ServerTest, PosixLocks) {
  Init();
  uint64_t fh = Open(hello_);
  fuse_lk_in lk{};
  lk.fh = fh;
  lk.owner = 1;
  lk.lk = {0, 99, F_WRLCK, 500};
  EXPECT_EQ(Reply(Req(FUSE_SETLK, hello_).Add(lk)), Ok(""));
  lk.owner = 2;
  lk.lk = {50, 60, F_RDLCK, 600};
  fuse_lk_out held{};
  held.lk = {0, 99, F_WRLCK, 500};
  EXPECT_EQ(Reply(Req(FUSE_GETLK, hello_).Add(lk)), Ok(Bytes(held)));
  EXPECT_EQ(Reply(Req(FUSE_SETLK, hello_).Add(lk)), Err(EAGAIN));
  EXPECT_EQ(Reply(Req(FUSE_SETLKW, hello_).Add(lk)), Err(EDEADLK));
  lk.lk = {200, 300, F_RDLCK, 600};
  fuse_lk_out free_range{};
  free_range.lk = {200, 300, F_UNLCK, 600};
  EXPECT_EQ(Reply(Req(FUSE_GETLK, hello_).Add(lk)), Ok(Bytes(free_range)));
  EXPECT_EQ(Reply(Req(FUSE_SETLK, hello_).Raw(std::string(40, '\0'))), Err(EINVAL));
}

// --- Directories ---------------------------------------------------------------

// One fuse_dirent record, padded to 8 bytes.
std::string Dirent(uint64_t ino, uint64_t off, uint32_t type, const std::string& name) {
  fuse_dirent d{};
  d.ino = ino;
  d.off = off;
  d.namelen = name.size();
  d.type = type;
  std::string rec = Bytes(d) + name;
  rec.resize((rec.size() + 7) / 8 * 8, '\0');
  return rec;
}

TEST_F(ServerTest, ReadDirEncodesAlignedDirents) {
  Init();
  uint64_t fh = OpenDir(1);
  fuse_read_in rin{};
  rin.fh = fh;
  rin.size = 4096;
  std::string expected = Dirent(1, 1, DT_DIR, ".") + Dirent(1, 2, DT_DIR, "..") +
                         Dirent(hello_, 3, DT_REG, "hello") + Dirent(link_, 4, DT_LNK, "link") +
                         Dirent(sub_, 5, DT_DIR, "sub");
  EXPECT_EQ(Reply(Req(FUSE_READDIR, 1).Add(rin)), Ok(expected));
  // Guest size 64 holds "." (32), ".." (32), not "hello" (32 more).
  rin.size = 64;
  EXPECT_EQ(Reply(Req(FUSE_READDIR, 1).Add(rin)),
            Ok(Dirent(1, 1, DT_DIR, ".") + Dirent(1, 2, DT_DIR, "..")));
  // Continue after cookie 2; the reply buffer, not the guest size, limits.
  rin.offset = 2;
  rin.size = 4096;
  EXPECT_EQ(Reply(Req(FUSE_READDIR, 1).Add(rin), 16 + 70),
            Ok(Dirent(hello_, 3, DT_REG, "hello") + Dirent(link_, 4, DT_LNK, "link")));
  rin.offset = 5;
  EXPECT_EQ(Reply(Req(FUSE_READDIR, 1).Add(rin)), Ok(""));
  EXPECT_EQ(Reply(Req(FUSE_READDIR, 1).Add(fuse_read_in{})), Err(EBADF));
  EXPECT_EQ(Reply(Req(FUSE_RELEASEDIR, 1).Add(fuse_release_in{fh, 0, 0, 0})), Ok(""));
  EXPECT_EQ(Reply(Req(FUSE_READDIR, 1).Add(rin)), Err(EBADF));
}

TEST_F(ServerTest, ReadDirPlusCarriesEntriesAndCountsOnlySentLookups) {
  Init();
  uint64_t fh = OpenDir(sub_);
  fuse_read_in rin{};
  rin.fh = fh;
  rin.size = 4096;
  auto plus = [](const fuse_entry_out& e, const std::string& dirent) {
    return Bytes(e) + dirent;
  };
  std::string expected = plus(fuse_entry_out{}, Dirent(sub_, 1, DT_DIR, ".")) +
                         plus(fuse_entry_out{}, Dirent(1, 2, DT_DIR, "..")) +
                         plus(EntryOf(a_, fs_.Stat(a_)), Dirent(a_, 3, DT_REG, "a"));
  EXPECT_EQ(Reply(Req(FUSE_READDIRPLUS, sub_).Add(rin)), Ok(expected));
  EXPECT_EQ(fs_.lookups(a_), 1u);
  // Room for the two dot records only: "a" is refused and its lookup undone.
  rin.size = 2 * (sizeof(fuse_entry_out) + 32);
  EXPECT_EQ(Reply(Req(FUSE_READDIRPLUS, sub_).Add(rin)).size(), 16 + rin.size);
  EXPECT_EQ(fs_.lookups(a_), 1u);
}

TEST_F(ServerTest, FsyncDirAndOpenDirErrors) {
  Init();
  uint64_t fh = OpenDir(sub_);
  EXPECT_EQ(Reply(Req(FUSE_FSYNCDIR, sub_).Add(fuse_fsync_in{fh, 0, 0})), Ok(""));
  EXPECT_EQ(Reply(Req(FUSE_FSYNCDIR, sub_).Add(fuse_fsync_in{fh + 1, 0, 0})), Err(EBADF));
  EXPECT_EQ(Reply(Req(FUSE_OPENDIR, hello_).Add(fuse_open_in{})), Err(ENOTDIR));
}

// --- Misc ----------------------------------------------------------------------

TEST_F(ServerTest, StatFs) {
  Init();
  fuse_statfs_out o{};
  o.st.blocks = 1000;
  o.st.bfree = 600;
  o.st.bavail = 500;
  o.st.files = 100;
  o.st.ffree = 100 - 5;  // root, hello, sub, a, link
  o.st.bsize = 4096;
  o.st.namelen = 255;
  o.st.frsize = 4096;
  EXPECT_EQ(Reply(Req(FUSE_STATFS, 1)), Ok(Bytes(o)));
}

TEST_F(ServerTest, Access) {
  Init();
  EXPECT_EQ(Reply(Req(FUSE_ACCESS, hello_).Add(fuse_access_in{R_OK | W_OK, 0})), Ok(""));
  InodeId ro = fs_.AddFile(1, "ro", "", 0444);
  EXPECT_EQ(Reply(Req(FUSE_ACCESS, ro).Add(fuse_access_in{W_OK, 0})), Err(EACCES));
  EXPECT_EQ(Reply(Req(FUSE_ACCESS, ro).Raw("\1")), Err(EINVAL));
}

TEST_F(ServerTest, XattrSizeQueriesAndErange) {
  Init();
  fuse_getxattr_in q{0, 0};
  EXPECT_EQ(Reply(Req(FUSE_GETXATTR, hello_).Add(q).Name("user.color")),
            Ok(Bytes(fuse_getxattr_out{4, 0})));
  q.size = 3;
  EXPECT_EQ(Reply(Req(FUSE_GETXATTR, hello_).Add(q).Name("user.color")), Err(ERANGE));
  q.size = 4;
  EXPECT_EQ(Reply(Req(FUSE_GETXATTR, hello_).Add(q).Name("user.color")), Ok("blue"));
  EXPECT_EQ(Reply(Req(FUSE_GETXATTR, hello_).Add(q).Name("user.none")), Err(ENODATA));
  EXPECT_EQ(Reply(Req(FUSE_GETXATTR, hello_).Add(q).Name(std::string(256, 'x'))), Err(ERANGE));
  EXPECT_EQ(Reply(Req(FUSE_GETXATTR, hello_).Add(q).Name("")), Err(ERANGE));

  const std::string list = std::string("user.color") + '\0' + "user.size" + '\0';
  q.size = 0;
  EXPECT_EQ(Reply(Req(FUSE_LISTXATTR, hello_).Add(q)),
            Ok(Bytes(fuse_getxattr_out{static_cast<uint32_t>(list.size()), 0})));
  q.size = 10;
  EXPECT_EQ(Reply(Req(FUSE_LISTXATTR, hello_).Add(q)), Err(ERANGE));
  q.size = 4096;
  EXPECT_EQ(Reply(Req(FUSE_LISTXATTR, hello_).Add(q)), Ok(list));
  // The guest's size is fine but the reply buffer is not.
  EXPECT_EQ(Reply(Req(FUSE_LISTXATTR, hello_).Add(q), 30), Err(ERANGE));
}

TEST_F(ServerTest, SetAndRemoveXattr) {
  Init();
  fuse_setxattr_in in{};
  in.size = 3;
  in.flags = XATTR_CREATE;
  // Without FUSE_SETXATTR_EXT the struct is the 8-byte compat one.
  std::string compat = Bytes(in).substr(0, FUSE_COMPAT_SETXATTR_IN_SIZE);
  EXPECT_EQ(Reply(Req(FUSE_SETXATTR, hello_).Raw(compat).Name("user.new").Raw(std::string("v\0w", 3))),
            Ok(""));
  fuse_getxattr_in q{16, 0};
  EXPECT_EQ(Reply(Req(FUSE_GETXATTR, hello_).Add(q).Name("user.new")),
            Ok(std::string("v\0w", 3)));
  EXPECT_EQ(Reply(Req(FUSE_SETXATTR, hello_).Raw(compat).Name("user.new").Raw("abc")),
            Err(EEXIST));
  // Value shorter than declared.
  EXPECT_EQ(Reply(Req(FUSE_SETXATTR, hello_).Raw(compat).Name("user.x").Raw("ab")), Err(EINVAL));
  in.size = 65537;
  EXPECT_EQ(Reply(Req(FUSE_SETXATTR, hello_)
                      .Raw(Bytes(in).substr(0, FUSE_COMPAT_SETXATTR_IN_SIZE))
                      .Name("user.x")),
            Err(E2BIG));
  EXPECT_EQ(Reply(Req(FUSE_REMOVEXATTR, hello_).Name("user.new")), Ok(""));
  EXPECT_EQ(Reply(Req(FUSE_REMOVEXATTR, hello_).Name("user.new")), Err(ENODATA));
  EXPECT_EQ(Reply(Req(FUSE_REMOVEXATTR, hello_).Raw("user.new")), Err(EINVAL));
}

TEST_F(ServerTest, SetXattrExtUsesThe16ByteStruct) {
  fs_.set_wanted_flags(FUSE_SETXATTR_EXT);
  Init(FUSE_SETXATTR_EXT);
  ASSERT_TRUE(server_.session().flags & FUSE_SETXATTR_EXT);
  fuse_setxattr_in in{};
  in.size = 2;
  in.flags = 0;
  in.setxattr_flags = FUSE_SETXATTR_ACL_KILL_SGID;
  EXPECT_EQ(Reply(Req(FUSE_SETXATTR, hello_).Add(in).Name("user.ext").Raw("ok")), Ok(""));
  fuse_getxattr_in q{16, 0};
  EXPECT_EQ(Reply(Req(FUSE_GETXATTR, hello_).Add(q).Name("user.ext")), Ok("ok"));
  // The compat struct now misaligns the name: "user.ext" is read as
  // setxattr_flags + padding, leaving "\0" as an empty name.
  EXPECT_EQ(Reply(Req(FUSE_SETXATTR, hello_)
                      .Raw(Bytes(in).substr(0, 8))
                      .Raw("user.ext")
                      .Name("")
                      .Raw("ok")),
            Err(ERANGE));
}

TEST_F(ServerTest, UnsupportedOpcodesGetEnosysAndInterruptNoReply) {
  Init();
  for (uint32_t op : {FUSE_IOCTL, FUSE_POLL, FUSE_BMAP, FUSE_SETUPMAPPING, FUSE_REMOVEMAPPING,
                      FUSE_SYNCFS, FUSE_TMPFILE, CUSE_INIT}) {
    EXPECT_EQ(Reply(Req(op, 1).Raw(std::string(48, '\0'))), Err(ENOSYS)) << op;
  }
  EXPECT_EQ(Reply(Req(999, 1)), Err(ENOSYS));
  EXPECT_EQ(Reply(Req(0, 1)), Err(ENOSYS));
  EXPECT_EQ(Run(Req(FUSE_INTERRUPT, 0).Add(fuse_interrupt_in{77}).Build()).returned, 0u);
  EXPECT_EQ(Run(Req(FUSE_NOTIFY_REPLY, 0).Raw(std::string(40, '\0')).Build()).returned, 0u);
}

// --- Malformed input -------------------------------------------------------------

TEST_F(ServerTest, TruncatedHeaderGetsNoReply) {
  Init();
  std::string req = Req(FUSE_GETATTR, 1).Add(fuse_getattr_in{}).Build();
  EXPECT_EQ(Run(req.substr(0, 39)).returned, 0u);
  EXPECT_EQ(Run("").returned, 0u);
}

TEST_F(ServerTest, HeaderLenMustMatchWhatArrived) {
  Init();
  Req req(FUSE_GETATTR, 1);
  req.Add(fuse_getattr_in{});
  EXPECT_EQ(Run(req.Build(+1)).reply, Err(EINVAL));     // len beyond the buffer
  EXPECT_EQ(Run(req.Build(+4096)).reply, Err(EINVAL));
  EXPECT_EQ(Run(req.Build(-1)).reply, Err(EINVAL));     // bytes beyond len
  EXPECT_EQ(Run(req.Build(-40)).reply, Err(EINVAL));    // len shorter than the header
  EXPECT_EQ(Run(req.Build(-56)).reply, Err(EINVAL));    // len 0
  EXPECT_EQ(Run(req.Build()).reply.size(), 16 + sizeof(fuse_attr_out));
}

TEST_F(ServerTest, ExtensionLengthBeyondTheRequestIsInvalid) {
  Init();
  std::string req = Req(FUSE_GETATTR, 1).Add(fuse_getattr_in{}).Build();
  fuse_in_header h;
  std::memcpy(&h, req.data(), sizeof(h));
  h.total_extlen = 3;  // 24 bytes, but only 16 follow the header
  std::memcpy(req.data(), &h, sizeof(h));
  EXPECT_EQ(Run(req).reply, Err(EINVAL));
  // Extensions inside len are skipped: GETATTR's 16 bytes then 8 ignored.
  std::string with_ext = Req(FUSE_GETATTR, 1).Add(fuse_getattr_in{}).Raw("EXTENSN!").Build();
  std::memcpy(&h, with_ext.data(), sizeof(h));
  h.total_extlen = 1;
  std::memcpy(with_ext.data(), &h, sizeof(h));
  EXPECT_EQ(Run(with_ext).reply, Ok(Bytes(AttrOutOf(fs_.Stat(1)))));
}

TEST_F(ServerTest, ShortArgumentStructsAreInvalid) {
  Init();
  struct Case {
    uint32_t opcode;
    size_t need;
  };
  for (Case c : std::vector<Case>{{FUSE_GETATTR, sizeof(fuse_getattr_in)},
                                  {FUSE_SETATTR, sizeof(fuse_setattr_in)},
                                  {FUSE_OPEN, sizeof(fuse_open_in)},
                                  {FUSE_READ, sizeof(fuse_read_in)},
                                  {FUSE_WRITE, sizeof(fuse_write_in)},
                                  {FUSE_RELEASE, sizeof(fuse_release_in)},
                                  {FUSE_FSYNC, sizeof(fuse_fsync_in)},
                                  {FUSE_FLUSH, sizeof(fuse_flush_in)},
                                  {FUSE_GETXATTR, sizeof(fuse_getxattr_in)},
                                  {FUSE_LISTXATTR, sizeof(fuse_getxattr_in)},
                                  {FUSE_OPENDIR, sizeof(fuse_open_in)},
                                  {FUSE_READDIR, sizeof(fuse_read_in)},
                                  {FUSE_READDIRPLUS, sizeof(fuse_read_in)},
                                  {FUSE_RELEASEDIR, sizeof(fuse_release_in)},
                                  {FUSE_FSYNCDIR, sizeof(fuse_fsync_in)},
                                  {FUSE_GETLK, sizeof(fuse_lk_in)},
                                  {FUSE_SETLK, sizeof(fuse_lk_in)},
                                  {FUSE_SETLKW, sizeof(fuse_lk_in)},
                                  {FUSE_ACCESS, sizeof(fuse_access_in)},
                                  {FUSE_FALLOCATE, sizeof(fuse_fallocate_in)},
                                  {FUSE_LSEEK, sizeof(fuse_lseek_in)},
                                  {FUSE_COPY_FILE_RANGE, sizeof(fuse_copy_file_range_in)},
                                  {FUSE_SETXATTR, FUSE_COMPAT_SETXATTR_IN_SIZE}}) {
    EXPECT_EQ(Reply(Req(c.opcode, hello_).Raw(std::string(c.need - 1, '\0'))), Err(EINVAL))
        << OpStats::OpcodeName(c.opcode);
  }
}

TEST_F(ServerTest, ReplyBufferTooSmall) {
  Init();
  // Room for the header but not the attr: ERANGE.
  EXPECT_EQ(Reply(Req(FUSE_GETATTR, 1).Add(fuse_getattr_in{}), 50), Err(ERANGE));
  EXPECT_EQ(Reply(Req(FUSE_LOOKUP, 1).Name("hello"), 100), Err(ERANGE));
  // Not even room for a header: no reply at all.
  Result r = Run(Req(FUSE_GETATTR, 1).Add(fuse_getattr_in{}).Build(), 15);
  EXPECT_EQ(r.returned, 0u);
}

TEST_F(ServerTest, StatsCountRequestsAndErrorsPerOpcode) {
  Init();
  Reply(Req(FUSE_LOOKUP, 1).Name("hello"));
  Reply(Req(FUSE_LOOKUP, 1).Name("nope"));
  Reply(Req(FUSE_LOOKUP, 1).Name("sub"));
  Reply(Req(777, 1));
  OpStats::Snapshot lookup = server_.stats().Get(FUSE_LOOKUP);
  EXPECT_EQ(lookup.count, 3u);
  EXPECT_EQ(lookup.errors, 1u);
  uint64_t in_buckets = 0;
  for (uint64_t b : lookup.buckets) in_buckets += b;
  EXPECT_EQ(in_buckets, 3u);
  EXPECT_EQ(server_.stats().Get(FUSE_INIT).count, 1u);
  EXPECT_EQ(server_.stats().Get(777).count, 1u);  // "other"
  EXPECT_EQ(server_.stats().Get(777).errors, 1u);
  std::vector<std::string> names;
  server_.stats().ForEach(
      [&](const char* name, const OpStats::Snapshot&) { names.push_back(name); });
  EXPECT_THAT(names, ::testing::ElementsAre("lookup", "init", "other"));
  EXPECT_STREQ(OpStats::OpcodeName(FUSE_COPY_FILE_RANGE), "copy_file_range");
  EXPECT_STREQ(OpStats::OpcodeName(4096), "other");
}

TEST_F(ServerTest, SharedStatsOutliveASession) {
  OpStats shared;
  Server::Options options;
  options.stats = &shared;
  for (int session = 0; session < 2; ++session) {
    FakeFileSystem fs;
    Server server(&fs, options);
    std::string req = Req(FUSE_STATFS, 1).Build();
    std::string buf(256, '\0');
    IovReader in({{req.data(), req.size()}});
    IovWriter out({{buf.data(), buf.size()}});
    EXPECT_EQ(server.HandleRequest(in, out), sizeof(fuse_out_header));  // EIO: no INIT
    EXPECT_EQ(&server.stats(), &shared);
  }
  EXPECT_EQ(shared.Get(FUSE_STATFS).count, 2u);
  EXPECT_EQ(shared.Get(FUSE_STATFS).errors, 2u);
  EXPECT_EQ(server_.stats().Get(FUSE_STATFS).count, 0u);  // its own, untouched
}

TEST(OpStatsTest, LatencyBuckets) {
  OpStats stats;
  stats.Record(FUSE_READ, 0, 500);             // <= 1 us
  stats.Record(FUSE_READ, 0, 1000);            // <= 1 us (bound inclusive)
  stats.Record(FUSE_READ, EIO, 1001);          // <= 4 us
  stats.Record(FUSE_READ, 0, 2'000'000'000);   // +Inf
  OpStats::Snapshot s = stats.Get(FUSE_READ);
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.latency_ns_sum, 2'000'002'501u);
  EXPECT_EQ(s.buckets[0], 2u);
  EXPECT_EQ(s.buckets[1], 1u);
  EXPECT_EQ(s.buckets[OpStats::kNumBuckets - 1], 1u);
}

}  // namespace
}  // namespace coherefs::agent::fuse
