// Nothing escapes the shared directory, guest credentials are real, and a
// read-only share refuses every change. Runs as root (the agent does), so the
// credential switching is what makes EACCES happen.
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "agent/passthrough/passthrough_fs.h"
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
using testing::ReadHostFile;
using testing::RootCtx;
using testing::TempTree;
using testing::UserCtx;
using testing::WriteHostFile;

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "these tests need root, as the agent runs";
    fs_ = testing::MakeFs(tree_.share());
    ASSERT_NE(fs_, nullptr);
  }

  // Every way of reaching `outside()` through `inode` as a directory fails,
  // and outside/ is unchanged afterwards.
  void ExpectNotADirectoryWayOut(InodeId inode) {
    EXPECT_ERRNO(fs_->Lookup(RootCtx(), inode, "secret"), ENOTDIR);
    EXPECT_ERRNO(fs_->Mkdir(RootCtx(), inode, "made", 0755, 0), ENOTDIR);
    EXPECT_ERRNO(fs_->Mknod(RootCtx(), inode, "made", S_IFREG | 0644, 0, 0), ENOTDIR);
    EXPECT_ERRNO(fs_->Symlink(RootCtx(), inode, "made", "x"), ENOTDIR);
    EXPECT_ERRNO(fs_->Create(RootCtx(), inode, "made", S_IFREG | 0644, O_CREAT | O_RDWR, 0),
                 ENOTDIR);
    EXPECT_ERRNO(fs_->Unlink(RootCtx(), inode, "secret"), ENOTDIR);
    EXPECT_ERRNO(fs_->Rename(RootCtx(), inode, "secret", kRootInode, "stolen", 0), ENOTDIR);
    EXPECT_ERRNO(fs_->Open(RootCtx(), inode, O_RDONLY), ELOOP);
    EXPECT_ERRNO(fs_->OpenDir(RootCtx(), inode, 0), ELOOP);
    ExpectOutsideUntouched();
  }

  void ExpectOutsideUntouched() {
    EXPECT_FALSE(HostExists(tree_.outside() + "/made"));
    EXPECT_EQ(ReadHostFile(tree_.outside() + "/secret"), "secret");
    EXPECT_FALSE(HostExists(tree_.In("stolen")));
  }

  TempTree tree_;
  std::unique_ptr<PassthroughFs> fs_;
};

TEST_F(SecurityTest, DotDotAndSlashNamesAreRejectedEverywhere) {
  Entry file = CreateFile(*fs_, kRootInode, "f", "x");
  for (const std::string& name :
       {std::string(".."), std::string("."), std::string(""), std::string("../outside"),
        std::string("a/b"), std::string("/etc"), std::string("x\0y", 3)}) {
    SCOPED_TRACE(name);
    EXPECT_ERRNO(fs_->Lookup(RootCtx(), kRootInode, name), EINVAL);
    EXPECT_ERRNO(fs_->Mkdir(RootCtx(), kRootInode, name, 0755, 0), EINVAL);
    EXPECT_ERRNO(fs_->Mknod(RootCtx(), kRootInode, name, S_IFIFO | 0644, 0, 0), EINVAL);
    EXPECT_ERRNO(fs_->Symlink(RootCtx(), kRootInode, name, "t"), EINVAL);
    EXPECT_ERRNO(fs_->Create(RootCtx(), kRootInode, name, S_IFREG | 0644, O_CREAT | O_RDWR, 0),
                 EINVAL);
    EXPECT_ERRNO(fs_->Unlink(RootCtx(), kRootInode, name), EINVAL);
    EXPECT_ERRNO(fs_->Rmdir(RootCtx(), kRootInode, name), EINVAL);
    EXPECT_ERRNO(fs_->Rename(RootCtx(), kRootInode, name, kRootInode, "z", 0), EINVAL);
    EXPECT_ERRNO(fs_->Rename(RootCtx(), kRootInode, "f", kRootInode, name, 0), EINVAL);
    EXPECT_ERRNO(fs_->Link(RootCtx(), file.inode, kRootInode, name), EINVAL);
  }
  EXPECT_EQ(ReadHostFile(tree_.In("f")), "x");
  ExpectOutsideUntouched();
}

TEST_F(SecurityTest, AbsoluteSymlinkOutsideIsNeverFollowed) {
  ASSERT_EQ(symlink(tree_.outside().c_str(), tree_.In("abs").c_str()), 0);
  ASSERT_OK_AND_ASSIGN(Entry abs, fs_->Lookup(RootCtx(), kRootInode, "abs"));
  EXPECT_TRUE(S_ISLNK(abs.st.st_mode));
  EXPECT_EQ(abs.st.st_ino, HostLstat(tree_.In("abs")).st_ino);
  ExpectNotADirectoryWayOut(abs.inode);
}

