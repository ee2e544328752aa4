// Several threads at once: credentials stay per thread, and concurrent
// lookups/forgets of one file keep one inode with an exact count.
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/passthrough/passthrough_fs.h"
#include "agent/passthrough/test_util.h"
#include "gtest/gtest.h"

namespace coherefs::agent::passthrough {
namespace {

using fuse::kRootInode;
using testing::HostLstat;
using testing::RootCtx;
using testing::TempTree;
using testing::UserCtx;

TEST(ConcurrencyTest, CredentialsArePerThread) {
  TempTree tree;
  ASSERT_EQ(mkdir(tree.In("pub").c_str(), 0777), 0);
  ASSERT_EQ(chmod(tree.In("pub").c_str(), 0777), 0);
  auto fs = testing::MakeFs(tree.share());
  ASSERT_OK_AND_ASSIGN(fuse::Entry pub, fs->Lookup(RootCtx(), kRootInode, "pub"));

  constexpr int kThreads = 4;
  constexpr int kFilesPerThread = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint32_t uid = 1000 + t;  // thread 0 is uid 1000, ...
      for (int i = 0; i < kFilesPerThread; ++i) {
        auto created = fs->Create(UserCtx(uid, uid), pub.inode, absl::StrCat("t", t, "_", i),
                                  S_IFREG | 0644, O_CREAT | O_RDWR, 0);
        if (!created.ok()) {
          ++failures;
          continue;
        }
        if (!fs->Release(RootCtx(), created->first.inode, created->second.handle, 0, 0, false)
                 .ok()) {
          ++failures;
        }
        // Interleave root work on the same thread: it must run as root.
        if (!fs->Mkdir(RootCtx(), kRootInode, absl::StrCat("root_", t, "_", i), 0755, 0).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kFilesPerThread; ++i) {
      struct stat st = HostLstat(tree.In(absl::StrCat("pub/t", t, "_", i)));
      ASSERT_EQ(st.st_uid, 1000u + t);
      ASSERT_EQ(st.st_gid, 1000u + t);
      ASSERT_EQ(HostLstat(tree.In(absl::StrCat("root_", t, "_", i))).st_uid, 0u);
    }
  }
}

TEST(ConcurrencyTest, LookupsAndForgetsOfOneFileBalance) {
  TempTree tree;
  testing::WriteHostFile(tree.In("f"), "x");
  auto fs = testing::MakeFs(tree.share());
  constexpr int kThreads = 4;
  constexpr int kRounds = 500;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        auto a = fs->Lookup(RootCtx(), kRootInode, "f");
        auto b = fs->Lookup(RootCtx(), kRootInode, "f");
        if (!a.ok() || !b.ok() || a->inode != b->inode) {
          ++failures;
          continue;
        }
        if (!fs->GetAttr(RootCtx(), a->inode, nullptr).ok()) ++failures;
        fs->Forget(a->inode, 2);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(fs->InodeCount(), 1u);  // every lookup was forgotten
}

}  // namespace
}  // namespace coherefs::agent::passthrough
