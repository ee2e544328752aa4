// Happy paths and the errors a user hits, calling PassthroughFs directly over
// a real directory (no FUSE).
#include "agent/passthrough/passthrough_fs.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "agent/passthrough/test_util.h"
#include "gtest/gtest.h"

namespace coherefs::agent::passthrough {
namespace {

using fuse::Entry;
using fuse::InodeId;
using fuse::kRootInode;
using fuse::OpenResult;
using testing::CreateFile;
using testing::HostExists;
using testing::HostLstat;
using testing::MakeFs;
using testing::ReadHostFile;
using testing::RootCtx;
using testing::TempTree;
using testing::WriteHostFile;

class PassthroughFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_ = MakeFs(tree_.share());
    ASSERT_NE(fs_, nullptr);
  }

  std::string ReadAll(InodeId inode, uint64_t offset = 0, uint32_t size = 4096) {
    auto open = fs_->Open(RootCtx(), inode, O_RDONLY);
    EXPECT_TRUE(open.ok()) << open.status();
    if (!open.ok()) return "";
    std::string buf(size, '\0');
    IovWriter out({iovec{buf.data(), buf.size()}});
    auto n = fs_->Read(RootCtx(), inode, open->handle, offset, size, out);
    EXPECT_TRUE(n.ok()) << n.status();
    EXPECT_TRUE(fs_->Release(RootCtx(), inode, open->handle, 0, 0, false).ok());
    buf.resize(n.ok() ? *n : 0);
    return buf;
  }

  TempTree tree_;
  std::unique_ptr<PassthroughFs> fs_;
};