TEST_F(SecurityTest, RelativeDotDotSymlinkIsNeverFollowed) {
  ASSERT_EQ(mkdir(tree_.In("d").c_str(), 0755), 0);
  ASSERT_EQ(symlink("../../outside", tree_.In("d/rel").c_str()), 0);
  ASSERT_EQ(symlink("../../outside/secret", tree_.In("d/relfile").c_str()), 0);
  ASSERT_OK_AND_ASSIGN(Entry d, fs_->Lookup(RootCtx(), kRootInode, "d"));
  ASSERT_OK_AND_ASSIGN(Entry rel, fs_->Lookup(RootCtx(), d.inode, "rel"));
  EXPECT_TRUE(S_ISLNK(rel.st.st_mode));
  ExpectNotADirectoryWayOut(rel.inode);
  ASSERT_OK_AND_ASSIGN(Entry relfile, fs_->Lookup(RootCtx(), d.inode, "relfile"));
  EXPECT_ERRNO(fs_->Open(RootCtx(), relfile.inode, O_RDONLY), ELOOP);
  fuse::SetAttrIn trunc;
  trunc.valid = FATTR_SIZE;
  EXPECT_ERRNO(fs_->SetAttr(RootCtx(), relfile.inode, trunc), ELOOP);
  ASSERT_OK_AND_ASSIGN(std::string target, fs_->ReadLink(RootCtx(), relfile.inode));
  EXPECT_EQ(target, "../../outside/secret");  // the text only, for the guest to resolve
  ExpectOutsideUntouched();
}

TEST_F(SecurityTest, CreateThroughADanglingSymlinkFails) {
  // The guest plants a symlink to a file outside that does not exist yet and
  // then creates through its name: O_CREAT must not follow it.
  ASSERT_OK(fs_->Symlink(RootCtx(), kRootInode, "evil", tree_.outside() + "/made"));
  EXPECT_ERRNO(fs_->Create(RootCtx(), kRootInode, "evil", S_IFREG | 0644, O_CREAT | O_RDWR, 0),
               ELOOP);
  EXPECT_ERRNO(fs_->Mknod(RootCtx(), kRootInode, "evil", S_IFREG | 0644, 0, 0), EEXIST);
  EXPECT_ERRNO(fs_->Mkdir(RootCtx(), kRootInode, "evil", 0755, 0), EEXIST);
  ExpectOutsideUntouched();
}

TEST_F(SecurityTest, SymlinkSwappedInForADirectoryAfterLookup) {
  ASSERT_EQ(mkdir(tree_.In("d").c_str(), 0755), 0);
  ASSERT_OK_AND_ASSIGN(Entry d, fs_->Lookup(RootCtx(), kRootInode, "d"));
  // Between the guest's lookup and its use, someone swaps d for a symlink.
  ASSERT_EQ(rename(tree_.In("d").c_str(), tree_.In("d.old").c_str()), 0);
  ASSERT_EQ(symlink(tree_.outside().c_str(), tree_.In("d").c_str()), 0);

  // The inode is still the original directory, wherever it now lives.
  ASSERT_OK(fs_->Mkdir(RootCtx(), d.inode, "made", 0755, 0));
  EXPECT_TRUE(HostExists(tree_.In("d.old/made")));
  CreateFile(*fs_, d.inode, "file", "in");
  EXPECT_EQ(ReadHostFile(tree_.In("d.old/file")), "in");
  EXPECT_ERRNO(fs_->Lookup(RootCtx(), d.inode, "secret"), ENOENT);
  ASSERT_OK_AND_ASSIGN(OpenResult dir, fs_->OpenDir(RootCtx(), d.inode, 0));
  testing::RecordingSink sink;
  ASSERT_OK(fs_->ReadDir(RootCtx(), d.inode, dir.handle, 0, false, sink));
  for (const auto& item : sink.items) EXPECT_NE(item.name, "secret");
  // A fresh lookup sees the symlink, which leads nowhere.
  ASSERT_OK_AND_ASSIGN(Entry swapped, fs_->Lookup(RootCtx(), kRootInode, "d"));
  EXPECT_NE(swapped.inode, d.inode);
  EXPECT_TRUE(S_ISLNK(swapped.st.st_mode));
  ExpectNotADirectoryWayOut(swapped.inode);
}

