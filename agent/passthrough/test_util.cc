#include "agent/passthrough/test_util.h"

#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace coherefs::agent::passthrough::testing {
namespace {

int RemoveOne(const char* path, const struct stat*, int, struct FTW*) {
  remove(path);
  return 0;
}

}  // namespace

TempTree::TempTree() {
  const char* base = getenv("TEST_TMPDIR");
  std::string templ = std::string(base != nullptr ? base : "/tmp") + "/pt-XXXXXX";
  char* made = mkdtemp(templ.data());
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return;
  }
  root_ = made;
  mkdir(share().c_str(), 0755);
  mkdir(outside().c_str(), 0755);
  WriteHostFile(outside() + "/secret", "secret");
}

TempTree::~TempTree() {
  if (root_.empty()) return;
  // Tests that mount detach their mounts; a leftover one must not make nftw
  // walk (and empty) a file system that is not ours.
  umount2((share() + "/mnt").c_str(), MNT_DETACH);
  umount2((share() + "/bind").c_str(), MNT_DETACH);
  nftw(root_.c_str(), RemoveOne, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

void WriteHostFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

std::string ReadHostFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool HostExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

struct stat HostLstat(const std::string& path) {
  struct stat st = {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st;
}

std::unique_ptr<PassthroughFs> MakeFs(const std::string& dir, Options options) {
  options.shared_dir = dir;
  auto fs = PassthroughFs::Create(options);
  EXPECT_TRUE(fs.ok()) << fs.status();
  if (!fs.ok()) return nullptr;
  return std::move(fs).value();
}

bool RecordingSink::Add(const fuse::DirEntry& entry, const fuse::Entry* plus) {
  ++calls;
  if (refuse_ && refuse_(calls)) {
    refused = true;
    return false;
  }
  Item item;
  item.name = std::string(entry.name);
  item.ino = entry.ino;
  item.offset = entry.offset;
  item.type = entry.type;
  if (plus != nullptr) {
    item.has_plus = true;
    item.plus = *plus;
  }
  items.push_back(std::move(item));
  return true;
}

fuse::Entry CreateFile(PassthroughFs& fs, fuse::InodeId parent, const std::string& name,
                       const std::string& data, uint32_t mode) {
  auto created = fs.Create(RootCtx(), parent, name, S_IFREG | mode, O_WRONLY | O_CREAT, 0);
  EXPECT_TRUE(created.ok()) << created.status();
  if (!created.ok()) return {};
  auto [entry, open] = *created;
  std::string copy = data;
  IovReader reader({iovec{copy.data(), copy.size()}});
  auto written = fs.Write(RootCtx(), entry.inode, open.handle, 0,
                          static_cast<uint32_t>(copy.size()), 0, reader);
  EXPECT_TRUE(written.ok()) << written.status();
  EXPECT_TRUE(fs.Release(RootCtx(), entry.inode, open.handle, 0, 0, false).ok());
  return entry;
}

}  // namespace coherefs::agent::passthrough::testing
