// READDIR / READDIRPLUS: cookies resume exactly after a refused entry, and
// READDIRPLUS lookups are counted once per accepted entry.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/passthrough/passthrough_fs.h"
#include "agent/passthrough/test_util.h"
#include "gtest/gtest.h"

namespace coherefs::agent::passthrough {
namespace {

using fuse::kRootInode;
using testing::RecordingSink;
using testing::RootCtx;
using testing::TempTree;
using testing::WriteHostFile;

constexpr int kFiles = 1000;

class ReadDirTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ASSERT_EQ(mkdir(tree_.In("big").c_str(), 0755), 0);
    for (int i = 0; i < kFiles; ++i) WriteHostFile(tree_.In(absl::StrCat("big/f", i)), "");
    fs_ = testing::MakeFs(tree_.share());
    ASSERT_NE(fs_, nullptr);
  }

  TempTree tree_;
  std::unique_ptr<PassthroughFs> fs_;
};

TEST_P(ReadDirTest, RefusingEverySeventhEntryLosesAndRepeatsNothing) {
  const bool plus = GetParam();
  ASSERT_OK_AND_ASSIGN(fuse::Entry big, fs_->Lookup(RootCtx(), kRootInode, "big"));
  ASSERT_OK_AND_ASSIGN(fuse::OpenResult dir, fs_->OpenDir(RootCtx(), big.inode, 0));

  // One sink across calls: Add number 7, 14, 21, ... is refused, so every
  // ReadDir call ends early and the next resumes from the last cookie taken.
  RecordingSink sink([](int call) { return call % 7 == 0; });
  uint64_t offset = 0;
  int calls = 0;
  for (; calls < 2 * kFiles; ++calls) {
    sink.refused = false;
    ASSERT_OK(fs_->ReadDir(RootCtx(), big.inode, dir.handle, offset, plus, sink));
    if (!sink.refused) break;
    ASSERT_FALSE(sink.items.empty());
    offset = sink.items.back().offset;
  }
  EXPECT_GT(calls, kFiles / 7 - 1);  // really resumed many times

  std::set<std::string> names;
  for (const auto& item : sink.items) {
    EXPECT_TRUE(names.insert(item.name).second) << "repeated " << item.name;
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kFiles + 2));
  EXPECT_EQ(names.count("."), 1u);
  EXPECT_EQ(names.count(".."), 1u);
  for (int i = 0; i < kFiles; ++i) {
    EXPECT_EQ(names.count(absl::StrCat("f", i)), 1u) << "lost f" << i;
  }

  if (!plus) {
    for (const auto& item : sink.items) EXPECT_FALSE(item.has_plus);
    EXPECT_EQ(fs_->InodeCount(), 2u);  // root + big: plain READDIR looks nothing up
  } else {
    // Every accepted entry but "." and ".." carries a looked-up inode with
    // exactly one lookup; refused entries were undone.
    for (const auto& item : sink.items) {
      ASSERT_TRUE(item.has_plus);
      if (item.name == "." || item.name == "..") {
        EXPECT_EQ(item.plus.inode, 0u);
        continue;
      }
      EXPECT_NE(item.plus.inode, 0u) << item.name;
      EXPECT_EQ(item.plus.st.st_ino, item.ino);
      EXPECT_TRUE(S_ISREG(item.plus.st.st_mode));
      EXPECT_EQ(fs_->LookupCount(item.plus.inode), 1u) << item.name;
    }
    EXPECT_EQ(fs_->InodeCount(), static_cast<size_t>(kFiles + 2));
    for (const auto& item : sink.items) {
      if (item.plus.inode != 0) fs_->Forget(item.plus.inode, 1);
    }
    EXPECT_EQ(fs_->InodeCount(), 2u);
  }
  ASSERT_OK(fs_->ReleaseDir(RootCtx(), big.inode, dir.handle));
  EXPECT_EQ(fs_->HandleCount(), 0u);
}

TEST_P(ReadDirTest, RestartingFromZeroSeesEverythingAgain) {
  const bool plus = GetParam();
  ASSERT_OK_AND_ASSIGN(fuse::OpenResult dir, fs_->OpenDir(RootCtx(), kRootInode, 0));
  RecordingSink first;
  ASSERT_OK(fs_->ReadDir(RootCtx(), kRootInode, dir.handle, 0, plus, first));
  RecordingSink second;
  ASSERT_OK(fs_->ReadDir(RootCtx(), kRootInode, dir.handle, 0, plus, second));
  ASSERT_EQ(first.items.size(), 3u);  // ".", "..", "big"
  ASSERT_EQ(second.items.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(first.items[i].name, second.items[i].name);
    EXPECT_EQ(first.items[i].offset, second.items[i].offset);
  }
  // Past the last cookie: nothing more.
  RecordingSink tail;
  ASSERT_OK(fs_->ReadDir(RootCtx(), kRootInode, dir.handle, first.items.back().offset, plus,
                         tail));
  EXPECT_TRUE(tail.items.empty());
  for (const auto& item : first.items) {
    if (item.name == "big") {
      EXPECT_EQ(item.type, static_cast<uint32_t>(DT_DIR));
      if (plus) {
        EXPECT_EQ(fs_->LookupCount(item.plus.inode), 2u);  // two passes
      }
    }
  }
}

TEST_P(ReadDirTest, HandleErrors) {
  RecordingSink sink;
  EXPECT_ERRNO(fs_->ReadDir(RootCtx(), kRootInode, 77, 0, GetParam(), sink), EBADF);
  testing::CreateFile(*fs_, kRootInode, "file", "x");
  ASSERT_OK_AND_ASSIGN(fuse::Entry file, fs_->Lookup(RootCtx(), kRootInode, "file"));
  ASSERT_OK_AND_ASSIGN(fuse::OpenResult open, fs_->Open(RootCtx(), file.inode, O_RDONLY));
  EXPECT_ERRNO(fs_->ReadDir(RootCtx(), file.inode, open.handle, 0, GetParam(), sink), ENOTDIR);
  ASSERT_OK_AND_ASSIGN(fuse::OpenResult dir, fs_->OpenDir(RootCtx(), kRootInode, 0));
  ASSERT_OK(fs_->FsyncDir(RootCtx(), kRootInode, dir.handle, false));
}

INSTANTIATE_TEST_SUITE_P(PlainAndPlus, ReadDirTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Plus" : "Plain";
                         });

}  // namespace
}  // namespace coherefs::agent::passthrough