TEST_F(SecurityTest, HardLinkAttemptsLinkTheSymlinkNotItsTarget) {
  ASSERT_EQ(symlink((tree_.outside() + "/secret").c_str(), tree_.In("s").c_str()), 0);
  ASSERT_OK_AND_ASSIGN(Entry s, fs_->Lookup(RootCtx(), kRootInode, "s"));
  ASSERT_OK_AND_ASSIGN(Entry hl, fs_->Link(RootCtx(), s.inode, kRootInode, "hl"));
  EXPECT_EQ(hl.inode, s.inode);
  EXPECT_TRUE(S_ISLNK(HostLstat(tree_.In("hl")).st_mode));
  EXPECT_EQ(HostLstat(tree_.outside() + "/secret").st_nlink, 1u);
  // As an unprivileged guest, linking a file it may not read is refused
  // (fs.protected_hardlinks, with the guest's fsuid).
  WriteHostFile(tree_.In("rootfile"), "r");
  ASSERT_EQ(chmod(tree_.In("rootfile").c_str(), 0600), 0);
  ASSERT_EQ(mkdir(tree_.In("pub").c_str(), 0777), 0);
  ASSERT_EQ(chmod(tree_.In("pub").c_str(), 0777), 0);
  ASSERT_OK_AND_ASSIGN(Entry rootfile, fs_->Lookup(RootCtx(), kRootInode, "rootfile"));
  ASSERT_OK_AND_ASSIGN(Entry pub, fs_->Lookup(RootCtx(), kRootInode, "pub"));
  int protected_hardlinks = 0;
  {
    std::string v = ReadHostFile("/proc/sys/fs/protected_hardlinks");
    protected_hardlinks = v.empty() ? 0 : v[0] - '0';
  }
  auto linked = fs_->Link(UserCtx(), rootfile.inode, pub.inode, "mine");
  if (protected_hardlinks == 1) {
    EXPECT_ERRNO(linked, EPERM);
  } else {
    EXPECT_TRUE(linked.ok()) << linked.status();
  }
  ExpectOutsideUntouched();
}