TEST(PassthroughCreateTest, FailsClearlyOnABadSharedDir) {
  TempTree tree;
  Options options;
  EXPECT_EQ(PassthroughFs::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.shared_dir = tree.root() + "/missing";
  auto missing = PassthroughFs::Create(options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing"), std::string::npos);
  WriteHostFile(tree.In("file"), "x");
  options.shared_dir = tree.In("file");
  EXPECT_ERRNO(PassthroughFs::Create(options), ENOTDIR);
}

TEST_F(PassthroughFsTest, LookupCountsAndHardLinksShareAnInode) {
  WriteHostFile(tree_.In("a"), "data");
  ASSERT_EQ(link(tree_.In("a").c_str(), tree_.In("b").c_str()), 0);
  ASSERT_OK_AND_ASSIGN(Entry a, fs_->Lookup(RootCtx(), kRootInode, "a"));
  ASSERT_OK_AND_ASSIGN(Entry b, fs_->Lookup(RootCtx(), kRootInode, "b"));
  EXPECT_EQ(a.inode, b.inode);
  EXPECT_NE(a.inode, kRootInode);
  EXPECT_EQ(a.generation, 0u);
  EXPECT_EQ(a.st.st_ino, HostLstat(tree_.In("a")).st_ino);
  EXPECT_EQ(a.st.st_size, 4);
  EXPECT_EQ(a.st.st_nlink, 2u);
  EXPECT_EQ(fs_->LookupCount(a.inode), 2u);
  EXPECT_EQ(fs_->InodeCount(), 2u);

  fs_->Forget(a.inode, 1);
  EXPECT_EQ(fs_->LookupCount(a.inode), 1u);
  ASSERT_OK(fs_->GetAttr(RootCtx(), a.inode, nullptr));
  fs_->Forget(a.inode, 1);
  EXPECT_EQ(fs_->InodeCount(), 1u);
  EXPECT_ERRNO(fs_->GetAttr(RootCtx(), a.inode, nullptr), ENOENT);
  // Ids are never reused: the same file comes back under a new id.
  ASSERT_OK_AND_ASSIGN(Entry again, fs_->Lookup(RootCtx(), kRootInode, "a"));
  EXPECT_GT(again.inode, a.inode);
  EXPECT_EQ(fs_->LookupCount(again.inode), 1u);
}

TEST_F(PassthroughFsTest, RootIsNeverForgotten) {
  fs_->Forget(kRootInode, 1000);
  ASSERT_OK_AND_ASSIGN(fuse::Attr attr, fs_->GetAttr(RootCtx(), kRootInode, nullptr));
  EXPECT_TRUE(S_ISDIR(attr.st.st_mode));
  EXPECT_EQ(attr.st.st_ino, HostLstat(tree_.share()).st_ino);
}

TEST_F(PassthroughFsTest, LookupErrors) {
  WriteHostFile(tree_.In("file"), "x");
  EXPECT_ERRNO(fs_->Lookup(RootCtx(), kRootInode, "nope"), ENOENT);
  EXPECT_EQ(fs_->Lookup(RootCtx(), kRootInode, "nope").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(Entry file, fs_->Lookup(RootCtx(), kRootInode, "file"));
  EXPECT_ERRNO(fs_->Lookup(RootCtx(), file.inode, "x"), ENOTDIR);
  EXPECT_ERRNO(fs_->Lookup(RootCtx(), kRootInode, std::string(256, 'n')), ENAMETOOLONG);
  EXPECT_ERRNO(fs_->Lookup(RootCtx(), 9999, "file"), ENOENT);
  EXPECT_EQ(fs_->LookupCount(file.inode), 1u);  // failures count nothing
}

TEST(PassthroughNegativeTest, NegativeEntriesOnlyWhenAskedAndCaching) {
  TempTree tree;
  Options options;
  options.negative_entries = true;
  options.cache = CacheMode::kAuto;
  auto fs = MakeFs(tree.share(), options);
  ASSERT_OK_AND_ASSIGN(Entry miss, fs->Lookup(RootCtx(), kRootInode, "nope"));
  EXPECT_EQ(miss.inode, 0u);
  EXPECT_EQ(miss.entry_timeout_s, 1.0);
  options.cache = CacheMode::kNone;
  auto none = MakeFs(tree.share(), options);
  EXPECT_ERRNO(none->Lookup(RootCtx(), kRootInode, "nope"), ENOENT);
  options.cache = CacheMode::kAlways;
  options.negative_entries = false;
  auto always = MakeFs(tree.share(), options);
  EXPECT_ERRNO(always->Lookup(RootCtx(), kRootInode, "nope"), ENOENT);
}

TEST_F(PassthroughFsTest, MkdirMknodSymlinkApplyUmaskAndTypes) {
  ASSERT_OK_AND_ASSIGN(Entry dir, fs_->Mkdir(RootCtx(), kRootInode, "d", 0777, 022));
  EXPECT_TRUE(S_ISDIR(dir.st.st_mode));
  EXPECT_EQ(HostLstat(tree_.In("d")).st_mode & 07777, 0755u);
  EXPECT_EQ(fs_->LookupCount(dir.inode), 1u);

  ASSERT_OK_AND_ASSIGN(Entry fifo,
                       fs_->Mknod(RootCtx(), dir.inode, "fifo", S_IFIFO | 0666, 0, 027));
  EXPECT_TRUE(S_ISFIFO(HostLstat(tree_.In("d/fifo")).st_mode));
  EXPECT_EQ(HostLstat(tree_.In("d/fifo")).st_mode & 07777, 0640u);
  EXPECT_TRUE(S_ISFIFO(fifo.st.st_mode));
  ASSERT_OK_AND_ASSIGN(Entry sock,
                       fs_->Mknod(RootCtx(), dir.inode, "sock", S_IFSOCK | 0600, 0, 0));
  EXPECT_TRUE(S_ISSOCK(HostLstat(tree_.In("d/sock")).st_mode));
  EXPECT_ERRNO(fs_->Open(RootCtx(), sock.inode, O_RDWR), ENXIO);
  ASSERT_OK_AND_ASSIGN(Entry reg, fs_->Mknod(RootCtx(), dir.inode, "reg", S_IFREG | 0600, 0, 0));
  EXPECT_TRUE(S_ISREG(reg.st.st_mode));
  ASSERT_OK_AND_ASSIGN(Entry chr, fs_->Mknod(RootCtx(), dir.inode, "null", S_IFCHR | 0600,
                                             makedev(1, 3), 0));
  EXPECT_EQ(HostLstat(tree_.In("d/null")).st_rdev, makedev(1, 3));
  // A guest's device node is never opened on the host.
  EXPECT_ERRNO(fs_->Open(RootCtx(), chr.inode, O_RDONLY), ENXIO);
  EXPECT_ERRNO(fs_->Open(RootCtx(), fifo.inode, O_RDONLY), ENXIO);

  ASSERT_OK_AND_ASSIGN(Entry link, fs_->Symlink(RootCtx(), dir.inode, "ln", "../target"));
  EXPECT_TRUE(S_ISLNK(link.st.st_mode));
  ASSERT_OK_AND_ASSIGN(std::string target, fs_->ReadLink(RootCtx(), link.inode));
  EXPECT_EQ(target, "../target");
  EXPECT_ERRNO(fs_->ReadLink(RootCtx(), reg.inode), EINVAL);

  EXPECT_ERRNO(fs_->Mkdir(RootCtx(), kRootInode, "d", 0755, 0), EEXIST);
  EXPECT_ERRNO(fs_->Mknod(RootCtx(), dir.inode, "fifo", S_IFIFO | 0600, 0, 0), EEXIST);
  EXPECT_ERRNO(fs_->Symlink(RootCtx(), dir.inode, "ln", "x"), EEXIST);
  EXPECT_ERRNO(fs_->Mkdir(RootCtx(), reg.inode, "sub", 0755, 0), ENOTDIR);
  EXPECT_ERRNO(fs_->Mkdir(RootCtx(), kRootInode, std::string(256, 'd'), 0755, 0), ENAMETOOLONG);
}

TEST_F(PassthroughFsTest, UnlinkRmdirErrors) {
  ASSERT_OK_AND_ASSIGN(Entry dir, fs_->Mkdir(RootCtx(), kRootInode, "d", 0755, 0));
  CreateFile(*fs_, dir.inode, "f", "x");
  EXPECT_ERRNO(fs_->Rmdir(RootCtx(), kRootInode, "d"), ENOTEMPTY);
  EXPECT_ERRNO(fs_->Unlink(RootCtx(), kRootInode, "d"), EISDIR);
  EXPECT_ERRNO(fs_->Rmdir(RootCtx(), dir.inode, "f"), ENOTDIR);
  EXPECT_ERRNO(fs_->Unlink(RootCtx(), kRootInode, "missing"), ENOENT);
  ASSERT_OK(fs_->Unlink(RootCtx(), dir.inode, "f"));
  EXPECT_FALSE(HostExists(tree_.In("d/f")));
  ASSERT_OK(fs_->Rmdir(RootCtx(), kRootInode, "d"));
  EXPECT_FALSE(HostExists(tree_.In("d")));
}

TEST_F(PassthroughFsTest, RenameWithFlags) {
  WriteHostFile(tree_.In("a"), "A");
  WriteHostFile(tree_.In("b"), "B");
  ASSERT_OK_AND_ASSIGN(Entry sub, fs_->Mkdir(RootCtx(), kRootInode, "sub", 0755, 0));

  EXPECT_ERRNO(fs_->Rename(RootCtx(), kRootInode, "a", kRootInode, "b", RENAME_NOREPLACE),
               EEXIST);
  ASSERT_OK(fs_->Rename(RootCtx(), kRootInode, "a", kRootInode, "b", RENAME_EXCHANGE));
  EXPECT_EQ(ReadHostFile(tree_.In("a")), "B");
  EXPECT_EQ(ReadHostFile(tree_.In("b")), "A");
  EXPECT_ERRNO(fs_->Rename(RootCtx(), kRootInode, "a", kRootInode, "none", RENAME_EXCHANGE),
               ENOENT);
  ASSERT_OK(fs_->Rename(RootCtx(), kRootInode, "a", sub.inode, "moved", 0));
  EXPECT_EQ(ReadHostFile(tree_.In("sub/moved")), "B");
  EXPECT_FALSE(HostExists(tree_.In("a")));
  ASSERT_OK(fs_->Rename(RootCtx(), kRootInode, "b", kRootInode, "c", RENAME_WHITEOUT));
  struct stat whiteout = HostLstat(tree_.In("b"));
  EXPECT_TRUE(S_ISCHR(whiteout.st_mode));
  EXPECT_EQ(whiteout.st_rdev, makedev(0, 0));
  EXPECT_EQ(ReadHostFile(tree_.In("c")), "A");
  EXPECT_ERRNO(fs_->Rename(RootCtx(), kRootInode, "c", kRootInode, "d", 1u << 7), EINVAL);
  EXPECT_ERRNO(fs_->Rename(RootCtx(), kRootInode, "sub", sub.inode, "inside", 0), EINVAL);
  WriteHostFile(tree_.In("sub/f"), "x");
  ASSERT_OK(fs_->Mkdir(RootCtx(), kRootInode, "empty", 0755, 0));
  EXPECT_ERRNO(fs_->Rename(RootCtx(), kRootInode, "empty", kRootInode, "sub", 0), ENOTEMPTY);
  EXPECT_ERRNO(fs_->Rename(RootCtx(), kRootInode, "c", kRootInode, "sub", 0), EISDIR);
}

TEST_F(PassthroughFsTest, LinkAddsALookupToTheSameInode) {
  Entry file = CreateFile(*fs_, kRootInode, "f", "x");
  ASSERT_OK_AND_ASSIGN(Entry link, fs_->Link(RootCtx(), file.inode, kRootInode, "g"));
  EXPECT_EQ(link.inode, file.inode);
  EXPECT_EQ(link.st.st_nlink, 2u);
  EXPECT_EQ(fs_->LookupCount(file.inode), 2u);
  EXPECT_EQ(HostLstat(tree_.In("g")).st_ino, HostLstat(tree_.In("f")).st_ino);
  EXPECT_ERRNO(fs_->Link(RootCtx(), file.inode, kRootInode, "g"), EEXIST);
  ASSERT_OK_AND_ASSIGN(Entry dir, fs_->Mkdir(RootCtx(), kRootInode, "d", 0755, 0));
  EXPECT_ERRNO(fs_->Link(RootCtx(), dir.inode, kRootInode, "dl"), EPERM);
}

TEST_F(PassthroughFsTest, CreateOpenReadWriteThroughSplitIovecs) {
  ASSERT_OK_AND_ASSIGN(auto created,
                       fs_->Create(RootCtx(), kRootInode, "f", S_IFREG | 0666,
                                   O_RDWR | O_CREAT | O_EXCL, 022));
  auto [entry, open] = created;
  EXPECT_EQ(HostLstat(tree_.In("f")).st_mode & 07777, 0644u);
  EXPECT_EQ(fs_->LookupCount(entry.inode), 1u);
  EXPECT_EQ(fs_->HandleCount(), 1u);

  std::string p1 = "hel", p2 = "l", p3 = "o world";
  IovReader reader({iovec{p1.data(), p1.size()}, iovec{p2.data(), p2.size()},
                    iovec{p3.data(), p3.size()}});
  ASSERT_OK_AND_ASSIGN(size_t written,
                       fs_->Write(RootCtx(), entry.inode, open.handle, 0, 11, 0, reader));
  EXPECT_EQ(written, 11u);
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_EQ(ReadHostFile(tree_.In("f")), "hello world");

  char b1[2], b2[5], b3[100];
  IovWriter out({iovec{b1, sizeof(b1)}, iovec{b2, sizeof(b2)}, iovec{b3, sizeof(b3)}});
  ASSERT_OK_AND_ASSIGN(size_t n, fs_->Read(RootCtx(), entry.inode, open.handle, 1, 100, out));
  EXPECT_EQ(n, 10u);  // short at EOF
  EXPECT_EQ(out.written(), 10u);
  EXPECT_EQ(std::string(b1, 2) + std::string(b2, 5) + std::string(b3, 3), "ello world");

  // A read never runs past the writer's room.
  char small[4];
  IovWriter tight({iovec{small, sizeof(small)}});
  ASSERT_OK_AND_ASSIGN(n, fs_->Read(RootCtx(), entry.inode, open.handle, 0, 100, tight));
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(std::string(small, 4), "hell");

  // More iovecs than IOV_MAX go out in slices.
  std::string bytes(1500, 'z');
  std::vector<iovec> many;
  for (char& c : bytes) many.push_back(iovec{&c, 1});
  IovReader many_reader(many);
  ASSERT_OK_AND_ASSIGN(written,
                       fs_->Write(RootCtx(), entry.inode, open.handle, 0, 1500, 0, many_reader));
  EXPECT_EQ(written, 1500u);
  EXPECT_EQ(ReadHostFile(tree_.In("f")), bytes);

  ASSERT_OK(fs_->Flush(RootCtx(), entry.inode, open.handle, 7));
  ASSERT_OK(fs_->Fsync(RootCtx(), entry.inode, open.handle, false));
  ASSERT_OK(fs_->Fsync(RootCtx(), entry.inode, open.handle, true));
  ASSERT_OK(fs_->Release(RootCtx(), entry.inode, open.handle, 0, 0, false));
  EXPECT_EQ(fs_->HandleCount(), 0u);
  IovWriter after({iovec{small, sizeof(small)}});
  EXPECT_ERRNO(fs_->Read(RootCtx(), entry.inode, open.handle, 0, 4, after), EBADF);
  EXPECT_ERRNO(fs_->Release(RootCtx(), entry.inode, open.handle, 0, 0, false), EBADF);

  EXPECT_ERRNO(fs_->Create(RootCtx(), kRootInode, "f", S_IFREG | 0644,
                           O_RDWR | O_CREAT | O_EXCL, 0),
               EEXIST);
  // Without O_EXCL an existing file is opened (and O_TRUNC truncates it).
  ASSERT_OK_AND_ASSIGN(auto reopened, fs_->Create(RootCtx(), kRootInode, "f", S_IFREG | 0644,
                                                  O_WRONLY | O_CREAT | O_TRUNC, 0));
  EXPECT_EQ(reopened.first.inode, entry.inode);
  EXPECT_EQ(fs_->LookupCount(entry.inode), 2u);
  EXPECT_EQ(ReadHostFile(tree_.In("f")), "");
  // The handle belongs to its inode.
  IovWriter wrong({iovec{small, sizeof(small)}});
  EXPECT_ERRNO(fs_->Read(RootCtx(), kRootInode, reopened.second.handle, 0, 4, wrong), EBADF);
}

TEST_F(PassthroughFsTest, OpenErrors) {
  ASSERT_OK_AND_ASSIGN(Entry dir, fs_->Mkdir(RootCtx(), kRootInode, "d", 0755, 0));
  EXPECT_ERRNO(fs_->Open(RootCtx(), dir.inode, O_WRONLY), EISDIR);
  Entry file = CreateFile(*fs_, kRootInode, "f", "abc");
  EXPECT_ERRNO(fs_->OpenDir(RootCtx(), file.inode, 0), ENOTDIR);
  EXPECT_ERRNO(fs_->Open(RootCtx(), 4242, O_RDONLY), ENOENT);
  ASSERT_OK_AND_ASSIGN(OpenResult ro, fs_->Open(RootCtx(), file.inode, O_RDONLY));
  std::string data = "x";
  IovReader reader({iovec{data.data(), 1}});
  EXPECT_ERRNO(fs_->Write(RootCtx(), file.inode, ro.handle, 0, 1, 0, reader), EBADF);
  // O_TRUNC in Open (FUSE_ATOMIC_O_TRUNC) truncates.
  ASSERT_OK_AND_ASSIGN(OpenResult trunc, fs_->Open(RootCtx(), file.inode, O_WRONLY | O_TRUNC));
  EXPECT_EQ(ReadHostFile(tree_.In("f")), "");
  EXPECT_EQ(fs_->HandleCount(), 2u);
  ASSERT_OK(fs_->Release(RootCtx(), file.inode, trunc.handle, 0, 0, false));
  EXPECT_ERRNO(fs_->Create(RootCtx(), file.inode, "x", S_IFREG | 0644, O_CREAT | O_RDWR, 0),
               ENOTDIR);
}

TEST_F(PassthroughFsTest, SetAttr) {
  Entry file = CreateFile(*fs_, kRootInode, "f", "0123456789", 0644);
  fuse::SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = S_IFREG | 0600;
  ASSERT_OK_AND_ASSIGN(fuse::Attr attr, fs_->SetAttr(RootCtx(), file.inode, in));
  EXPECT_EQ(attr.st.st_mode & 07777, 0600u);
  EXPECT_EQ(HostLstat(tree_.In("f")).st_mode & 07777, 0600u);
  EXPECT_EQ(attr.timeout_s, 1.0);

  in = {};
  in.valid = FATTR_UID | FATTR_GID;
  in.uid = 1234;
  in.gid = 5678;
  ASSERT_OK(fs_->SetAttr(RootCtx(), file.inode, in));
  in.valid = FATTR_UID;  // gid untouched (-1)
  in.uid = 42;
  in.gid = 0;
  ASSERT_OK_AND_ASSIGN(attr, fs_->SetAttr(RootCtx(), file.inode, in));
  EXPECT_EQ(attr.st.st_uid, 42u);
  EXPECT_EQ(attr.st.st_gid, 5678u);

  in = {};
  in.valid = FATTR_SIZE;
  in.size = 4;
  ASSERT_OK_AND_ASSIGN(attr, fs_->SetAttr(RootCtx(), file.inode, in));
  EXPECT_EQ(attr.st.st_size, 4);
  EXPECT_EQ(ReadHostFile(tree_.In("f")), "0123");
  ASSERT_OK_AND_ASSIGN(OpenResult open, fs_->Open(RootCtx(), file.inode, O_RDWR));
  in.valid = FATTR_SIZE | FATTR_FH;
  in.handle = open.handle;
  in.size = 2;
  ASSERT_OK_AND_ASSIGN(attr, fs_->SetAttr(RootCtx(), file.inode, in));
  EXPECT_EQ(ReadHostFile(tree_.In("f")), "01");
  ASSERT_OK_AND_ASSIGN(attr, fs_->GetAttr(RootCtx(), file.inode, &open.handle));
  EXPECT_EQ(attr.st.st_size, 2);

  in = {};
  in.valid = FATTR_ATIME | FATTR_MTIME;
  in.atime = {1000, 5};
  in.mtime = {2000, 7};
  ASSERT_OK_AND_ASSIGN(attr, fs_->SetAttr(RootCtx(), file.inode, in));
  EXPECT_EQ(attr.st.st_atim.tv_sec, 1000);
  EXPECT_EQ(attr.st.st_atim.tv_nsec, 5);
  EXPECT_EQ(attr.st.st_mtim.tv_sec, 2000);
  EXPECT_EQ(attr.st.st_mtim.tv_nsec, 7);
  in.valid = FATTR_MTIME | FATTR_MTIME_NOW;  // atime left alone
  ASSERT_OK_AND_ASSIGN(attr, fs_->SetAttr(RootCtx(), file.inode, in));
  EXPECT_EQ(attr.st.st_atim.tv_sec, 1000);
  EXPECT_GE(attr.st.st_mtim.tv_sec, time(nullptr) - 5);

  // KILL_SUIDGID: setuid always goes, setgid only with group-exec.
  ASSERT_EQ(chmod(tree_.In("f").c_str(), 06755), 0);
  in = {};
  in.valid = FATTR_KILL_SUIDGID | FATTR_SIZE;
  in.size = 0;
  ASSERT_OK_AND_ASSIGN(attr, fs_->SetAttr(RootCtx(), file.inode, in));
  EXPECT_EQ(attr.st.st_mode & 07777, 0755u);
  ASSERT_EQ(chmod(tree_.In("f").c_str(), 06744), 0);
  ASSERT_OK_AND_ASSIGN(attr, fs_->SetAttr(RootCtx(), file.inode, in));
  EXPECT_EQ(attr.st.st_mode & 07777, 02744u);

  in = {};
  in.valid = FATTR_SIZE | FATTR_FH;
  in.handle = 999;
  EXPECT_ERRNO(fs_->SetAttr(RootCtx(), file.inode, in), EBADF);
  ASSERT_OK_AND_ASSIGN(Entry dir, fs_->Mkdir(RootCtx(), kRootInode, "d", 0755, 0));
  in.valid = FATTR_SIZE;
  EXPECT_ERRNO(fs_->SetAttr(RootCtx(), dir.inode, in), EISDIR);
}

TEST_F(PassthroughFsTest, WriteKillsSuidWhenAsked) {
  Entry file = CreateFile(*fs_, kRootInode, "f", "x", 0644);
  ASSERT_EQ(chmod(tree_.In("f").c_str(), 04755), 0);
  ASSERT_OK_AND_ASSIGN(OpenResult open, fs_->Open(RootCtx(), file.inode, O_WRONLY));
  std::string d = "y";
  IovReader r1({iovec{d.data(), 1}});
  ASSERT_OK(fs_->Write(RootCtx(), file.inode, open.handle, 0, 1, 0, r1));
  EXPECT_EQ(HostLstat(tree_.In("f")).st_mode & 07777, 04755u);  // root's write keeps it
  IovReader r2({iovec{d.data(), 1}});
  ASSERT_OK(fs_->Write(RootCtx(), file.inode, open.handle, 0, 1, FUSE_WRITE_KILL_SUIDGID, r2));
  EXPECT_EQ(HostLstat(tree_.In("f")).st_mode & 07777, 0755u);
}

TEST(PassthroughCacheTest, TimeoutsAndOpenFlagsFollowTheCacheMode) {
  struct Case {
    CacheMode mode;
    double timeout;
    uint32_t file_flags;
    uint32_t dir_flags;
  };
  for (const Case& c : {Case{CacheMode::kNone, 0, FOPEN_DIRECT_IO, 0},
                        Case{CacheMode::kAuto, 1, 0, 0},
                        Case{CacheMode::kAlways, 86400, FOPEN_KEEP_CACHE,
                             FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE}}) {
    SCOPED_TRACE(CacheModeName(c.mode));
    TempTree tree;
    WriteHostFile(tree.In("f"), "x");
    Options options;
    options.cache = c.mode;
    auto fs = MakeFs(tree.share(), options);
    ASSERT_OK_AND_ASSIGN(Entry e, fs->Lookup(RootCtx(), kRootInode, "f"));
    EXPECT_EQ(e.entry_timeout_s, c.timeout);
    EXPECT_EQ(e.attr_timeout_s, c.timeout);
    ASSERT_OK_AND_ASSIGN(fuse::Attr attr, fs->GetAttr(RootCtx(), e.inode, nullptr));
    EXPECT_EQ(attr.timeout_s, c.timeout);
    ASSERT_OK_AND_ASSIGN(OpenResult file, fs->Open(RootCtx(), e.inode, O_RDONLY));
    EXPECT_EQ(file.open_flags, c.file_flags);
    ASSERT_OK_AND_ASSIGN(OpenResult dir, fs->OpenDir(RootCtx(), kRootInode, O_RDONLY));
    EXPECT_EQ(dir.open_flags, c.dir_flags);
    ASSERT_OK_AND_ASSIGN(auto created, fs->Create(RootCtx(), kRootInode, "g", S_IFREG | 0644,
                                                  O_CREAT | O_RDWR, 0));
    EXPECT_EQ(created.first.entry_timeout_s, c.timeout);
    EXPECT_EQ(created.second.open_flags, c.file_flags);
  }
  CacheMode parsed;
  EXPECT_TRUE(ParseCacheMode("never", &parsed));
  EXPECT_EQ(parsed, CacheMode::kNone);
  EXPECT_TRUE(ParseCacheMode("always", &parsed));
  EXPECT_EQ(parsed, CacheMode::kAlways);
  EXPECT_FALSE(ParseCacheMode("sometimes", &parsed));
}

TEST(PassthroughInitTest, WantedFlagsFollowOptions) {
  TempTree tree;
  Options options;
  auto defaults = MakeFs(tree.share(), options);
  const uint64_t base = FUSE_PARALLEL_DIROPS | FUSE_ATOMIC_O_TRUNC;
  EXPECT_EQ(defaults->WantedInitFlags(), base | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO);
  options.readdirplus = false;
  options.writeback = true;
  auto wb = MakeFs(tree.share(), options);
  EXPECT_EQ(wb->WantedInitFlags(), base | FUSE_WRITEBACK_CACHE);
  EXPECT_EQ(wb->WantedInitFlags() & FUSE_POSIX_LOCKS, 0u);
}

TEST(PassthroughWritebackTest, WriteOnlyBecomesReadWriteAndAppendIsDropped) {
  TempTree tree;
  WriteHostFile(tree.In("f"), "abcdef");
  Options options;
  options.writeback = true;
  auto fs = MakeFs(tree.share(), options);
  ASSERT_OK_AND_ASSIGN(Entry e, fs->Lookup(RootCtx(), kRootInode, "f"));
  char buf[3];

  // Until INIT agrees, flags pass as given.
  ASSERT_OK_AND_ASSIGN(OpenResult before, fs->Open(RootCtx(), e.inode, O_WRONLY));
  IovWriter w0({iovec{buf, 3}});
  EXPECT_ERRNO(fs->Read(RootCtx(), e.inode, before.handle, 0, 3, w0), EBADF);

  fuse::InitInfo info;
  info.flags = FUSE_WRITEBACK_CACHE | FUSE_DO_READDIRPLUS;
  ASSERT_OK(fs->Init(info));
  ASSERT_OK_AND_ASSIGN(OpenResult open, fs->Open(RootCtx(), e.inode, O_WRONLY | O_APPEND));
  IovWriter w1({iovec{buf, 3}});
  ASSERT_OK_AND_ASSIGN(size_t n, fs->Read(RootCtx(), e.inode, open.handle, 0, 3, w1));
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(std::string(buf, 3), "abc");
  std::string data = "XY";
  IovReader r({iovec{data.data(), 2}});
  ASSERT_OK(fs->Write(RootCtx(), e.inode, open.handle, 1, 2, 0, r));
  EXPECT_EQ(ReadHostFile(tree.In("f")), "aXYdef");  // at the offset, not appended
}

TEST_F(PassthroughFsTest, StatFsAccessAndFileKey) {
  ASSERT_OK_AND_ASSIGN(struct statvfs st, fs_->StatFs(RootCtx(), kRootInode));
  struct statvfs host;
  ASSERT_EQ(statvfs(tree_.share().c_str(), &host), 0);
  EXPECT_EQ(st.f_bsize, host.f_bsize);
  EXPECT_EQ(st.f_blocks, host.f_blocks);
  EXPECT_EQ(st.f_namemax, host.f_namemax);

  Entry file = CreateFile(*fs_, kRootInode, "f", "x", 0644);
  ASSERT_OK(fs_->Access(RootCtx(), file.inode, R_OK | W_OK));
  ASSERT_OK(fs_->Access(RootCtx(), file.inode, F_OK));
  EXPECT_ERRNO(fs_->Access(RootCtx(), file.inode, X_OK), EACCES);  // no x bit, even root

  ASSERT_OK_AND_ASSIGN(std::string key, fs_->FileKey(file.inode));
  ASSERT_GT(key.size(), 4u);
  // Compare with the host's own answer for the same path.
  union {
    struct file_handle fh;
    char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  } buf;
  buf.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  ASSERT_EQ(name_to_handle_at(AT_FDCWD, tree_.In("f").c_str(), &buf.fh, &mount_id, 0), 0);
  uint32_t key_type = 0;
  for (int i = 0; i < 4; ++i) key_type |= uint32_t{static_cast<uint8_t>(key[i])} << (8 * i);
  EXPECT_EQ(key_type, static_cast<uint32_t>(buf.fh.handle_type));
  EXPECT_EQ(key.substr(4), std::string(reinterpret_cast<char*>(buf.fh.f_handle),
                                        buf.fh.handle_bytes));
  // Stable across a rename; different for another file.
  ASSERT_OK(fs_->Rename(RootCtx(), kRootInode, "f", kRootInode, "renamed", 0));
  ASSERT_OK_AND_ASSIGN(std::string after, fs_->FileKey(file.inode));
  EXPECT_EQ(after, key);
  Entry other = CreateFile(*fs_, kRootInode, "other", "y");
  ASSERT_OK_AND_ASSIGN(std::string other_key, fs_->FileKey(other.inode));
  EXPECT_NE(other_key, key);
  EXPECT_ERRNO(fs_->FileKey(777), ENOENT);
}

TEST_F(PassthroughFsTest, Xattrs) {
  Entry file = CreateFile(*fs_, kRootInode, "f", "x");
  ASSERT_OK(fs_->SetXattr(RootCtx(), file.inode, "user.color", "blue", 0));
  ASSERT_OK_AND_ASSIGN(std::string value, fs_->GetXattr(RootCtx(), file.inode, "user.color"));
  EXPECT_EQ(value, "blue");
  ASSERT_OK(fs_->SetXattr(RootCtx(), file.inode, "user.empty", "", 0));
  ASSERT_OK_AND_ASSIGN(value, fs_->GetXattr(RootCtx(), file.inode, "user.empty"));
  EXPECT_EQ(value, "");
  char host_value[16] = {};
  ASSERT_EQ(getxattr(tree_.In("f").c_str(), "user.color", host_value, sizeof(host_value)), 4);
  EXPECT_EQ(std::string(host_value), "blue");
  EXPECT_ERRNO(fs_->SetXattr(RootCtx(), file.inode, "user.color", "red", XATTR_CREATE), EEXIST);
  EXPECT_ERRNO(fs_->SetXattr(RootCtx(), file.inode, "user.none", "red", XATTR_REPLACE),
               ENODATA);
  ASSERT_OK_AND_ASSIGN(std::string names, fs_->ListXattr(RootCtx(), file.inode));
  EXPECT_NE(names.find(std::string("user.color\0", 11)), std::string::npos);
  EXPECT_NE(names.find(std::string("user.empty\0", 11)), std::string::npos);
  ASSERT_OK(fs_->RemoveXattr(RootCtx(), file.inode, "user.color"));
  EXPECT_ERRNO(fs_->GetXattr(RootCtx(), file.inode, "user.color"), ENODATA);
  EXPECT_ERRNO(fs_->RemoveXattr(RootCtx(), file.inode, "user.color"), ENODATA);
  EXPECT_ERRNO(fs_->GetXattr(RootCtx(), file.inode, std::string("user.empty\0x", 12)), EINVAL);
  // Directories and FIFOs work too (never opened).
  ASSERT_OK_AND_ASSIGN(Entry fifo,
                       fs_->Mknod(RootCtx(), kRootInode, "fifo", S_IFIFO | 0644, 0, 0));
  ASSERT_OK(fs_->SetXattr(RootCtx(), fifo.inode, "trusted.t", "v", 0));
  ASSERT_OK_AND_ASSIGN(value, fs_->GetXattr(RootCtx(), fifo.inode, "trusted.t"));
  EXPECT_EQ(value, "v");
}

TEST(PassthroughXattrOffTest, EverythingIsEnosys) {
  TempTree tree;
  WriteHostFile(tree.In("f"), "x");
  Options options;
  options.xattr = false;
  auto fs = MakeFs(tree.share(), options);
  EXPECT_ERRNO(fs->SetXattr(RootCtx(), kRootInode, "user.a", "b", 0), ENOSYS);
  EXPECT_ERRNO(fs->GetXattr(RootCtx(), kRootInode, "user.a"), ENOSYS);
  EXPECT_ERRNO(fs->ListXattr(RootCtx(), kRootInode), ENOSYS);
  EXPECT_ERRNO(fs->RemoveXattr(RootCtx(), kRootInode, "user.a"), ENOSYS);
  EXPECT_EQ(fs->GetXattr(RootCtx(), kRootInode, "user.a").status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST_F(PassthroughFsTest, FallocateLseekCopyFileRangeAndLocks) {
  ASSERT_OK_AND_ASSIGN(auto created, fs_->Create(RootCtx(), kRootInode, "f", S_IFREG | 0644,
                                                 O_CREAT | O_RDWR, 0));
  const InodeId f = created.first.inode;
  const fuse::HandleId h = created.second.handle;
  ASSERT_OK(fs_->Fallocate(RootCtx(), f, h, 0, 8192, 0));
  EXPECT_EQ(HostLstat(tree_.In("f")).st_size, 8192);
  EXPECT_ERRNO(fs_->Fallocate(RootCtx(), f, h, 0, 0, 0), EINVAL);

  // Data only at [1 MiB, 1 MiB + 4 KiB): a hole before it.
  ASSERT_OK(fs_->SetAttr(RootCtx(), f, [] {
    fuse::SetAttrIn in;
    in.valid = FATTR_SIZE;
    in.size = 0;
    return in;
  }()));
  std::string block(4096, 'd');
  IovReader r({iovec{block.data(), block.size()}});
  ASSERT_OK(fs_->Write(RootCtx(), f, h, 1 << 20, 4096, 0, r));
  ASSERT_OK_AND_ASSIGN(uint64_t data, fs_->Lseek(RootCtx(), f, h, 0, SEEK_DATA));
  EXPECT_EQ(data, 1u << 20);
  ASSERT_OK_AND_ASSIGN(uint64_t hole, fs_->Lseek(RootCtx(), f, h, 0, SEEK_HOLE));
  EXPECT_EQ(hole, 0u);
  ASSERT_OK_AND_ASSIGN(hole, fs_->Lseek(RootCtx(), f, h, 1 << 20, SEEK_HOLE));
  EXPECT_EQ(hole, (1u << 20) + 4096);
  EXPECT_ERRNO(fs_->Lseek(RootCtx(), f, h, (1 << 20) + 4096, SEEK_DATA), ENXIO);

  ASSERT_OK_AND_ASSIGN(auto copy, fs_->Create(RootCtx(), kRootInode, "g", S_IFREG | 0644,
                                              O_CREAT | O_RDWR, 0));
  ASSERT_OK_AND_ASSIGN(size_t copied,
                       fs_->CopyFileRange(RootCtx(), f, h, 1 << 20, copy.first.inode,
                                          copy.second.handle, 10, 100, 0));
  EXPECT_EQ(copied, 100u);
  EXPECT_EQ(ReadHostFile(tree_.In("g")), std::string(10, '\0') + std::string(100, 'd'));
  EXPECT_ERRNO(fs_->CopyFileRange(RootCtx(), f, h, 0, copy.first.inode, 12345, 0, 1, 0), EBADF);

  fuse::FileLock lock;
  lock.type = F_WRLCK;
  lock.end = 10;
  EXPECT_ERRNO(fs_->GetLk(RootCtx(), f, h, 1, lock), ENOSYS);
  EXPECT_ERRNO(fs_->SetLk(RootCtx(), f, h, 1, lock, true), ENOSYS);
}

TEST_F(PassthroughFsTest, DestroyDropsEverythingButTheRoot) {
  Entry file = CreateFile(*fs_, kRootInode, "f", "x");
  ASSERT_OK_AND_ASSIGN(OpenResult open, fs_->Open(RootCtx(), file.inode, O_RDONLY));
  ASSERT_OK_AND_ASSIGN(OpenResult dir, fs_->OpenDir(RootCtx(), kRootInode, 0));
  EXPECT_EQ(fs_->HandleCount(), 2u);
  fs_->Destroy();
  EXPECT_ERRNO(fs_->Release(RootCtx(), file.inode, open.handle, 0, 0, false), EBADF);
  EXPECT_EQ(fs_->HandleCount(), 0u);
  EXPECT_EQ(fs_->InodeCount(), 1u);
  EXPECT_ERRNO(fs_->GetAttr(RootCtx(), file.inode, nullptr), ENOENT);
  EXPECT_ERRNO(fs_->ReleaseDir(RootCtx(), kRootInode, dir.handle), EBADF);
  ASSERT_OK(fs_->Lookup(RootCtx(), kRootInode, "f"));
}

}  // namespace
}  // namespace coherefs::agent::passthrough
