#include "agent/passthrough/inode_table.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace coherefs::agent::passthrough {
namespace {

UniqueFd Fd() { return UniqueFd(open("/", O_PATH | O_CLOEXEC)); }

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST(InodeTableTest, SameKeyIsOneInodeAndCountsEveryLookup) {
  InodeTable table;
  table.SetRoot(Fd(), InodeKey{1, 2, 3}, S_IFDIR);
  InodeRef a = table.AddLookup(Fd(), InodeKey{1, 10, 3}, S_IFREG);
  UniqueFd second = Fd();
  const int second_fd = second.get();
  InodeRef b = table.AddLookup(std::move(second), InodeKey{1, 10, 3}, S_IFREG);
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(a->id, fuse::kRootInode + 1);
  EXPECT_EQ(table.LookupCount(a->id), 2u);
  EXPECT_FALSE(IsOpen(second_fd));  // the duplicate fd was closed
  EXPECT_EQ(table.size(), 2u);
}

TEST(InodeTableTest, DifferentMountIsADifferentInode) {
  InodeTable table;
  InodeRef a = table.AddLookup(Fd(), InodeKey{1, 10, 3}, S_IFDIR);
  InodeRef b = table.AddLookup(Fd(), InodeKey{1, 10, 4}, S_IFDIR);
  EXPECT_NE(a->id, b->id);
}

TEST(InodeTableTest, ForgetToZeroDropsAndIdsAreNeverReused) {
  InodeTable table;
  InodeRef a = table.AddLookup(Fd(), InodeKey{1, 10, 3}, S_IFREG);
  const fuse::InodeId id = a->id;
  const int fd = a->fd.get();
  table.AddLookup(id);
  EXPECT_EQ(table.LookupCount(id), 2u);
  table.Forget(id, 1);
  EXPECT_EQ(table.LookupCount(id), 1u);
  EXPECT_NE(table.Get(id), nullptr);
  table.Forget(id, 5);  // more than held: saturates, drops
  EXPECT_EQ(table.Get(id), nullptr);
  EXPECT_EQ(table.AddLookup(id), nullptr);
  // A caller's ref keeps the fd open after the drop; the last ref closes it.
  EXPECT_TRUE(IsOpen(fd));
  a.reset();
  EXPECT_FALSE(IsOpen(fd));
  InodeRef again = table.AddLookup(Fd(), InodeKey{1, 10, 3}, S_IFREG);
  EXPECT_EQ(again->id, id + 1);
  EXPECT_EQ(table.LookupCount(again->id), 1u);
}

TEST(InodeTableTest, RootIsNeverDropped) {
  InodeTable table;
  table.SetRoot(Fd(), InodeKey{1, 2, 3}, S_IFDIR);
  table.Forget(fuse::kRootInode, 100);
  ASSERT_NE(table.Get(fuse::kRootInode), nullptr);
  // Looking up the root's own key (e.g. through a bind mount of the same
  // mount) returns the root.
  EXPECT_EQ(table.AddLookup(Fd(), InodeKey{1, 2, 3}, S_IFDIR)->id, fuse::kRootInode);
  table.AddLookup(Fd(), InodeKey{1, 11, 3}, S_IFREG);
  table.Clear();
  EXPECT_EQ(table.size(), 1u);
  EXPECT_NE(table.Get(fuse::kRootInode), nullptr);
}

}  // namespace
}  // namespace coherefs::agent::passthrough