TEST_F(SecurityTest, ProcSelfFdTricksStayInside) {
  // Symlinks into /proc that would reach the agent's own fds, cwd and root.
  int outside_fd = open(tree_.outside().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(outside_fd, 0);
  ASSERT_EQ(setxattr(tree_.outside().c_str(), "user.mark", "out", 3, 0), 0);
  int index = 0;
  for (const std::string& target :
       {absl::StrCat("/proc/self/fd/", outside_fd), std::string("/proc/self/root"),
        std::string("/proc/self/cwd"), std::string("/proc/thread-self/root")}) {
    SCOPED_TRACE(target);
    const std::string name = absl::StrCat("p", index++);
    ASSERT_OK(fs_->Symlink(RootCtx(), kRootInode, name, target));
    ASSERT_OK_AND_ASSIGN(Entry p, fs_->Lookup(RootCtx(), kRootInode, name));
    EXPECT_TRUE(S_ISLNK(p.st.st_mode));
    ExpectNotADirectoryWayOut(p.inode);
    // The xattr calls go through our own /proc/self/fd/N of the symlink: they
    // reach the symlink, never what it names.
    EXPECT_ERRNO(fs_->GetXattr(RootCtx(), p.inode, "user.mark"), ENODATA);
    fuse::SetAttrIn times;
    times.valid = FATTR_MTIME;
    times.mtime = {12345, 0};
    ASSERT_OK(fs_->SetAttr(RootCtx(), p.inode, times));
    EXPECT_EQ(HostLstat(tree_.In(name)).st_mtim.tv_sec, 12345);
    EXPECT_NE(HostLstat(tree_.outside()).st_mtim.tv_sec, 12345);
  }
  // A name that spells a /proc path is just a bad name.
  EXPECT_ERRNO(fs_->Lookup(RootCtx(), kRootInode, absl::StrCat("/proc/self/fd/", outside_fd)),
               EINVAL);
  close(outside_fd);
  ExpectOutsideUntouched();
}

TEST_F(SecurityTest, GuestCredentialsOwnNewFiles) {
  ASSERT_EQ(mkdir(tree_.In("pub").c_str(), 0777), 0);
  ASSERT_EQ(chmod(tree_.In("pub").c_str(), 0777), 0);
  ASSERT_OK_AND_ASSIGN(Entry pub, fs_->Lookup(RootCtx(), kRootInode, "pub"));
  const auto user = UserCtx(1000, 1000);
  ASSERT_OK_AND_ASSIGN(Entry dir, fs_->Mkdir(user, pub.inode, "dir", 0755, 0));
  ASSERT_OK_AND_ASSIGN(Entry node, fs_->Mknod(user, pub.inode, "fifo", S_IFIFO | 0600, 0, 0));
  ASSERT_OK_AND_ASSIGN(Entry link, fs_->Symlink(user, pub.inode, "ln", "dir"));
  EXPECT_EQ(node.st.st_uid, 1000u);
  EXPECT_EQ(link.st.st_gid, 1000u);
  ASSERT_OK_AND_ASSIGN(auto created,
                       fs_->Create(user, pub.inode, "file", S_IFREG | 0644, O_CREAT | O_RDWR, 0));
  for (const char* name : {"dir", "fifo", "ln", "file"}) {
    SCOPED_TRACE(name);
    struct stat st = HostLstat(tree_.In(absl::StrCat("pub/", name)));
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(st.st_gid, 1000u);
  }
  EXPECT_EQ(dir.st.st_uid, 1000u);
  EXPECT_EQ(created.first.st.st_gid, 1000u);
  // The thread is itself again afterwards.
  EXPECT_EQ(setfsuid(static_cast<uid_t>(-1)), 0);
  EXPECT_EQ(setfsgid(static_cast<gid_t>(-1)), 0);
  // The guest user's own file is writable by it; a root-only dir is not.
  ASSERT_OK(fs_->Access(user, created.first.inode, R_OK | W_OK));
  ASSERT_EQ(mkdir(tree_.In("private").c_str(), 0700), 0);
  ASSERT_OK_AND_ASSIGN(Entry priv, fs_->Lookup(RootCtx(), kRootInode, "private"));
  EXPECT_ERRNO(fs_->Access(user, priv.inode, R_OK), EACCES);
  EXPECT_ERRNO(fs_->Access(user, priv.inode, X_OK), EACCES);
  ASSERT_OK(fs_->Access(RootCtx(), priv.inode, R_OK | W_OK | X_OK));
  EXPECT_ERRNO(fs_->Mkdir(user, priv.inode, "x", 0755, 0), EACCES);
  EXPECT_ERRNO(fs_->Create(user, priv.inode, "x", S_IFREG | 0644, O_CREAT | O_RDWR, 0), EACCES);
  EXPECT_ERRNO(fs_->Mknod(user, priv.inode, "x", S_IFIFO | 0644, 0, 0), EACCES);
  EXPECT_ERRNO(fs_->Symlink(user, priv.inode, "x", "t"), EACCES);
  EXPECT_ERRNO(fs_->Mkdir(user, kRootInode, "x", 0755, 0), EACCES);  // share is 0755 root
  // Devices need CAP_MKNOD, which the guest's fsuid does not carry.
  EXPECT_ERRNO(fs_->Mknod(user, pub.inode, "null", S_IFCHR | 0666, makedev(1, 3), 0), EPERM);
  EXPECT_FALSE(HostExists(tree_.In("private/x")));
  EXPECT_EQ(setfsuid(static_cast<uid_t>(-1)), 0);
}

TEST(ReadOnlyTest, EveryChangeIsErofs) {
  TempTree tree;
  WriteHostFile(tree.In("f"), "data");
  ASSERT_EQ(mkdir(tree.In("d").c_str(), 0755), 0);
  Options options;
  options.readonly = true;
  options.writeback = true;
  auto fs = testing::MakeFs(tree.share(), options);
  EXPECT_EQ(fs->WantedInitFlags() & FUSE_WRITEBACK_CACHE, 0u);
  ASSERT_OK_AND_ASSIGN(Entry f, fs->Lookup(RootCtx(), kRootInode, "f"));
  ASSERT_OK_AND_ASSIGN(OpenResult ro, fs->Open(RootCtx(), f.inode, O_RDONLY));
  char buf[4];
  IovWriter out({iovec{buf, 4}});
  ASSERT_OK_AND_ASSIGN(size_t n, fs->Read(RootCtx(), f.inode, ro.handle, 0, 4, out));
  EXPECT_EQ(n, 4u);

  fuse::SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = 0600;
  std::string data = "x";
  IovReader reader({iovec{data.data(), 1}});
  EXPECT_ERRNO(fs->SetAttr(RootCtx(), f.inode, in), EROFS);
  EXPECT_ERRNO(fs->Symlink(RootCtx(), kRootInode, "s", "t"), EROFS);
  EXPECT_ERRNO(fs->Mknod(RootCtx(), kRootInode, "n", S_IFIFO | 0644, 0, 0), EROFS);
  EXPECT_ERRNO(fs->Mkdir(RootCtx(), kRootInode, "m", 0755, 0), EROFS);
  EXPECT_ERRNO(fs->Unlink(RootCtx(), kRootInode, "f"), EROFS);
  EXPECT_ERRNO(fs->Rmdir(RootCtx(), kRootInode, "d"), EROFS);
  EXPECT_ERRNO(fs->Rename(RootCtx(), kRootInode, "f", kRootInode, "g", 0), EROFS);
  EXPECT_ERRNO(fs->Link(RootCtx(), f.inode, kRootInode, "g"), EROFS);
  EXPECT_ERRNO(fs->Create(RootCtx(), kRootInode, "c", S_IFREG | 0644, O_CREAT | O_RDWR, 0),
               EROFS);
  EXPECT_ERRNO(fs->Open(RootCtx(), f.inode, O_WRONLY), EROFS);
  EXPECT_ERRNO(fs->Open(RootCtx(), f.inode, O_RDWR), EROFS);
  EXPECT_ERRNO(fs->Open(RootCtx(), f.inode, O_RDONLY | O_TRUNC), EROFS);
  EXPECT_ERRNO(fs->Write(RootCtx(), f.inode, ro.handle, 0, 1, 0, reader), EROFS);
  EXPECT_ERRNO(fs->SetXattr(RootCtx(), f.inode, "user.a", "b", 0), EROFS);
  EXPECT_ERRNO(fs->RemoveXattr(RootCtx(), f.inode, "user.a"), EROFS);
  EXPECT_ERRNO(fs->Fallocate(RootCtx(), f.inode, ro.handle, 0, 10, 0), EROFS);
  EXPECT_ERRNO(fs->CopyFileRange(RootCtx(), f.inode, ro.handle, 0, f.inode, ro.handle, 10, 1, 0),
               EROFS);
  EXPECT_ERRNO(fs->Access(RootCtx(), f.inode, W_OK), EROFS);
  ASSERT_OK(fs->Access(RootCtx(), f.inode, R_OK));
  EXPECT_EQ(ReadHostFile(tree.In("f")), "data");
  EXPECT_TRUE(HostExists(tree.In("d")));
}

// A mount inside the share: renames and links across it are EXDEV, and the
// same directory seen through a bind mount is a different inode (mount id).
TEST_F(SecurityTest, CrossMountIsExdevAndBindMountsAreDistinctInodes) {
  ASSERT_EQ(mkdir(tree_.In("mnt").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(tree_.In("bind").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(tree_.In("real").c_str(), 0755), 0);
  if (mount("coherefs-test", tree_.In("mnt").c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount tmpfs here: " << strerror(errno);
  }
  ASSERT_EQ(mount(tree_.In("real").c_str(), tree_.In("bind").c_str(), nullptr, MS_BIND,
                  nullptr),
            0);
  Entry f = CreateFile(*fs_, kRootInode, "f", "x");
  ASSERT_OK_AND_ASSIGN(Entry mnt, fs_->Lookup(RootCtx(), kRootInode, "mnt"));
  EXPECT_ERRNO(fs_->Rename(RootCtx(), kRootInode, "f", mnt.inode, "f", 0), EXDEV);
  EXPECT_ERRNO(fs_->Link(RootCtx(), f.inode, mnt.inode, "f"), EXDEV);
  Entry inside = CreateFile(*fs_, mnt.inode, "g", "y");
  EXPECT_NE(inside.st.st_dev, f.st.st_dev);

  ASSERT_OK_AND_ASSIGN(Entry real, fs_->Lookup(RootCtx(), kRootInode, "real"));
  ASSERT_OK_AND_ASSIGN(Entry bind, fs_->Lookup(RootCtx(), kRootInode, "bind"));
  EXPECT_EQ(real.st.st_ino, bind.st.st_ino);
  EXPECT_EQ(real.st.st_dev, bind.st.st_dev);
  EXPECT_NE(real.inode, bind.inode);
  CreateFile(*fs_, real.inode, "h", "z");
  EXPECT_ERRNO(fs_->Rename(RootCtx(), real.inode, "h", bind.inode, "h2", 0), EXDEV);

  fs_->Destroy();  // drop fds before the mounts go
  EXPECT_EQ(umount2(tree_.In("bind").c_str(), MNT_DETACH), 0);
  EXPECT_EQ(umount2(tree_.In("mnt").c_str(), MNT_DETACH), 0);
}

}  // namespace
}  // namespace coherefs::agent::passthrough
